"""The nine memory tools over a store: each tool's arguments as a model, and what the tool does.

The argument models are built from the graph shapes in `memlora.store.graph`, so one set of
fields serves every caller. The MCP server and the data generator read raw JSON with `parse`,
which checks shapes and types; every backend runs `check` on what it is handed, which adds the
limits and the blank-text rule through the validation context, so a Python caller gets the same
guarantees as an MCP client. Either way a failure is an `InvalidInputError` whose `field` is a
path such as `entities[2].name` and whose reason is worded for a model to act on; clients see
these texts, so they are part of the interface.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

from pydantic import BaseModel, Field, ValidationError
from pydantic_core import ErrorDetails, to_jsonable_python

from memlora.store.graph import (
    Checks,
    Entity,
    InvalidInputError,
    Items,
    Limits,
    Name,
    ObservationAddition,
    ObservationDeletion,
    Query,
    Relation,
)

if TYPE_CHECKING:
    from memlora.store.base import MemoryStore


class Arguments(BaseModel):
    """One tool's arguments, by their wire names; keys the tool does not take are ignored."""

    # Writing needs text that is not blank; a delete or a search may name anything.
    blank_ok: ClassVar[bool] = False

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        """Raw JSON arguments with their shapes and types checked; the limits are the store's."""
        return _validated(cls, raw, None)

    @classmethod
    def check(cls, limits: Limits, **values: Any) -> None:
        """Raises `InvalidInputError` for the first value (given by wire name) that breaks a rule."""
        _validated(cls, to_jsonable_python(values, by_alias=True), Checks(limits, cls.blank_ok))

    def run(self, store: MemoryStore) -> Any:
        """The reference server's payload: what was added, a delete's confirmation, or a graph."""
        raise NotImplementedError


class CreateEntities(Arguments):
    entities: Items[Entity]

    def run(self, store: MemoryStore) -> Any:
        return [entity.to_dict() for entity in store.create_entities(self.entities)]


class CreateRelations(Arguments):
    relations: Items[Relation]

    def run(self, store: MemoryStore) -> Any:
        return [relation.to_dict() for relation in store.create_relations(self.relations)]


class AddObservations(Arguments):
    observations: Items[ObservationAddition]

    def run(self, store: MemoryStore) -> Any:
        return [result.to_dict() for result in store.add_observations(self.observations)]


class DeleteEntities(Arguments):
    blank_ok = True
    entity_names: Annotated[Items[Name], Field(alias="entityNames")]

    def run(self, store: MemoryStore) -> Any:
        store.delete_entities(self.entity_names)
        return "Entities deleted successfully"


class DeleteObservations(Arguments):
    blank_ok = True
    deletions: Items[ObservationDeletion]

    def run(self, store: MemoryStore) -> Any:
        store.delete_observations(self.deletions)
        return "Observations deleted successfully"


class DeleteRelations(Arguments):
    blank_ok = True
    relations: Items[Relation]

    def run(self, store: MemoryStore) -> Any:
        store.delete_relations(self.relations)
        return "Relations deleted successfully"


class ReadGraph(Arguments):
    def run(self, store: MemoryStore) -> Any:
        return store.read_graph().to_dict()


class SearchNodes(Arguments):
    blank_ok = True
    query: Query

    def run(self, store: MemoryStore) -> Any:
        return store.search_nodes(self.query).to_dict()


class OpenNodes(Arguments):
    blank_ok = True
    names: Items[Name]

    def run(self, store: MemoryStore) -> Any:
        return store.open_nodes(self.names).to_dict()


ARGUMENTS: dict[str, type[Arguments]] = {
    "create_entities": CreateEntities,
    "create_relations": CreateRelations,
    "add_observations": AddObservations,
    "delete_entities": DeleteEntities,
    "delete_observations": DeleteObservations,
    "delete_relations": DeleteRelations,
    "read_graph": ReadGraph,
    "search_nodes": SearchNodes,
    "open_nodes": OpenNodes,
}


def run_tool(store: MemoryStore, name: str, arguments: Mapping[str, Any]) -> Any:
    """Runs tool `name` on raw JSON arguments; see `Arguments.run` for what it returns."""
    return ARGUMENTS[name].parse(arguments).run(store)


# -- pydantic's errors in the words of the interface ---------------------------------------------


def _validated(model: type[Arguments], raw: Any, checks: Checks | None) -> Any:
    # By wire name only, nested shapes included: `entity_type` is Python's name, not the client's.
    try:
        return model.model_validate(raw, context=checks, by_alias=True, by_name=False)
    except ValidationError as error:
        raise _invalid(error.errors(include_url=False)[0]) from None


# What each of pydantic's type errors expected, in JSON's words.
_EXPECTED = {
    "string_type": "a string", "list_type": "an array", "dataclass_type": "an object", "model_type": "an object",
}


def _invalid(error: ErrorDetails) -> InvalidInputError:
    where = error["loc"]
    field = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in where).lstrip(".")
    value = error["input"]
    if error["type"] == "limit":
        reason = error["msg"]
    elif error["type"] == "missing" or (value is None and where and isinstance(where[-1], str)):
        # An object member that is absent or null; a null inside an array is a wrong type.
        reason = "is required"
    elif error["type"] in _EXPECTED:
        reason = f"must be {_EXPECTED[error['type']]}, got {json_type(value)}"
    else:
        reason = error["msg"][:1].lower() + error["msg"][1:]
    return InvalidInputError(field or "arguments", reason)


def json_type(value: object) -> str:
    """The JSON name of `value`'s type, as a client would call it."""
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
