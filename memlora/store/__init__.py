"""Knowledge-graph storage: the data model, the backend interface and its SQLite / JSONL backends."""

from __future__ import annotations

import os
from pathlib import Path

from memlora.store.base import MemoryStore
from memlora.store.graph import DEFAULT_LIMITS, Limits
from memlora.store.locking import DEFAULT_LOCK_TIMEOUT


# The reference server's variable: when set, memlora uses that JSONL file, like the reference.
MEMORY_FILE_ENV = "MEMORY_FILE_PATH"


def default_store_url() -> str:
    """The store to use when none is named: $MEMORY_FILE_PATH as JSONL, else SQLite in the user data folder."""
    memory_file = os.environ.get(MEMORY_FILE_ENV)
    if memory_file:
        # The reference resolves a relative path against its own install folder; relative to
        # the working directory is the only sensible reading for memlora.
        return f"jsonl:{Path(memory_file).expanduser().resolve()}"
    import platformdirs

    return f"sqlite:{Path(platformdirs.user_data_dir('memlora')) / 'memory.db'}"


def open_store(
    url: str,
    limits: Limits = DEFAULT_LIMITS,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    allow_other_tables: bool = False,
) -> MemoryStore:
    """Opens `sqlite:PATH`, `sqlite::memory:` or `jsonl:PATH` (the file is created on first write).

    `lock_timeout` bounds how long one call waits for another process holding the store;
    `allow_other_tables` lets memlora use an SQLite file that another program's tables live in.
    """
    scheme, sep, location = url.partition(":")
    if not sep or not location:
        raise ValueError(f"store URL {url!r} must look like sqlite:PATH, sqlite::memory: or jsonl:PATH")
    # A shell leaves `~` alone inside `--store jsonl:~/x.jsonl`; read it as the home folder,
    # not as a folder named `~`.
    location = os.path.expanduser(location)
    if scheme == "sqlite":
        from memlora.store.sqlite import SqliteStore

        return SqliteStore(
            ":memory:" if location == ":memory:" else location,
            limits,
            lock_timeout=lock_timeout,
            allow_other_tables=allow_other_tables,
        )
    if scheme == "jsonl":
        from memlora.store.jsonl import JsonlStore

        return JsonlStore(location, limits, lock_timeout=lock_timeout)
    raise ValueError(f"unknown store scheme {scheme!r} in {url!r}; use sqlite: or jsonl:")


__all__ = ["MemoryStore", "default_store_url", "open_store"]
