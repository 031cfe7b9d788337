"""Execute notebooks/eda.ipynb top to bottom; its assert cells re-check EDA_DECISIONS.md.

Run with `make eda`. The kernel is the `python3` kernelspec, which jupyter_client starts with
this interpreter (sys.executable), i.e. the project's .venv; a first injected cell checks that.
Kernel-side state (IPython history, matplotlib cache, connection files) goes to a temp dir.
"""

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO_ROOT / "notebooks" / "eda.ipynb"


@pytest.mark.slow
def test_eda_notebook_runs(tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # Fail fast (and clearly) if the kernel is not running this interpreter's environment.
    guard = f"import sys\nassert sys.prefix == {sys.prefix!r}, sys.executable"
    nb.cells.insert(0, nbformat.v4.new_code_cell(guard))

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    kernel_env = {
        **os.environ,
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
        "OMP_NUM_THREADS": "1",
    }
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=300,  # per cell
        resources={"metadata": {"path": str(REPO_ROOT)}},  # kernel cwd = repo root
    )
    client.execute(env=kernel_env)  # raises CellExecutionError on the first failing cell

    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    assert not errors
