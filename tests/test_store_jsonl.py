"""The JSONL backend: the reference file format byte for byte, and corrupt files left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from memlora.store import open_store
from memlora.store.graph import CorruptStoreError, Entity, Relation

REFERENCE_FILE = (
    '{"type":"entity","name":"Zoë","entityType":"person","observations":["says \\"hi\\"","naïve\\ttab"]}\n'
    '{"type":"entity","name":"Bob","entityType":"person","observations":[]}\n'
    '{"type":"relation","from":"Zoë","to":"Bob","relationType":"knows"}'
)


def test_writes_exactly_the_reference_format(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    with open_store(f"jsonl:{path}") as store:
        store.create_entities([Entity("Zoë", "person", ['says "hi"', "naïve\ttab"]), Entity("Bob", "person", [])])
        store.create_relations([Relation("Zoë", "Bob", "knows")])
    assert path.read_text(encoding="utf-8") == REFERENCE_FILE


def test_reads_a_reference_file_and_leaves_it_byte_identical_after_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    path.write_text(REFERENCE_FILE + "\n\n", encoding="utf-8")
    with open_store(f"jsonl:{path}") as store:
        assert [e.name for e in store.search_nodes("NAÏVE").entities] == ["Zoë"]
        store.add_observations([])
        store.create_entities([Entity("Bob", "person", [])])  # nothing new: no rewrite
    assert path.read_text(encoding="utf-8") == REFERENCE_FILE + "\n\n"


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"type":"entity","name":"X","entityType":"t"', "not valid JSON"),
        ('{"type":"entity","name":"X","entityType":"t"}', "observations"),
        ('{"type":"relation","from":"X","to":7,"relationType":"r"}', "'to'"),
        ('{"type":"mystery"}', "unknown record type"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_corrupt_line_is_reported_with_its_number_and_never_overwritten(
    tmp_path: Path, bad_line: str, reason: str
) -> None:
    path = tmp_path / "memory.jsonl"
    lines = REFERENCE_FILE.split("\n")
    original = "\n".join([lines[0], bad_line, *lines[1:]])
    path.write_text(original, encoding="utf-8")
    with pytest.raises(CorruptStoreError, match=reason) as caught:
        open_store(f"jsonl:{path}")
    assert caught.value.line == 2
    assert "line 2" in str(caught.value)
    assert path.read_text(encoding="utf-8") == original


def test_corruption_appearing_later_fails_the_call_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    with open_store(f"jsonl:{path}") as store:
        store.create_entities([Entity("A", "t", [])])
        damaged = path.read_text(encoding="utf-8") + "\n{oops"
        path.write_text(damaged, encoding="utf-8")
        with pytest.raises(CorruptStoreError) as caught:
            store.create_entities([Entity("B", "t", [])])
        assert caught.value.line == 2
    assert path.read_text(encoding="utf-8") == damaged


def test_invalid_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    path.write_bytes(REFERENCE_FILE.encode() + b'\n{"type":"entity","name":"\xff"}')
    with pytest.raises(CorruptStoreError, match="UTF-8") as caught:
        open_store(f"jsonl:{path}")
    assert caught.value.line == 4


def test_no_temp_files_are_left_behind(tmp_path: Path) -> None:
    with open_store(f"jsonl:{tmp_path / 'm.jsonl'}") as store:
        for i in range(5):
            store.create_entities([Entity(f"E{i}", "t", [])])
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["m.jsonl"]
