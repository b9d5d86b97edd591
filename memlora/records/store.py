"""The records store: one SQLite file with the records, an FTS5 index and a sqlite-vec index.

Tables: `records` (one row per record, the fields as columns, plus how often and when it was
last recalled), `record_tags` (tag -> record, for tag filters), `records_fts` (FTS5 over the
text, the tag values and the event, Porter-stemmed) and `records_vec` (a vec0 table: the text's
embedding, the mission as partition key so a mission-scoped search reads only that mission's
vectors, and the timestamp as a metadata column for time filters). `meta` remembers which
embedding model made the vectors; opening the store with another one is an error, because
vectors of two models are not comparable.

Search has three modes: `fts` (BM25), `vector` (cosine KNN) and `hybrid`, which fuses the two
ranked lists by reciprocal rank fusion (Cormack et al. 2009: score = sum of 1 / (60 + rank)).
Every write is one transaction taken with `BEGIN IMMEDIATE`; nothing is half-written.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from memlora.records import db as dbmod
from memlora.records.embedding import Embedder
from memlora.records.errors import RecordsError, StoreMismatchError
from memlora.records.schema import MemoryRecord, Pose, validate_record

SearchMode = Literal["fts", "vector", "hybrid"]
MODES: tuple[SearchMode, ...] = ("fts", "vector", "hybrid")
RRF_K = 60  # the constant of reciprocal rank fusion; 60 is the published default
CHUNK = 64  # vec0 slots per chunk: a partition (mission) holds at least one chunk, and most missions are small
STORE_VERSION = 1
NO_MISSION = ""  # the collection of records written outside any mission

# Words that say what kind of question it is, not what it is about; FTS matches on the rest.
STOPWORDS = frozenset(
    """a an and any are as at be by did do does during for from had has have how i in is it its me my
    of on or our saw see seen the there this to us was we were what when where which who whom whose
    why with you your did ever mission missions""".split()
)
_WORD = re.compile(r"[a-z0-9]+")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    text TEXT NOT NULL,
    pose_x REAL, pose_y REAL, pose_yaw REAL,
    tags TEXT NOT NULL,              -- JSON array, in the record's order
    mission TEXT NOT NULL,           -- '' for records outside any mission
    timestamp REAL NOT NULL,
    source TEXT NOT NULL,
    stored_at REAL NOT NULL,
    recall_count INTEGER NOT NULL DEFAULT 0,
    last_recalled REAL
);
CREATE INDEX IF NOT EXISTS records_by_mission ON records (mission, timestamp);
CREATE INDEX IF NOT EXISTS records_by_time ON records (timestamp);
CREATE TABLE IF NOT EXISTS record_tags (tag TEXT NOT NULL, record INTEGER NOT NULL, PRIMARY KEY (tag, record)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_tags_by_record ON record_tags (record);
CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5 (text, tags, event, tokenize = 'porter unicode61');
"""


