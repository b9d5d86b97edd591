"""The records store on real SQLite with real FTS5, sqlite-vec and the bundled MiniLM embedder."""

from __future__ import annotations

import random

import pytest

from memlora.records.errors import RecordsError, StoreMismatchError
from memlora.records.store import RecordFilter, RecordStore, fts_query
from records_helpers import make_record

TEXTS = [
    ("Saw a red ball on the table in the living room.", ["object:red_ball", "room:living_room"]),
    ("Saw a blue mug on the kitchen counter.", ["object:blue_mug", "room:kitchen"]),
    ("Met Alice in the lobby.", ["person:alice", "room:lobby"]),
    ("Finished charging the battery at the dock in the garage.", ["task:charge_battery", "room:garage"]),
    ("Saw a green plant near the window in the office.", ["object:green_plant", "room:office"]),
]


@pytest.fixture
def store(minilm, tmp_path):
    with RecordStore(tmp_path / "records.db", minilm) as opened:
        yield opened


def test_each_mode_finds_the_record_by_its_content(store) -> None:
    records = [make_record(t, tags=tags, timestamp=1000.0 + i) for i, (t, tags) in enumerate(TEXTS)]
    assert store.add(records) == [True] * 5
    for mode in ("fts", "vector", "hybrid"):
        assert store.search("where did we see the red ball?", k=1, mode=mode)[0].record.id == records[0].id
        assert store.search("when did we meet Alice", k=1, mode=mode)[0].record.id == records[2].id
    # meaning without shared words: only the vector side can find it
    hit = store.search("houseplant", k=1, mode="vector")[0]
    assert hit.record.id == records[4].id and hit.similarity is not None


def test_hybrid_reports_both_ranks_and_the_similarity(store) -> None:
    records = [make_record(t, tags=tags, timestamp=1000.0 + i) for i, (t, tags) in enumerate(TEXTS)]
    store.add(records)
    hits = store.search("red ball", k=3)
    assert hits[0].fts_rank == 1 and hits[0].vector_rank == 1
    assert all(h.similarity is not None for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_the_same_record_is_stored_once_and_read_back_equal(store) -> None:
    record = make_record("Saw a cup.", tags=["object:cup"], pose=(1.0, 2.0, 0.5))
    assert store.add([record, record]) == [True, False]
    assert store.add([record]) == [False]
    assert store.get([record.id]) == [record]
    assert store.count() == 1


def test_filters_never_return_anything_outside_them(store) -> None:
    rng = random.Random(7)
    records = []
    for i in range(120):
        text, tags = TEXTS[i % 5]
        records.append(make_record(text, tags=tags, mission=f"m{i % 4}", timestamp=float(i)))
        if i % 7 == 0:
            records[-1] = make_record(f"Saw box number {i}.", tags=["object:box", "room:hall"], mission=f"m{i % 4}",
                                      timestamp=float(i))
    store.add(records)
    by_id = {r.id: r for r in records}
    for _ in range(40):
        scope = RecordFilter(
            missions=tuple(rng.sample(["m0", "m1", "m2", "m3"], rng.randint(1, 3))) if rng.random() < 0.7 else None,
            since=float(rng.randint(0, 60)) if rng.random() < 0.5 else None,
            until=float(rng.randint(61, 130)) if rng.random() < 0.5 else None,
            tags=("room:kitchen",) if rng.random() < 0.3 else (),
        )
        for mode in ("fts", "vector", "hybrid"):
            for hit in store.search(rng.choice(["mug", "red ball", "box", "Alice"]), k=10, mode=mode, scope=scope):
                record = by_id[hit.record.id]
                assert scope.missions is None or record.mission_id in scope.missions
                assert scope.since is None or record.timestamp >= scope.since
                assert scope.until is None or record.timestamp < scope.until
                assert set(scope.tags) <= set(record.tags)


def test_several_missions_return_the_best_k_overall(store) -> None:
    store.add([make_record("Saw a red ball.", mission="a", timestamp=1.0),
               make_record("Saw a red ball again.", mission="b", timestamp=2.0),
               make_record("Saw a chair.", mission="b", timestamp=3.0)])
    hits = store.search("red ball", k=2, mode="vector", scope=RecordFilter(missions=("a", "b")))
    assert len(hits) == 2 and {h.record.text for h in hits} == {"Saw a red ball.", "Saw a red ball again."}


def test_delete_removes_it_from_every_index(store) -> None:
    records = [make_record(t, tags=tags) for t, tags in TEXTS]
    store.add(records)
    assert store.delete([records[0].id, "unknown"]) == 1
    for mode in ("fts", "vector", "hybrid"):
        assert records[0].id not in [h.record.id for h in store.search("red ball", k=5, mode=mode)]
    assert store.count() == 4


def test_a_store_without_vectors_searches_words_only(tmp_path) -> None:
    with RecordStore(tmp_path / "plain.db", None) as store:
        store.add([make_record("Saw a red ball.")])
        assert store.search("ball", mode="fts")[0].record.text == "Saw a red ball."
        with pytest.raises(RecordsError, match="without an embedding model"):
            store.search("ball", mode="hybrid")


def test_vectors_of_another_model_are_refused(minilm, tmp_path) -> None:
    class OtherModel:
        name, dim = "other-model", 384

        def embed(self, texts):  # never called: the store refuses before
            raise AssertionError

    with RecordStore(tmp_path / "r.db", minilm) as store:
        store.add([make_record("Saw a cup.")])
    with pytest.raises(StoreMismatchError, match="all-MiniLM-L6-v2/384"):
        RecordStore(tmp_path / "r.db", OtherModel())
    with RecordStore(tmp_path / "r.db", minilm) as store:  # still intact
        assert store.count() == 1


def test_bad_search_arguments_are_named(store) -> None:
    with pytest.raises(RecordsError, match="k must be at least 1"):
        store.search("x", k=0)
    with pytest.raises(RecordsError, match="search mode"):
        store.search("x", mode="bm25")  # type: ignore[arg-type]


def test_fts_queries_keep_content_words_and_quote_them() -> None:
    assert fts_query("Where did we see the red ball?") == '"red" OR "ball"'
    assert fts_query('what "AND" OR (x') == '"x"'
    assert fts_query("where did we") is None


def test_records_persist_across_reopening(minilm, tmp_path) -> None:
    record = make_record("Saw a red ball.", tags=["object:red_ball"], pose=(1.0, 2.0, 3.0))
    with RecordStore(tmp_path / "r.db", minilm) as store:
        store.add([record])
    with RecordStore(tmp_path / "r.db", minilm) as store:
        assert store.search("ball", k=1)[0].record == record
