"""Every notebook runs top to bottom in the tiny setting, and is stored without outputs.

``TRANSLATE_NOTEBOOK_TINY=1`` switches each notebook to a tiny model trained
for a few steps on translate/testing/data/tiny.tsv, writing only to temporary folders
(here under pytest's tmp_path, through TMPDIR), so nothing lands in the
repository. A cell that raises fails the test with the cell's error.
"""

from __future__ import annotations

import os

import pytest

from conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == [
        "01_train.ipynb",
        "02_evaluate_and_attention.ipynb",
        "03_export_and_serve.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear the outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_in_the_tiny_setting(path, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSLATE_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' temporary folders land here
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    # The notebooks import translate as an installed package (pip install -e .); the kernel finds
    # this checkout's instead, as pytest does (pyproject.toml's pythonpath).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError, with the failing cell's traceback, on any error
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    if path.name != "03_export_and_serve.ipynb":
        # The figures are shown inline, as PNG images in the cell outputs.
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} showed no figure"
