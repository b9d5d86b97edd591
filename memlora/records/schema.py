"""The memory record: one observation of an agent that lives in the world, in one normalized shape.

`MemoryRecord` is the single source of truth. The JSON schema shipped beside this file
(`record.schema.json`) is generated from it (`python -m memlora.records.schema` rewrites it, a
test checks that it is current), and every way a record enters memlora (the writer model, the
rule-based fallback, `memlora records import`, the MCP tools) goes through `validate_record`,
whose errors name the field and the problem, e.g. `pose.yaw: must be within [-pi, pi], got 4.0`.

A record is deliberately small: one event word from a documented vocabulary, one short
sentence, an optional planar pose, `kind:value` tags, the mission it belongs to and a Unix
timestamp. The id is derived from the content, so writing or importing the same record twice
stores it once.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from memlora.store.tools import json_type

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("record.schema.json")

# The event vocabulary. Extensible: any name starting with `x_` (e.g. `x_door_opened`) is accepted
# too, so a deployment can add its own events without a schema change, while a typo of a known
# event (`object_sen`) is still caught.
EVENTS: dict[str, str] = {
    "object_seen": "an object was observed somewhere (usually with the robot's pose)",
    "person_met": "the agent met or talked with a person",
    "place_visited": "the agent entered or passed through a place",
    "task_done": "the agent finished a task",
    "user_fact": "a fact about the user (a preference, a name, a plan)",
    "note": "anything else worth keeping that fits no other event",
}
EXTENSION_PREFIX = "x_"

# Tag kinds memlora itself writes; other kinds are allowed (the tag pattern is the rule).
TAG_KINDS: dict[str, str] = {
    "object": "a thing, e.g. object:red_ball",
    "person": "a person, e.g. person:alice",
    "room": "a room or area, e.g. room:living_room",
    "place": "a spot inside a room, e.g. place:table",
    "task": "a task, e.g. task:charge_battery",
    "color": "a colour, e.g. color:red",
}

MAX_TEXT_CHARS = 200
MAX_TAGS = 16
MAX_COORDINATE = 1e6  # metres; anything larger is a unit mix-up, not a place
MAX_TIMESTAMP = 4102444800.0  # 2100-01-01T00:00:00Z

_NAME = r"[a-z][a-z0-9_]*"
EVENT_PATTERN = re.compile(rf"^{_NAME}$")
TAG_PATTERN = re.compile(rf"^{_NAME}:[a-z0-9][a-z0-9_.\-]*$")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")
SOURCE_PATTERN = re.compile(r"^[a-z][a-z0-9_.:/+\-]{0,63}$")
MAX_TAG_CHARS = 64
# "Met Dr. Smith" is one sentence; ". " followed by a capital letter elsewhere starts a second one.
SECOND_SENTENCE = re.compile(r"(?<!\bDr)(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bSt)(?<!\bProf)[.!?]\s+[A-Za-z0-9]")

Finite = Annotated[float, Field(allow_inf_nan=False)]

# The checks below raise readable messages; these copies of the same rules go into the published
# JSON schema, and a test checks that the schema and the validator agree on every bad example.
_COORDINATE_RANGE: dict[str, Any] = {"minimum": -MAX_COORDINATE, "maximum": MAX_COORDINATE}
_ID_RULE: dict[str, Any] = {"pattern": ID_PATTERN.pattern}


class RecordValidationError(ValueError):
    """A record that breaks the schema; `problems` lists (field, problem) pairs, first one first."""

    def __init__(self, problems: list[tuple[str, str]], where: str = "record") -> None:
        self.problems = problems
        self.where = where
        listed = "; ".join(f"{field}: {problem}" for field, problem in problems)
        super().__init__(f"{where}: {listed}")


class Pose(BaseModel):
    """Where the agent was: metres in the map frame and heading in radians, within [-pi, pi]."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    x: Finite = Field(description="metres along the map's x axis", json_schema_extra=_COORDINATE_RANGE)
    y: Finite = Field(description="metres along the map's y axis", json_schema_extra=_COORDINATE_RANGE)
    yaw: Finite = Field(
        description="heading in radians, within [-pi, pi]", json_schema_extra={"minimum": -math.pi, "maximum": math.pi}
    )

    @field_validator("x", "y")
    @classmethod
    def _coordinate(cls, value: float) -> float:
        if abs(value) > MAX_COORDINATE:
            raise ValueError(f"must be within +-{MAX_COORDINATE:g} metres, got {value!r}")
        return value

    @field_validator("yaw")
    @classmethod
    def _yaw(cls, value: float) -> float:
        if not -math.pi <= value <= math.pi:
            raise ValueError(f"must be within [-pi, pi] radians, got {value!r} (normalise the angle first)")
        return value

    def short(self) -> str:
        return f"x={self.x:.2f}, y={self.y:.2f}, yaw={self.yaw:.2f}"


