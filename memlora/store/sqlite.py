"""The SQLite backend: the embedded default.

One row per entity (observations as a JSON array, because they are always read and written
with their entity), one row per relation, and an FTS5 trigram index over a lower-cased copy of
each entity's text. Every call is one transaction; writes take the write lock up front
(`BEGIN IMMEDIATE`) so two processes sharing a file queue instead of failing midway, waiting
at most `lock_timeout` (see `memlora.store.locking`). Reads have a connection of their own,
so in WAL mode they go on while a write waits for another process. Only
`read_graph` reads every row: lookups go through the name index, relation lookups through the
endpoint indexes, and `search_nodes` through the trigram index.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from memlora.store.base import MemoryStore, MergeReport
from memlora.store.graph import (
    DEFAULT_LIMITS,
    AddedObservations,
    Entity,
    EntityNotFoundError,
    StoreError,
    KnowledgeGraph,
    Limits,
    ObservationAddition,
    ObservationDeletion,
    Relation,
    StoreBusyError,
)
from memlora.store.failures import os_failure, sqlite_failure
from memlora.store.locking import DEFAULT_LOCK_TIMEOUT, Deadline, WouldBlock, may_wait, take
from memlora.store.memory import matches, unique, unique_entities
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

SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    entity_type TEXT NOT NULL,
    observations TEXT NOT NULL  -- JSON array of strings, in insertion order
);
CREATE TABLE IF NOT EXISTS relations (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    relation_type TEXT NOT NULL,
    UNIQUE (source, target, relation_type)
);
CREATE INDEX IF NOT EXISTS relations_by_target ON relations (target);
-- rowid = entities.id, body = the entity's name, type and observations, lower-cased by Python
CREATE VIRTUAL TABLE IF NOT EXISTS entity_text USING fts5 (body, tokenize = 'trigram case_sensitive 1');
"""

# Written into the file header (PRAGMA application_id) to mark a database as memlora's: "meml".
APPLICATION_ID = 0x6D656D6C
# The objects SCHEMA creates, FTS5's shadow tables included; indexes count by their table.
MEMLORA_TABLES = frozenset(
    ["entities", "relations", "entity_text"]
    + [f"entity_text_{shadow}" for shadow in ("data", "idx", "content", "docsize", "config")]
)
MEMLORA_COLUMNS = {
    "entities": ["id", "name", "entity_type", "observations"],
    "relations": ["id", "source", "target", "relation_type"],
}


class ForeignDatabaseError(StoreError):
    """The SQLite file belongs to another program; memlora leaves it as it is."""

    def __init__(self, path: str, objects: list[str]) -> None:
        shown = ", ".join(objects[:8]) + (f" and {len(objects) - 8} more" if len(objects) > 8 else "")
        super().__init__(
            f"{path} is not a memlora database (it holds {shown}); memlora would add its own tables "
            "and switch it to WAL mode, so it left it unchanged. Use another file, or pass "
            "--allow-other-tables to share this one"
        )
        self.path = path
        self.objects = objects


def _other_programs_objects(db: sqlite3.Connection) -> list[str]:
    """What marks the database as another program's: its application_id, tables that are not
    memlora's, or memlora's table names with other columns. Empty for a new or memlora database."""
    application_id = db.execute("PRAGMA application_id").fetchone()[0]
    if application_id == APPLICATION_ID:
        return []
    found = []
    if application_id != 0:
        found.append(f"application_id {application_id:#x}")
    rows = db.execute("SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite!_%' ESCAPE '!'")
    found += sorted({f"{kind} {name}" for kind, name, table in rows if table not in MEMLORA_TABLES})
    for table, columns in MEMLORA_COLUMNS.items():
        present = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        if present and present != columns:
            found.append(f"table {table} with columns {', '.join(present)}")
    return found


