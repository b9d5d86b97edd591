"""The record schema: every field wrong in every way is rejected with its field named, and the
shipped JSON schema (generated from the pydantic model) agrees with the validator."""

from __future__ import annotations

import copy
import json
import math

import jsonschema
import pytest

from memlora.records.schema import (
    SCHEMA_FILE,
    MemoryRecord,
    RecordValidationError,
    build_record,
    json_schema,
    parse_record_line,
    record_id,
    schema_text,
    validate_draft,
    validate_record,
)

GOOD = {
    "schema_version": 1,
    "id": "r0123456789abcde",
    "event": "object_seen",
    "text": "Saw a red ball on the table.",
    "pose": {"x": 1.2, "y": 3.5, "yaw": 1.57},
    "tags": ["object:red_ball", "room:living_room"],
    "mission_id": "m-2025-10-15-1",
    "timestamp": 1760500000.0,
    "source": "rules",
}

MISSING = object()
# Rules the JSON schema cannot state (or states more loosely); only the pydantic validator has them.
VALIDATOR_ONLY = {"text-two-sentences", "text-blank", "pose.x-nan", "pose.yaw-inf", "timestamp-nan"}

# (case name, field path, value or MISSING, words the problem must contain)
CASES = [
    ("event-missing", "event", MISSING, "required"),
    ("event-number", "event", 1, "string"),
    ("event-null", "event", None, "string"),
    ("event-empty", "event", "", "snake_case"),
    ("event-capitals", "event", "Object_Seen", "snake_case"),
    ("event-space", "event", "object seen", "snake_case"),
    ("event-typo", "event", "object_sen", "not a known event"),
    ("event-dash", "event", "x-door", "snake_case"),
    ("text-missing", "text", MISSING, "required"),
    ("text-null", "text", None, "string"),
    ("text-number", "text", 5, "string"),
    ("text-empty", "text", "", "empty"),
    ("text-blank", "text", "   ", "empty"),
    ("text-long", "text", "a" * 201, "201 characters"),
    ("text-newline", "text", "Saw a ball\non the table.", "one line"),
    ("text-two-sentences", "text", "Saw a ball. Then left the room.", "more than one sentence"),
    ("tags-string", "tags", "object:red_ball", "list"),
    ("tags-null", "tags", None, "list"),
    ("tags-item-number", "tags[0]", [1], "string"),
    ("tags-no-colon", "tags", ["red_ball"], "kind:value"),
    ("tags-capitals", "tags", ["Object:ball"], "kind:value"),
    ("tags-empty-value", "tags", ["object:"], "kind:value"),
    ("tags-space", "tags", ["object:red ball"], "kind:value"),
    ("tags-too-long", "tags", ["object:" + "x" * 70], "kind:value"),
    ("tags-repeated", "tags", ["object:ball", "object:ball"], "repeated"),
    ("tags-too-many", "tags", [f"object:o{i}" for i in range(17)], "limit is 16"),
    ("pose-string", "pose", "1.2,3.5,1.57", "object"),
    ("pose-list", "pose", [1.2, 3.5, 1.57], "object"),
    ("pose.yaw-missing", "pose.yaw", {"x": 1.0, "y": 2.0}, "required"),
    ("pose.x-string", "pose.x", {"x": "1.2", "y": 2.0, "yaw": 0.0}, "number"),
    ("pose.x-bool", "pose.x", {"x": True, "y": 2.0, "yaw": 0.0}, "number"),
    ("pose.y-null", "pose.y", {"x": 1.0, "y": None, "yaw": 0.0}, "number"),
    ("pose.x-nan", "pose.x", {"x": math.nan, "y": 2.0, "yaw": 0.0}, "finite"),
    ("pose.yaw-inf", "pose.yaw", {"x": 1.0, "y": 2.0, "yaw": math.inf}, "finite"),
    ("pose.yaw-range", "pose.yaw", {"x": 1.0, "y": 2.0, "yaw": 4.0}, "[-pi, pi]"),
    ("pose.x-range", "pose.x", {"x": 2e6, "y": 2.0, "yaw": 0.0}, "metres"),
    ("pose-extra", "pose.z", {"x": 1.0, "y": 2.0, "yaw": 0.0, "z": 0.0}, "not a field"),
    ("mission-number", "mission_id", 5, "string"),
    ("mission-empty", "mission_id", "", "1-64"),
    ("mission-space", "mission_id", "mission one", "1-64"),
    ("mission-long", "mission_id", "m" * 65, "1-64"),
    ("mission-leading-dash", "mission_id", "-m1", "1-64"),
    ("timestamp-missing", "timestamp", MISSING, "required"),
    ("timestamp-string", "timestamp", "2025-10-15", "number"),
    ("timestamp-bool", "timestamp", True, "number"),
    ("timestamp-negative", "timestamp", -1, "Unix seconds"),
    ("timestamp-far-future", "timestamp", 5e9, "Unix seconds"),
    ("timestamp-nan", "timestamp", math.nan, "finite"),
    ("source-missing", "source", MISSING, "required"),
    ("source-empty", "source", "", "lower-case"),
    ("source-capitals", "source", "Rules", "lower-case"),
    ("source-number", "source", 5, "string"),
    ("id-missing", "id", MISSING, "required"),
    ("id-empty", "id", "", "1-64"),
    ("id-space", "id", "r 1", "1-64"),
    ("id-long", "id", "r" * 65, "1-64"),
    ("id-number", "id", 7, "string"),
    ("version-2", "schema_version", 2, "must be 1"),
    ("version-string", "schema_version", "1", "must be 1"),
    ("extra-field", "colour", "red", "not a field"),
]


