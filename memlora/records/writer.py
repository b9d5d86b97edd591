"""From a raw observation to a record draft: a model with a strict prompt, or rules.

The model is asked for three fields only (event, text, tags); the pose, mission and time come
from the caller, or from the observation itself when it spells them out ("at x=1.2, y=3.5,
yaw 1.57 during mission m-7"), so a small model never has to copy numbers. Its reply must be
one JSON object that passes `validate_draft`; a reply that does not is retried once with the
validator's message, and then the rule-based draft is used. Every attempt is reported, so JSON
validity can be measured (`memlora records stats`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from memlora.records.schema import (
    EVENTS,
    MAX_TEXT_CHARS,
    SECOND_SENTENCE,
    Pose,
    RecordDraft,
    RecordValidationError,
    validate_draft,
)

WRITE_SYSTEM_PROMPT = (
    "You turn one observation of a robot into one memory record.\n"
    "Reply with exactly one JSON object and nothing else, with these keys:\n"
    '- "event": one of ' + ", ".join(EVENTS) + "\n"
    '- "text": one short sentence (at most 200 characters) that says what happened, without coordinates '
    "or mission ids\n"
    '- "tags": a list of kind:value labels in lower case with underscores, e.g. "object:red_ball", '
    '"room:kitchen", "place:table", "person:alice", "task:charge_battery", "color:red"\n'
    "Examples:\n"
    "Observation: saw a red ball on the table in the living room at x=1.2, y=3.5, yaw 1.57\n"
    '{"event": "object_seen", "text": "Saw a red ball on the table in the living room.", '
    '"tags": ["object:red_ball", "color:red", "place:table", "room:living_room"]}\n'
    "Observation: met Alice in the lobby\n"
    '{"event": "person_met", "text": "Met Alice in the lobby.", "tags": ["person:alice", "room:lobby"]}\n'
    "Observation: finished charging the battery at the dock in the garage\n"
    '{"event": "task_done", "text": "Finished charging the battery at the dock in the garage.", '
    '"tags": ["task:charge_battery", "place:dock", "room:garage"]}'
)


@dataclass
class Attempt:
    """One model reply and what the validator made of it."""

    output: str
    json_valid: bool
    record_valid: bool
    problems: list[str] = field(default_factory=list)

    def trace(self) -> dict[str, Any]:
        return {"json_valid": self.json_valid, "record_valid": self.record_valid, "problems": self.problems,
                "output": self.output[:300]}


def write_messages(observation: str, feedback: str | None = None, previous: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": WRITE_SYSTEM_PROMPT}, {"role": "user", "content": f"Observation: {observation}"}]
    if feedback is not None and previous is not None:
        messages += [
            {"role": "assistant", "content": previous},
            {"role": "user", "content": f"That reply is not a valid record: {feedback}. Reply with the corrected JSON object only."},
        ]
    return messages


def first_json_object(text: str) -> Any:
    """The first JSON value that starts at a '{' in `text` (code fences and chatter around it are ignored)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        return value
    raise ValueError("no JSON object in the reply")


def judge(output: str) -> tuple[RecordDraft | None, Attempt]:
    """Parses and validates one model reply; the draft keeps only event, text and tags."""
    try:
        value = first_json_object(output)
    except ValueError as error:
        return None, Attempt(output, False, False, [str(error)])
    if isinstance(value, dict):  # a pose the model made up is ignored: poses come from the caller
        value = {key: item for key, item in value.items() if key != "pose"}
    try:
        draft = validate_draft(value)
    except RecordValidationError as error:
        return None, Attempt(output, True, False, [f"{f}: {p}" for f, p in error.problems])
    return draft, Attempt(output, True, True)


# -- rules ------------------------------------------------------------------------------------

_NUMBER = r"(-?\d+(?:\.\d+)?)"
_LENGTH_UNIT = r"(?:\s*(cm|mm|m)(?![A-Za-z]))?"
_ANGLE_UNIT = r"(?:\s*(°|deg(?:rees)?|rad(?:ians)?)(?![A-Za-z]))?"
_POSE = re.compile(
    rf"(?:\s*,?\s*\b(?:at|pose)\b)?\s*\(?\s*x\s*[=:]?\s*{_NUMBER}{_LENGTH_UNIT}\s*,?\s*y\s*[=:]?\s*{_NUMBER}{_LENGTH_UNIT}"
    rf"\s*,?\s*(?:yaw|theta|heading)\s*[=:]?\s*{_NUMBER}{_ANGLE_UNIT}\s*\)?",
    re.IGNORECASE,
)
_METRES = {None: 1.0, "m": 1.0, "cm": 0.01, "mm": 0.001}
_MISSION = re.compile(
    r"\s*,?\s*\b(?:during|in|on|for)?\s*mission(?:\s*[:=#]\s*|\s+)(?:id\s*[:=#]?\s*)?([A-Za-z0-9][A-Za-z0-9._:\-]{0,63})",
    re.IGNORECASE,
)
ROOMS = (
    "living room", "dining room", "laundry room", "storage room", "meeting room", "server room", "break room",
    "kitchen", "bedroom", "bathroom", "hallway", "corridor", "office", "garage", "lobby", "lab", "workshop",
    "garden", "balcony", "basement", "attic", "warehouse", "reception", "library", "cafeteria", "entrance",
)
PREPOSITIONS = r"on|in|at|under|near|by|next|beside|behind|inside|from|during|with|against|below|above|between|outside"
_PLACE = re.compile(rf"\b(?:{PREPOSITIONS})\s+(?:to\s+)?(?:the|a|an)\s+([a-z]+(?:\s+(?!(?:{PREPOSITIONS}|and|of)\b)[a-z]+)?)")
_OBJECT = re.compile(
    rf"\b(?:saw|seen|see|spotted|noticed|found|observed|detected|picked up|dropped|left)\s+(?:a|an|the|some|two|three)?\s*"
    rf"([a-z][a-z\-]*(?:\s+(?!(?:{PREPOSITIONS})\b)[a-z][a-z\-]*){{0,2}})"
)
_PERSON = re.compile(r"\b(?i:met|meet|greeted|talked (?:to|with)|spoke (?:to|with)|saw)\s+((?:Dr\.\s+)?[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)")
_EVENT_WORDS = [
    ("person_met", r"\b(met|meet|greeted|talked to|talked with|spoke to|spoke with|introduced)\b"),
    ("object_seen", r"\b(saw|seen|spotted|noticed|found|observed|detected)\b"),
    ("task_done", r"\b(finished|completed|done|delivered|charged|cleaned|fetched|inspected|task)\b"),
    ("place_visited", r"\b(visited|entered|arrived|reached|went to|passed through|patrolled|explored)\b"),
    ("user_fact", r"\b(user|my name|i like|i prefer|prefers|likes|lives|birthday)\b"),
]
COLORS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple", "pink", "brown", "grey", "gray", "silver")