# Joins the searchable strings of one entity in the index; the exact match is re-checked in
# Python, so a hit that spans two strings is only a wasted candidate, never a wrong answer.
_SEPARATOR = "\x1f"
# The trigram index can only answer queries of at least three characters.
_MIN_INDEXED_QUERY = 3


# FTS5 reads its text and its queries as C strings: a NUL ends an indexed body (hiding the rest
# from search) and breaks a query ("unterminated string"). Both sides therefore index NUL as
# the separator; the exact check in Python still sees the real text.
_NUL = "\x00"
# The schema version in PRAGMA user_version; 1: bodies are indexed with NUL replaced.
_USER_VERSION = 1


def _index_text(text: str) -> str:
    return text.lower().replace(_NUL, _SEPARATOR)


def _trigram_cover(needle: str) -> str:
    """An FTS query for rows holding trigrams that tile `needle` (non-overlapping, plus the last one).

    Every row containing `needle` contains these trigrams, so the result is a superset that
    the exact check then narrows. Asking for a few trigrams instead of the whole phrase spares
    FTS5 reading and merging the position lists of every overlapping trigram, which is what
    made phrase queries slow when they share trigrams with many rows.
    """
    needle = _index_text(needle)
    starts = list(range(0, len(needle) - 2, 3))
    if starts[-1] != len(needle) - 3:
        starts.append(len(needle) - 3)
    return " AND ".join('"' + needle[i : i + 3].replace('"', '""') + '"' for i in starts)


def _search_body(entity: Entity) -> str:
    return _index_text(_SEPARATOR.join([entity.name, entity.entity_type, *entity.observations]))


def _is_busy(error: sqlite3.Error) -> bool:
    """SQLITE_BUSY or one of its extended codes: another connection holds a lock."""
    return getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def _rollback(db: sqlite3.Connection) -> None:
    """Ends a failed transaction; SQLite may have rolled it back already (a full disk does)."""
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the error being raised already says what went wrong


def _entity(row: sqlite3.Row | tuple[str, str, str]) -> Entity:
    return Entity(name=row[0], entity_type=row[1], observations=json.loads(row[2]))


