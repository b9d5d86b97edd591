"""`sqlite:PATH` at another program's database is refused, and the file is left exactly as it was."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from memlora.store import open_store
from memlora.store.graph import CorruptStoreError, Entity
from memlora.store.sqlite import APPLICATION_ID, SCHEMA, ForeignDatabaseError


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def other_program_db(path: Path) -> Path:
    """A database as some other program keeps it: its own table, rollback journal, no WAL."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
        db.execute("INSERT INTO users (email) VALUES ('a@example.org')")
    return path


def objects_and_mode(path: Path) -> tuple[list[str], str]:
    db = sqlite3.connect(path)
    try:
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master ORDER BY name")]
        return names, db.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        db.close()


def test_another_programs_database_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = other_program_db(tmp_path / "app.db")
    before = digest(path)
    with pytest.raises(ForeignDatabaseError) as caught:
        open_store(f"sqlite:{path}")
    assert str(caught.value).startswith(f"{path} is not a memlora database (it holds table users)")
    assert "--allow-other-tables" in str(caught.value)
    assert digest(path) == before
    assert objects_and_mode(path) == (["users"], "delete")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_sharing_another_programs_database_when_asked(tmp_path: Path) -> None:
    path = other_program_db(tmp_path / "app.db")
    with open_store(f"sqlite:{path}", allow_other_tables=True) as store:
        store.create_entities([Entity("Ana", "person", [])])
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT email FROM users").fetchall() == [("a@example.org",)]
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0  # not claimed as memlora's


@pytest.mark.parametrize(
    ("setup", "shown"),
    [
        ("PRAGMA application_id = 1234", "application_id 0x4d2"),
        ("CREATE TABLE entities (id INTEGER PRIMARY KEY, title TEXT)", "table entities with columns id, title"),
        ("CREATE VIEW v AS SELECT 1", "view v"),
    ],
)
def test_other_marks_of_a_foreign_database(tmp_path: Path, setup: str, shown: str) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute(setup)
    before = digest(path)
    with pytest.raises(ForeignDatabaseError, match=shown):
        open_store(f"sqlite:{path}")
    assert digest(path) == before


def test_new_empty_and_earlier_memlora_databases_are_accepted_and_marked(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    legacy = tmp_path / "legacy.db"  # made before memlora marked its files
    with sqlite3.connect(legacy) as db:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("""INSERT INTO entities (name, entity_type, observations) VALUES ('Ana', 'person', '[]')""")
    for path in (tmp_path / "new.db", empty, legacy):
        with open_store(f"sqlite:{path}") as store:
            store.create_entities([Entity("Bo", "city", [])])
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    with open_store(f"sqlite:{legacy}") as store:
        assert [e.name for e in store.read_graph().entities] == ["Ana", "Bo"]


def test_a_file_that_is_not_a_database_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("just some notes, not SQLite\n" * 100, encoding="utf-8")
    before = digest(path)
    with pytest.raises(CorruptStoreError) as caught:
        open_store(f"sqlite:{path}")
    assert str(caught.value).startswith(f"{path}: file is not a database")
    assert digest(path) == before


def test_serve_refuses_and_says_how_to_share(tmp_path: Path) -> None:
    path = other_program_db(tmp_path / "app.db")
    result = subprocess.run(
        [sys.executable, "-m", "memlora.cli", "serve", "--store", f"sqlite:{path}"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert f"{path} is not a memlora database" in result.stderr
    assert objects_and_mode(path) == (["users"], "delete")
