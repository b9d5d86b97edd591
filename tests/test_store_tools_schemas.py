"""The argument models accept exactly what the published input schemas accept, and what the
models write validates against the published output schemas.

The schemas (memlora/server/schemas.py) are what clients see; the models (memlora/store/tools.py)
are what the server parses with. Two sets of arguments are tried for each tool: every single
change to one valid example (a member left out, a value of another JSON type, an unknown member,
an empty or doubled array), and arguments that hypothesis builds in the schema's shape with any
number of such changes. The JSON Schema validator and the model must agree on every one, both
ways. Limits and blank text are not in the schemas (they are the store's rules, checked apart),
so only shapes and types are compared.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator

from memlora.server.schemas import TOOLS
from memlora.store.graph import AddedObservations, Entity, InvalidInputError, KnowledgeGraph, Relation
from memlora.store.tools import ARGUMENTS

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def shaped_like(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of `schema`'s shape; now and then a part is any JSON value, a member is missing or
    an unknown member is added, so that draws fall on both sides of what the schema allows."""
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        members = {key: st.tuples(st.integers(0, 9), shaped_like(sub)) for key, sub in properties.items()}
        known = st.fixed_dictionaries(members).map(lambda drawn: {k: v for k, (keep, v) in drawn.items() if keep})
        unknown = st.dictionaries(st.sampled_from(["extra", "entity_type", "source", "type"]), json_values, max_size=1)
        shape: st.SearchStrategy[Any] = st.builds(lambda a, b: {**b, **a}, known, unknown)
    elif kind == "array":
        shape = st.lists(shaped_like(schema["items"]), max_size=3)
    else:
        assert kind == "string", schema
        shape = st.text(max_size=5)
    return st.one_of(shape, shape, shape, shape, shape, json_values)


def example(schema: dict[str, Any]) -> Any:
    """A valid value with every member present and one item in every array."""
    if schema["type"] == "object":
        return {key: example(sub) for key, sub in schema.get("properties", {}).items()}
    return [example(schema["items"])] if schema["type"] == "array" else "x"


OTHER_TYPES = [None, 0, 1.5, True, "x", [], {}]


def single_changes(value: Any) -> list[Any]:
    """`value` with one thing changed, for every thing that can be changed."""
    changed = [other for other in OTHER_TYPES if other != value or type(other) is not type(value)]
    if isinstance(value, dict):
        changed.append({**value, "extra": 1})
        for key in value:
            changed.append({k: v for k, v in value.items() if k != key})
            changed += [{**value, key: inner} for inner in single_changes(value[key])]
    elif isinstance(value, list):
        changed.append(value + value)
        for i, item in enumerate(value):
            changed += [value[:i] + [inner] + value[i + 1 :] for inner in single_changes(item)]
    return changed


def model_accepts(name: str, arguments: Any) -> bool:
    try:
        ARGUMENTS[name].parse(arguments)
    except InvalidInputError:
        return False
    return True


@pytest.mark.parametrize("name", list(TOOLS))
def test_every_single_change_is_judged_alike(name: str) -> None:
    schema = TOOLS[name].input_schema
    validator = Draft7Validator(schema)
    tried = [example(schema)] + [value for value in single_changes(example(schema)) if isinstance(value, dict)]
    assert [value for value in tried if model_accepts(name, value) != validator.is_valid(value)] == []
    assert {validator.is_valid(value) for value in tried} == ({True} if name == "read_graph" else {True, False})


@pytest.mark.parametrize("name", list(TOOLS))
def test_models_accept_exactly_what_the_input_schemas_accept(name: str) -> None:
    schema = TOOLS[name].input_schema
    validator = Draft7Validator(schema)
    verdicts = set()

    @settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(arguments=shaped_like(schema).filter(lambda value: isinstance(value, dict)))
    def agree(arguments: dict[str, Any]) -> None:
        valid = validator.is_valid(arguments)
        assert model_accepts(name, arguments) == valid, arguments
        verdicts.add(valid)

    agree()
    # Not a vacuous comparison: both valid and invalid arguments were tried (read_graph takes anything).
    assert verdicts == ({True} if name == "read_graph" else {True, False})


texts = st.text(max_size=6)
entities = st.builds(Entity, texts, texts, st.lists(texts, max_size=3))
relations = st.builds(Relation, texts, texts, texts)
graphs = st.builds(KnowledgeGraph, entities=st.lists(entities, max_size=3), relations=st.lists(relations, max_size=3))


@settings(max_examples=50, derandomize=True, deadline=None, database=None)
@given(graph=graphs, added=st.lists(st.builds(AddedObservations, texts, st.lists(texts, max_size=2)), max_size=3))
def test_what_the_models_write_is_what_the_output_schemas_describe(
    graph: KnowledgeGraph, added: list[AddedObservations]
) -> None:
    outputs = {
        "create_entities": {"entities": [e.to_dict() for e in graph.entities]},
        "create_relations": {"relations": [r.to_dict() for r in graph.relations]},
        "add_observations": {"results": [a.to_dict() for a in added]},
        "read_graph": graph.to_dict(),
        "search_nodes": graph.to_dict(),
        "open_nodes": graph.to_dict(),
    }
    for name, structured in outputs.items():
        Draft7Validator(TOOLS[name].output_schema).validate(structured)
