"""How an executed notebook is shown in the book: code collapsed, the parameters in view.

A reader comes for the argument and the figures; a reviewer wants the code one click away and
the parameters the run used in plain sight. Every code cell gets myst-nb's ``hide-input`` tag
(its source folds behind a toggle, its outputs stay) except the parameters cell and the one
papermill injects, which show what this run used. Cells already tagged to be removed or hidden
keep their tags.
"""

import nbformat

SHOWN = {"parameters", "injected-parameters"}
ALREADY_HANDLED = {"remove-cell", "remove-input", "hide-input", "hide-cell"}


def collapse_inputs(notebook: bytes) -> bytes:
    """The notebook (``.ipynb`` bytes) with every code input but the parameters collapsed."""
    nb = nbformat.reads(notebook.decode("utf-8"), as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.setdefault("tags", [])
        if not SHOWN.intersection(tags) and not ALREADY_HANDLED.intersection(tags):
            tags.append("hide-input")
    return nbformat.writes(nb).encode("utf-8")
