"""NUL and invisible characters: searches that contain NUL work, names made only of invisible characters are refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client

from memlora.server.app import build_server
from memlora.store import MemoryStore, open_store
from memlora.store.graph import Entity, InvalidInputError, ObservationAddition, Relation

NUL_TEXT = "a\x00bcdef, and after the NUL: plain text"


@pytest.mark.parametrize("query", ["bcd", "PLAIN TEXT", "a\x00b", "\x00bcd", "a\x00bcdef", "\x00"])
def test_search_finds_text_around_a_nul(store: MemoryStore, query: str) -> None:
    store.create_entities([Entity("Ana", "person", [NUL_TEXT]), Entity("Bo", "city", ["nothing here"])])
    assert [e.name for e in store.search_nodes(query).entities] == ["Ana"]


def test_search_for_a_missing_text_with_nul_finds_nothing(store: MemoryStore) -> None:
    store.create_entities([Entity("Ana", "person", [NUL_TEXT])])
    assert store.search_nodes("zz\x00zz").entities == []


def test_a_database_indexed_by_an_earlier_version_is_reindexed(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    with open_store(f"sqlite:{path}") as store:
        store.create_entities([Entity("Ana", "person", [NUL_TEXT])])
    with sqlite3.connect(path) as db:  # as earlier versions left it: the body cut at the NUL
        db.execute("UPDATE entity_text SET body = ?", (f"ana\x1fperson\x1f{NUL_TEXT}".lower(),))
        db.execute("PRAGMA user_version = 0")
    with open_store(f"sqlite:{path}") as store:
        assert [e.name for e in store.search_nodes("plain text").entities] == ["Ana"]


INVISIBLE = ["\u200b", "\x00", "\u200b\u200c\u200d", "\ufeff", "\u3164", " \u200b\t"]


@pytest.mark.parametrize("name", INVISIBLE, ids=[f"{ord(n[0]):04x}x{len(n)}" for n in INVISIBLE])
def test_names_of_only_invisible_characters_are_refused(store: MemoryStore, name: str) -> None:
    store.create_entities([Entity("Ana", "person", [])])
    attempts: list[tuple[Any, str]] = [
        (lambda: store.create_entities([Entity(name, "person", [])]), "entities[0].name"),
        (lambda: store.create_entities([Entity("Bo", name, [])]), "entities[0].entityType"),
        (lambda: store.create_entities([Entity("Bo", "city", ["ok", name])]), "entities[0].observations[1]"),
        (lambda: store.create_relations([Relation("Ana", "Ana", name)]), "relations[0].relationType"),
        (lambda: store.add_observations([ObservationAddition("Ana", [name])]), "observations[0].contents[0]"),
    ]
    for attempt, field in attempts:
        with pytest.raises(InvalidInputError) as caught:
            attempt()
        assert caught.value.field == field
        assert "visible" in str(caught.value) or "must not be empty" in str(caught.value)
    assert [e.name for e in store.read_graph().entities] == ["Ana"]
    assert store.read_graph().entities[0].observations == []


def test_visible_names_with_invisible_characters_inside_are_kept(store: MemoryStore) -> None:
    names = ["Ana\u200b", "Bo\x00", "e\u0301", "🙂"]
    store.create_entities([Entity(n, "person", []) for n in names])
    assert [e.name for e in store.read_graph().entities] == names


def test_through_mcp_the_error_names_the_field_and_the_characters(store: MemoryStore) -> None:
    async def run() -> Any:
        async with Client(build_server(store)) as client:
            refused = await client.call_tool(
                "create_entities", {"entities": [{"name": "\u200b", "entityType": "person", "observations": []}]}
            )
            searched = await client.call_tool("search_nodes", {"query": "x\x00yz"})
            return refused, searched

    refused, searched = anyio.run(run)
    assert refused.is_error
    assert refused.content[0].text == "entities[0].name: must contain a visible character, not only invisible ones (U+200B)"
    assert not searched.is_error and searched.structured_content == {"entities": [], "relations": []}
