"""The knowledge-graph data model shared by every backend, the server and the evaluator.

These pydantic dataclasses are the one description of the wire shapes: attributes are snake_case
in Python, aliases are the names of the reference memory server (`entityType`, `from`, `to`,
`relationType`), which are also those of its JSONL file. Validated plainly they check shapes and
types; validated with `Checks` as the context they also check the limits and blank text. The
tools' arguments (memlora.store.tools), every backend's own checks and the JSONL lines therefore
all go through the same fields and report the same paths (`entities[2].name`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import pydantic.dataclasses
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, ValidationInfo
from pydantic_core import PydanticCustomError, to_jsonable_python


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class EntityNotFoundError(StoreError):
    """An operation named an entity that the graph does not hold."""

    def __init__(self, name: str) -> None:
        # The exact text is part of the interface: clients of the reference server match on it.
        super().__init__(f"Entity with name {name} not found")
        self.name = name


class InvalidInputError(StoreError):
    """Arguments that are malformed or over a limit; `field` says where, e.g. `entities[2].name`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class CorruptStoreError(StoreError):
    """The stored data cannot be read back; nothing is written over it."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        where = f"{path}, line {line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class StorageError(StoreError):
    """The operating system or the database refused: says what failed, where, and why.

    `reason` ends with the errno name (ENOSPC, EROFS, EACCES, ...) or SQLite's error code, so a
    client can tell a full disk from a read-only one without seeing a traceback.
    """

    def __init__(self, path: str, action: str, reason: str, *, writing: bool) -> None:
        tail = "; nothing was changed" if writing else ""
        super().__init__(f"cannot {action} {path}: {reason}{tail}")
        self.path = path
        self.reason = reason


class StoreBusyError(StoreError):
    """The store stayed locked for the whole wait; the call did nothing."""

    def __init__(self, path: str, seconds: float, holder: str = "another process") -> None:
        super().__init__(f"{path}: locked by {holder} for {seconds:g} s; gave up, nothing was changed")
        self.path = path
        self.seconds = seconds


@dataclass(frozen=True)
class Limits:
    """Bounds on what one call may write; over a bound the call fails and writes nothing."""

    max_name_chars: int = 256
    max_type_chars: int = 128
    max_observation_chars: int = 4096
    max_items_per_call: int = 1000
    max_query_chars: int = 1024


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Checks:
    """The validation context under which the models check more than shapes: `limits`, and text
    that is not blank, unless `blank_ok` (a delete or a search may name anything)."""

    limits: Limits
    blank_ok: bool = False


def _text_problem(value: str, max_chars: int, *, required: bool) -> str | None:
    """What is wrong with `value` as stored text, or None; `required` text must not be blank either."""
    if required and not value.strip():
        return "must not be empty"
    if required and not any(map(_visible, value)):
        shown = ", ".join(f"U+{ord(char):04X}" for char in dict.fromkeys(value[:64]))
        return f"must contain a visible character, not only invisible ones ({shown})"
    if len(value) > max_chars:
        return f"is {len(value)} characters long; the limit is {max_chars}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be stored in UTF-8 files or SQLite text.
        return "is not valid Unicode text"
    return None


# Code points that take no visible space of their own although Unicode files them as letters
# or symbols: Hangul fillers and the blank Braille pattern.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Controls (NUL, ...), format characters (zero-width space and joiners, BOM, ...), surrogates,
# separators and combining marks with nothing to combine with. Unassigned code points count as
# visible: they may be emoji newer than Python's Unicode tables.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})


def _visible(char: str) -> bool:
    return not char.isspace() and char not in _BLANK_LETTERS and unicodedata.category(char) not in _INVISIBLE_CATEGORIES


def _over_limit(reason: str) -> PydanticCustomError:
    """A failed check, told apart from a wrong shape by its error type `limit`."""
    return PydanticCustomError("limit", "{reason}", {"reason": reason})


def _text(limit: str) -> AfterValidator:
    def check(value: str, info: ValidationInfo) -> str:
        checks = info.context
        if isinstance(checks, Checks):
            problem = _text_problem(value, getattr(checks.limits, limit), required=not checks.blank_ok)
            if problem is not None:
                raise _over_limit(problem)
        return value

    return AfterValidator(check)


def _count(value: Any, info: ValidationInfo) -> Any:
    # Before the items are validated: an over-long list is reported as such, not by its items.
    checks = info.context
    if isinstance(checks, Checks) and isinstance(value, list) and len(value) > checks.limits.max_items_per_call:
        raise _over_limit(f"has {len(value)} items; the limit is {checks.limits.max_items_per_call}")
    return value


T = TypeVar("T")
Name = Annotated[str, _text("max_name_chars")]
TypeName = Annotated[str, _text("max_type_chars")]
Observation = Annotated[str, _text("max_observation_chars")]
Query = Annotated[str, _text("max_query_chars")]
Items = Annotated[list[T], BeforeValidator(_count)]


# Dataclasses rather than BaseModels: Python code builds them positionally (`Entity("Ana",
# "person", [])`), and a BaseModel that takes positional arguments loses the validation context.
_WIRE = ConfigDict(validate_by_name=True, serialize_by_alias=True)


class _Wire:
    def to_dict(self) -> dict[str, Any]:
        """The wire form: what the reference server sends, and (with a `type`) a line of its file."""
        return to_jsonable_python(self, by_alias=True)


@pydantic.dataclasses.dataclass(config=_WIRE)
class Entity(_Wire):
    name: Name
    entity_type: Annotated[TypeName, Field(alias="entityType")]
    observations: Items[Observation]


@pydantic.dataclasses.dataclass(config=_WIRE, frozen=True)
class Relation(_Wire):
    source: Annotated[Name, Field(alias="from")]
    target: Annotated[Name, Field(alias="to")]
    relation_type: Annotated[TypeName, Field(alias="relationType")]


@pydantic.dataclasses.dataclass(config=_WIRE)
class ObservationAddition(_Wire):
    entity_name: Annotated[Name, Field(alias="entityName")]
    contents: Items[Observation]


@pydantic.dataclasses.dataclass(config=_WIRE)
class ObservationDeletion(_Wire):
    entity_name: Annotated[Name, Field(alias="entityName")]
    observations: Items[Observation]


@pydantic.dataclasses.dataclass(config=_WIRE)
class AddedObservations(_Wire):
    """What `add_observations` reports per entity: only the contents that were new."""

    entity_name: Annotated[str, Field(alias="entityName")]
    added_observations: Annotated[list[str], Field(alias="addedObservations")]


@pydantic.dataclasses.dataclass(config=_WIRE)
class KnowledgeGraph(_Wire):
    entities: list[Entity] = Field(default_factory=list)
    relations: list[Relation] = Field(default_factory=list)
