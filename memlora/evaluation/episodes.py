"""Loading and validating episode files (format v1 of shared/spec/episodes.md).

Held-out episodes are written by others, so everything here is driven by the JSON schema
(vendored beside this module) plus the few cross-references a schema cannot express. A bad
file is rejected as a whole, before any model is loaded, with every problem found and the
line it is on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jsonschema

SCHEMA_PATH = Path(__file__).with_name("episodes.schema.json")

WRITE_TOOLS = frozenset(
    {"create_entities", "create_relations", "add_observations", "delete_entities", "delete_observations", "delete_relations"}
)
READ_TOOLS = frozenset({"read_graph", "search_nodes", "open_nodes"})

ProbeKind = Literal["single", "multi", "update", "forget", "abstain"]
PROBE_KINDS: tuple[str, ...] = ("single", "multi", "update", "forget", "abstain")
FACT_KINDS: tuple[str, ...] = ("entity", "relation", "observation")

# Problems listed per file before giving up: enough to fix a file, not a wall of text.
MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True)
class EpisodeProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class EpisodeFileError(ValueError):
    """An episode file that cannot be scored; `problems` holds each one with its line number."""

    def __init__(self, path: str, problems: list[EpisodeProblem], more: int = 0) -> None:
        self.path = path
        self.problems = problems
        lines = [f"{path}, {p}" for p in problems]
        if more:
            lines.append(f"... and {more} more problem(s)")
        super().__init__("invalid episode file:\n" + "\n".join(lines))


@dataclass(frozen=True)
class UserInfo:
    name: str | None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]

    @property
    def is_write(self) -> bool:
        return self.name in WRITE_TOOLS

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


@dataclass(frozen=True)
class Turn:
    user: str
    calls: tuple[ToolCall, ...] | None = None  # None: the file gives no reference calls
    reply: str | None = None


@dataclass(frozen=True)
class EntityFact:
    name: str
    types: tuple[str, ...] = ()  # empty: the file lists no type, so type match is not scored
    kind: Literal["entity"] = "entity"


@dataclass(frozen=True)
class RelationFact:
    source: str
    types: tuple[str, ...]
    target: str
    kind: Literal["relation"] = "relation"


@dataclass(frozen=True)
class ObservationFact:
    entity: str
    # each keyword is a tuple of alternatives (a plain string keyword becomes a 1-tuple)
    keywords: tuple[tuple[str, ...], ...]
    kind: Literal["observation"] = "observation"


Fact = EntityFact | RelationFact | ObservationFact


@dataclass(frozen=True)
class Session:
    id: str
    turns: tuple[Turn, ...]
    learn: tuple[Fact, ...] = ()
    retract: tuple[Fact, ...] = ()
    date: str | None = None


@dataclass(frozen=True)
class Probe:
    index: int  # position in the episode's probe list: a stable id for reports and resume
    after: str
    question: str
    answers: tuple[str, ...]
    forbidden: tuple[str, ...]
    kind: str


@dataclass(frozen=True)
class Episode:
    id: str
    user: UserInfo
    sessions: tuple[Session, ...]
    probes: tuple[Probe, ...]
    line: int = 0
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # what the loader had to decide about a schema-valid episode the spec's prose cannot score
    # as written (a duplicate id, a probe naming no session): shown as warnings and in reports
    notes: tuple[str, ...] = ()

    def session_index(self, session_id: str) -> int:
        for i, session in enumerate(self.sessions):
            if session.id == session_id:
                return i
        raise KeyError(session_id)

    def turn_count(self) -> int:
        """User turns plus probes: the model turns a run of this episode plays."""
        return sum(len(session.turns) for session in self.sessions) + len(self.probes)


@lru_cache(maxsize=1)
def episode_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    schema = episode_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _schema_problems(data: Any) -> list[str]:
    """One message per schema violation, each naming the JSON path of the offending value."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    messages = []
    for error in errors:
        for detail in _explain(error):
            messages.append(f"schema violation at {detail.json_path}: {detail.message}")
    return messages


