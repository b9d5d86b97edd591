"""`memlora records ...` end to end on a real store (rules and extraction: no chat model is loaded)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from memlora.cli import main


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.delenv("MEMORY_BACKEND", raising=False)
    monkeypatch.delenv("MEMLORA_RECORDS_TRACE", raising=False)
    store = f"sqlite:{tmp_path / 'records.db'}"

    def invoke(*args: str, code: int = 0, store_url: str | None = store):
        extra = ["--store", store_url] if store_url else []
        result = CliRunner().invoke(main, ["records", *args, *extra], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return invoke


def test_write_recall_stats_export_import(run, tmp_path) -> None:
    out = run("write", "saw a red ball on the table in the living room", "--pose", "1.2,3.5,1.57",
              "--mission", "m-1", "--model", "none", "--json")
    record = json.loads(out.stdout)["record"]
    assert record["pose"] == {"x": 1.2, "y": 3.5, "yaw": 1.57} and record["mission_id"] == "m-1"
    run("write", "met Alice in the lobby", "--mission", "m-2", "--model", "none")
    recalled = run("recall", "where did we see the red ball?", "--mission", "m-1", "--model", "none", "--json")
    answer = json.loads(recalled.stdout)
    assert answer["citations"] == [{"n": 1, "id": record["id"]}]
    text = run("recall", "where did we see the red ball?", "--all-missions", "--model", "none").stdout
    assert text.splitlines()[0].endswith("[1].") and f"*[1] {record['id']}" in text
    stats = json.loads(run("stats", "--json").stdout)
    assert stats["records"] == 2 and stats["writes"]["total"] == 2 and stats["recalls"]["total"] == 2
    assert "success@1" in run("stats").stdout
    run("export", "--out", str(tmp_path / "out.jsonl"))
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines][0] == record["id"] and len(lines) == 2
    refused = run("export", "--out", str(tmp_path / "out.jsonl"), code=1)
    assert "--force" in refused.output
    copy = f"sqlite:{tmp_path / 'copy.db'}"
    imported = run("import", str(tmp_path / "out.jsonl"), store_url=copy)
    assert "2 added" in imported.output
    assert "0 added, 2 already present" in run("import", str(tmp_path / "out.jsonl"), store_url=copy).output


def test_purge_by_age_and_quota_in_one_mission(run) -> None:
    for i, mission in enumerate(["a", "a", "a", "b", "b"]):
        run("write", f"saw box {i}", "--mission", mission, "--time", str(1000 + i), "--model", "none")
    dry = run("purge", "--max-per-mission", "1", "--mission", "a", "--dry-run")
    assert len(dry.stdout.split()) == 2 and "would delete 2" in dry.output
    run("purge", "--max-per-mission", "1", "--mission", "a")
    stats = json.loads(run("stats", "--json").stdout)
    assert {m["mission"]: m["records"] for m in stats["missions"]} == {"a": 1, "b": 2}
    run("purge", "--older-than", "1d")
    assert json.loads(run("stats", "--json").stdout)["records"] == 0


def test_bad_input_is_a_clear_error(run, tmp_path) -> None:
    assert "pose.yaw" in run("write", "saw a cup", "--pose", "1,2,9", "--model", "none", code=1).output
    assert "three numbers" in run("write", "saw a cup", "--pose", "1,2", "--model", "none", code=1).output
    assert "duration" in run("purge", "--older-than", "soon", code=2).output
    assert "needs --older-than" in run("purge", code=1).output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"nope": 1}\n')
    assert "line 1" in run("import", str(bad), code=1).output
    assert "sqlite:PATH" in run("recall", "x", "--model", "none", store_url="jsonl:x", code=1).output


def test_skip_backend(run, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MEMORY_BACKEND", "skip")
    out = run("write", "saw a cup")
    assert "memory is off" in out.output
    assert "Memory is off" in run("recall", "where is the cup?").stdout
    assert not (tmp_path / "records.db").exists()
    assert "memory is off" in run("purge", "--older-than", "1d", code=1).output


def test_scenes(run, tmp_path) -> None:
    out = run("scenes", "--missions", "8,4,4", "--seed", "3", "--out", str(tmp_path / "scenes"), store_url=None)
    assert "train: 8 missions" in out.output
    assert (tmp_path / "scenes" / "test.jsonl").exists()
