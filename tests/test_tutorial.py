"""docs/tutorial.py, executed as a notebook (Jupytext -> nbformat -> nbclient with an IPython kernel) in a
temporary directory: a cell that raises fails the test."""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import ROOT

jupytext = pytest.importorskip("jupytext", reason="the notebook extra is not installed")
nbclient = pytest.importorskip("nbclient", reason="the notebook extra is not installed")
pytest.importorskip("ipykernel", reason="the notebook extra is not installed")

TUTORIAL = ROOT / "docs" / "tutorial.py"


@pytest.mark.slow
def test_the_tutorial_runs_as_a_notebook_and_shows_its_figures(tmp_path, monkeypatch):
    notebook = jupytext.read(TUTORIAL)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) >= 10
    # the kernel imports neuromod from this checkout, as the test process does
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    started = time.perf_counter()
    client = nbclient.NotebookClient(
        notebook,
        timeout=240,  # per cell
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # CellExecutionError (with the cell and its traceback) if a cell raises
    seconds = time.perf_counter() - started
    errors = [out for cell in code for out in cell.outputs if out.get("output_type") == "error"]
    assert errors == []
    # the figures cells display PNGs inline, and the run and the sweep landed in the temporary directory
    images = [out for cell in code for out in cell.outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 4
    assert (tmp_path / "tutorial_run" / "checkpoint.pt").is_file()
    assert sorted(p.name for p in (tmp_path / "tutorial_sweep").iterdir() if p.name.isdigit()) == list("0123")
    assert (tmp_path / "tutorial_collection" / "results.csv").is_file()
    assert seconds < 180, f"the tutorial took {seconds:.0f} s"
