"""Opening SQLite with the sqlite-vec extension loaded.

Python's own `sqlite3` is often built without extension loading (pyenv's default build, some
distributions), so the records store prefers `pysqlite3` (the same DB-API, with a recent
SQLite that can load extensions) and falls back to `sqlite3` where that one can.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from memlora.records.errors import MissingDependencyError


def sqlite_module() -> ModuleType:
    """The DB-API module to use: pysqlite3 if installed, else sqlite3 if it can load extensions."""
    try:
        import pysqlite3.dbapi2 as module  # type: ignore[import-not-found]

        return module
    except ImportError:
        import sqlite3

        if hasattr(sqlite3.Connection, "enable_load_extension"):
            return sqlite3
    raise MissingDependencyError(
        "pysqlite3-binary", "this Python's sqlite3 cannot load extensions, and the vector index"
    )


def connect(path: str | Path) -> Any:
    """A connection in autocommit mode with sqlite-vec loaded, WAL for files, a 30 s busy wait."""
    try:
        import sqlite_vec
    except ImportError:
        raise MissingDependencyError("sqlite-vec", "the records vector index") from None
    sqlite = sqlite_module()
    path = str(path)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    db.enable_load_extension(True)
    sqlite_vec.load(db)
    db.enable_load_extension(False)
    db.execute("PRAGMA busy_timeout = 30000")
    if path != ":memory:":
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
    return db

