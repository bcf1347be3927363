"""The recorder's result file: what a notebook glued, and the threads torch used."""

import json
import subprocess
import sys

import pytest

from ghost_optima.book.verdicts.record import RESULT_ENV

NOTEBOOK = """
import sys
{import_torch}
from ghost_optima.book.verdicts.record import Recorder
rec = Recorder("10_toy")
rec.glue("answer", 42)
assert ("torch" in sys.modules) == {import_torch!r}.startswith("import"), "recorder imported torch"
"""


@pytest.mark.parametrize("import_torch", ["", "import torch; torch.set_num_threads(1)"])
def test_a_notebook_without_torch_does_not_import_it_and_one_with_torch_records_its_threads(
    tmp_path, import_torch
):
    result = tmp_path / "result.json"
    code = NOTEBOOK.format(import_torch=import_torch)
    env = {"PATH": "", RESULT_ENV: str(result)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    record = json.loads(result.read_text())
    assert record["values"] == {"answer": 42}
    assert record["threads"] == (1 if import_torch else None)
