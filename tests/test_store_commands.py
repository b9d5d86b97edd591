"""`memlora import` / `memlora export`: lossless between the backends and the reference format."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from memlora.store import open_store
from memlora.store.commands import export_command, import_command
from memlora.store.graph import Entity, Relation

# As the reference server writes it, including a relation whose endpoint it never checked.
REFERENCE_FILE = (
    '{"type":"entity","name":"Ana","entityType":"person","observations":["café ☕","b"]}\n'
    '{"type":"entity","name":"Lyon","entityType":"city","observations":[]}\n'
    '{"type":"relation","from":"Ana","to":"Lyon","relationType":"lives_in"}\n'
    '{"type":"relation","from":"Ana","to":"Ghost","relationType":"knows"}'
)


def test_reference_file_round_trips_through_sqlite_byte_for_byte(tmp_path: Path) -> None:
    source = tmp_path / "ref.jsonl"
    source.write_text(REFERENCE_FILE, encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(import_command, [str(source), "--store", f"sqlite:{tmp_path / 'a.db'}"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out.jsonl"
    result = runner.invoke(export_command, ["--store", f"sqlite:{tmp_path / 'a.db'}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == REFERENCE_FILE


def test_sqlite_to_jsonl_store_and_back_keeps_the_graph(tmp_path: Path) -> None:
    with open_store(f"sqlite:{tmp_path / 'a.db'}") as store:
        store.create_entities([Entity(f"E{i}", "t", [f"o{i}", "shared"]) for i in range(50)])
        store.create_relations([Relation(f"E{i}", f"E{(i * 7) % 50}", "r") for i in range(50)])
        store.delete_entities(["E3"])
        original = store.read_graph()
    runner = CliRunner()
    assert runner.invoke(import_command, [f"sqlite:{tmp_path / 'a.db'}", "--store", f"jsonl:{tmp_path / 'b.jsonl'}"]).exit_code == 0
    assert runner.invoke(import_command, [f"jsonl:{tmp_path / 'b.jsonl'}", "--store", f"sqlite:{tmp_path / 'c.db'}"]).exit_code == 0
    with open_store(f"sqlite:{tmp_path / 'c.db'}") as copy:
        assert copy.read_graph() == original


def test_import_merges_into_an_existing_store(tmp_path: Path) -> None:
    target = f"sqlite:{tmp_path / 'a.db'}"
    with open_store(target) as store:
        store.create_entities([Entity("Ana", "person", ["b", "already here"])])
    source = tmp_path / "ref.jsonl"
    source.write_text(REFERENCE_FILE, encoding="utf-8")
    result = CliRunner().invoke(import_command, [str(source), "--store", target])
    assert "1 entities, 1 observations, 2 relations added" in result.output
    with open_store(target) as store:
        assert store.open_nodes(["Ana"]).entities[0].observations == ["b", "already here", "café ☕"]


def test_export_refuses_to_overwrite_and_reports_corruption(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("keep me", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(export_command, ["--store", f"sqlite:{tmp_path / 'a.db'}", "--out", str(out)])
    assert result.exit_code != 0 and "--force" in result.output
    assert out.read_text(encoding="utf-8") == "keep me"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type":"entity"}', encoding="utf-8")
    result = runner.invoke(export_command, ["--store", f"jsonl:{bad}"])
    assert result.exit_code != 0 and "line 1" in result.output


def test_export_to_stdout(tmp_path: Path) -> None:
    with open_store(f"sqlite:{tmp_path / 'a.db'}") as store:
        store.create_entities([Entity("A", "t", [])])
    result = CliRunner().invoke(export_command, ["--store", f"sqlite:{tmp_path / 'a.db'}"])
    assert result.stdout == '{"type":"entity","name":"A","entityType":"t","observations":[]}\n'
