"""Checking tool arguments before anything is written.

Two layers share these rules: the MCP server turns raw JSON arguments into graph objects with
`parse_*` (wrong shapes and types), and every backend re-checks the objects it is handed with
`check_*` (empty names, oversize strings, too many items), so a Python caller gets the same
guarantees as an MCP client. Every failure is an `InvalidInputError` whose `field` is a path
such as `entities[2].name`, so a model can see exactly which argument to fix.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from memlora.store.graph import (
    Entity,
    InvalidInputError,
    Limits,
    ObservationAddition,
    ObservationDeletion,
    Relation,
)

# ---------------------------------------------------------------------------------------------
# String and list checks


def check_text(value: object, field: str, max_chars: int, *, required: bool) -> str:
    """A string within `max_chars`; `required` strings must not be blank either."""
    if not isinstance(value, str):
        raise InvalidInputError(field, f"must be a string, got {_json_type(value)}")
    if required and not value.strip():
        raise InvalidInputError(field, "must not be empty")
    if required and not any(map(_visible, value)):
        shown = ", ".join(f"U+{ord(char):04X}" for char in dict.fromkeys(value[:64]))
        raise InvalidInputError(field, f"must contain a visible character, not only invisible ones ({shown})")
    if len(value) > max_chars:
        raise InvalidInputError(field, f"is {len(value)} characters long; the limit is {max_chars}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be stored in UTF-8 files or SQLite text.
        raise InvalidInputError(field, "is not valid Unicode text") from None
    return value


# Code points that take no visible space of their own although Unicode files them as letters
# or symbols: Hangul fillers and the blank Braille pattern.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Controls (NUL, ...), format characters (zero-width space and joiners, BOM, ...), surrogates,
# separators and combining marks with nothing to combine with. Unassigned code points count as
# visible: they may be emoji newer than Python's Unicode tables.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})


def _visible(char: str) -> bool:
    return not char.isspace() and char not in _BLANK_LETTERS and unicodedata.category(char) not in _INVISIBLE_CATEGORIES


def check_count(items: Sequence[Any], field: str, limits: Limits) -> None:
    if len(items) > limits.max_items_per_call:
        raise InvalidInputError(field, f"has {len(items)} items; the limit is {limits.max_items_per_call}")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# Checks on graph objects (what every backend runs)


def check_entities(entities: Sequence[Entity], limits: Limits, field: str = "entities") -> None:
    check_count(entities, field, limits)
    for i, entity in enumerate(entities):
        where = f"{field}[{i}]"
        check_text(entity.name, f"{where}.name", limits.max_name_chars, required=True)
        check_text(entity.entity_type, f"{where}.entityType", limits.max_type_chars, required=True)
        check_observations(entity.observations, f"{where}.observations", limits)


def check_observations(observations: Sequence[str], field: str, limits: Limits, *, required: bool = True) -> None:
    if not isinstance(observations, list | tuple):
        raise InvalidInputError(field, f"must be an array of strings, got {_json_type(observations)}")
    check_count(observations, field, limits)
    for j, text in enumerate(observations):
        check_text(text, f"{field}[{j}]", limits.max_observation_chars, required=required)


def check_relations(
    relations: Sequence[Relation], limits: Limits, field: str = "relations", *, required: bool = True
) -> None:
    check_count(relations, field, limits)
    for i, relation in enumerate(relations):
        where = f"{field}[{i}]"
        check_text(relation.source, f"{where}.from", limits.max_name_chars, required=required)
        check_text(relation.target, f"{where}.to", limits.max_name_chars, required=required)
        check_text(relation.relation_type, f"{where}.relationType", limits.max_type_chars, required=required)


def check_additions(additions: Sequence[ObservationAddition], limits: Limits, field: str = "observations") -> None:
    check_count(additions, field, limits)
    for i, addition in enumerate(additions):
        where = f"{field}[{i}]"
        check_text(addition.entity_name, f"{where}.entityName", limits.max_name_chars, required=True)
        check_observations(addition.contents, f"{where}.contents", limits)


def check_deletions(deletions: Sequence[ObservationDeletion], limits: Limits, field: str = "deletions") -> None:
    # Deleting is lenient: what names nothing is ignored, so only types and sizes matter.
    check_count(deletions, field, limits)
    for i, deletion in enumerate(deletions):
        where = f"{field}[{i}]"
        check_text(deletion.entity_name, f"{where}.entityName", limits.max_name_chars, required=False)
        check_observations(deletion.observations, f"{where}.observations", limits, required=False)


def check_names(names: Sequence[str], limits: Limits, field: str) -> None:
    if not isinstance(names, list | tuple):
        raise InvalidInputError(field, f"must be an array of strings, got {_json_type(names)}")
    check_count(names, field, limits)
    for i, name in enumerate(names):
        check_text(name, f"{field}[{i}]", limits.max_name_chars, required=False)


def check_query(query: str, limits: Limits) -> None:
    check_text(query, "query", limits.max_query_chars, required=False)


# ---------------------------------------------------------------------------------------------
# Parsing raw JSON arguments (what the server runs before calling a backend)


def _array(value: object, field: str) -> list[Any]:
    if value is None:
        raise InvalidInputError(field, "is required")
    if not isinstance(value, list):
        raise InvalidInputError(field, f"must be an array, got {_json_type(value)}")
    return value


def _object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError(field, f"must be an object, got {_json_type(value)}")
    return value


def _member(obj: dict[str, Any], key: str, field: str) -> Any:
    if key not in obj or obj[key] is None:
        raise InvalidInputError(f"{field}.{key}", "is required")
    return obj[key]


def _strings(value: object, field: str) -> list[str]:
    items = _array(value, field)
    for j, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidInputError(f"{field}[{j}]", f"must be a string, got {_json_type(item)}")
    return list(items)


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(field, f"must be a string, got {_json_type(value)}")
    return value


def parse_entities(raw: object, field: str = "entities") -> list[Entity]:
    result = []
    for i, item in enumerate(_array(raw, field)):
        where = f"{field}[{i}]"
        obj = _object(item, where)
        result.append(
            Entity(
                name=_string(_member(obj, "name", where), f"{where}.name"),
                entity_type=_string(_member(obj, "entityType", where), f"{where}.entityType"),
                observations=_strings(_member(obj, "observations", where), f"{where}.observations"),
            )
        )
    return result


def parse_relations(raw: object, field: str = "relations") -> list[Relation]:
    result = []
    for i, item in enumerate(_array(raw, field)):
        where = f"{field}[{i}]"
        obj = _object(item, where)
        result.append(
            Relation(
                source=_string(_member(obj, "from", where), f"{where}.from"),
                target=_string(_member(obj, "to", where), f"{where}.to"),
                relation_type=_string(_member(obj, "relationType", where), f"{where}.relationType"),
            )
        )
    return result


def parse_additions(raw: object, field: str = "observations") -> list[ObservationAddition]:
    result = []
    for i, item in enumerate(_array(raw, field)):
        where = f"{field}[{i}]"
        obj = _object(item, where)
        result.append(
            ObservationAddition(
                entity_name=_string(_member(obj, "entityName", where), f"{where}.entityName"),
                contents=_strings(_member(obj, "contents", where), f"{where}.contents"),
            )
        )
    return result


def parse_deletions(raw: object, field: str = "deletions") -> list[ObservationDeletion]:
    result = []
    for i, item in enumerate(_array(raw, field)):
        where = f"{field}[{i}]"
        obj = _object(item, where)
        result.append(
            ObservationDeletion(
                entity_name=_string(_member(obj, "entityName", where), f"{where}.entityName"),
                observations=_strings(_member(obj, "observations", where), f"{where}.observations"),
            )
        )
    return result


def parse_names(raw: object, field: str) -> list[str]:
    return _strings(raw, field)


def parse_query(raw: object) -> str:
    if raw is None:
        raise InvalidInputError("query", "is required")
    return _string(raw, "query")
