"""The example notebook executes top to bottom against a real pipeline run."""

from __future__ import annotations

import pytest

from src.lib.config import REPO_ROOT, load_config
from src.lib.discovery import step_names
from src.pipeline import run_pipeline

STEPS = step_names()

pytestmark = pytest.mark.slow


def test_notebook_runs_on_the_latest_run(workspace) -> None:
    import nbformat
    from nbclient import NotebookClient

    run_pipeline(load_config("local"), list(STEPS))
    notebook = nbformat.read(REPO_ROOT / "notebooks" / "explore_latest_run.ipynb", as_version=4)

    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}}).execute()

    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
    )
    assert "accuracy on the holdout" in text
    assert "models:/breast-cancer-local/1" in text
    assert any("image/png" in output.get("data", {})
               for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", []))
