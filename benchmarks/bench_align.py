"""Benchmark: signed weight matching against sign-normalise-then-match (prints a table; not a test).

Run: ``PYTHONPATH=src python benchmarks/bench_align.py``. Every row at one and at two threads
(torch and BLAS; the descent itself runs its products on one BLAS thread, see
``matching.descend``).

On the Git Re-Basin MNIST MLP shape 784-512-512-512-10 with tanh units: two independent
random nets, and a net against a copy moved by a random signed permutation plus 1e-3 relative
noise. For each, the wall time (best of ``REPEATS``) of

* ``previous``: ``align.align(method="normalised weight")`` (both nets sign-normalised on their
  own, then permutation coordinate descent);
* ``signed``: ``align.align`` (signed permutation coordinate descent, started from the previous
  method's answer, so it includes that method's time: both phases run on one set of score
  terms);
* ``signed, from the identity``: ``align.align(method="weight from identity")``, the same descent
  started from the identity (no guarantee against the previous method, no time spent on it);
* ``activation``: ``align.align(method="activation")`` on 1000 random inputs,

and the normalised distance ``2 ||a - g b|| / (||a|| + ||b||)`` each reaches. Wall time and the
process's CPU time are both printed: on a shared machine the wall time also counts the time
other jobs held the cores. Target: signed weight matching under 1 second.
"""

import time

import torch
from threadpoolctl import threadpool_limits

from ghost_optima.core.mlp import init_mlp
from ghost_optima.symmetry.align import align
from ghost_optima.symmetry.group import apply_transform, mlp_permutation_spec, random_transform
from ghost_optima.symmetry.pairwise import distance

REPEATS = 3
WIDTHS = (784, 512, 512, 512, 10)


def best_time(fn, repeats=REPEATS):
    """``(best wall seconds, best CPU seconds, result)`` over ``repeats`` runs."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return min(walls), min(cpus), result


def rel(a, b, g):
    moved = apply_transform(b, mlp_permutation_spec(len(WIDTHS) - 2), g)
    norm = lambda p: float(sum(v.double().pow(2).sum() for v in p.values()) ** 0.5)  # noqa: E731
    return 2 * distance(a, moved) / (norm(a) + norm(b))


def main() -> None:
    a, b = init_mlp(WIDTHS, 0), init_mlp(WIDTHS, 1)
    spec = mlp_permutation_spec(len(WIDTHS) - 2)
    g = random_transform(spec, WIDTHS, "tanh", 2)
    gen = torch.Generator().manual_seed(3)
    copy = {
        k: v + 1e-3 * v.std() * torch.randn(v.shape, generator=gen, dtype=v.dtype)
        for k, v in apply_transform(a, spec, g).items()
    }
    x = torch.randn(1000, WIDTHS[0], generator=gen, dtype=torch.float64)
    group = mlp_permutation_spec(len(WIDTHS) - 2, "tanh")
    methods = {
        "previous (sign-normalise, then match)": lambda p, q: align(
            p, q, group, "normalised weight"
        ),
        "signed weight matching": lambda p, q: align(p, q, group),
        "signed, from the identity": lambda p, q: align(p, q, group, "weight from identity"),
        "signed activation matching": lambda p, q: align(
            p, q, group, "activation", x=x, activation="tanh"
        ),
    }
    print(f"{'threads':>7} {'pair':<18} {'method':<38} {'wall s':>7} {'CPU s':>7} {'distance':>9}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            for pair, (p, q) in {"independent nets": (a, b), "planted copy": (a, copy)}.items():
                for name, fn in methods.items():
                    wall, cpu, found = best_time(lambda fn=fn, p=p, q=q: fn(p, q))
                    row = f"{threads:>7} {pair:<18} {name:<38} {wall:7.3f} {cpu:7.3f}"
                    print(f"{row} {rel(p, q, found):9.4f}", flush=True)


if __name__ == "__main__":
    main()
