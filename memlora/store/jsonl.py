"""The JSONL backend: the reference memory server's file, byte for byte.

One JSON object per line (`"type": "entity"` or `"type": "relation"`), entities first, lines
joined by a newline with none after the last, compact JSON with non-ASCII text kept as is:
exactly what the reference writes, so either program can open the other's file.

Every write takes an exclusive file lock (`<file>.lock`), re-reads the file, applies the
operation and, if anything changed, writes a temporary file beside it and renames it over the
original. Several memlora processes can therefore share one file without losing each other's
writes, and a crash leaves either the old file or the new one. Reads take no lock: since every
write is a rename, a reader sees the old file or the new one, never half of one; so a file in a
read-only folder (or on read-only media) can still be read, as the reference server can. A
line that cannot be read stops the call with `CorruptStoreError` naming the line; the file is
never written over in that case.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import filelock
from pydantic import TypeAdapter, ValidationError

from memlora.store.base import MemoryStore, MergeReport
from memlora.store.graph import (
    DEFAULT_LIMITS,
    AddedObservations,
    CorruptStoreError,
    Entity,
    KnowledgeGraph,
    Limits,
    ObservationAddition,
    ObservationDeletion,
    Relation,
    StoreBusyError,
)
from memlora.store.failures import os_failure
from memlora.store.locking import DEFAULT_LOCK_TIMEOUT, Deadline, WouldBlock, may_wait, take
from memlora.store.memory import GraphState
from memlora.store.tools import (
    AddObservations,
    CreateEntities,
    CreateRelations,
    DeleteEntities,
    DeleteObservations,
    DeleteRelations,
    OpenNodes,
    SearchNodes,
)

T = TypeVar("T")


def _dumps(obj: dict[str, Any]) -> str:
    # Matches JavaScript's JSON.stringify: no spaces, non-ASCII text unescaped.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def format_graph(graph: KnowledgeGraph) -> str:
    """The whole file's text for `graph`, as the reference server would write it."""
    lines = [_dumps({"type": "entity", **e.to_dict()}) for e in graph.entities]
    lines += [_dumps({"type": "relation", **r.to_dict()}) for r in graph.relations]
    return "\n".join(lines)


# Each record type's shape, read by its wire names as the tools read their arguments.
_RECORDS: dict[str, TypeAdapter[Any]] = {"entity": TypeAdapter(Entity), "relation": TypeAdapter(Relation)}


def parse_graph(text: str, path: str = "<memory>") -> KnowledgeGraph:
    """Reads the reference format; blank lines are skipped, anything unreadable raises."""
    graph = KnowledgeGraph()
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise CorruptStoreError(path, number, f"not valid JSON ({error.msg})") from None
        if not isinstance(item, dict):
            raise CorruptStoreError(path, number, "expected a JSON object")
        kind = item.get("type")
        if kind not in ("entity", "relation"):
            raise CorruptStoreError(path, number, f"unknown record type {kind!r}")
        try:
            record = _RECORDS[kind].validate_python(item, by_alias=True, by_name=False)
        except ValidationError as error:
            key = error.errors()[0]["loc"][0]
            wanted = "an array of strings" if key == "observations" else "a string"
            raise CorruptStoreError(path, number, f"field {key!r} must be {wanted}") from None
        (graph.entities if kind == "entity" else graph.relations).append(record)
    return graph


