"""The build on Dask workers: same results as serial, a killed worker, a refused cluster."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from test_pipeline import book, notebook, page_text  # noqa: F401  (the fixture book of the pipeline tests)

from ghost_optima.book.build import cluster, pipeline, warm_kernels
from ghost_optima.book.build.profiles import ConfigError
from ghost_optima.book.verdicts import verify

ROOT = Path(__file__).resolve().parents[1]
distributed = pytest.importorskip("distributed")


def results_of(project) -> dict:
    """Every result file of a build, without what says where and how fast it ran (and the
    inputs hash, which covers the whole package source, not what the fixture computes)."""
    found = {}
    for path in sorted((project.root / "results").rglob("[0-9]*.json")):
        record = json.loads(path.read_text())
        record.pop("checksum")
        record.pop("inputs_hash")
        for name in ("wall_seconds", "ran_on", "machine", "commit", "dirty"):
            record["provenance"].pop(name)
        found[path.relative_to(project.root).as_posix()] = record
    return found


def build(project, run, **kwargs) -> list[str]:
    lines = []
    pipeline.build(project, "quick", log=lines.append, run=run, **kwargs)
    return lines


@pytest.fixture
def local_cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit=0, dashboard_address=":0"
    ) as running:
        yield running


def test_two_workers_build_the_book_with_the_results_of_a_serial_build(book, monkeypatch):  # noqa: F811
    monkeypatch.setattr(verify, "claim_notebooks", lambda stems: [s for s in stems if "first" in s])
    serial = build(book, pipeline.Execution(workers=1, replications=1), render_book=False)
    assert "[3/3] 10_first (replication 1): running ..." in serial
    assert not any("Dask" in line for line in serial)
    expected = results_of(book)
    assert expected["results/verify/quick/run-1/10_first.json"]["provenance"]["seeds"] == {
        "seed": verify.SEED_STRIDE
    }

    lines = build(book, pipeline.Execution(workers=2, replications=1), force=True)
    assert "running on a local Dask cluster of 2 worker processes" in lines
    done = [line for line in lines if ": done in " in line]
    assert len(done) == 3 and done[-1].endswith("(3 done, 0 left)")
    assert all(" s on tcp://" in line for line in done)
    assert results_of(book) == expected  # the same numbers, parameters, seeds and threads
    assert "Doubled: 1.00." in page_text(book.html("quick") / "_generated" / "20_second.html")
    robustness = json.loads((book.results("quick") / "robustness.json").read_text())
    assert robustness["replications"] == 1 and robustness["seed_stride"] == verify.SEED_STRIDE
    calibrated = json.loads((book.results("quick") / "calibration.json").read_text())
    rows = json.loads((book.results("quick") / "claims.json").read_text())["claims"]
    assert {r["id"] for r in rows if "calibration" in r} == set(calibrated["claims"])


def test_a_worker_killed_mid_task_does_not_break_the_build(book, local_cluster, tmp_path):  # noqa: F811
    serial = build(book, pipeline.Execution(workers=1), render_book=False)
    assert serial and (book.results("quick") / "20_second.json").exists()
    expected = results_of(book)
    mark = tmp_path / "started"
    (book.notebooks / "20_second.md").write_text(  # the first attempt marks itself and hangs
        (book.notebooks / "20_second.md")
        .read_text()
        .replace(
            "from ghost_optima.book.verdicts.record import Recorder",
            f"import os, pathlib, time\nmark = pathlib.Path({str(mark)!r})\n"
            "if not mark.exists():\n    mark.write_text(str(os.getpid()))\n    time.sleep(120)\n"
            "from ghost_optima.book.verdicts.record import Recorder",
        )
    )
    run = pipeline.Execution(scheduler=local_cluster.scheduler_address)
    outcome = {}

    def target():
        try:
            outcome["lines"] = build(book, run, render_book=False)
        except Exception as err:  # noqa: BLE001  (reported by the assertion below)
            outcome["error"] = err

    builder = threading.Thread(target=target)
    builder.start()
    deadline = time.monotonic() + 120
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mark.exists(), outcome
    kernel = psutil.Process(int(mark.read_text()))
    with distributed.Client(local_cluster) as client:
        workers = {pid: address for address, pid in client.run(os.getpid).items()}
    victim = next(p.pid for p in kernel.parents() if p.pid in workers)
    os.kill(victim, signal.SIGKILL)
    builder.join(timeout=180)
    assert not builder.is_alive() and "error" not in outcome, outcome
    finished = [line for line in outcome["lines"] if "20_second: done" in line]
    assert len(finished) == 1 and workers[victim] not in finished[0]
    assert results_of(book) == expected
    time.sleep(1)
    assert not kernel.is_running() or kernel.status() == psutil.STATUS_ZOMBIE


def test_a_worker_with_other_source_is_refused(book, tmp_path):  # noqa: F811
    copy = tmp_path / "other" / "ghost_optima"
    shutil.copytree(ROOT / "src" / "ghost_optima", copy, ignore=shutil.ignore_patterns("*.pyc"))
    with open(copy / "stats.py", "a") as handle:
        handle.write("\n# a worker with an edit the client does not have\n")
    with distributed.LocalCluster(n_workers=0, dashboard_address=":0") as scheduler:
        worker = subprocess.Popen(
            [
                sys.executable,
                *("-m", "distributed.cli.dask_worker", scheduler.scheduler_address),
                *("--nthreads", "1", "--no-dashboard", "--no-nanny"),
            ],
            env={**os.environ, "PYTHONPATH": str(copy.parent)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            run = pipeline.Execution(scheduler=scheduler.scheduler_address)
            with pytest.raises(ConfigError) as refused:
                build(book, run)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    message = str(refused.value)
    assert f"refusing the cluster at {scheduler.scheduler_address}" in message
    theirs = cluster.source_hash(copy)[:12]
    assert f"source hash {theirs}, the client's is {cluster.source_hash()[:12]}" in message
    assert not (book.results("quick") / "10_first.json").exists()


class FakeClient:
    """What ``check_workers`` asks of a Dask client, with workers of chosen fingerprints."""

    def __init__(self, prints: dict):
        self.prints = prints

    def wait_for_workers(self, n, timeout):
        if not self.prints:
            raise TimeoutError

    def run(self, function):
        assert function is cluster.fingerprint
        return self.prints


def test_workers_with_other_package_versions_are_refused_and_the_same_accepted():
    mine = cluster.fingerprint()
    cluster.check_workers(FakeClient({"tcp://a:1": mine, "tcp://b:2": mine}), "tcp://s:8786")
    other = {**mine, "versions": {**mine["versions"], "torch": "0.0.1"}}
    with pytest.raises(ConfigError) as refused:
        cluster.check_workers(FakeClient({"tcp://a:1": mine, "tcp://b:2": other}), "tcp://s", 1)
    message = str(refused.value)
    assert f"tcp://b:2 ({mine['host']}): package versions torch 0.0.1" in message
    assert f"(client: {mine['versions']['torch']})" in message and "tcp://a:1" not in message


def test_no_worker_is_a_clear_refusal(monkeypatch):
    monkeypatch.setattr(cluster, "WORKER_WAIT_SECONDS", 0)
    with pytest.raises(ConfigError, match="no worker joined the scheduler at tcp://s:8786"):
        cluster.check_workers(FakeClient({}), "tcp://s:8786")


def test_default_workers_fit_the_cores():
    assert cluster.default_workers(1, cores=16) == 16
    assert cluster.default_workers(4, cores=16) == 4
    assert cluster.default_workers(3, cores=2) == 1
    assert cluster.threads_env(2)["OMP_NUM_THREADS"] == "2"
    assert cluster.threads_env(2)["OMP_WAIT_POLICY"] == "PASSIVE"


def _environments() -> tuple[dict, dict]:
    """This process's environment and the one a run's kernel would start with from here."""
    return dict(os.environ), warm_kernels.kernel_environ(cluster.threads_env(1))


def test_a_kernel_on_a_dask_worker_does_not_inherit_its_malloc_setting(monkeypatch):
    """Dask's nanny gives its workers MALLOC_TRIM_THRESHOLD_, which made every large tensor a
    fresh mmap (2.7 times slower runs); a run's kernel starts without it, and with the rest."""
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, memory_limit=0, dashboard_address=":0"
        ) as running,
        distributed.Client(running) as client,
    ):
        worker, kernel = client.submit(_environments).result()
    assert "MALLOC_TRIM_THRESHOLD_" in worker  # what the worker carries: the cause
    assert "MALLOC_TRIM_THRESHOLD_" not in kernel
    assert kernel["OMP_NUM_THREADS"] == "1" and kernel["PATH"] == worker["PATH"]
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # the serial build drops it too
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    here, kernel = _environments()
    assert here["MALLOC_TRIM_THRESHOLD_"] == "65536" and "MALLOC_TRIM_THRESHOLD_" not in kernel
    assert kernel["OMP_NUM_THREADS"] == "1"  # the profile's threads win over the inherited


