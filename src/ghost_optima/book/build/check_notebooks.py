"""Lint the notebook sources: a kernelspec, one well-formed parameters cell, ruff-clean code, and
no thread counts (the profile's ``threads`` setting owns them: ``cluster.threads_env``).

``python -m ghost_optima.book.build.check_notebooks notebooks`` converts each MyST notebook to a
Python script in memory and pipes it through ``ruff check`` (allowing what is usual in notebooks:
long lines, late imports, bare expressions that display). Exits non-zero, naming each problem.
"""

import re
import subprocess
import sys
from pathlib import Path

import jupytext

from ghost_optima.book.build.profiles import ConfigError, parameters_cell

RUFF_IGNORE = "E402,E501,B018"  # late imports, long lines, displayed expressions
THREAD_SETTERS = re.compile(
    r"set_num_threads|set_num_interop_threads|threadpool_limits|_NUM_THREADS"
)


def problems(path: Path) -> list[str]:
    notebook = jupytext.read(path)
    found = []
    if notebook.metadata.get("kernelspec", {}).get("name") != "python3":
        found.append("no python3 kernelspec in the header")
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        found.append(f"needs exactly one cell tagged 'parameters', has {len(tagged)}")
    else:
        try:  # every line 'name: type = literal  # help'
            parameters_cell(tagged[0].source)
        except ConfigError as err:
            found.append(str(err))
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    if setters := sorted(set(THREAD_SETTERS.findall(code))):
        found.append(
            f"sets thread counts ({', '.join(setters)}): the profile's threads setting does"
        )
    script = jupytext.writes(notebook, fmt="py:percent")
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run(
        [str(ruff), "check", "--ignore", RUFF_IGNORE, "--stdin-filename", f"{path.stem}.py", "-"],
        input=script,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        found.append("ruff:\n" + done.stdout.strip())
    return found


def main(folder: str) -> int:
    failed = 0
    for path in sorted(Path(folder).glob("[0-9][0-9]_*.md")):
        for problem in problems(path):
            print(f"{path}: {problem}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
