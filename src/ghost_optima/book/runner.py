"""Execute one notebook with papermill, in a child process of the build.

Run as ``python -m ghost_optima.book.runner JOB.json``. The job names the MyST-markdown source, the
output notebook, the parameters and the working directory. The child keeps kernel log noise
out of the build's output (its stderr goes to a log file), and on a failing cell writes
``error.json`` beside the output naming the cell, then exits with status 3. The build, in the
parent, turns a failed run into a message with ``failure_message``.
"""

import json
import os
import shutil
import sys
from pathlib import Path

FAILED_CELL_EXIT = 3


def execute(job: dict) -> None:
    import jupytext
    import papermill

    notebook = jupytext.read(job["source"])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    output = Path(job["output"])
    try:
        papermill.execute_notebook(
            notebook,
            str(output),
            parameters=job["parameters"],
            kernel_name="python3",
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
    output.with_name("error.json").write_text(json.dumps(error, indent=1), encoding="utf-8")


def hide_default_parameters(output: Path) -> None:
    """Drop the default-parameters cell from view: the injected cell shows what actually ran."""
    import nbformat

    notebook = nbformat.read(output, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(notebook, output)


def failure_message(kept: Path, stem: str, scratch: Path, code: int) -> str:
    """Keep a failed run's notebook and log in ``kept``; the message names the cell or the log."""
    kept.mkdir(parents=True, exist_ok=True)
    notebook = scratch / f"{stem}.ipynb"
    if notebook.exists():
        os.replace(notebook, kept / f"{stem}.ipynb")
    if (scratch / "kernel.log").exists():
        shutil.copy(scratch / "kernel.log", kept / f"{stem}.log")
    error_file = scratch / "error.json"
    if code == FAILED_CELL_EXIT and error_file.exists():
        error = json.loads(error_file.read_text(encoding="utf-8"))
        where = f"code cell {error['code_cell']}" if error["code_cell"] else "a cell"
        text = (
            f"notebook {stem} failed in {where} ({error['first_line']!r}): "
            f"{error['ename']}: {error['evalue']}"
        )
    else:
        log_file = kept / f"{stem}.log"
        log_tail = (
            log_file.read_text("utf-8").strip().splitlines()[-5:] if log_file.exists() else []
        )
        text = f"notebook {stem} could not run (exit status {code}):\n  " + "\n  ".join(log_tail)
    return (
        f"{text}\n  executed notebook kept at {kept / (stem + '.ipynb')}; the book was not changed"
    )


if __name__ == "__main__":
    execute(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
