"""Kernels forked from a zygote (book.build.warm_kernels) run a notebook as a fresh kernel does."""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from test_pipeline import notebook

from ghost_optima.book.build import cluster, warm_kernels

PROBE = """import json, os, pathlib
import matplotlib
import numpy as np
import torch
torch.manual_seed(seed)
seen = dict(
    draw=torch.randn(3).tolist(), numpy=np.random.default_rng(seed).random(2).tolist(),
    hash=hash("ghost"), threads=torch.get_num_threads(), backend=matplotlib.get_backend(),
    cwd=os.getcwd(), probe=os.environ.get("PROBE"), pid=os.getpid(), parent=os.getppid(),
    parent_command=pathlib.Path("/proc/%d/cmdline" % os.getppid()).read_bytes().decode())
pathlib.Path({out!r}).write_text(json.dumps(seen))
{tail}

import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot([0, 1], [seed, 0])"""
FIXED = {**cluster.threads_env(1), "PYTHONHASHSEED": "0"}


def run(tmp_path, name, zygote=None, tail="", wait=True):
    """Run the probe through the runner; the probe's record, or the runner's process."""
    out = tmp_path / f"{name}.json"
    source = tmp_path / f"{name}.md"
    source.write_text(
        notebook("A probe", "seed: int = 0  # seed", PROBE.format(out=str(out), tail=tail))
    )
    job = {
        "source": str(source),
        "output": str(tmp_path / f"{name}.ipynb"),
        "parameters": {"seed": 3},
        "cwd": str(tmp_path),
        "timeout": 120,
    }
    (tmp_path / f"{name}-job.json").write_text(json.dumps(job))
    env = {**os.environ, **FIXED, "PROBE": name}
    env.pop(warm_kernels.SOCKET_ENV, None)
    if zygote:
        env[warm_kernels.SOCKET_ENV] = zygote
    command = [
        sys.executable,
        "-m",
        "ghost_optima.book.build.runner",
        str(tmp_path / f"{name}-job.json"),
    ]
    if not wait:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    executed = nbformat.read(tmp_path / f"{name}.ipynb", as_version=4)
    images = [
        o["data"]["image/png"]
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    return {**json.loads(out.read_text()), "images": images}


@pytest.fixture(scope="module")
def zygote():
    switch = os.environ.get(warm_kernels.SWITCH_ENV)
    os.environ[warm_kernels.SWITCH_ENV] = "1"  # tests/conftest.py turns it off for the others
    path = warm_kernels.ensure_zygote({**FIXED, "MPLBACKEND": warm_kernels.INLINE}, wait=120)
    assert path and os.path.exists(path)
    process = next(p for p, s in warm_kernels._zygotes.values() if s == path)
    yield path, process.pid
    warm_kernels.stop_zygote()
    os.environ.pop(warm_kernels.SWITCH_ENV)
    os.environ.update({} if switch is None else {warm_kernels.SWITCH_ENV: switch})
    assert process.poll() is not None and not os.path.exists(path)


def test_a_forked_kernel_runs_a_notebook_as_a_fresh_kernel_does(tmp_path, zygote):
    path, zygote_pid = zygote
    fresh = run(tmp_path, "fresh")
    forked = run(tmp_path, "forked", path)
    assert forked["parent"] == zygote_pid  # forked by the zygote; the other by its runner
    assert "ghost_optima.book.build.runner" in fresh["parent_command"]
    assert (fresh["probe"], forked["probe"]) == ("fresh", "forked")  # each its own environment
    assert len(fresh["images"]) == 1  # the inline backend shows the figure, byte for byte
    for key in ("draw", "numpy", "hash", "threads", "backend", "cwd", "images"):
        assert forked[key] == fresh[key], key
    assert forked["backend"].endswith("backend_inline") and forked["threads"] == 1
    assert warm_kernels.ensure_zygote({**FIXED, "MPLBACKEND": warm_kernels.INLINE}) == path


def test_a_zygote_ends_with_the_process_that_started_it_and_leaves_no_socket(tmp_path):
    starter = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    socket_path = tmp_path / "zygote" / "socket"
    socket_path.parent.mkdir()
    env = {**os.environ, **FIXED}
    zygote = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ghost_optima.book.build.warm_kernels",
            str(socket_path),
            str(starter.pid),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not socket_path.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert socket_path.exists() and zygote.poll() is None
    starter.kill()
    starter.wait()
    assert zygote.wait(timeout=20) != 0 and not socket_path.parent.exists()


def test_a_forked_kernel_ends_with_its_runner(tmp_path, zygote):
    path, _ = zygote
    runner = run(tmp_path, "hang", path, tail="import time\ntime.sleep(300)", wait=False)
    deadline = time.time() + 120
    while not (tmp_path / "hang.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    kernel = psutil.Process(json.loads((tmp_path / "hang.json").read_text())["pid"])
    runner.kill()
    runner.wait()
    kernel.wait(timeout=20)  # raises psutil.TimeoutExpired if the kernel outlives its runner


def test_a_zygote_that_cannot_start_or_answer_leaves_kernels_to_start_the_ordinary_way(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(warm_kernels.SWITCH_ENV, "0")
    assert warm_kernels.ensure_zygote({"PYTHONHASHSEED": "0"}, wait=30) is None  # switched off
    monkeypatch.setenv(warm_kernels.SWITCH_ENV, "1")
    monkeypatch.setattr(warm_kernels.sys, "executable", "/bin/false")
    before = set(Path(tempfile.gettempdir()).glob("ghost-optima-zygote-*"))
    assert warm_kernels.ensure_zygote({"PYTHONHASHSEED": "0"}, wait=30) is None
    assert set(Path(tempfile.gettempdir()).glob("ghost-optima-zygote-*")) <= before
    monkeypatch.undo()
    probe = run(tmp_path, "gone", zygote=str(tmp_path / "no-such-socket"))
    assert probe["probe"] == "gone" and "ghost_optima.book.build.runner" in probe["parent_command"]
