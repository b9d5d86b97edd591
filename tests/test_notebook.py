"""The recipe notebook runs top to bottom (tiny settings), so it cannot rot."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "memory_mcp_lora.ipynb"


def test_notebook_runs_end_to_end_with_tiny_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMLORA_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("MEMLORA_NOTEBOOK_DIR", str(tmp_path / "work"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "\n".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
    )
    assert "$ memlora train sft" in outputs and "optimizer_steps" in outputs
    assert (tmp_path / "work" / "adapter" / "adapter_model.safetensors").exists()
    for run in ("eval-oracle", "eval-base", "eval-adapter"):
        assert (tmp_path / "work" / run / "report.json").exists(), run
    assert "[session 3] user: Where do I teach?" in outputs