def _explain(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """For a oneOf (a fact, a keyword), the errors of the branch the value meant to be.

    "is not valid under any of the given schemas" does not help anyone fix a file; a fact's
    `kind` says which branch was meant, so report what is wrong inside that branch.
    """
    if error.validator != "oneOf" or not error.context:
        return [error]
    branches: dict[Any, list[jsonschema.ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    meant = [subs for subs in branches.values() if not any(list(s.relative_path) == ["kind"] for s in subs)]
    if isinstance(error.instance, dict) and "kind" in error.instance:
        if len(meant) == 1:
            return [detail for sub in meant[0] for detail in _explain(sub)]
        if not meant:
            error.message = f"unknown fact kind {error.instance['kind']!r} (entity, relation or observation)"
            return [error]
    if isinstance(error.instance, list):
        # a keyword given as a list of alternatives: what is wrong with the list itself
        array_branch = [
            sub for sub in error.context if error.validator_value[sub.relative_schema_path[0]].get("type") == "array"
        ]
        if array_branch:
            return array_branch
    return [jsonschema.exceptions.best_match(error.context)]


def _cross_reference_notes(data: dict[str, Any]) -> list[str]:
    """What the schema cannot say, and how the loader reads it rather than reject a valid file.

    A session id used twice: probes naming it follow its first session. A probe whose `after`
    names no session cannot be asked: it is set aside, neither asked nor scored.
    """
    notes = []
    seen: set[str] = set()
    for i, session in enumerate(data["sessions"]):
        if session["id"] in seen:
            notes.append(f"duplicate session id {session['id']!r} at $.sessions[{i}].id: "
                         "probes naming it are asked after its first session")
        seen.add(session["id"])
    for i, probe in enumerate(data["probes"]):
        if probe["after"] not in seen:
            notes.append(f"probe $.probes[{i}].after names no session ({probe['after']!r}): "
                         "it is neither asked nor scored")
    return notes


def _fact(raw: dict[str, Any]) -> Fact:
    kind = raw["kind"]
    if kind == "entity":
        return EntityFact(name=raw["name"], types=tuple(raw.get("type", ())))
    if kind == "relation":
        return RelationFact(source=raw["from"], types=tuple(raw["type"]), target=raw["to"])
    keywords = tuple((k,) if isinstance(k, str) else tuple(k) for k in raw["keywords"])
    return ObservationFact(entity=raw["entity"], keywords=keywords)


def _turn(raw: dict[str, Any]) -> Turn:
    calls = raw.get("calls")
    return Turn(
        user=raw["user"],
        calls=None if calls is None else tuple(ToolCall(c["name"], dict(c["arguments"])) for c in calls),
        reply=raw.get("reply"),
    )


def episode_from_dict(data: dict[str, Any], line: int = 0, id: str | None = None,
                      notes: tuple[str, ...] = ()) -> Episode:
    """Builds the typed episode; `data` must already be valid (see `validate_episode`).

    `id` replaces the file's id (a duplicate in the file); probes whose `after` names no
    session are left out (their notes say so)."""
    user = data["user"]
    session_ids = {s["id"] for s in data["sessions"]}
    return Episode(
        id=data["id"] if id is None else id,
        user=UserInfo(name=user["name"], aliases=tuple(user.get("aliases", ()))),
        sessions=tuple(
            Session(
                id=s["id"],
                date=s.get("date"),
                turns=tuple(_turn(t) for t in s["turns"]),
                learn=tuple(_fact(f) for f in s.get("learn", ())),
                retract=tuple(_fact(f) for f in s.get("retract", ())),
            )
            for s in data["sessions"]
        ),
        probes=tuple(
            Probe(
                index=i,
                after=p["after"],
                question=p["question"],
                answers=tuple(p["answers"]),
                forbidden=tuple(p.get("forbidden", ())),
                kind=p["kind"],
            )
            for i, p in enumerate(data["probes"])
            if p["after"] in session_ids
        ),
        line=line,
        raw=data,
        notes=notes,
    )


def validate_episode(data: Any) -> list[str]:
    """Every reason this decoded JSON value does not validate against the schema; empty when it does."""
    return _schema_problems(data)


def parse_episodes(text: str, path: str = "<string>") -> list[Episode]:
    """Parses JSON Lines text; raises EpisodeFileError listing every problem with its line.

    Every episode that validates against the schema is accepted, as the spec asks. Lines end
    at "\\n" alone: JSON strings may hold U+2028 and other characters that str.splitlines
    would split at. Blank lines are skipped; line numbers count them. An episode id already
    used on an earlier line is kept apart as "ID (line N)", since results are keyed by id.
    """
    episodes: list[Episode] = []
    problems: list[EpisodeProblem] = []
    first_line_of_id: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(EpisodeProblem(number, f"bad JSON: {error.msg} (column {error.colno})"))
            continue
        reasons = validate_episode(data)
        if reasons:
            problems.extend(EpisodeProblem(number, reason) for reason in reasons)
            continue
        notes = _cross_reference_notes(data)
        episode_id = data["id"]
        if episode_id in first_line_of_id:
            notes.insert(0, f"episode id {episode_id!r} is also on line {first_line_of_id[episode_id]}: "
                            f"this one is reported as {episode_id} (line {number})")
            episode_id = f"{episode_id} (line {number})"
        first_line_of_id.setdefault(data["id"], number)
        first_line_of_id[episode_id] = number
        episodes.append(episode_from_dict(data, line=number, id=episode_id,
                                          notes=tuple(f"line {number}: {note}" for note in notes)))
    if not problems and not episodes:
        problems.append(EpisodeProblem(0, "the file holds no episodes"))
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        raise EpisodeFileError(path, shown, more=len(problems) - len(shown))
    return episodes


def load_episodes(path: str | Path) -> list[Episode]:
    """Reads and validates an episode file; raises EpisodeFileError (or OSError) when unusable."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a leading byte-order mark is not part of the first line
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise EpisodeFileError(str(path), [EpisodeProblem(line, f"not UTF-8 text: {error.reason} at byte "
                                                                f"{error.start}")]) from error
    return parse_episodes(text, str(path))


def fact_to_dict(fact: Fact) -> dict[str, Any]:
    """A fact in the file's own format, for reports."""
    if isinstance(fact, EntityFact):
        data: dict[str, Any] = {"kind": "entity", "name": fact.name}
        if fact.types:
            data["type"] = list(fact.types)
        return data
    if isinstance(fact, RelationFact):
        return {"kind": "relation", "from": fact.source, "type": list(fact.types), "to": fact.target}
    return {
        "kind": "observation",
        "entity": fact.entity,
        "keywords": [k[0] if len(k) == 1 else list(k) for k in fact.keywords],
    }
