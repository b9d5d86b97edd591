"""Runs gold calls against a real memlora store and returns what the server would answer.

The calls go through `memlora.store.tools`, as the MCP server's do: the same argument models,
the same checks (DEFAULT_LIMITS for the stores datagen opens, as for the server), and the
results in the server's shapes: lists of what was added, a plain success message for deletions,
a graph for reads. `memlora.agent.prompt.format_tool_result` renders them.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from memlora.store.base import MemoryStore
from memlora.store.sqlite import SqliteStore
from memlora.store.tools import ARGUMENTS, run_tool


class GoldCallError(RuntimeError):
    """A gold call failed against the store: a bug in the policy, never data to keep."""


def execute(store: MemoryStore, call: dict[str, Any]) -> Any:
    """One call's result payload, as the memlora server shapes it."""
    name, args = call["name"], call["arguments"]
    if name not in ARGUMENTS:
        raise GoldCallError(f"unknown tool {name!r}")
    try:
        return run_tool(store, name, args)
    except Exception as error:  # noqa: BLE001 - re-raised with the call attached
        raise GoldCallError(f"gold call {call} failed: {error}") from error


class ScratchStore(SqliteStore):
    """An in-memory SQLite store that one thread reuses for episode after episode.

    Opening a fresh in-memory store per episode cost about a tenth of the generation time
    (creating the schema and the FTS5 table, then re-preparing every statement on a cold
    connection). Emptying the tables instead gives the same state for every call the generator
    makes: ids restart at 1 in an empty table (no AUTOINCREMENT), and the search index holds
    nothing, so every result is what a fresh store returns (tests check this on whole episodes).
    """

    # every table of the SQLite schema (memlora.store.sqlite.SCHEMA); a test checks the list
    TABLES = ("entities", "relations", "entity_text")

    def __init__(self) -> None:
        super().__init__(":memory:")

    def reset(self) -> None:
        """Empties every table, in one transaction."""
        with self._write() as db:
            for table in self.TABLES:
                db.execute(f"DELETE FROM {table}")


_scratch = threading.local()


def scratch_store() -> ScratchStore:
    """This thread's reusable store, emptied. A store inherited across fork is not reused:
    SQLite connections must not cross a fork, so a forked worker opens its own."""
    store: ScratchStore | None = getattr(_scratch, "store", None)
    if store is None or _scratch.pid != os.getpid():
        store = _scratch.store = ScratchStore()
        _scratch.pid = os.getpid()
    else:
        store.reset()
    return store
