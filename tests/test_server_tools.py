"""The MCP server through the real SDK client: tool list, results, errors, the resource."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from mcp.client import Client

from memlora.server.app import build_server
from memlora.store import MemoryStore, open_store

TOOL_NAMES = {
    "create_entities", "create_relations", "add_observations", "delete_entities", "delete_observations",
    "delete_relations", "read_graph", "search_nodes", "open_nodes",
}


def call(store: MemoryStore, steps: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Runs tool calls in order through an in-memory MCP session; returns the results."""

    async def run() -> list[Any]:
        async with Client(build_server(store)) as client:
            return [await client.call_tool(name, args) for name, args in steps]

    return anyio.run(run)


def test_lists_the_nine_tools_with_reference_shapes() -> None:
    async def run() -> Any:
        async with Client(build_server(open_store("sqlite::memory:"))) as client:
            return (await client.list_tools()).tools

    tools = {t.name: t for t in anyio.run(run)}
    assert set(tools) == TOOL_NAMES
    create = tools["create_entities"].input_schema
    item = create["properties"]["entities"]["items"]
    assert create["required"] == ["entities"]
    assert item["required"] == ["name", "entityType", "observations"]
    assert tools["create_relations"].input_schema["properties"]["relations"]["items"]["required"] == ["from", "to", "relationType"]
    assert tools["delete_entities"].input_schema["required"] == ["entityNames"]
    assert tools["search_nodes"].input_schema["required"] == ["query"]
    assert tools["read_graph"].input_schema["properties"] == {}
    assert tools["read_graph"].annotations.read_only_hint is True
    assert tools["delete_entities"].annotations.destructive_hint is True
    assert tools["open_nodes"].output_schema["required"] == ["entities", "relations"]


def test_results_are_pretty_json_plus_structured_content(store: MemoryStore) -> None:
    created, message, searched = call(
        store,
        [
            ("create_entities", {"entities": [{"name": "Ana", "entityType": "person", "observations": ["likes jazz"]}]}),
            ("delete_entities", {"entityNames": ["nobody"]}),
            ("search_nodes", {"query": "JAZZ"}),
        ],
    )
    added = [{"name": "Ana", "entityType": "person", "observations": ["likes jazz"]}]
    assert created.content[0].text == json.dumps(added, indent=2)
    assert created.structured_content == {"entities": added}
    assert message.content[0].text == "Entities deleted successfully"
    assert message.structured_content == {"success": True, "message": "Entities deleted successfully"}
    assert searched.structured_content == {"entities": added, "relations": []}
    assert not searched.is_error


@pytest.mark.parametrize(
    ("name", "args", "text"),
    [
        ("add_observations", {"observations": [{"entityName": "Zed", "contents": ["x"]}]}, "Entity with name Zed not found"),
        ("create_relations", {"relations": [{"from": "Ana", "to": "Zed", "relationType": "knows"}]}, "Entity with name Zed not found"),
        ("create_entities", {"entities": [{"name": "", "entityType": "t", "observations": []}]}, "entities[0].name: must not be empty"),
        ("create_entities", {"entities": [{"name": "B", "entityType": "t"}]}, "entities[0].observations: is required"),
        ("create_entities", {}, "entities: is required"),
        ("open_nodes", {"names": "Ana"}, "names: must be an array"),
    ],
)
def test_errors_are_tool_errors_that_name_the_problem(store: MemoryStore, name: str, args: dict[str, Any], text: str) -> None:
    seed = ("create_entities", {"entities": [{"name": "Ana", "entityType": "person", "observations": ["keep"]}]})
    _, result, graph = call(store, [seed, (name, args), ("read_graph", {})])
    assert result.is_error
    assert result.content[0].text.startswith(text)
    assert graph.structured_content["entities"] == [{"name": "Ana", "entityType": "person", "observations": ["keep"]}]


def test_search_query_that_looks_like_json_stays_text(store: MemoryStore) -> None:
    _, result = call(
        store,
        [
            ("create_entities", {"entities": [{"name": "flag", "entityType": "t", "observations": ["is true"]}]}),
            ("search_nodes", {"query": "true"}),
        ],
    )
    assert [e["name"] for e in result.structured_content["entities"]] == ["flag"]


def test_wrong_query_type_is_an_error_naming_query(store: MemoryStore) -> None:
    (result,) = call(store, [("search_nodes", {"query": 5})])
    assert result.is_error and "query" in result.content[0].text


def test_knowledge_graph_resource(store: MemoryStore) -> None:
    async def run() -> Any:
        async with Client(build_server(store)) as client:
            await client.call_tool("create_entities", {"entities": [{"name": "A", "entityType": "t", "observations": []}]})
            listed = (await client.list_resources()).resources
            return listed, await client.read_resource("memory://knowledge-graph")

    listed, read = anyio.run(run)
    assert [str(r.uri) for r in listed] == ["memory://knowledge-graph"]
    assert read.contents[0].mime_type == "application/json"
    assert json.loads(read.contents[0].text) == {
        "entities": [{"name": "A", "entityType": "t", "observations": []}],
        "relations": [],
    }


def test_an_array_sent_as_json_text_is_read_but_a_query_stays_text(store: MemoryStore) -> None:
    # Some clients send array arguments as JSON text; the server reads them as the SDK's tool layer did.
    created, searched = call(
        store,
        [
            ("create_entities", {"entities": json.dumps([{"name": "null", "entityType": "t", "observations": []}])}),
            ("search_nodes", {"query": "null"}),
        ],
    )
    assert not created.is_error and created.structured_content["entities"][0]["name"] == "null"
    assert [e["name"] for e in searched.structured_content["entities"]] == ["null"]


def test_unknown_tools_and_bugs_are_tool_errors_without_internals(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug() -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(store, "read_graph", bug)
    unknown, broken = call(store, [("no_such_tool", {}), ("read_graph", {})])
    assert unknown.is_error and unknown.content[0].text == "Unknown tool: no_such_tool"
    assert broken.is_error and broken.content[0].text == "Error executing tool read_graph"
