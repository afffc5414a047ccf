"""The analysis notebook runs from top to bottom on a small synthetic dataset."""

from __future__ import annotations

import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO


def test_episodes_notebook_executes(tmp_path):
    """The notebook loads data through the analysis API, finds episodes, correlates orders and draws charts."""
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(REPO / "notebooks" / "episodes.ipynb", as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "KUZOT_DB"}
    os.environ.pop("KUZOT_DB", None)
    os.environ["KUZOT_ROOT"] = str(REPO)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(REPO / "notebooks")}},
    )
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "enforced_after_withdrawal" in text
    assert "azattyk.gitlab.io" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2, "both charts are drawn"
