"""The memory-record MCP tools: off by default (the nine reference tools stay byte-identical), and
working through the real SDK client when turned on."""

from __future__ import annotations

import json
from typing import Any

import anyio
from mcp.client import Client

from memlora.records.manager import MemoryManager
from memlora.records.store import RecordStore
from memlora.server.app import build_server
from memlora.store import open_store

NINE = ["create_entities", "create_relations", "add_observations", "delete_entities", "delete_observations",
        "delete_relations", "read_graph", "search_nodes", "open_nodes"]


def _tools(records: Any = None) -> list[dict[str, Any]]:
    async def run() -> Any:
        async with Client(build_server(open_store("sqlite::memory:"), records=records)) as client:
            return (await client.list_tools()).tools

    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in anyio.run(run)]


def _call(records: Any, steps: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    async def run() -> list[Any]:
        async with Client(build_server(open_store("sqlite::memory:"), records=records)) as client:
            return [await client.call_tool(name, args) for name, args in steps]

    return anyio.run(run)


def test_off_by_default_and_the_nine_stay_byte_identical(minilm) -> None:
    plain = _tools()
    assert [t["name"] for t in plain] == NINE
    manager = MemoryManager(RecordStore(":memory:", minilm), None)
    with_records = _tools(manager)
    assert [t["name"] for t in with_records] == NINE + ["records_write", "records_recall", "records_purge"]
    assert json.dumps(with_records[:9], sort_keys=True) == json.dumps(plain, sort_keys=True)
    write = with_records[9]["inputSchema"]
    assert write["required"] == ["observation"] and write["additionalProperties"] is False
    assert with_records[11]["annotations"]["destructiveHint"] is True


def test_write_recall_purge_through_mcp(minilm) -> None:
    manager = MemoryManager(RecordStore(":memory:", minilm), None, mission="m-1")
    written, recalled, bad, purged, bad_purge = _call(manager, [
        ("records_write", {"observation": "saw a red ball on the table", "pose": {"x": 1.2, "y": 3.5, "yaw": 1.57}}),
        ("records_recall", {"question": "where did we see the red ball?", "k": 3}),
        ("records_write", {"observation": "saw a cup", "pose": {"x": 1, "y": 2, "yaw": 9}}),
        ("records_purge", {"older_than_seconds": 0, "mission": "m-2"}),
        ("records_purge", {"order": "newest", "max_total": 1}),
    ])
    record = written.structured_content["record"]
    assert not written.is_error and record["mission_id"] == "m-1" and record["pose"]["yaw"] == 1.57
    assert recalled.structured_content["citations"] == [{"n": 1, "id": record["id"]}]
    assert json.loads(recalled.content[0].text)["answer"].endswith("[1].")
    assert bad.is_error and "pose.yaw" in bad.content[0].text
    assert purged.structured_content["deleted"] == []  # another mission: nothing of m-1 goes
    assert bad_purge.is_error and "order" in bad_purge.content[0].text
    assert manager.store.count() == 1
