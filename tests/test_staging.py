"""Executed notebooks are staged with their code collapsed and their parameters in view."""

import nbformat

from ghost_optima.book.build.staging import collapse_inputs


def test_code_collapses_but_parameters_and_existing_tags_stay():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("seed = 3", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("import torch", metadata={"tags": ["remove-cell"]}),
        nbformat.v4.new_code_cell("plot()"),
    ]
    staged = nbformat.reads(collapse_inputs(nbformat.writes(nb).encode()).decode(), as_version=4)
    tags = [cell.metadata.get("tags") for cell in staged.cells]
    assert tags == [
        None,
        ["parameters"],
        ["injected-parameters"],
        ["remove-cell"],
        ["hide-input"],
    ]
    assert [c.source for c in staged.cells] == [c.source for c in nb.cells]
