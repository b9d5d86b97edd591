"""Bad input: a clear error naming the field, and nothing already stored is lost."""

from __future__ import annotations

import pytest

from memlora.store import MemoryStore, open_store
from memlora.store.graph import (
    Entity,
    InvalidInputError,
    Limits,
    ObservationAddition,
    Relation,
)
from memlora.store.tools import AddObservations, CreateEntities, CreateRelations


def test_empty_name_is_rejected_with_its_field(store: MemoryStore) -> None:
    store.create_entities([Entity("Keep", "t", ["safe"])])
    before = store.read_graph()
    with pytest.raises(InvalidInputError) as caught:
        store.create_entities([Entity("Fine", "t", []), Entity("  ", "t", [])])
    assert caught.value.field == "entities[1].name"
    assert "empty" in str(caught.value)
    assert store.read_graph() == before


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.create_entities([Entity("x" * 300, "t", [])]), "entities[0].name"),
        (lambda s: s.create_entities([Entity("A", "t" * 200, [])]), "entities[0].entityType"),
        (lambda s: s.create_entities([Entity("A", "t", ["ok", "o" * 5000])]), "entities[0].observations[1]"),
        (lambda s: s.create_entities([Entity(f"E{i}", "t", []) for i in range(1001)]), "entities"),
        (lambda s: s.create_relations([Relation("Keep", "", "r")]), "relations[0].to"),
        (lambda s: s.add_observations([ObservationAddition("Keep", [""])]), "observations[0].contents[0]"),
        (lambda s: s.search_nodes("q" * 2000), "query"),
        (lambda s: s.create_entities([Entity("bad \ud800", "t", [])]), "entities[0].name"),
    ],
)
def test_limits_and_blank_strings_name_the_field(store: MemoryStore, call, field: str) -> None:
    store.create_entities([Entity("Keep", "t", ["safe"])])
    before = store.read_graph()
    with pytest.raises(InvalidInputError) as caught:
        call(store)
    assert caught.value.field == field
    assert store.read_graph() == before


def test_limits_are_configurable(tmp_path) -> None:
    with open_store(f"sqlite:{tmp_path / 'm.db'}", Limits(max_name_chars=4)) as store:
        store.create_entities([Entity("four", "t", [])])
        with pytest.raises(InvalidInputError, match="limit is 4"):
            store.create_entities([Entity("five!", "t", [])])


@pytest.mark.parametrize(
    ("tool", "raw", "field", "reason"),
    [
        (CreateEntities, {"entities": None}, "entities", "is required"),
        (CreateEntities, {"entities": "Alice"}, "entities", "must be an array"),
        (CreateEntities, {"entities": [{"name": "A", "entityType": "t"}]}, "entities[0].observations", "is required"),
        (CreateEntities, {"entities": [{"name": 5, "entityType": "t", "observations": []}]}, "entities[0].name", "must be a string"),
        (CreateEntities, {"entities": [["A"]]}, "entities[0]", "must be an object"),
        (CreateEntities, {"entities": [{"name": "A", "entityType": "t", "observations": ["ok", 3]}]}, "entities[0].observations[1]", "string"),
        (CreateRelations, {"relations": [{"from": "A", "relationType": "r"}]}, "relations[0].to", "is required"),
        (AddObservations, {"observations": [{"entityName": "A", "contents": "text"}]}, "observations[0].contents", "must be an array"),
    ],
)
def test_parsing_raw_arguments_names_the_field(tool, raw, field: str, reason: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        tool.parse(raw)
    assert caught.value.field == field
    assert reason in caught.value.reason