def _slug(words: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_")


def _metres(number: str, unit: str | None) -> float:
    return round(float(number) * _METRES[unit.lower() if unit else None], 6)


def _radians(number: str, unit: str | None) -> float:
    if unit and not unit.lower().startswith("rad"):  # degrees
        return round(math.radians(float(number)), 4)
    return float(number)


def split_context(observation: str) -> tuple[str, Pose | None, str | None]:
    """The observation without a spelled-out pose and mission id, plus those two if present.

    A pose needs x, y and yaw (x=1.2, y=3.5, yaw 1.57; lengths may say m, cm or mm, the yaw rad,
    deg or °); a yaw outside [-pi, pi] is left in the text rather than guessed at.
    """
    text, pose, mission = observation, None, None
    found = _POSE.search(text)
    if found:
        try:
            pose = Pose(x=_metres(found[1], found[2]), y=_metres(found[3], found[4]), yaw=_radians(found[5], found[6]))
            text = text[: found.start()] + " " + text[found.end() :]
        except ValueError:
            pose = None
    found = _MISSION.search(text)
    if found:
        mission = found[1].rstrip(".,;")
        text = text[: found.start()] + " " + text[found.end() :]
    text = re.sub(r"\(\s*[,;:]?\s*\)", " ", text)  # the brackets a pose or mission stood in
    return text, pose, mission


def tidy_sentence(text: str, first_only: bool = True) -> str:
    """One clean sentence: single spaces, no dangling commas, a capital first letter, a full stop.

    `first_only=False` keeps every sentence (what the model reads, up to MAX_MODEL_CHARS): the
    observation's facts may come after a sentence of chatter, and dropping the chatter is the
    model's job; the rules keep the first sentence only."""
    text = re.sub(r"\s+", " ", text).strip(" ,;:-")
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    if not text:
        return text
    limit = MAX_TEXT_CHARS if first_only else MAX_MODEL_CHARS
    if first_only:  # a record holds one sentence
        second = SECOND_SENTENCE.search(text)
        if second:
            text = text[: second.start() + 1]
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "."
    text = text[0].upper() + text[1:]
    if text[-1] not in ".!?":
        text += "."
    return text


MAX_MODEL_CHARS = 1000  # of an observation shown to the model


def prepare_observation(observation: str) -> tuple[str, Pose | None, str | None]:
    """What the model reads of an observation (after `Observation: `), and the pose and mission
    spelled out in it. One function for the manager and for the training data
    (memlora.data.records_rows), so an adapter learns from exactly the text it will be shown."""
    text, pose, mission = split_context(observation)
    return tidy_sentence(text, first_only=False) or observation.strip(), pose, mission


def rule_draft(observation: str) -> RecordDraft:
    """A draft by keyword rules, for when there is no model or its replies stay invalid."""
    text, _, _ = split_context(observation)
    text = tidy_sentence(text) or "Observation without text."
    lower = text.lower()
    event = next((name for name, words in _EVENT_WORDS if re.search(words, lower)), "note")
    tags: list[str] = []
    if event == "person_met":
        for match in _PERSON.finditer(text):
            tags.append("person:" + _slug(match[1].replace("Dr.", "")))
    if event == "object_seen":
        match = _OBJECT.search(lower)
        if match:
            words = match[1].strip()
            if words not in ROOMS and not words.startswith(("dr ", "dr.")):
                tags.append("object:" + _slug(words))
                first = words.split()[0]
                if first in COLORS:
                    tags.append(f"color:{first}")
    for room in ROOMS:
        if re.search(rf"\b{room}\b", lower):
            tags.append("room:" + _slug(room))
    for match in _PLACE.finditer(lower):
        words = match[1]
        if words in ROOMS or any(words.startswith(r) for r in ROOMS):
            continue
        tags.append("place:" + _slug(words))
        break
    unique = list(dict.fromkeys(t for t in tags if re.match(r"^[a-z][a-z0-9_]*:[a-z0-9][a-z0-9_.\-]*$", t)))
    return validate_draft({"event": event, "text": text, "tags": unique[:16]})
