"""The example notebook runs top to bottom (two short simulations and a comparison)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"

pytestmark = pytest.mark.slow


def test_the_example_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("FEDROBUST_NOTEBOOK_OUT", str(tmp_path))  # the kernel inherits it
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = "".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.outputs
    )
    assert "data.partition.num_clients" in outputs  # the validation error names the field
    assert "RunResult('notebook_fedavg', status=completed" in outputs
    assert (tmp_path / "fedavg" / "model.pt").is_file()
    assert (tmp_path / "compare" / "compare.html").is_file()
