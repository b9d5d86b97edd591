"""scripts/long_run.py: a run cut into sittings, on a fresh checkout each time, ends where one
uninterrupted run ends (same data, same order, same schedule, same weights)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from memlora.testing import tiny_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """A clone of the committed repository with this working tree's script, as a new machine has it."""
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", "--local", str(REPO), str(clone)], check=True)
    shutil.copy2(REPO / "scripts" / "long_run.py", clone / "scripts" / "long_run.py")
    tiny = tiny_model("qwen", seed=3)
    tiny.model.save_pretrained(tmp_path / "tiny")
    tiny.tokenizer.save_pretrained(tmp_path / "tiny")
    return clone


def script(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "scripts/long_run.py", *args], cwd=clone, check=True,
                          capture_output=True, text=True)


def start(clone: Path, run: str) -> None:
    tiny = clone.parent / "tiny"
    script(clone, "start", "--run", run, "--episodes", "6", "--seed", "3", "--",
           "--model", str(tiny), "--lora-r", "4", "--lora-alpha", "8", "--grad-accum", "2", "--max-steps", "3",
           "--eval-every", "1", "--save-every", "1", "--max-eval-rows", "1", "--patience", "0",
           "--device", "cpu", "--dtype", "fp32", "--max-length", "1024")


def test_sittings_on_fresh_checkouts_end_where_one_run_ends(checkout: Path) -> None:
    start(checkout, "training-runs/whole")
    script(checkout, "sit", "--run", "training-runs/whole", "--minutes", "600", "--nice", "0")
    whole = load_file(str(checkout / "training-runs/whole/checkpoint/adapter_model.safetensors"))

    start(checkout, "training-runs/parts")
    record = json.loads((checkout / "training-runs/parts/run.json").read_text())
    assert record["data_sha256"] == json.loads((checkout / "training-runs/whole/run.json").read_text())["data_sha256"]
    for sitting in range(3):  # a tiny budget: each sitting stops after one optimizer step
        shutil.rmtree(checkout / "runs", ignore_errors=True)  # a new machine: only the committed folder
        out = script(checkout, "sit", "--run", "training-runs/parts", "--minutes", "0.0001", "--nice", "0").stdout
        assert f"step {sitting + 1} of 3" in out
    record = json.loads((checkout / "training-runs/parts/run.json").read_text())
    assert [s["steps"] for s in record["sittings"]] == [[0, 1], [1, 2], [2, 3]]
    assert all("CPUs" in s["machine"] and s["tokens"] > 0 for s in record["sittings"])
    parts = load_file(str(checkout / "training-runs/parts/checkpoint/adapter_model.safetensors"))
    assert parts.keys() == whole.keys()
    for name in whole:
        assert (parts[name] - whole[name]).abs().max() < 1e-5, name
    history = json.loads((checkout / "training-runs/parts/training_log.json").read_text())
    assert [e["step"] for e in history if "loss" in e] == [1, 2, 3]


def test_a_sitting_refuses_data_that_differs_from_the_runs(checkout: Path) -> None:
    start(checkout, "training-runs/pinned")
    record_path = checkout / "training-runs/pinned/run.json"
    record = json.loads(record_path.read_text())
    record["data_sha256"]["train.rows.jsonl"] = "0" * 64
    record_path.write_text(json.dumps(record))
    shutil.rmtree(checkout / "runs")
    failed = subprocess.run([sys.executable, "scripts/long_run.py", "sit", "--run", "training-runs/pinned",
                             "--minutes", "1"], cwd=checkout, capture_output=True, text=True)
    assert failed.returncode != 0 and "regenerated rows differ" in failed.stderr