def _broken(path: str, value: object) -> dict:
    data = copy.deepcopy(GOOD)
    top = path.split(".")[0].split("[")[0]
    if value is MISSING:
        if "." in path:  # a nested field: the value given is the whole parent object
            raise AssertionError(path)
        del data[top]
    else:
        data[top] = value
    return data


def test_the_good_record_is_valid_for_both() -> None:
    record = validate_record(GOOD)
    assert record.pose is not None and record.pose.yaw == 1.57
    jsonschema.validate(GOOD, json_schema())


@pytest.mark.parametrize(("name", "path", "value", "words"), CASES, ids=[c[0] for c in CASES])
def test_every_wrong_field_is_named(name: str, path: str, value: object, words: str) -> None:
    data = _broken(path, value)
    with pytest.raises(RecordValidationError) as caught:
        validate_record(data)
    fields = [field for field, _ in caught.value.problems]
    assert path in fields or path.split("[")[0] in fields, caught.value.problems
    problem = dict(caught.value.problems).get(path) or dict(caught.value.problems).get(path.split("[")[0])
    assert words in problem, problem
    assert path.split(".")[0].split("[")[0] in str(caught.value)


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [(c[0], c[1], c[2]) for c in CASES if c[0] not in VALIDATOR_ONLY],
    ids=[c[0] for c in CASES if c[0] not in VALIDATOR_ONLY],
)
def test_the_json_schema_rejects_it_too(name: str, path: str, value: object) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_broken(path, value), json_schema())


def test_several_problems_are_all_listed_in_order() -> None:
    data = {**GOOD, "event": "seen", "timestamp": -5, "tags": ["x"]}
    with pytest.raises(RecordValidationError) as caught:
        validate_record(data)
    assert [field for field, _ in caught.value.problems] == ["event", "tags", "timestamp"]


def test_extension_events_are_accepted() -> None:
    assert validate_record({**GOOD, "event": "x_door_opened"}).event == "x_door_opened"


def test_one_sentence_allows_titles_and_decimals() -> None:
    assert validate_record({**GOOD, "text": "Met Dr. Smith in the lobby."}).text
    assert validate_record({**GOOD, "text": "The box weighs 1.5 kg."}).text


def test_text_is_stripped_and_null_pose_and_mission_allowed() -> None:
    record = validate_record({**GOOD, "text": "  Saw a cup.  ", "pose": None, "mission_id": None})
    assert record.text == "Saw a cup." and record.pose is None and record.mission_id is None


def test_not_an_object() -> None:
    for value in ([], "record", 3, None):
        with pytest.raises(RecordValidationError, match="must be a JSON object"):
            validate_record(value)


def test_bad_json_line_is_a_record_problem() -> None:
    with pytest.raises(RecordValidationError, match="not valid JSON"):
        parse_record_line('{"event": ', where="line 3")
    assert parse_record_line(json.dumps(GOOD)).id == GOOD["id"]


def test_json_round_trip_is_lossless() -> None:
    record = validate_record(GOOD)
    assert parse_record_line(record.to_json()) == record


def test_ids_come_from_the_content() -> None:
    draft = validate_draft({"event": "object_seen", "text": "Saw a cup.", "tags": ["object:cup"]})
    one = build_record(draft, mission_id="m1", timestamp=100.0, source="rules")
    two = build_record(draft, mission_id="m1", timestamp=100.0, source="model:x")
    other = build_record(draft, mission_id="m2", timestamp=100.0, source="rules")
    assert one.id == two.id != other.id
    assert one.id == record_id("object_seen", "Saw a cup.", None, ["object:cup"], "m1", 100.0)


def test_the_callers_pose_wins_over_the_drafts() -> None:
    draft = validate_draft({"event": "object_seen", "text": "Saw a cup.", "pose": {"x": 0.0, "y": 0.0, "yaw": 0.0}})
    from memlora.records.schema import Pose

    record = build_record(draft, mission_id=None, timestamp=1.0, source="rules", pose=Pose(x=1.0, y=2.0, yaw=0.5))
    assert record.pose == Pose(x=1.0, y=2.0, yaw=0.5)


def test_the_shipped_schema_file_is_generated_from_the_model() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), "run: python -m memlora.records.schema"
    assert json.loads(SCHEMA_FILE.read_text())["title"] == MemoryRecord.model_config["title"]