def _check_event(value: str) -> str:
    if not EVENT_PATTERN.match(value):
        raise ValueError(f"must be a snake_case word such as object_seen, got {value!r}")
    if value not in EVENTS and not value.startswith(EXTENSION_PREFIX):
        known = ", ".join(EVENTS)
        raise ValueError(f"{value!r} is not a known event ({known}); custom events start with {EXTENSION_PREFIX!r}")
    return value


def _check_text(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"is {len(value)} characters long; one short sentence of at most {MAX_TEXT_CHARS} is the rule")
    if any(ord(c) < 32 for c in value):
        raise ValueError("must be one line (no line breaks or control characters)")
    if SECOND_SENTENCE.search(value):
        raise ValueError("holds more than one sentence; write one record per sentence")
    return value


def _check_tags(value: list[str]) -> list[str]:
    if len(value) > MAX_TAGS:
        raise ValueError(f"has {len(value)} tags; the limit is {MAX_TAGS}")
    seen: set[str] = set()
    for index, tag in enumerate(value):
        if len(tag) > MAX_TAG_CHARS or not TAG_PATTERN.match(tag):
            raise ValueError(
                f"tag {index} ({tag!r}) must look like kind:value in lower case, e.g. object:red_ball "
                f"(at most {MAX_TAG_CHARS} characters)"
            )
        if tag in seen:
            raise ValueError(f"tag {index} ({tag!r}) is repeated")
        seen.add(tag)
    return value


def _check_identifier(value: str, example: str) -> str:
    if not ID_PATTERN.match(value):
        raise ValueError(f"must be 1-64 letters, digits or ._:- starting with a letter or digit (e.g. {example}), got {value!r}")
    return value


