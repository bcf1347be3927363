"""Kernels forked from a process that has already imported the heavy libraries.

A notebook's kernel is a fresh Python process, and importing torch, scipy, pandas, matplotlib
and seaborn in it costs 7 to 10 s on these machines: as much as many quick-profile notebooks
compute. A *zygote* imports them once (:data:`PRELOAD`, third-party packages only, never this
package, so a changed checkout is always imported afresh), then forks one child per kernel that
a build asks for; the child becomes an ordinary ipykernel (``ipykernel_launcher -f
CONNECTION_FILE``) with the environment and working folder the kernel manager asked for. Imports
after the fork find the modules already loaded.

- :func:`serve` is the zygote (``python -m ghost_optima.book.build.warm_kernels SOCKET PID``,
  ``PID`` the process that starts it). It starts with the run's thread settings and
  ``PYTHONHASHSEED`` already in its environment, so a forked kernel sees what a freshly started
  one would, and it ends with the process ``PID``.
- :func:`ensure_zygote` starts one per build process (or Dask worker) and thread setting, and
  waits for it as long as its caller asks: the kernels asked for before it is ready start the
  ordinary way, and so do all of them when ``GHOST_OPTIMA_WARM_KERNELS=0``;
  :func:`stop_zygote` ends it, and so does the end of the process that started it.
- :class:`WarmProvisioner` is a jupyter_client kernel provisioner (entry point
  ``ghost-optima-warm``, kernel spec :func:`write_kernel_spec`) that asks the zygote named by
  ``GHOST_OPTIMA_ZYGOTE`` for a kernel, and launches one the ordinary way when there is none or
  it does not answer.

A forked kernel watches the process that asked for it (the runner, which holds its kernel
manager) and exits when that one is gone, as a kernel started the ordinary way is shut down or
killed with it. Results do not depend on the zygote: the same notebook records the same values
from a forked kernel and a fresh one (``tests/test_warm_kernels.py``).
"""

import atexit
import contextlib
import importlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from jupyter_client.provisioning import LocalProvisioner

SOCKET_ENV = "GHOST_OPTIMA_ZYGOTE"
SWITCH_ENV = "GHOST_OPTIMA_WARM_KERNELS"  # "0": every kernel starts the ordinary way
KERNEL_NAME = "ghost-optima-warm"
PRELOAD = (
    "numpy",
    "scipy.linalg",
    "scipy.optimize",
    "scipy.sparse.linalg",
    "scipy.stats",
    "pandas",
    "matplotlib.pyplot",
    "seaborn",
    "sklearn.model_selection",
    "torch",
    "torch.func",
    "IPython",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
)  # not matplotlib_inline.backend_inline: imported before the kernel's shell exists, it would
# not hook itself into the shell, and figures would not be shown
INLINE = "module://matplotlib_inline.backend_inline"  # the backend ipykernel sets when unset
NOT_INHERITED = ("MALLOC_TRIM_THRESHOLD_",)
"""Variables of the building process that no run's kernel (nor its zygote) inherits. Dask's
nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in every worker it spawns
(``distributed.nanny.pre-spawn-environ``). Setting it turns off glibc's dynamic mmap threshold
(mallopt(3)), so every tensor of 128 KiB or more is a fresh ``mmap`` whose pages fault in on
first touch: chapter 62 took 163 s in a worker's kernel and 60 s in the serial build's, the
same values recorded. Results do not depend on it."""
WATCH_SECONDS = 0.5  # how often a forked kernel checks that its runner is still there


def serve(path: str, parent: int) -> None:
    """The zygote: import :data:`PRELOAD`, listen on the Unix socket ``path``, fork a kernel per
    request (one JSON line: ``argv``, ``env``, ``cwd``, ``watch``, ``log``), answer its pid;
    end when the process ``parent`` does."""
    # A thread, not PR_SET_PDEATHSIG, which fires when the starting *thread* ends: a Dask
    # worker's task thread may end before the worker does.
    folder = os.path.dirname(path)
    threading.Thread(target=_exit_without, args=(parent, folder), daemon=True).start()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked kernels are reaped by the system
    for name in PRELOAD:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    listener.listen(8)
    os.rename(path + ".tmp", path)  # the socket appears only once it accepts
    while True:
        connection, _ = listener.accept()
        with connection:
            request = json.loads(connection.makefile("r", encoding="utf-8").readline())
            pid = os.fork()
            if pid == 0:
                listener.close()
                connection.close()
                _become_kernel(request)  # never returns
            connection.sendall((json.dumps({"pid": pid}) + "\n").encode())