class JsonlStore(MemoryStore):
    """A `MemoryStore` in a reference-format JSONL file, shareable between processes."""

    def __init__(self, path: str | Path, limits: Limits = DEFAULT_LIMITS, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.path = Path(path)  # as the user named it, for messages
        # The file itself: a write renames over this, so through a symlink it must be the
        # target, or the first write would replace the link with a file of its own.
        self._file = Path(os.path.realpath(self.path))
        self.limits = limits
        self.lock_timeout = lock_timeout
        self._file_lock = filelock.FileLock(str(self._file) + ".lock")
        self._thread_lock = threading.Lock()
        self._remove_orphaned_temp_files()
        # Fail at open time, not on the first tool call, if the file is already unreadable.
        self._load()

    def _remove_orphaned_temp_files(self) -> None:
        """Deletes temporary copies left by a writer that was killed before its rename.

        Only under the file lock, which every writer holds while its temporary file exists, so a
        live writer's file is never taken; and only if there are any, so that opening a store
        creates no lock file. Where the lock cannot be had at once, they wait for the next open.
        """
        orphans = re.compile(re.escape(self._file.name) + r"\.[a-z0-9_]{8}\.tmp")
        try:
            if not any(orphans.fullmatch(name) for name in os.listdir(self._file.parent)):
                return
            with self._file_lock.acquire(blocking=False):
                for name in os.listdir(self._file.parent):
                    if orphans.fullmatch(name):
                        (self._file.parent / name).unlink(missing_ok=True)
        except OSError:  # a missing or read-only folder, or the lock is held (filelock.Timeout)
            return

    def _load(self) -> GraphState:
        try:
            text = self._file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return GraphState()
        except UnicodeDecodeError as error:
            line = text_line_of_offset(self._file.read_bytes(), error.start)
            raise CorruptStoreError(str(self.path), line, "not valid UTF-8") from None
        except OSError as error:
            raise os_failure(self.path, "read", error, writing=False) from None
        return GraphState(parse_graph(text, str(self.path)))

    def _save(self, state: GraphState) -> None:
        """Writes a temporary file beside the store and renames it over; on any failure the
        store file is untouched and the temporary file is gone."""
        data = format_graph(state.graph()).encode("utf-8")
        temp = None
        try:
            if self._file.exists() and not os.access(self._file, os.W_OK):
                # The rename below would replace a file we may not write; honour its mode.
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            fd, temp = tempfile.mkstemp(prefix=self._file.name + ".", suffix=".tmp", dir=self._file.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if self._file.exists():
                os.chmod(temp, self._file.stat().st_mode & 0o777)
            os.replace(temp, self._file)
        except BaseException as error:
            if temp is not None:
                Path(temp).unlink(missing_ok=True)
            if isinstance(error, OSError):
                raise os_failure(self.path, "write", error, writing=True) from None
            raise

    def _make_folder(self) -> None:
        """The folder is made on the first write, so that opening and reading change nothing."""
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise os_failure(self.path, "create the folder of", error, writing=True) from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Holds this process's lock and the file lock, waiting at most `lock_timeout` for both
        (or not at all under `locking.no_wait()`)."""
        deadline = Deadline(self.lock_timeout)
        if not take(self._thread_lock, deadline):
            raise StoreBusyError(str(self.path), self.lock_timeout, "another call of this server")
        try:
            try:
                if may_wait():
                    self._file_lock.acquire(timeout=deadline.left())
                else:
                    self._file_lock.acquire(blocking=False)
            except filelock.Timeout:
                if not may_wait():
                    raise WouldBlock from None
                raise StoreBusyError(str(self.path), self.lock_timeout) from None
            except OSError as error:  # the lock file cannot be made: a read-only, missing or full folder
                raise os_failure(self.path, "write", error, writing=True) from None
            try:
                yield
            finally:
                self._file_lock.release()
        finally:
            self._thread_lock.release()

    def _read(self, query: Callable[[GraphState], T]) -> T:
        """Runs `query` on a fresh read of the file; no lock needed, see the module docstring."""
        return query(self._load())

    def _mutate(self, change: Callable[[GraphState], T], changed: Callable[[T], bool]) -> T:
        """Runs `change` on a fresh read under the lock; rewrites the file only if `changed(result)`.

        A call that raises (a missing entity, a corrupt line) writes nothing.
        """
        self._make_folder()
        with self._locked():
            state = self._load()
            result = change(state)
            if changed(result):
                self._save(state)
            return result

    # -- the nine operations ------------------------------------------------------------------

    def create_entities(self, entities: list[Entity]) -> list[Entity]:
        CreateEntities.check(self.limits, entities=entities)
        return self._mutate(lambda s: s.create_entities(entities), bool)

    def create_relations(self, relations: list[Relation]) -> list[Relation]:
        CreateRelations.check(self.limits, relations=relations)
        return self._mutate(lambda s: s.create_relations(relations), bool)

    def add_observations(self, additions: list[ObservationAddition]) -> list[AddedObservations]:
        AddObservations.check(self.limits, observations=additions)
        return self._mutate(
            lambda s: s.add_observations(additions), lambda results: any(r.added_observations for r in results)
        )

    def delete_entities(self, names: list[str]) -> None:
        DeleteEntities.check(self.limits, entityNames=names)
        self._mutate(lambda s: s.delete_entities(names), bool)

    def delete_observations(self, deletions: list[ObservationDeletion]) -> None:
        DeleteObservations.check(self.limits, deletions=deletions)
        self._mutate(lambda s: s.delete_observations(deletions), bool)

    def delete_relations(self, relations: list[Relation]) -> None:
        DeleteRelations.check(self.limits, relations=relations)
        self._mutate(lambda s: s.delete_relations(relations), bool)

    def merge_graph(self, graph: KnowledgeGraph) -> MergeReport:
        return self._mutate(
            lambda s: s.merge_graph(graph),
            lambda r: bool(r.entities_added or r.observations_added or r.relations_added),
        )

    def read_graph(self) -> KnowledgeGraph:
        return self._read(lambda s: s.graph())

    def search_nodes(self, query: str) -> KnowledgeGraph:
        SearchNodes.check(self.limits, query=query)
        return self._read(lambda s: s.search_nodes(query))

    def open_nodes(self, names: list[str]) -> KnowledgeGraph:
        OpenNodes.check(self.limits, names=names)
        return self._read(lambda s: s.open_nodes(names))


def text_line_of_offset(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1
