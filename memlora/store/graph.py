"""The knowledge-graph data model shared by every backend, the server and the evaluator.

Attribute names are snake_case in Python; `to_dict` / `from_dict` speak the wire format of the
reference memory server (`entityType`, `from`, `to`, `relationType`), which is also the format
of its JSONL file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass
class Entity:
    name: str
    entity_type: str
    observations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "entityType": self.entity_type, "observations": list(self.observations)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entity:
        return cls(name=data["name"], entity_type=data["entityType"], observations=list(data.get("observations", [])))


@dataclass(frozen=True)
class Relation:
    source: str
    target: str
    relation_type: str

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.target, "relationType": self.relation_type}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Relation:
        return cls(source=data["from"], target=data["to"], relation_type=data["relationType"])


@dataclass
class ObservationAddition:
    entity_name: str
    contents: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"entityName": self.entity_name, "contents": list(self.contents)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObservationAddition:
        return cls(entity_name=data["entityName"], contents=list(data["contents"]))


@dataclass
class ObservationDeletion:
    entity_name: str
    observations: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"entityName": self.entity_name, "observations": list(self.observations)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObservationDeletion:
        return cls(entity_name=data["entityName"], observations=list(data["observations"]))


@dataclass
class AddedObservations:
    """What `add_observations` reports per entity: only the contents that were new."""

    entity_name: str
    added_observations: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"entityName": self.entity_name, "addedObservations": list(self.added_observations)}


@dataclass
class KnowledgeGraph:
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "entities": [e.to_dict() for e in self.entities],
            "relations": [r.to_dict() for r in self.relations],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KnowledgeGraph:
        return cls(
            entities=[Entity.from_dict(e) for e in data.get("entities", [])],
            relations=[Relation.from_dict(r) for r in data.get("relations", [])],
        )


@dataclass(frozen=True)
class Limits:
    """Bounds on what one call may write; over a bound the call fails and writes nothing."""

    max_name_chars: int = 256
    max_type_chars: int = 128
    max_observation_chars: int = 4096
    max_items_per_call: int = 1000
    max_query_chars: int = 1024


DEFAULT_LIMITS = Limits()