class SqliteStore(MemoryStore):
    """A `MemoryStore` in one SQLite file (or in memory for `:memory:`); safe across threads and processes."""

    def __init__(
        self,
        path: str | Path,
        limits: Limits = DEFAULT_LIMITS,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        allow_other_tables: bool = False,
    ) -> None:
        """Opens or creates the database at `path`.

        A database that holds another program's tables (or carries another program's
        application_id) is refused with `ForeignDatabaseError` before anything in it changes,
        unless `allow_other_tables`: memlora would add its tables and switch the file to WAL.
        """
        self.path = str(path)
        self.limits = limits
        self.lock_timeout = lock_timeout
        in_memory = self.path == ":memory:"
        self._write_lock = threading.Lock()
        # A second connection for reads, so that a write waiting for another process's lock
        # does not hold them up; an in-memory database exists only in its one connection.
        self._read_lock = self._write_lock if in_memory else threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        try:
            if not in_memory:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._connect()
            self._reader = self._writer if in_memory else self._connect()
            self._prepare(in_memory, allow_other_tables)
        except OSError as error:
            self._close_connections()
            raise os_failure(Path(self.path), "create the folder of", error, writing=False) from None
        except sqlite3.DatabaseError as error:
            self._close_connections()
            raise sqlite_failure(self.path, "open", error, writing=False) from None
        except BaseException:
            self._close_connections()
            raise

    def _prepare(self, in_memory: bool, allow_other_tables: bool) -> None:
        """Checks that the database is memlora's, then WAL mode and the schema, waiting up to
        `lock_timeout` for another process holding the file."""
        self._writer.execute(f"PRAGMA busy_timeout = {int(self.lock_timeout * 1000)}")
        others = _other_programs_objects(self._writer)
        if others and not allow_other_tables:
            raise ForeignDatabaseError(self.path, others)
        if not in_memory:
            self._writer.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL never corrupts the file; a power cut may only lose the last commits.
            self._writer.execute("PRAGMA synchronous = NORMAL")
        self._writer.execute("PRAGMA busy_timeout = 0")
        with self._write() as db:
            # executescript() would commit on its own; run the statements inside our transaction.
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            if others:  # shared on request: its application_id and user_version are not ours to set
                self._reindex_nul_bodies(db)
            else:
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                if db.execute("PRAGMA user_version").fetchone()[0] < _USER_VERSION:
                    self._reindex_nul_bodies(db)
                    db.execute(f"PRAGMA user_version = {_USER_VERSION}")

    @staticmethod
    def _reindex_nul_bodies(db: sqlite3.Connection) -> None:
        """Re-indexes entities whose text holds a NUL, which earlier versions indexed only up to it."""
        rows = db.execute(
            "SELECT id, name, entity_type, observations FROM entities "
            "WHERE instr(name, char(0)) OR instr(entity_type, char(0)) OR instr(observations, '\\u0000')"
        ).fetchall()
        for row_id, *fields in rows:
            db.execute("UPDATE entity_text SET body = ? WHERE rowid = ?", (_search_body(_entity(fields)), row_id))

    # -- transactions -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are opened explicitly, one per call. No busy timeout:
        # `_begin` decides per call whether and how long to wait.
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
        self._connections.append(db)
        db.execute("PRAGMA busy_timeout = 0")
        return db

    def _close_connections(self) -> None:
        for db in self._connections:
            db.close()
        self._connections.clear()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._transaction(self._writer, self._write_lock, "BEGIN IMMEDIATE", writing=True) as db:
            yield db

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # A read transaction gives the entity and relation queries one consistent snapshot.
        with self._transaction(self._reader, self._read_lock, "BEGIN", writing=False) as db:
            yield db

    @contextmanager
    def _transaction(
        self, db: sqlite3.Connection, lock: threading.Lock, begin: str, *, writing: bool
    ) -> Iterator[sqlite3.Connection]:
        """One call's transaction: all of it or none of it. A database failure (a full disk, a
        read-only file) becomes a `StorageError` naming this database and the reason."""
        deadline = Deadline(self.lock_timeout)
        if not take(lock, deadline):
            raise StoreBusyError(self.path, self.lock_timeout, "another call of this server")
        try:
            self._begin(db, begin, deadline)
            try:
                yield db
            except BaseException:
                _rollback(db)
                raise
            db.execute("COMMIT")
        except sqlite3.DatabaseError as error:
            _rollback(db)
            raise sqlite_failure(self.path, "write" if writing else "read", error, writing=writing) from None
        finally:
            lock.release()

    def _begin(self, db: sqlite3.Connection, begin: str, deadline: Deadline) -> None:
        """Opens the transaction; if another process holds the database, waits only where
        allowed and at most what is left of the deadline."""
        if not may_wait():
            try:
                db.execute(begin)
            except sqlite3.OperationalError as error:
                if _is_busy(error):
                    raise WouldBlock from None
                raise
            return
        db.execute(f"PRAGMA busy_timeout = {int(deadline.left() * 1000)}")
        try:
            db.execute(begin)
        except sqlite3.OperationalError as error:
            if _is_busy(error):
                raise StoreBusyError(self.path, self.lock_timeout) from None
            raise
        finally:
            db.execute("PRAGMA busy_timeout = 0")

    def close(self) -> None:
        # Both locks, so that no call is half way through a connection being closed.
        with self._write_lock:
            if self._read_lock is self._write_lock:
                self._close_connections()
            else:
                with self._read_lock:
                    self._close_connections()

    # -- writes -------------------------------------------------------------------------------

    def create_entities(self, entities: list[Entity]) -> list[Entity]:
        CreateEntities.check(self.limits, entities=entities)
        added = []
        with self._write() as db:
            for entity in unique_entities(entities):
                cursor = db.execute(
                    "INSERT INTO entities (name, entity_type, observations) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (entity.name, entity.entity_type, json.dumps(entity.observations, ensure_ascii=False)),
                )
                if cursor.rowcount:
                    db.execute(
                        "INSERT INTO entity_text (rowid, body) VALUES (?, ?)", (cursor.lastrowid, _search_body(entity))
                    )
                    added.append(entity)
        return added

    def create_relations(self, relations: list[Relation]) -> list[Relation]:
        CreateRelations.check(self.limits, relations=relations)
        added = []
        with self._write() as db:
            self._require(db, unique([name for r in relations for name in (r.source, r.target)]))
            for relation in dict.fromkeys(relations):
                cursor = db.execute(
                    "INSERT INTO relations (source, target, relation_type) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (relation.source, relation.target, relation.relation_type),
                )
                if cursor.rowcount:
                    added.append(relation)
        return added

    def add_observations(self, additions: list[ObservationAddition]) -> list[AddedObservations]:
        AddObservations.check(self.limits, observations=additions)
        results = []
        with self._write() as db:
            self._require(db, unique(a.entity_name for a in additions))
            for addition in additions:
                row_id, entity = self._load(db, addition.entity_name)
                present = set(entity.observations)
                new = [text for text in unique(addition.contents) if text not in present]
                if new:
                    entity.observations.extend(new)
                    self._store_observations(db, row_id, entity)
                results.append(AddedObservations(addition.entity_name, new))
        return results

    def delete_entities(self, names: list[str]) -> None:
        DeleteEntities.check(self.limits, entityNames=names)
        with self._write() as db:
            for name in unique(names):
                row = db.execute("SELECT id FROM entities WHERE name = ?", (name,)).fetchone()
                if row is None:
                    continue
                db.execute("DELETE FROM entities WHERE id = ?", row)
                db.execute("DELETE FROM entity_text WHERE rowid = ?", row)
                db.execute("DELETE FROM relations WHERE source = ? OR target = ?", (name, name))

    def delete_observations(self, deletions: list[ObservationDeletion]) -> None:
        DeleteObservations.check(self.limits, deletions=deletions)
        with self._write() as db:
            for deletion in deletions:
                found = self._find(db, deletion.entity_name)
                if found is None:
                    continue
                row_id, entity = found
                doomed = set(deletion.observations)
                kept = [text for text in entity.observations if text not in doomed]
                if len(kept) != len(entity.observations):
                    entity.observations = kept
                    self._store_observations(db, row_id, entity)

    def delete_relations(self, relations: list[Relation]) -> None:
        DeleteRelations.check(self.limits, relations=relations)
        with self._write() as db:
            db.executemany(
                "DELETE FROM relations WHERE source = ? AND target = ? AND relation_type = ?",
                [(r.source, r.target, r.relation_type) for r in relations],
            )

    def merge_graph(self, graph: KnowledgeGraph) -> MergeReport:
        report = MergeReport()
        with self._write() as db:
            for incoming in graph.entities:
                found = self._find(db, incoming.name)
                if found is None:
                    entity = Entity(incoming.name, incoming.entity_type, unique(incoming.observations))
                    cursor = db.execute(
                        "INSERT INTO entities (name, entity_type, observations) VALUES (?, ?, ?)",
                        (entity.name, entity.entity_type, json.dumps(entity.observations, ensure_ascii=False)),
                    )
                    db.execute("INSERT INTO entity_text (rowid, body) VALUES (?, ?)", (cursor.lastrowid, _search_body(entity)))
                    report.entities_added += 1
                    report.observations_added += len(entity.observations)
                    continue
                row_id, entity = found
                present = set(entity.observations)
                new = [text for text in unique(incoming.observations) if text not in present]
                if new:
                    entity.observations.extend(new)
                    self._store_observations(db, row_id, entity)
                    report.observations_added += len(new)
            for relation in graph.relations:
                cursor = db.execute(
                    "INSERT INTO relations (source, target, relation_type) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (relation.source, relation.target, relation.relation_type),
                )
                report.relations_added += cursor.rowcount
        return report

    # -- reads --------------------------------------------------------------------------------

    def read_graph(self) -> KnowledgeGraph:
        with self._read() as db:
            entities = [_entity(row) for row in db.execute("SELECT name, entity_type, observations FROM entities ORDER BY id")]
            relations = [
                Relation(*row) for row in db.execute("SELECT source, target, relation_type FROM relations ORDER BY id")
            ]
        return KnowledgeGraph(entities=entities, relations=relations)

    def search_nodes(self, query: str) -> KnowledgeGraph:
        SearchNodes.check(self.limits, query=query)
        needle = query.lower()
        with self._read() as db:
            if len(needle) >= _MIN_INDEXED_QUERY:
                rows = db.execute(
                    "SELECT e.name, e.entity_type, e.observations FROM entity_text JOIN entities e ON e.id = entity_text.rowid "
                    "WHERE entity_text MATCH ? ORDER BY e.id",
                    (_trigram_cover(needle),),
                )
            else:
                # Too short for the trigram index: the one case that reads every entity.
                rows = db.execute("SELECT name, entity_type, observations FROM entities ORDER BY id")
            entities = [entity for entity in map(_entity, rows) if matches(entity, needle)]
            return KnowledgeGraph(entities=entities, relations=self._touching(db, [e.name for e in entities]))

    def open_nodes(self, names: list[str]) -> KnowledgeGraph:
        OpenNodes.check(self.limits, names=names)
        with self._read() as db:
            rows = db.execute(
                "SELECT name, entity_type, observations FROM entities "
                "WHERE name IN (SELECT value FROM json_each(?)) ORDER BY id",
                (json.dumps(names),),
            )
            entities = [_entity(row) for row in rows]
            return KnowledgeGraph(entities=entities, relations=self._touching(db, [e.name for e in entities]))

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _touching(db: sqlite3.Connection, names: Sequence[str]) -> list[Relation]:
        """Relations with at least one endpoint in `names`, in insertion order, via the endpoint indexes."""
        if not names:
            return []
        encoded = json.dumps(list(names))
        rows = db.execute(
            "SELECT source, target, relation_type FROM relations WHERE id IN ("
            " SELECT id FROM relations WHERE source IN (SELECT value FROM json_each(?1))"
            " UNION SELECT id FROM relations WHERE target IN (SELECT value FROM json_each(?1))"
            ") ORDER BY id",
            (encoded,),
        )
        return [Relation(*row) for row in rows]

    @staticmethod
    def _find(db: sqlite3.Connection, name: str) -> tuple[int, Entity] | None:
        row = db.execute("SELECT id, name, entity_type, observations FROM entities WHERE name = ?", (name,)).fetchone()
        return None if row is None else (row[0], _entity(row[1:]))

    def _load(self, db: sqlite3.Connection, name: str) -> tuple[int, Entity]:
        found = self._find(db, name)
        if found is None:
            raise EntityNotFoundError(name)
        return found

    @staticmethod
    def _require(db: sqlite3.Connection, names: Sequence[str]) -> None:
        """Raises for the first name that is not an entity, before anything is written."""
        for name in names:
            if db.execute("SELECT 1 FROM entities WHERE name = ?", (name,)).fetchone() is None:
                raise EntityNotFoundError(name)

    @staticmethod
    def _store_observations(db: sqlite3.Connection, row_id: int, entity: Entity) -> None:
        db.execute(
            "UPDATE entities SET observations = ? WHERE id = ?",
            (json.dumps(entity.observations, ensure_ascii=False), row_id),
        )
        db.execute("UPDATE entity_text SET body = ? WHERE rowid = ?", (_search_body(entity), row_id))