@dataclass(frozen=True)
class RecordFilter:
    """Which records a search or a purge may touch. `missions=None` means every mission."""

    missions: tuple[str, ...] | None = None
    since: float | None = None  # timestamp >= since
    until: float | None = None  # timestamp < until
    tags: tuple[str, ...] = ()  # every tag must be present

    def sql(self, alias: str = "r") -> tuple[str, list[Any]]:
        """A WHERE clause over `records AS alias` and its parameters."""
        clauses, params = [], []
        if self.missions is not None:
            clauses.append(f"{alias}.mission IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(self.missions)))
        if self.since is not None:
            clauses.append(f"{alias}.timestamp >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append(f"{alias}.timestamp < ?")
            params.append(self.until)
        for tag in self.tags:
            clauses.append(f"{alias}.rowid IN (SELECT record FROM record_tags WHERE tag = ?)")
            params.append(tag)
        return (" AND ".join(clauses) or "1"), params


@dataclass
class Hit:
    """One retrieved record: its fused score and where each retriever ranked it (1-based)."""

    record: MemoryRecord
    score: float
    fts_rank: int | None = None
    vector_rank: int | None = None
    similarity: float | None = None  # cosine similarity to the question, when there are vectors

    def trace(self) -> dict[str, Any]:
        return {
            "id": self.record.id,
            "score": round(self.score, 6),
            "fts_rank": self.fts_rank,
            "vector_rank": self.vector_rank,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
        }


@dataclass
class MissionSummary:
    mission: str
    records: int
    first: float
    last: float


@dataclass
class PurgeReport:
    deleted: list[str] = field(default_factory=list)
    kept: int = 0


def fts_query(question: str) -> str | None:
    """An FTS5 query matching any content word of the question (quoted, so no syntax leaks in)."""
    words = [w for w in _WORD.findall(question.lower()) if w not in STOPWORDS]
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


def _tag_words(tags: Sequence[str]) -> str:
    """Tag values as words for FTS: object:red_ball -> red ball."""
    return " ".join(t.split(":", 1)[1].replace("_", " ").replace("-", " ") for t in tags)


class RecordStore:
    """Records in one SQLite file (or `:memory:`), searchable by words, by meaning, or both.

    `embedder=None` opens the store without vectors: writes store no embedding and only `fts`
    search works. Safe to share between threads (one lock) and processes (SQLite's locks).
    """

    def __init__(self, path: str | Path, embedder: Embedder | None = None) -> None:
        self.path = str(path)
        self.embedder = embedder
        self._lock = threading.RLock()
        self._db = dbmod.connect(self.path)
        with self._write() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            self._check_meta(db)
            # whether the file has a vector index, whatever this connection's embedder: purge and
            # export open stores without loading a model and must still delete vectors
            self.indexed = db.execute("SELECT 1 FROM meta WHERE key = 'embedder'").fetchone() is not None

    # -- setup ---------------------------------------------------------------------------------

    def _check_meta(self, db: Any) -> None:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if int(meta.get("store_version", STORE_VERSION)) != STORE_VERSION:
            raise StoreMismatchError(f"{self.path}: store version {meta['store_version']}; this memlora reads {STORE_VERSION}")
        db.execute("INSERT OR IGNORE INTO meta VALUES ('store_version', ?)", (str(STORE_VERSION),))
        if self.embedder is None:
            return
        stored = meta.get("embedder")
        wanted = f"{self.embedder.name}/{self.embedder.dim}"
        if stored is None:
            has_records = db.execute("SELECT 1 FROM records LIMIT 1").fetchone() is not None
            if has_records:
                raise StoreMismatchError(
                    f"{self.path} holds records without vectors; export them and import them into a new store "
                    f"to index them with {self.embedder.name}"
                )
            db.execute("INSERT INTO meta VALUES ('embedder', ?)", (wanted,))
            db.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS records_vec USING vec0 ("
                f"embedding float[{self.embedder.dim}] distance_metric=cosine, "
                f"mission text partition key, timestamp float, chunk_size={CHUNK})"
            )
        elif stored != wanted:
            raise StoreMismatchError(
                f"{self.path} was indexed with {stored}, not {wanted}; use the same backend, or export the records "
                f"(memlora records export) and import them into a new store"
            )

    @property
    def has_vectors(self) -> bool:
        """Vector search works: the file has an index and this connection has its model."""
        return self.embedder is not None and self.indexed

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------------

    def add(self, records: Sequence[MemoryRecord], vectors: np.ndarray | None = None) -> list[bool]:
        """Stores records whose id is new (all in one transaction); returns which were added.

        Records are embedded here unless `vectors` (one row per record) is given.
        """
        records = [validate_record(r) for r in records]
        if self.indexed and self.embedder is None and vectors is None and records:
            raise RecordsError(f"{self.path} has a vector index; open it with its embedding model to add records")
        if self.embedder is not None and vectors is None:
            vectors = self.embedder.embed([r.text for r in records]) if records else None
        now = time.time()
        added = []
        with self._write() as db:
            for index, record in enumerate(records):
                pose = record.pose
                cursor = db.execute(
                    "INSERT INTO records (id, event, text, pose_x, pose_y, pose_yaw, tags, mission, timestamp, source, stored_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    (
                        record.id, record.event, record.text,
                        None if pose is None else pose.x, None if pose is None else pose.y,
                        None if pose is None else pose.yaw,
                        json.dumps(record.tags), record.mission_id or NO_MISSION, record.timestamp, record.source, now,
                    ),
                )
                if not cursor.rowcount:
                    added.append(False)
                    continue
                rowid = cursor.lastrowid
                db.executemany("INSERT OR IGNORE INTO record_tags VALUES (?, ?)", [(t, rowid) for t in record.tags])
                db.execute(
                    "INSERT INTO records_fts (rowid, text, tags, event) VALUES (?, ?, ?, ?)",
                    (rowid, record.text, _tag_words(record.tags), record.event.replace("_", " ")),
                )
                if vectors is not None and self.indexed:
                    db.execute(
                        "INSERT INTO records_vec (rowid, embedding, mission, timestamp) VALUES (?, ?, ?, ?)",
                        (rowid, np.asarray(vectors[index], dtype=np.float32).tobytes(), record.mission_id or NO_MISSION,
                         record.timestamp),
                    )
                added.append(True)
        return added

    def delete(self, ids: Iterable[str]) -> int:
        """Removes records by id from every table; unknown ids are ignored. Returns how many went."""
        with self._write() as db:
            return self._delete_ids(db, list(ids))

    def _delete_ids(self, db: Any, ids: list[str]) -> int:
        removed = 0
        for record_id in ids:
            row = db.execute("SELECT rowid FROM records WHERE id = ?", (record_id,)).fetchone()
            if row is None:
                continue
            db.execute("DELETE FROM records WHERE rowid = ?", row)
            db.execute("DELETE FROM record_tags WHERE record = ?", row)
            db.execute("DELETE FROM records_fts WHERE rowid = ?", row)
            if self.indexed:
                db.execute("DELETE FROM records_vec WHERE rowid = ?", row)
            removed += 1
        return removed

    def mark_recalled(self, ids: Sequence[str], when: float | None = None) -> None:
        """Counts a recall of each record (least-recalled-first quotas read this)."""
        if not ids:
            return
        with self._write() as db:
            db.execute(
                "UPDATE records SET recall_count = recall_count + 1, last_recalled = ? "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (when or time.time(), json.dumps(list(ids))),
            )

    # -- lifecycle -----------------------------------------------------------------------------

    def purge_older_than(self, cutoff: float, scope: RecordFilter = RecordFilter(), dry_run: bool = False) -> PurgeReport:
        """Deletes records with timestamp < cutoff inside `scope`, and nothing outside it."""
        where, params = scope.sql()
        with self._write() as db:
            ids = [row[0] for row in db.execute(
                f"SELECT r.id FROM records r WHERE r.timestamp < ? AND {where} ORDER BY r.timestamp, r.rowid",
                [cutoff, *params],
            )]
            if not dry_run:
                self._delete_ids(db, ids)
            kept = db.execute("SELECT count(*) FROM records").fetchone()[0]
        return PurgeReport(ids, kept)

    def enforce_quota(
        self,
        *,
        max_per_mission: int | None = None,
        max_total: int | None = None,
        order: Literal["oldest", "least_recalled"] = "oldest",
        scope: RecordFilter = RecordFilter(),
        dry_run: bool = False,
        keep: Sequence[str] = (),
    ) -> PurgeReport:
        """Deletes records until the quotas hold, choosing victims only inside `scope` (never `keep`).

        `max_per_mission` caps each mission in scope; `max_total` caps the whole store, but only
        records in scope may be deleted to reach it (so it may still be over afterwards).
        `oldest` deletes by timestamp; `least_recalled` deletes the records recalled least often
        first (ties: oldest first).
        """
        for name, value in (("max_per_mission", max_per_mission), ("max_total", max_total)):
            if value is not None and value < 0:
                raise RecordsError(f"{name} must be 0 or more, got {value}")
        ordering = "r.timestamp, r.rowid" if order == "oldest" else "r.recall_count, r.timestamp, r.rowid"
        where, params = scope.sql()
        if keep:
            where += " AND r.id NOT IN (SELECT value FROM json_each(?))"
            params = [*params, json.dumps(list(keep))]
        doomed: list[str] = []
        with self._write() as db:
            if max_per_mission is not None:
                missions = [row[0] for row in db.execute(f"SELECT DISTINCT r.mission FROM records r WHERE {where}", params)]
                for mission in missions:
                    total = db.execute("SELECT count(*) FROM records WHERE mission = ?", (mission,)).fetchone()[0]
                    excess = total - max_per_mission
                    if excess > 0:
                        doomed += [row[0] for row in db.execute(
                            f"SELECT r.id FROM records r WHERE r.mission = ? AND {where} ORDER BY {ordering} LIMIT ?",
                            [mission, *params, excess],
                        )]
            if max_total is not None:
                chosen = set(doomed)
                total = db.execute("SELECT count(*) FROM records").fetchone()[0] - len(chosen)
                excess = total - max_total
                if excess > 0:
                    for (record_id,) in db.execute(f"SELECT r.id FROM records r WHERE {where} ORDER BY {ordering}", params):
                        if excess <= 0:
                            break
                        if record_id not in chosen:
                            doomed.append(record_id)
                            excess -= 1
            if not dry_run:
                self._delete_ids(db, doomed)
            kept = db.execute("SELECT count(*) FROM records").fetchone()[0]
        return PurgeReport(doomed, kept)

    # -- reads ---------------------------------------------------------------------------------

    def count(self, scope: RecordFilter = RecordFilter()) -> int:
        where, params = scope.sql()
        with self._read() as db:
            return int(db.execute(f"SELECT count(*) FROM records r WHERE {where}", params).fetchone()[0])

    def missions(self) -> list[MissionSummary]:
        with self._read() as db:
            rows = db.execute(
                "SELECT mission, count(*), min(timestamp), max(timestamp) FROM records GROUP BY mission ORDER BY min(timestamp)"
            ).fetchall()
        return [MissionSummary(*row) for row in rows]

    def get(self, ids: Sequence[str]) -> list[MemoryRecord]:
        """Records by id, in the order asked; unknown ids are left out."""
        with self._read() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM records r WHERE r.id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),)
            ).fetchall()
        by_id = {row[0]: _record(row) for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    def iterate(self, scope: RecordFilter = RecordFilter(), batch: int = 1000) -> Iterator[MemoryRecord]:
        """Every record in scope, oldest first (timestamp, then insertion order)."""
        where, params = scope.sql()
        last = (-1.0, -1)
        while True:
            with self._read() as db:
                rows = db.execute(
                    f"SELECT {_COLUMNS}, r.rowid FROM records r WHERE {where} AND (r.timestamp, r.rowid) > (?, ?) "
                    f"ORDER BY r.timestamp, r.rowid LIMIT ?",
                    [*params, last[0], last[1], batch],
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _record(row[:-1])
            last = (rows[-1][7], rows[-1][-1])

    def recall_counts(self, ids: Sequence[str]) -> dict[str, int]:
        with self._read() as db:
            rows = db.execute(
                "SELECT id, recall_count FROM records WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),)
            ).fetchall()
        return dict(rows)

    # -- search --------------------------------------------------------------------------------

    def search(
        self,
        question: str,
        k: int = 5,
        mode: SearchMode = "hybrid",
        scope: RecordFilter = RecordFilter(),
        depth: int | None = None,
    ) -> list[Hit]:
        """The k best records for `question` inside `scope`.

        `depth` is how many candidates each retriever contributes to the fusion (default
        max(4k, 40)); a record only one retriever found still competes, with its one rank.
        """
        if k < 1:
            raise RecordsError(f"k must be at least 1, got {k}")
        if mode not in MODES:
            raise RecordsError(f"search mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode != "fts" and not self.has_vectors:
            raise RecordsError(f"{self.path} was opened without an embedding model; only fts search works")
        depth = max(depth or max(4 * k, 40), k)
        # fts alone never embeds the question (that is most of a search's time on a CPU)
        query_vector = self.embedder.embed([question])[0] if mode != "fts" else None  # type: ignore[union-attr]
        with self._read() as db:
            fts = self._fts(db, question, depth, scope) if mode in ("fts", "hybrid") else []
            vec = self._vector(db, query_vector, depth, scope) if mode in ("vector", "hybrid") else []
            fts_rank = {rowid: rank for rank, rowid in enumerate(fts, 1)}
            vec_rank = {rowid: rank for rank, (rowid, _) in enumerate(vec, 1)}
            similarity = {rowid: 1.0 - distance for rowid, distance in vec}
            if mode == "fts":
                scored = [(rowid, 1.0 / (RRF_K + rank)) for rowid, rank in fts_rank.items()]
            elif mode == "vector":
                scored = [(rowid, similarity[rowid]) for rowid in vec_rank]
            else:
                fused: dict[int, float] = {}
                for ranks in (fts_rank, vec_rank):
                    for rowid, rank in ranks.items():
                        fused[rowid] = fused.get(rowid, 0.0) + 1.0 / (RRF_K + rank)
                scored = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
            top = scored[:k]
            rowids = [rowid for rowid, _ in top]
            if query_vector is not None:
                missing = [r for r in rowids if r not in similarity]
                similarity.update(self._similarities(db, query_vector, missing))
            records = self._by_rowid(db, rowids)
        return [
            Hit(records[rowid], score, fts_rank.get(rowid), vec_rank.get(rowid), similarity.get(rowid))
            for rowid, score in top
            if rowid in records
        ]

    def _fts(self, db: Any, question: str, depth: int, scope: RecordFilter) -> list[int]:
        query = fts_query(question)
        if query is None:
            return []
        where, params = scope.sql()
        rows = db.execute(
            f"SELECT f.rowid FROM records_fts f JOIN records r ON r.rowid = f.rowid "
            f"WHERE records_fts MATCH ? AND {where} ORDER BY f.rank, f.rowid DESC LIMIT ?",
            [query, *params, depth],
        ).fetchall()
        return [row[0] for row in rows]

    def _vector(self, db: Any, query: np.ndarray, depth: int, scope: RecordFilter) -> list[tuple[int, float]]:
        clauses, params = ["embedding MATCH ?", "k = ?"], [query.astype(np.float32).tobytes(), depth]
        if scope.missions is not None:
            if not scope.missions:
                return []
            # one partition: vec0 reads only that mission's vectors
            clauses.append("mission = ?" if len(scope.missions) == 1 else
                           f"mission IN ({', '.join('?' * len(scope.missions))})")
            params += list(scope.missions)
        if scope.since is not None:
            clauses.append("timestamp >= ?")
            params.append(scope.since)
        if scope.until is not None:
            clauses.append("timestamp < ?")
            params.append(scope.until)
        if scope.tags:
            tag_rows = " INTERSECT ".join(["SELECT record FROM record_tags WHERE tag = ?"] * len(scope.tags))
            clauses.append(f"rowid IN ({tag_rows})")
            params += list(scope.tags)
        rows = db.execute(f"SELECT rowid, distance FROM records_vec WHERE {' AND '.join(clauses)}", params).fetchall()
        # with several partitions vec0 returns k per partition, unsorted: sort and cut here
        rows.sort(key=lambda row: (row[1], row[0]))
        return [(row[0], float(row[1])) for row in rows[:depth]]

    @staticmethod
    def _similarities(db: Any, query: np.ndarray, rowids: list[int]) -> dict[int, float]:
        if not rowids:
            return {}
        rows = db.execute(
            "SELECT rowid, vec_distance_cosine(embedding, ?) FROM records_vec WHERE rowid IN "
            f"({', '.join('?' * len(rowids))})",
            [query.astype(np.float32).tobytes(), *rowids],
        ).fetchall()
        return {row[0]: 1.0 - float(row[1]) for row in rows}

    @staticmethod
    def _by_rowid(db: Any, rowids: list[int]) -> dict[int, MemoryRecord]:
        if not rowids:
            return {}
        rows = db.execute(
            f"SELECT {_COLUMNS}, r.rowid FROM records r WHERE r.rowid IN ({', '.join('?' * len(rowids))})", rowids
        ).fetchall()
        return {row[-1]: _record(row[:-1]) for row in rows}


_COLUMNS = "r.id, r.event, r.text, r.pose_x, r.pose_y, r.pose_yaw, r.tags, r.timestamp, r.mission, r.source"


def _record(row: Sequence[Any]) -> MemoryRecord:
    record_id, event, text, x, y, yaw, tags, timestamp, mission, source = row
    # Built without re-validation: everything in the table passed validate_record on the way in.
    return MemoryRecord.model_construct(
        schema_version=1,
        id=record_id,
        event=event,
        text=text,
        pose=None if x is None else Pose.model_construct(x=x, y=y, yaw=yaw),
        tags=json.loads(tags),
        mission_id=mission or None,
        timestamp=timestamp,
        source=source,
    )
