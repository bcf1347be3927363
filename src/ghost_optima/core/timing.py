"""Where a run's seconds go: wall time and floating-point work per compute kernel.

The science wraps its few heavy loops in ``kernel(name, flops)``: ensemble training, evaluation of
stacked networks, SGD chains, L-BFGS polishes of minima, alignment, Hessian work and bootstrap
resampling. The clock keeps *exclusive* time: while a kernel runs inside another (an evaluation
inside training), the outer one is paused, so the kernels' seconds add up to at most the wall time
of the run and never count a second twice. ``flops`` is the caller's count of the floating-point
operations the kernel does (e.g. ``6 * macs`` for a forward and backward pass, Kaplan et al. 2020),
so a report can set each kernel's throughput against the machine's matmul peak; kernels whose work
is not counted pass 0.

One clock per process (a notebook runs in its own kernel process): ``totals()`` reads it,
``reset()`` empties it. Timing never changes what is computed, so recorded numbers stay the
same with or without it; the seconds belong in a run's provenance, never among its figures.
"""

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

KERNELS = ("training", "evaluation", "chains", "polish", "alignment", "hessian", "resampling")


@dataclass
class Clock:
    """Exclusive seconds and counted flops per kernel, and the stack of kernels running."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KERNELS, 0.0))
    flops: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KERNELS, 0.0))
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KERNELS, 0))
    running: list[list] = field(default_factory=list)  # [name, started] of each open kernel
    now: Callable[[], float] = time.perf_counter  # a test passes a fake clock


_CLOCK = Clock()


@contextmanager
def kernel(name: str, flops: float = 0.0, clock: Clock | None = None) -> Iterator[None]:
    """Time the block as kernel ``name`` (one of ``KERNELS``), adding ``flops`` to its work.

    The enclosing kernel, if any, is paused for the block's duration (exclusive time).
    """
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; choose from {KERNELS}")
    clock = clock or _CLOCK
    now = clock.now()
    if clock.running:
        outer = clock.running[-1]
        clock.seconds[outer[0]] += now - outer[1]
    clock.running.append([name, now])
    try:
        yield
    finally:
        end = clock.now()
        _, started = clock.running.pop()
        clock.seconds[name] += end - started
        clock.flops[name] += float(flops)
        clock.calls[name] += 1
        if clock.running:
            clock.running[-1][1] = end  # the outer kernel resumes now


def timed(name: str) -> Callable[[Callable], Callable]:
    """Decorator: every call of the function runs as kernel ``name`` (no flops counted)."""

    def wrap(function: Callable) -> Callable:
        @functools.wraps(function)
        def timed_call(*args, **kwargs):
            with kernel(name):
                return function(*args, **kwargs)

        return timed_call

    return wrap


def totals(clock: Clock | None = None) -> dict[str, dict[str, float]]:
    """``{kernel: {"seconds", "flops", "calls"}}`` of the kernels that ran, rounded for a
    record (milliseconds; flops to three significant digits)."""
    clock = clock or _CLOCK
    return {
        name: {
            "seconds": round(clock.seconds[name], 3),
            "flops": float(f"{clock.flops[name]:.3g}"),
            "calls": clock.calls[name],
        }
        for name in KERNELS
        if clock.calls[name]
    }


def reset(clock: Clock | None = None) -> None:
    """Empty the clock (a test, or a process that times several runs one after another)."""
    clock = clock or _CLOCK
    fresh = Clock()
    clock.seconds, clock.flops, clock.calls, clock.running = (
        fresh.seconds,
        fresh.flops,
        fresh.calls,
        fresh.running,
    )


def dense_macs(widths: list[int] | tuple[int, ...]) -> int:
    """Multiply-adds of one example through a dense MLP of layer ``widths`` (input first):
    ``sum_l n_{l-1} n_l``. A forward pass is ``2 * macs`` flops, forward and backward ``6 *
    macs`` (Kaplan et al. 2020, eq. 2.1)."""
    return sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
