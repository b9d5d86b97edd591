"""The nine operations on both backends: the reference semantics plus memlora's documented ones."""

from __future__ import annotations

import pytest

from memlora.store import MemoryStore, open_store
from memlora.store.graph import (
    AddedObservations,
    Entity,
    EntityNotFoundError,
    KnowledgeGraph,
    ObservationAddition,
    ObservationDeletion,
    Relation,
)


def seed(store: MemoryStore) -> None:
    store.create_entities(
        [
            Entity("Alice", "person", ["likes green tea", "works remotely"]),
            Entity("Bob", "person", ["plays Chess"]),
            Entity("Paris", "city", []),
        ]
    )
    store.create_relations([Relation("Alice", "Bob", "knows"), Relation("Bob", "Paris", "lives_in")])


def names(graph: KnowledgeGraph) -> list[str]:
    return [e.name for e in graph.entities]


def test_create_entities_skips_existing_names_and_returns_only_new(store: MemoryStore) -> None:
    seed(store)
    added = store.create_entities([Entity("Alice", "robot", ["x"]), Entity("Carol", "person", [])])
    assert added == [Entity("Carol", "person", [])]
    graph = store.read_graph()
    assert names(graph) == ["Alice", "Bob", "Paris", "Carol"]
    assert graph.entities[0] == Entity("Alice", "person", ["likes green tea", "works remotely"])


def test_duplicates_inside_one_batch_are_collapsed(store: MemoryStore) -> None:
    added = store.create_entities([Entity("A", "t", ["o", "o"]), Entity("A", "u", ["p"])])
    assert added == [Entity("A", "t", ["o"])]
    store.create_entities([Entity("B", "t", [])])
    assert store.create_relations([Relation("A", "B", "r"), Relation("A", "B", "r")]) == [Relation("A", "B", "r")]
    assert store.add_observations([ObservationAddition("B", ["n", "n"])]) == [AddedObservations("B", ["n"])]
    assert store.read_graph().to_dict() == {
        "entities": [
            {"name": "A", "entityType": "t", "observations": ["o"]},
            {"name": "B", "entityType": "t", "observations": ["n"]},
        ],
        "relations": [{"from": "A", "to": "B", "relationType": "r"}],
    }


def test_relations_dedup_by_full_triple(store: MemoryStore) -> None:
    seed(store)
    added = store.create_relations([Relation("Alice", "Bob", "knows"), Relation("Alice", "Bob", "likes")])
    assert added == [Relation("Alice", "Bob", "likes")]
    assert len(store.read_graph().relations) == 3


def test_relation_to_missing_entity_is_rejected_and_writes_nothing(store: MemoryStore) -> None:
    seed(store)
    before = store.read_graph()
    with pytest.raises(EntityNotFoundError, match="Entity with name Zoe not found") as caught:
        store.create_relations([Relation("Alice", "Paris", "visited"), Relation("Alice", "Zoe", "knows")])
    assert caught.value.name == "Zoe"
    assert store.read_graph() == before


def test_add_observations_appends_only_new_text(store: MemoryStore) -> None:
    seed(store)
    result = store.add_observations(
        [ObservationAddition("Alice", ["likes green tea", "owns a cat"]), ObservationAddition("Alice", ["owns a cat"])]
    )
    assert result == [AddedObservations("Alice", ["owns a cat"]), AddedObservations("Alice", [])]
    assert store.open_nodes(["Alice"]).entities[0].observations == ["likes green tea", "works remotely", "owns a cat"]


def test_add_observations_to_missing_entity_fails_whole_batch(store: MemoryStore) -> None:
    seed(store)
    before = store.read_graph()
    with pytest.raises(EntityNotFoundError, match="^Entity with name Nobody not found$"):
        store.add_observations([ObservationAddition("Bob", ["new"]), ObservationAddition("Nobody", ["x"])])
    assert store.read_graph() == before


def test_delete_entities_cascades_and_ignores_unknown(store: MemoryStore) -> None:
    seed(store)
    store.delete_entities(["Bob", "Nobody"])
    graph = store.read_graph()
    assert names(graph) == ["Alice", "Paris"]
    assert graph.relations == []


def test_delete_observations_and_relations_ignore_missing(store: MemoryStore) -> None:
    seed(store)
    store.delete_observations(
        [ObservationDeletion("Alice", ["works remotely", "never said"]), ObservationDeletion("Nobody", ["x"])]
    )
    store.delete_relations([Relation("Alice", "Bob", "knows"), Relation("Alice", "Bob", "hates")])
    graph = store.read_graph()
    assert graph.entities[0].observations == ["likes green tea"]
    assert graph.relations == [Relation("Bob", "Paris", "lives_in")]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("chess", ["Bob"]),  # observation, case-insensitive
        ("PERSON", ["Alice", "Bob"]),  # entity type
        ("ali", ["Alice"]),  # name substring
        ("e", ["Alice", "Bob"]),  # shorter than a trigram: still exact
        ("", ["Alice", "Bob", "Paris"]),  # the empty string is in every string, as in the reference
        ("green tea", ["Alice"]),
        ("tea works", []),  # never matches across two observations
        ("nothing here", []),
    ],
)
def test_search_nodes_is_case_insensitive_substring(store: MemoryStore, query: str, expected: list[str]) -> None:
    seed(store)
    assert names(store.search_nodes(query)) == expected


def test_search_and_open_return_relations_touching_the_result(store: MemoryStore) -> None:
    seed(store)
    assert store.search_nodes("paris").relations == [Relation("Bob", "Paris", "lives_in")]
    opened = store.open_nodes(["Alice", "Ghost"])
    assert names(opened) == ["Alice"]
    assert opened.relations == [Relation("Alice", "Bob", "knows")]
    assert store.open_nodes(["Bob"]).relations == [Relation("Alice", "Bob", "knows"), Relation("Bob", "Paris", "lives_in")]


def test_search_handles_quotes_and_fts_syntax(store: MemoryStore) -> None:
    store.create_entities([Entity('say "hi" AND NOT', "t", ["a*b (c)"])])
    assert names(store.search_nodes('"HI" and')) == ['say "hi" AND NOT']
    assert names(store.search_nodes("a*b (")) == ['say "hi" AND NOT']


def test_unicode_case_folding_matches_python_lower(store: MemoryStore) -> None:
    store.create_entities([Entity("Ärztin Müller", "PERSON", ["ΣΟΦΙΑ studies"])])
    assert names(store.search_nodes("ärzt")) == ["Ärztin Müller"]
    assert names(store.search_nodes("σοφ")) == ["Ärztin Müller"]


def test_insertion_order_survives_deletes_and_reinserts(store: MemoryStore) -> None:
    store.create_entities([Entity(n, "t", []) for n in "ABC"])
    store.delete_entities(["C"])
    store.create_entities([Entity("D", "t", []), Entity("C", "t", [])])
    assert names(store.read_graph()) == ["A", "B", "D", "C"]


def test_data_persists_across_reopen(url: str, store: MemoryStore) -> None:
    seed(store)
    store.close()
    with open_store(url) as again:
        assert names(again.read_graph()) == ["Alice", "Bob", "Paris"]


def test_memory_sqlite_url() -> None:
    with open_store("sqlite::memory:") as store:
        seed(store)
        assert names(store.search_nodes("city")) == ["Paris"]


@pytest.mark.parametrize("url", ["nosuch:x", "sqlite:", "memory"])
def test_bad_store_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="store"):
        open_store(url)
