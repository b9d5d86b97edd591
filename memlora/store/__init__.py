"""Knowledge-graph storage: the data model, the backend interface and its SQLite / JSONL backends."""

from __future__ import annotations

from memlora.store.base import MemoryStore
from memlora.store.graph import DEFAULT_LIMITS, Limits


def open_store(url: str, limits: Limits = DEFAULT_LIMITS) -> MemoryStore:
    """Opens `sqlite:PATH`, `sqlite::memory:` or `jsonl:PATH` (the file is created on first write)."""
    scheme, sep, location = url.partition(":")
    if not sep or not location:
        raise ValueError(f"store URL {url!r} must look like sqlite:PATH, sqlite::memory: or jsonl:PATH")
    if scheme == "sqlite":
        from memlora.store.sqlite import SqliteStore

        return SqliteStore(":memory:" if location == ":memory:" else location, limits)
    if scheme == "jsonl":
        from memlora.store.jsonl import JsonlStore

        return JsonlStore(location, limits)
    raise ValueError(f"unknown store scheme {scheme!r} in {url!r}; use sqlite: or jsonl:")


__all__ = ["MemoryStore", "open_store"]
