"""Execute one notebook with papermill, in a child process of the build.

Run as ``python -m ghost_optima.book.build.runner JOB.json``. The job names the MyST-markdown
source, the
output notebook, the parameters and the working directory. The child keeps kernel log noise
out of the build's output (its stderr goes to a log file), and on a failing cell writes
``error.json`` beside the output naming the cell, then exits with status 3. The build, in the
parent, turns a failed run into a message with ``failure_message``. On Linux the child dies
with the process that started it (a Dask worker killed mid-task leaves no orphan run behind).
"""

import json
import os
import sys
from pathlib import Path

FAILED_CELL_EXIT = 3
ERROR_FILE = "error.json"


def execute(job: dict) -> None:
    import jupytext
    import papermill

    from ghost_optima.book.build import warm_kernels

    notebook = jupytext.read(job["source"])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    output = Path(job["output"])
    kernel = "python3"
    if os.environ.get(warm_kernels.SOCKET_ENV):  # a zygote runs: fork the kernel from it
        spec = warm_kernels.write_kernel_spec(output.parent / "jupyter")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            filter(None, [str(spec), os.environ.get("JUPYTER_PATH")])
        )
        kernel = warm_kernels.KERNEL_NAME
    try:
        papermill.execute_notebook(
            notebook,
            str(output),
            parameters=job["parameters"],
            kernel_name=kernel,
            cwd=job["cwd"],
            progress_bar=False,
            log_output=False,
            execution_timeout=job["timeout"],
        )
    except papermill.PapermillExecutionError as err:
        write_failure(output, err.ename, err.evalue, err.exec_count)
        sys.exit(FAILED_CELL_EXIT)
    hide_default_parameters(output)


def write_failure(output: Path, ename: str, evalue: str, exec_count) -> None:
    """Name the failing cell: its position among the source's code cells, and its first line."""
    import nbformat

    cell_number, first_line = None, ""
    if output.exists():
        code_cells = [
            c
            for c in nbformat.read(output, as_version=4).cells
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])
        ]
        for number, cell in enumerate(code_cells, start=1):
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                cell_number = number
                first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                break
    error = {
        "ename": ename,
        "evalue": evalue,
        "execution_count": exec_count,
        "code_cell": cell_number,
        "first_line": first_line,
    }
    output.with_name(ERROR_FILE).write_text(json.dumps(error, indent=1), encoding="utf-8")


def hide_default_parameters(output: Path) -> None:
    """Drop the default-parameters cell from view: the injected cell shows what actually ran."""
    import nbformat

    notebook = nbformat.read(output, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(notebook, output)


def failure_message(kept: Path, stem: str, payload: dict) -> str:
    """Keep a failed run's notebook and log in ``kept``; the message names the cell or the log.

    ``payload`` is what ``cluster.run_task`` returned: ``returncode``, ``error`` (the failing
    cell, or None), ``log`` (the kernel log's tail), ``notebook`` (bytes, or None).
    """
    kept.mkdir(parents=True, exist_ok=True)
    if payload.get("notebook") is not None:
        (kept / f"{stem}.ipynb").write_bytes(payload["notebook"])
    (kept / f"{stem}.log").write_text(payload.get("log") or "", encoding="utf-8")
    error, code = payload.get("error"), payload["returncode"]
    name = f"{stem} (replication {payload['replication']})" if payload.get("replication") else stem
    if code == FAILED_CELL_EXIT and error:
        where = f"code cell {error['code_cell']}" if error["code_cell"] else "a cell"
        text = (
            f"notebook {name} failed in {where} ({error['first_line']!r}): "
            f"{error['ename']}: {error['evalue']}"
        )
    else:
        log_tail = (payload.get("log") or "").strip().splitlines()[-5:]
        text = f"notebook {name} could not run (exit status {code}):\n  " + "\n  ".join(log_tail)
    return (
        f"{text}\n  ran at {payload.get('where', '?')}; executed notebook kept at "
        f"{kept / (stem + '.ipynb')}; the book was not changed"
    )


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (``PR_SET_PDEATHSIG``)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


if __name__ == "__main__":
    die_with_parent()
    execute(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