class RecordDraft(BaseModel):
    """The part of a record a writer model produces from an observation; the rest comes from the caller."""

    model_config = ConfigDict(strict=True, extra="forbid", str_strip_whitespace=True)

    event: str = Field(
        description="what happened: " + ", ".join(EVENTS) + ", or x_<custom>",
        json_schema_extra={"pattern": "^(?:" + "|".join(EVENTS) + "|x_[a-z0-9_]*)$"},
    )
    text: str = Field(
        description=f"one short sentence (one line, at most {MAX_TEXT_CHARS} characters)",
        json_schema_extra={"minLength": 1, "maxLength": MAX_TEXT_CHARS, "pattern": "^[^\\x00-\\x1f]*$"},
    )
    tags: list[str] = Field(
        default_factory=list,
        description="kind:value labels, e.g. object:red_ball, room:kitchen",
        json_schema_extra={
            "maxItems": MAX_TAGS,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": TAG_PATTERN.pattern, "maxLength": MAX_TAG_CHARS},
        },
    )
    pose: Pose | None = Field(default=None, description="where the agent was, if known")

    @field_validator("event")
    @classmethod
    def _event(cls, value: str) -> str:
        return _check_event(value)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _check_text(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return _check_tags(value)


class MemoryRecord(RecordDraft):
    """One stored memory record (schema version 1)."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        str_strip_whitespace=True,
        title="memlora memory record",
    )

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="version of this schema")
    id: str = Field(description="stable id, derived from the content unless given", json_schema_extra=_ID_RULE)
    mission_id: str | None = Field(
        default=None,
        description="the mission (collection) the record belongs to",
        json_schema_extra={"anyOf": [{"type": "string", **_ID_RULE}, {"type": "null"}]},
    )
    timestamp: Finite = Field(
        description="when it happened, Unix seconds (UTC)", json_schema_extra={"minimum": 0, "maximum": MAX_TIMESTAMP}
    )
    source: str = Field(
        description="who wrote it: rules, model:<name>, adapter:<name>, import, scene, cli, ...",
        json_schema_extra={"pattern": SOURCE_PATTERN.pattern},
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _check_identifier(value, "r3f9a1c2e4b5d6")

    @field_validator("mission_id")
    @classmethod
    def _mission(cls, value: str | None) -> str | None:
        return None if value is None else _check_identifier(value, "m-2025-10-15-1")

    @field_validator("timestamp")
    @classmethod
    def _timestamp(cls, value: float) -> float:
        if not 0 <= value <= MAX_TIMESTAMP:
            raise ValueError(f"must be Unix seconds between 0 and {MAX_TIMESTAMP:.0f} (year 2100), got {value!r}")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not SOURCE_PATTERN.match(value):
            raise ValueError(f"must be a lower-case word such as rules or model:qwen2.5-coder-0.5b, got {value!r}")
        return value

    def to_json(self) -> str:
        """One compact JSON line; None fields are kept, so an export shows every field."""
        return self.model_dump_json()

    def tag_values(self, kind: str) -> list[str]:
        return [tag.split(":", 1)[1] for tag in self.tags if tag.split(":", 1)[0] == kind]


def record_id(event: str, text: str, pose: Pose | None, tags: list[str], mission_id: str | None, timestamp: float) -> str:
    """The content-derived id: the same observation at the same moment always gets the same id."""
    canonical = json.dumps(
        [event, text, None if pose is None else [pose.x, pose.y, pose.yaw], sorted(tags), mission_id, round(timestamp, 3)],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return "r" + hashlib.sha256(canonical.encode()).hexdigest()[:15]


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(record)"


def _problem(error: dict[str, Any]) -> str:
    kind = error["type"]
    given = error.get("input")
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of the record schema"
    if kind == "literal_error":
        return f"must be {error['ctx']['expected']}, got {given!r}"
    shown = json.dumps(given, default=repr)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    wanted = _TYPE_WORDS.get(kind)
    if wanted:
        return f"must be {wanted}, got {json_type(given)} {shown}"
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, got {shown}"


# pydantic error types -> what the field must be, in JSON words
_TYPE_WORDS = {
    "string_type": "a string",
    "float_type": "a number",
    "int_type": "an integer",
    "finite_number": "a finite number",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def problems_of(error: ValidationError) -> list[tuple[str, str]]:
    """pydantic's errors as (field path, problem) pairs, in the order pydantic found them."""
    return [(_field_path(tuple(e["loc"])), _problem(dict(e))) for e in error.errors()]


def validate_record(data: Any, where: str = "record") -> MemoryRecord:
    """A `MemoryRecord` from a dict (or a record); raises `RecordValidationError` naming every problem."""
    if isinstance(data, MemoryRecord):
        return data
    if not isinstance(data, dict):
        raise RecordValidationError([("(record)", f"must be a JSON object, got {type(data).__name__}")], where)
    try:
        return MemoryRecord.model_validate(data)
    except ValidationError as error:
        raise RecordValidationError(problems_of(error), where) from None


def validate_draft(data: Any, where: str = "draft") -> RecordDraft:
    if not isinstance(data, dict):
        raise RecordValidationError([("(record)", f"must be a JSON object, got {type(data).__name__}")], where)
    try:
        return RecordDraft.model_validate(data)
    except ValidationError as error:
        raise RecordValidationError(problems_of(error), where) from None


def parse_record_line(line: str, where: str = "record") -> MemoryRecord:
    """A record from one line of JSON text; bad JSON is a problem of the record, not a crash."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise RecordValidationError([("(record)", f"is not valid JSON: {error.msg} at column {error.colno}")], where) from None
    return validate_record(data, where)


def build_record(
    draft: RecordDraft,
    *,
    mission_id: str | None,
    timestamp: float,
    source: str,
    pose: Pose | None = None,
    record_id_: str | None = None,
) -> MemoryRecord:
    """A full record from a draft and the caller's context; the caller's pose wins over the draft's."""
    pose = pose or draft.pose
    data = {
        "event": draft.event,
        "text": draft.text,
        "tags": list(draft.tags),
        "pose": None if pose is None else pose.model_dump(),
        "mission_id": mission_id,
        "timestamp": float(timestamp),
        "source": source,
    }
    data["id"] = record_id_ or record_id(draft.event, draft.text, pose, draft.tags, mission_id, timestamp)
    return validate_record(data)


def json_schema() -> dict[str, Any]:
    """The JSON schema of `MemoryRecord` as shipped in record.schema.json."""
    schema = MemoryRecord.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # regenerate the shipped schema: python -m memlora.records.schema
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