def _become_kernel(request: dict) -> None:
    try:
        os.setsid()  # its own process group, as jupyter_client's launcher gives a kernel
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"] or os.getcwd())
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(request["log"] or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        for fd, source in ((0, null), (1, log), (2, log)):
            os.dup2(source, fd)
        import numpy

        random.seed()  # the generators a fresh process seeds from the OS, unlike its siblings
        numpy.random.seed()
        watched = int(request["watch"])
        threading.Thread(target=_exit_without, args=(watched,), daemon=True).start()
        from ipykernel import kernelapp

        sys.argv = ["ipykernel_launcher", *request["argv"][3:]]
        kernelapp.launch_new_instance()
    finally:
        os._exit(0)


def _exit_without(pid: int, folder: str | None = None) -> None:
    """Exit once process ``pid`` is gone, removing ``folder`` (the zygote's socket) first."""
    while True:
        time.sleep(WATCH_SECONDS)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
            os._exit(1)


_zygotes: dict[tuple, tuple[subprocess.Popen, str]] = {}


def kernel_environ(overrides: dict[str, str]) -> dict[str, str]:
    """The environment a run's kernel starts with: this process's, less :data:`NOT_INHERITED`,
    with ``overrides`` (thread settings and the like) on top."""
    inherited = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    return {**inherited, **overrides}


def ensure_zygote(env: dict[str, str], *, wait: float = 0.0) -> str | None:
    """The socket of this process's zygote started with ``env`` (thread settings and the like)
    once it accepts requests, else None; starts one when there is none or it has ended.

    A zygote takes 7 to 10 s to import :data:`PRELOAD`, as long as a fresh kernel takes; this
    waits ``wait`` seconds at most for it to be ready."""
    if os.environ.get(SWITCH_ENV, "1") == "0":
        return None
    key = tuple(sorted(env.items()))
    process, path = _zygotes.get(key, (None, ""))
    if process is None or process.poll() is not None:
        if not _zygotes:
            atexit.register(stop_zygote)
        path = os.path.join(tempfile.mkdtemp(prefix="ghost-optima-zygote-"), "socket")
        process = subprocess.Popen(
            [sys.executable, "-m", "ghost_optima.book.build.warm_kernels", path, str(os.getpid())],
            env=kernel_environ(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _zygotes[key] = (process, path)
    deadline = time.monotonic() + wait
    while not os.path.exists(path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if process.poll() is not None:  # it could not start: no socket folder is left behind
        del _zygotes[key]
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        return None
    return path if os.path.exists(path) else None


def stop_zygote() -> None:
    """End every zygote this process started (their forked kernels end with their runners)."""
    while _zygotes:
        _, (process, path) = _zygotes.popitem()
        process.kill()
        process.wait()
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def write_kernel_spec(folder: Path) -> Path:
    """A kernel spec named :data:`KERNEL_NAME` under ``folder/kernels`` (put ``folder`` on
    ``JUPYTER_PATH``): the python3 kernel, launched through :class:`WarmProvisioner`."""
    spec = folder / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3",
                "language": "python",
                "metadata": {"kernel_provisioner": {"provisioner_name": KERNEL_NAME}},
            }
        ),
        encoding="utf-8",
    )
    return folder


class _Forked:
    """The part of ``subprocess.Popen`` that LocalProvisioner uses, for a kernel the zygote
    forked (not this process's child: it is watched by pid)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = 0
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class WarmProvisioner(LocalProvisioner):
    """LocalProvisioner whose kernels are forked by the zygote at ``$GHOST_OPTIMA_ZYGOTE``."""

    async def launch_kernel(self, cmd: list[str], **kwargs):
        path = os.environ.get(SOCKET_ENV)
        if not path:
            return await super().launch_kernel(cmd, **kwargs)
        request = {
            "argv": cmd,
            "env": kwargs.get("env") or dict(os.environ),
            "cwd": str(kwargs.get("cwd") or os.getcwd()),
            "watch": os.getpid(),
            "log": f"/proc/{os.getpid()}/fd/1",  # where a kernel started here would write
        }
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(path)
                client.sendall((json.dumps(request) + "\n").encode())
                answer = json.loads(client.makefile("r", encoding="utf-8").readline())
        except (OSError, ValueError):  # the zygote is gone: start the kernel the ordinary way
            return await super().launch_kernel(cmd, **kwargs)
        self.process = _Forked(int(answer["pid"]))
        self.pid = self.pgid = self.process.pid
        self.cwd = request["cwd"]
        return self.connection_info


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