def test_a_failed_task_names_its_notebook_and_cell_from_a_worker(book, local_cluster):  # noqa: F811
    (book.notebooks / "10_first.md").write_text(
        notebook("First", "seed: int = 0  # seed", "x = 1\n\nraise ValueError('on a worker')")
    )
    run = pipeline.Execution(scheduler=local_cluster.scheduler_address)
    with pytest.raises(pipeline.BuildError) as failure:
        build(book, run)
    message = str(failure.value)
    assert "notebook 10_first failed in code cell 3" in message
    assert "ValueError: on a worker" in message and "ran at tcp://" in message
    assert (book.failed("quick") / "10_first.ipynb").exists()
    assert not (book.results("quick") / "10_first.json").exists()


def test_ctrl_c_cancels_the_tasks_and_leaves_no_result_nor_process(book):  # noqa: F811
    (book.notebooks / "10_first.md").write_text(
        notebook("First", "seed: int = 0  # seed", "import time\n\ntime.sleep(120)")
    )
    command = [sys.executable, "-m", "ghost_optima.book.build.cli", "--root", str(book.root)]
    process = subprocess.Popen(
        [*command, "build", "--profile", "quick", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    for line in process.stdout:  # wait until the second notebook is done, the first one running
        if "20_second: done" in line:
            break
    time.sleep(2)
    session = [p for p in psutil.process_iter(["pid"]) if _session(p) == process.pid]
    assert any("ghost_optima.book.build.runner" in " ".join(p.cmdline()) for p in session)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted; tasks cancelled" in stderr
    assert (book.results("quick") / "20_second.json").exists()
    assert not (book.results("quick") / "10_first.json").exists()
    assert not (book.html("quick") / "index.html").exists()
    _, alive = psutil.wait_procs(session, timeout=20)
    assert not alive, [p.cmdline() for p in alive]


def _session(process) -> int | None:
    try:
        return os.getsid(process.pid)
    except OSError:
        return None


def test_the_robustness_report_covers_every_claim_notebook_after_a_build_with_only(
    book,  # noqa: F811
    monkeypatch,
):
    # a build --only another notebook once wrote a robustness report of that notebook alone
    monkeypatch.setattr(verify, "claim_notebooks", lambda stems: [s for s in stems if "first" in s])
    job = pipeline.plan(book, "quick", only=["second"], replications=2)
    assert job.selected == ["20_second"] and job.replicate == []
    whole = pipeline.every_notebook(job)
    assert whole.selected == list(job.notebooks) == ["10_first", "20_second"]
    labels = [(t.stem, t.replication) for t in pipeline.tasks(book, whole)]
    assert labels == [("10_first", 0), ("20_second", 0), ("10_first", 1), ("10_first", 2)]


def test_ctrl_c_is_seen_even_where_its_exception_is_swallowed():
    previous = signal.getsignal(signal.SIGINT)
    with cluster._interrupt_flag() as interrupted:
        try:  # a finalizer that swallows the KeyboardInterrupt, as Python does in __del__
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        assert interrupted.is_set()
    assert signal.getsignal(signal.SIGINT) is previous


def _sleep_task(spec: dict) -> dict:  # stands in for run_task: sleeps, says when it ran
    started = time.monotonic()
    time.sleep(spec["seconds"])
    return {"stem": spec["stem"], "started": started, "ended": time.monotonic()}


@pytest.mark.parametrize("workers", [1, 2])
def test_the_client_keeps_one_task_per_thread_in_flight_in_priority_order(monkeypatch, workers):
    """Never more tasks submitted and unfinished than the cluster has threads, so a free worker
    takes the next task instead of one queued behind a long run; with one worker the runs
    follow the priorities (highest first, ties in order)."""
    monkeypatch.setattr(cluster, "run_task", _sleep_task)
    specs = [{"stem": f"n{i}", "replication": 0, "seconds": 0.05} for i in range(7)]
    priorities = [0.0, 5.0, 1.0, 5.0, 0.0, 9.0, 2.0]
    with distributed.Client(
        processes=False, n_workers=workers, threads_per_worker=1, dashboard_address=":0"
    ) as client:
        in_flight = []
        submit = client.submit

        def counting_submit(*args, **kwargs):
            in_flight.append(sum(not f.done() for f in tasks.futures_submitted) + 1)
            future = submit(*args, **kwargs)
            tasks.futures_submitted.append(future)
            return future

        tasks = cluster.DaskTasks(client, "in-process test cluster")
        tasks.futures_submitted = []
        monkeypatch.setattr(client, "submit", counting_submit)
        done = [payload for _, payload in tasks.run(specs, priorities)]
    assert sorted(p["stem"] for p in done) == sorted(s["stem"] for s in specs)
    assert max(in_flight) <= workers and len(in_flight) == len(specs)
    if workers == 1:
        by_start = [p["stem"] for p in sorted(done, key=lambda p: p["started"])]
        assert by_start == ["n5", "n1", "n3", "n6", "n2", "n0", "n4"]
