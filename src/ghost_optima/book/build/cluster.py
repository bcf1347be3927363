"""Where notebook runs execute: in this process one after another, or as tasks on Dask workers.

A *task* is one run of one notebook with resolved parameters (the published run, or a
replication with shifted base seeds). ``run_task`` executes it wherever it is called, in a
scratch folder of its own, and returns everything the build needs as plain data: the executed
notebook's bytes, the recorded result, seconds, where it ran, and the source hash and package
versions of that place. It writes nothing outside its scratch folder, so a task that dies, is
cancelled or runs twice leaves nothing behind; the client alone writes ``results/``, the
executed notebooks and the book (``pipeline``).

``open_executor`` gives one of:

- ``Serial``: the tasks in order in this process (``--workers 1``, or a one-core machine);
- ``DaskTasks`` on a ``distributed.LocalCluster`` of ``workers`` processes (the default), one
  task at a time per worker, so ``workers x threads <= cores``;
- ``DaskTasks`` on an existing scheduler (``--scheduler ADDRESS``; e.g. ``dask scheduler`` plus
  ``dask worker``, or dask-jobqueue's ``SLURMCluster``). Every worker must run the client's
  source and package versions (``fingerprint``); a cluster that does not is refused before any
  task is submitted, and a result from a worker that joined later with other code is refused.

The threads of each run (torch, OpenMP, BLAS) come from the profile (``threads_env``), never
from the number of workers, so a build on 1 worker or on N records the same numbers. Each
worker (or the serial build) keeps a zygote that has imported the heavy libraries once, and a
run's kernel is forked from it when it is ready (``warm_kernels``): 7 to 10 s less per run, the
same recorded values. A worker
killed mid-task makes Dask run the task again on another worker (its ``allowed-failures``).
"""

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ghost_optima.book.build import provenance, warm_kernels
from ghost_optima.book.build.profiles import ConfigError
from ghost_optima.book.verdicts.record import RESULT_ENV

PACKAGE_DIR = Path(__file__).parents[2]
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
LOG_TAIL_LINES = 40
WORKER_WAIT_SECONDS = 60
POLL_SECONDS = 0.2  # how often the client looks for finished tasks and Ctrl-C
ZYGOTE_WAIT_SECONDS = 60  # at most, then the run's kernel starts the ordinary way


@dataclass(frozen=True)
class Task:
    stem: str
    replication: int  # 0: the published run
    outputs: str  # the key of its output folders
    parameters: dict
    key: str  # inputs hash

    @property
    def label(self) -> str:
        return f"{self.stem} (replication {self.replication})" if self.replication else self.stem


CELL_TIMEOUT_SECONDS = 3600


def task_spec(project, job, task: Task) -> dict:
    """What :func:`run_task` needs, as plain data a worker elsewhere can read.

    ``project`` is a ``pipeline.Project`` and ``job`` a ``pipeline.Plan``: the notebook's
    source travels as text, so a worker needs the same package but not the same folder."""
    source = job.notebooks[task.stem]
    return {
        "stem": task.stem,
        "replication": task.replication,
        "source_name": source.name,
        "source_text": source.read_text(encoding="utf-8"),
        "parameters": task.parameters,
        "cwd": str(project.notebooks),
        "timeout": CELL_TIMEOUT_SECONDS,
        "threads": job.threads,
    }


class TaskLost(RuntimeError):
    """A task whose workers kept dying (Dask's ``KilledWorker``) or that could not be run."""


def source_hash(package: Path = PACKAGE_DIR) -> str:
    """Digest of the whole package source (``*.py`` and ``*.yml``) where this runs."""
    return provenance.tree_digest(package, ("*.py", "*.yml"))


def fingerprint() -> dict:
    """What a worker must share with the client: its source hash and package versions."""
    host = socket.gethostname()
    return {"source": source_hash(), "versions": provenance.versions(), "host": host}


def threads_env(threads: int) -> dict[str, str]:
    """Environment that fixes the threads of torch, OpenMP and the BLAS libraries of a run.

    Idle OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE``) instead of spinning: on a machine
    shared with other runs a spinning thread holds a core its partner's work needs. Results do
    not depend on it."""
    return {**{name: str(threads) for name in THREAD_VARIABLES}, "OMP_WAIT_POLICY": "PASSIVE"}


