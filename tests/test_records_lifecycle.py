"""Retention and quotas never delete outside the scope asked; export and import are lossless."""

from __future__ import annotations

import io

import pytest

from memlora.records.errors import RecordsError
from memlora.records.manager import MemoryManager, Quota
from memlora.records.schema import RecordValidationError
from memlora.records.store import RecordFilter, RecordStore
from memlora.records.transfer import export_jsonl, import_jsonl
from records_helpers import make_record

NOW = 1_760_000_000.0
DAY = 86_400.0


@pytest.fixture
def store(minilm, tmp_path):
    with RecordStore(tmp_path / "records.db", minilm) as opened:
        yield opened


def _fill(store, per_mission: int = 6, missions=("a", "b", "c")) -> dict[str, list[str]]:
    """Records one day apart per mission, oldest first; returns ids by mission."""
    ids: dict[str, list[str]] = {}
    for m in missions:
        records = [make_record(f"Saw item {i} of mission {m}.", mission=m, timestamp=NOW - (per_mission - i) * DAY)
                   for i in range(per_mission)]
        store.add(records)
        ids[m] = [r.id for r in records]
    return ids


def _all_ids(store) -> set[str]:
    return {r.id for r in store.iterate()}


def test_purge_by_age_inside_one_mission_leaves_the_others(store) -> None:
    ids = _fill(store)
    manager = MemoryManager(store, clock=lambda: NOW)
    before = _all_ids(store)
    report = manager.purge(older_than=3.5 * DAY, mission="b")
    assert report.deleted == ids["b"][:3]  # 6, 5 and 4 days old
    assert _all_ids(store) == before - set(ids["b"][:3])


def test_purge_by_age_everywhere(store) -> None:
    ids = _fill(store)
    report = MemoryManager(store, clock=lambda: NOW).purge(older_than=4.5 * DAY)
    assert set(report.deleted) == {i for m in ids.values() for i in m[:2]}


def test_dry_run_deletes_nothing(store) -> None:
    _fill(store)
    before = _all_ids(store)
    report = MemoryManager(store, clock=lambda: NOW).purge(older_than=0, dry_run=True)
    assert len(report.deleted) == 18 and _all_ids(store) == before


def test_per_mission_quota_oldest_first_in_scope_only(store) -> None:
    ids = _fill(store)
    report = store.enforce_quota(max_per_mission=2, scope=RecordFilter(missions=("a", "c")))
    assert report.deleted == ids["a"][:4] + ids["c"][:4]
    assert _all_ids(store) == set(ids["a"][4:]) | set(ids["b"]) | set(ids["c"][4:])


def test_total_quota_in_a_mission_scope_never_touches_other_missions(store) -> None:
    ids = _fill(store)
    report = store.enforce_quota(max_total=5, scope=RecordFilter(missions=("a",)))
    assert report.deleted == ids["a"]  # all of a goes, and the store is still over (12 > 5)
    assert report.kept == 12 and _all_ids(store) == set(ids["b"]) | set(ids["c"])


def test_total_quota_over_everything_deletes_the_oldest(store) -> None:
    ids = _fill(store)
    report = store.enforce_quota(max_total=3)
    assert _all_ids(store) == {ids["a"][5], ids["b"][5], ids["c"][5]} and report.kept == 3


def test_least_recalled_first(store) -> None:
    ids = _fill(store, per_mission=4, missions=("a",))
    store.mark_recalled([ids["a"][0], ids["a"][1]])
    store.mark_recalled([ids["a"][0]])
    store.enforce_quota(max_per_mission=2, order="least_recalled")
    assert _all_ids(store) == {ids["a"][0], ids["a"][1]}


def test_a_per_mission_quota_on_write_applies_to_the_written_mission_only(store) -> None:
    ids = _fill(store, per_mission=5, missions=("a",))
    manager = MemoryManager(store, quota=Quota(max_per_mission=3), clock=lambda: NOW)
    result = manager.write("saw a new thing", mission="b")
    assert result.purged == [] and store.count(RecordFilter(missions=("a",))) == 5  # a is over, but not written to
    result = manager.write("saw another thing", mission="a")
    assert result.purged == ids["a"][:3] and store.count(RecordFilter(missions=("a",))) == 3


def test_a_total_quota_on_write_is_store_wide_and_keeps_the_new_record(store) -> None:
    ids = _fill(store, per_mission=3, missions=("a",))
    manager = MemoryManager(store, quota=Quota(max_total=2), clock=lambda: NOW - 10 * DAY)  # the oldest of all
    result = manager.write("saw a new thing", mission="b")
    assert result.purged == ids["a"][:2] and store.get([result.record.id]) == [result.record]


def test_quota_arguments_are_checked(store) -> None:
    with pytest.raises(RecordsError, match="max_total must be 0 or more"):
        store.enforce_quota(max_total=-1)
    with pytest.raises(RecordsError, match="needs --older-than"):
        MemoryManager(store).purge()


def test_export_then_import_is_lossless_and_idempotent(store, minilm, tmp_path) -> None:
    _fill(store)
    store.add([make_record("Saw a cup.", tags=["object:cup"], pose=(1.5, -2.0, 3.0), mission=None, timestamp=7.0)])
    out = io.StringIO()
    assert export_jsonl(store, out) == 19
    with RecordStore(tmp_path / "copy.db", minilm) as copy:
        report = import_jsonl(copy, out.getvalue().splitlines())
        assert (report.read, report.added, report.already_present) == (19, 19, 0)
        assert list(copy.iterate()) == list(store.iterate())
        again = import_jsonl(copy, out.getvalue().splitlines())
        assert (again.added, again.already_present) == (0, 19)
        assert copy.search("cup", k=1)[0].record.pose.x == 1.5


def test_export_of_one_mission(store) -> None:
    ids = _fill(store)
    out = io.StringIO()
    export_jsonl(store, out, RecordFilter(missions=("b",)))
    assert [line.split('"id":"')[1][:16] for line in out.getvalue().splitlines()] == ids["b"]


def test_a_bad_line_names_the_line_and_field_and_stores_nothing(store) -> None:
    good = make_record("Saw a cup.").to_json()
    bad = good.replace('"event":"object_seen"', '"event":"cup_seen"')
    with pytest.raises(RecordValidationError, match=r"line 3: event: 'cup_seen' is not a known event"):
        import_jsonl(store, [good, "", bad], source="in.jsonl")
    with pytest.raises(RecordValidationError, match="line 1: .*not valid JSON"):
        import_jsonl(store, ["{oops"], source="in.jsonl")
    assert store.count() == 0


def test_a_purge_without_the_model_still_removes_the_vectors(store, tmp_path) -> None:
    ids = _fill(store, per_mission=3, missions=("a",))
    store.close()
    with RecordStore(tmp_path / "records.db", None) as plain:  # as memlora records purge opens it
        assert plain.indexed and not plain.has_vectors
        plain.enforce_quota(max_total=1)
        with pytest.raises(RecordsError, match="open it with its embedding model"):
            plain.add([make_record("Saw a cup.")])
        vectors = plain._db.execute("SELECT count(*) FROM records_vec").fetchone()[0]
        assert vectors == 1 and {r.id for r in plain.iterate()} == {ids["a"][2]}
