"""The scene generator: deterministic per seed, valid gold records, answerable questions, disjoint splits."""

from __future__ import annotations

from memlora.records.scenes import SPLITS, generate, grade, load_scenes, make_scene, vocabulary, write_splits
from memlora.records.schema import validate_record


def test_the_same_seed_gives_the_same_scenes_and_another_seed_does_not() -> None:
    assert [s.to_json() for s in generate("test", 3, seed=5)] == [s.to_json() for s in generate("test", 3, seed=5)]
    assert generate("test", 1, seed=5)[0].to_json() != generate("test", 1, seed=6)[0].to_json()


def test_gold_records_are_valid_and_carry_the_observations_context() -> None:
    for scene in generate("train", 5, seed=1):
        for obs in scene.observations:
            record = validate_record(obs.record)
            assert record.mission_id == obs.mission and record.timestamp == obs.timestamp
            assert (record.pose.x, record.pose.y, record.pose.yaw) == tuple(obs.pose)
            assert record.mission_id in scene.missions
        assert len({o.record["id"] for o in scene.observations}) == len(scene.observations)


def test_questions_point_at_records_of_their_scope() -> None:
    kinds = set()
    for scene in generate("validation", 12, seed=2):
        by_id = {o.record["id"]: o.record for o in scene.observations}
        for q in scene.questions:
            kinds.add(q.kind)
            assert all(i in by_id and by_id[i]["mission_id"] in q.missions for i in q.expected_ids)
            if q.kind == "not_seen":
                thing = q.question.removeprefix("Where did we see the ").rstrip("?")
                assert not any(thing in r["text"] for r in by_id.values())
            else:
                assert q.expected_ids and q.must_mention
    assert kinds == {"where", "when", "what", "which_mission", "not_seen"}


def test_moved_objects_and_repeated_sightings_occur() -> None:
    moved = repeated = 0
    for scene in generate("train", 10, seed=3):
        places: dict[str, list[str]] = {}
        for obs in scene.observations:
            if obs.record["event"] == "object_seen":
                obj = next(t for t in obs.record["tags"] if t.startswith("object:"))
                places.setdefault(obj, []).append(next(t for t in obs.record["tags"] if t.startswith("place:")))
        moved += sum(len(set(p)) > 1 for p in places.values())
        repeated += sum(len(p) > len(set(p)) for p in places.values())
    assert moved > 0 and repeated > 0


def test_splits_share_no_object_and_no_person() -> None:
    vocab = {split: vocabulary(split) for split in SPLITS}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not set(vocab[a][0]) & set(vocab[b][0]) and not set(vocab[a][1]) & set(vocab[b][1])
    train_text = " ".join(o.record["text"] for s in generate("train", 20, seed=0) for o in s.observations)
    for scene in generate("test", 5, seed=0):
        for obs in scene.observations:
            for tag in obs.record["tags"]:
                if tag.startswith(("object:", "person:")):
                    assert tag.split(":")[1].replace("_", " ") not in train_text.lower()


def test_grading() -> None:
    scene = make_scene("test", 0, seed=1)
    where = next(q for q in scene.questions if q.kind == "where")
    room = where.must_mention[0][0]
    assert grade(where, f"In the {room} [1].", where.expected_ids[:1]) == {"correct": True, "cited": True,
                                                                         "correct_and_cited": True}
    assert grade(where, "In the attic [1].", where.expected_ids[:1])["correct"] is False
    assert grade(where, f"Not in memory, maybe the {room}.", [])["correct"] is False
    absent = next(q for q in scene.questions if q.kind == "not_seen")
    assert grade(absent, "Not in memory.", [])["correct_and_cited"] is True
    assert grade(absent, "On the table [1].", ["r1"])["correct"] is False


def test_written_splits_load_back(tmp_path) -> None:
    summary = write_splits(tmp_path, {"train": 8, "validation": 4, "test": 4}, seed=9)
    assert summary["train"]["missions"] == 8
    loaded = load_scenes(tmp_path / "test.jsonl")
    assert [s.to_json() for s in loaded] == [s.to_json() for s in generate("test", 1, seed=9)]