def default_workers(threads: int, cores: int | None = None) -> int:
    """Workers that fit the machine: ``cores // threads``, at least one."""
    return max(1, (cores or os.cpu_count() or 1) // threads)


def _where() -> str:
    try:
        from distributed import get_worker

        return f"{get_worker().address} on {socket.gethostname()}"
    except (ImportError, ValueError):
        return f"this process on {socket.gethostname()}"


def run_task(spec: dict) -> dict:
    """Run one notebook (``spec`` from :func:`task_spec`) in a scratch folder; plain data back.

    ``spec``: ``stem``, ``replication``, ``source_name`` and ``source_text`` (the notebook),
    ``parameters``, ``cwd`` (used when it exists here, else the scratch folder), ``timeout``
    (seconds per cell) and ``threads``. Returns ``returncode`` (0 on success), ``seconds``,
    ``where``, ``source_hash``, ``versions``, ``machine``, ``notebook`` (bytes or None) and,
    on success, ``record`` (what the notebook recorded), else ``error`` (the failing cell, or
    None) and ``log`` (the tail of the kernel log).
    """
    from ghost_optima.book.build.runner import ERROR_FILE

    stem = spec["stem"]
    scratch = Path(tempfile.mkdtemp(prefix=f"ghost-optima-{stem}-"))
    try:
        source = scratch / spec["source_name"]
        source.write_text(spec["source_text"], encoding="utf-8")
        output, partial = scratch / f"{stem}.ipynb", scratch / "result.json"
        cwd = spec["cwd"] if Path(spec["cwd"]).is_dir() else str(scratch)
        job = {
            "source": str(source),
            "output": str(output),
            "parameters": spec["parameters"],
            "cwd": cwd,
            "timeout": spec["timeout"],
        }
        (scratch / "job.json").write_text(json.dumps(job), encoding="utf-8")
        fixed = {
            **threads_env(spec["threads"]),
            "PYTHONHASHSEED": "0",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
        env = warm_kernels.kernel_environ({**fixed, RESULT_ENV: str(partial)})
        # A worker's first run waits for its zygote (its imports cost what a fresh kernel's do)
        zygote = warm_kernels.ensure_zygote(
            {**fixed, "MPLBACKEND": warm_kernels.INLINE}, wait=ZYGOTE_WAIT_SECONDS
        )
        if zygote:
            env[warm_kernels.SOCKET_ENV] = zygote
        started = time.perf_counter()
        with open(scratch / "kernel.log", "w", encoding="utf-8") as kernel_log:
            done = subprocess.run(
                [sys.executable, "-m", "ghost_optima.book.build.runner", str(scratch / "job.json")],
                env=env,
                stdout=kernel_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        payload = {
            "stem": stem,
            "replication": spec["replication"],
            "returncode": done.returncode,
            "seconds": time.perf_counter() - started,
            "where": _where(),
            "source_hash": source_hash(),
            "versions": provenance.versions(),
            "machine": provenance.machine(),
            "notebook": output.read_bytes() if output.exists() else None,
        }
        if done.returncode == 0:
            payload["record"] = json.loads(partial.read_text("utf-8")) if partial.exists() else {}
        else:
            error = scratch / ERROR_FILE
            payload["error"] = json.loads(error.read_text("utf-8")) if error.exists() else None
            lines = (scratch / "kernel.log").read_text("utf-8", errors="replace").splitlines()
            payload["log"] = "\n".join(lines[-LOG_TAIL_LINES:])
        return payload
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class Serial:
    """The tasks one after another in this process (no cluster)."""

    description = "serially in this process"

    def run(self, specs: list[dict], priorities: list[float]):
        """Yield ``(spec, payload)`` as each task finishes."""
        for spec in specs:
            yield spec, run_task(spec)


class DaskTasks:
    """The tasks on a Dask cluster, each one a future; results yielded as they complete."""

    def __init__(self, client, description: str):
        self.client = client
        self.description = description

    def run(self, specs: list[dict], priorities: list[float]):
        """Yield ``(spec, payload)`` as tasks finish; leaving early cancels those still pending.

        ``priorities``: higher runs first (the build passes each notebook's last wall time, so
        long runs start early and the workers finish together). The client holds the queue: it
        submits as many tasks as the cluster has threads, then the next one each time a task
        finishes, so a free worker always takes the next task. (Submitted all at once, Dask
        assigns tasks to workers up front and did not move them: one worker sat idle for
        17 minutes while the other had six notebooks queued.)
        """
        from distributed import as_completed

        order = sorted(range(len(specs)), key=lambda i: -priorities[i])  # stable: ties keep order
        queue = [specs[i] for i in order]
        futures = {}
        finished = as_completed()

        def top_up():  # one task in flight per thread of the cluster as it is now
            if not queue:  # nothing left to hand out: no need to ask the scheduler
                return
            slots = max(1, sum(self.client.nthreads().values()))
            while queue and finished.count() < slots:
                spec = queue.pop(0)
                key = f"{spec['stem']}-r{spec['replication']}-{os.urandom(4).hex()}"
                future = self.client.submit(run_task, spec, key=key, pure=False)
                futures[future] = spec
                finished.add(future)

        try:
            with _interrupt_flag() as interrupted:
                top_up()
                while not finished.is_empty():
                    if interrupted.is_set():  # also when Ctrl-C's exception was swallowed
                        raise KeyboardInterrupt
                    batch = finished.next_batch(block=False)
                    if not batch:
                        time.sleep(POLL_SECONDS)
                    top_up()
                    for future in batch:
                        yield futures[future], _payload(future, futures[future])
        finally:
            self.client.cancel(list(futures), force=True)


def _payload(future, spec: dict) -> dict:
    try:
        return future.result()
    except Exception as err:  # KilledWorker, a lost scheduler: name the notebook
        raise TaskLost(
            f"notebook {spec['stem']} (replication {spec['replication']}) could not "
            f"run on the cluster: {type(err).__name__}: {err}"
        ) from err


@contextlib.contextmanager
def _interrupt_flag():
    """An event set by Ctrl-C (SIGINT) while the block runs, besides the usual exception.

    A KeyboardInterrupt raised where Python ignores exceptions (a finalizer such as a Dask
    future's ``__del__``, run by the garbage collector in the waiting loop) is lost; the flag
    is not, so the loop that polls it still stops. Outside the main thread, where no signal
    handler can be set, the event never fires and Ctrl-C works as before.
    """
    interrupted = threading.Event()

    def on_interrupt(signum, frame):
        interrupted.set()
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, on_interrupt)
    except ValueError:  # not the main thread
        yield interrupted
        return
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def check_workers(client, address: str, tries: int = 3) -> None:
    """Refuse (``ConfigError``) a cluster whose workers run other source or package versions.

    The client's fingerprint is taken after the workers', and a mismatch is looked at again
    ``tries`` times a second apart, so a checkout edited during the check is not mistaken for
    a foreign worker.
    """
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
    except TimeoutError:
        raise ConfigError(
            f"no worker joined the scheduler at {address} within {WORKER_WAIT_SECONDS} s"
        ) from None
    for attempt in range(tries):
        problems = _mismatches(client.run(fingerprint), fingerprint())
        if not problems:
            return
        time.sleep(1 if attempt + 1 < tries else 0)
    raise ConfigError(
        f"refusing the cluster at {address}: its workers do not run the client's source "
        "and lock, so their results could differ:\n  "
        + "\n  ".join(problems)
        + "\n  install the same checkout and requirements.lock on every worker"
    )


def _mismatches(prints: dict, mine: dict) -> list[str]:
    problems = []
    for worker, theirs in sorted(prints.items()):
        if theirs["source"] != mine["source"]:
            problems.append(
                f"{worker} ({theirs['host']}): source hash {theirs['source'][:12]}, "
                f"the client's is {mine['source'][:12]}"
            )
        differ = [
            f"{name} {theirs['versions'].get(name)} (client: {version})"
            for name, version in mine["versions"].items()
            if theirs["versions"].get(name) != version
        ]
        if differ:
            problems.append(f"{worker} ({theirs['host']}): package versions " + ", ".join(differ))
    return problems


def _dashboard(client) -> str | None:
    """The dashboard's address when its status page answers (it needs bokeh), else None."""
    import urllib.request

    try:
        link = client.dashboard_link
        with urllib.request.urlopen(link, timeout=2) as page:  # noqa: S310 (the scheduler's own)
            served = page.status == 200 and b"needs bokeh" not in page.read(4096)
            return link if served else None
    except (OSError, ValueError, KeyError):
        return None


@contextlib.contextmanager
def open_executor(workers: int, scheduler: str | None = None, log=print):
    """``Serial`` for one local worker, else ``DaskTasks`` on a new ``LocalCluster`` of
    ``workers`` processes or on the cluster at ``scheduler``; closed (tasks cancelled, a local
    cluster shut down) on leaving, also on an error or Ctrl-C."""
    if scheduler is None and workers <= 1:
        yield Serial()
        return
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    memory_limit=0,
                    dashboard_address="127.0.0.1:0",
                    silence_logs=logging.ERROR,
                )
            )
            address = cluster.scheduler_address
            client = stack.enter_context(Client(cluster))
            description = f"on a local Dask cluster of {workers} worker processes"
        else:
            address = scheduler
            try:
                client = stack.enter_context(Client(scheduler, timeout="20s"))
            except OSError as err:
                raise ConfigError(f"cannot reach the scheduler at {scheduler}: {err}") from None
            description = f"on the Dask cluster at {scheduler}"
        check_workers(client, address)
        dashboard = _dashboard(client)
        log(f"running {description}" + (f"; dashboard: {dashboard}" if dashboard else ""))
        yield DaskTasks(client, description)
