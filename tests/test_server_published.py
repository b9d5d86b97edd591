"""What the server publishes stays exactly what it published before: tools/list, resources/list and
the capabilities, compared with a committed snapshot (tests/data/mcp-listing.json).

The snapshot was taken from `memlora serve --records` over stdio before the server moved from
`MCPServer` (whose registered tools memlora patched) to the SDK's low-level server with explicit
tool definitions. It is compared as JSON text in the order the server wrote it, so a changed key,
value or order fails; so does an SDK upgrade that would reshape what is published.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from mcp.client import Client
from wire import StdioServer

from memlora.server.app import build_server
from memlora.store import open_store

SNAPSHOT = json.loads((Path(__file__).parent / "data" / "mcp-listing.json").read_text(encoding="utf-8"))


def as_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def test_stdio_publishes_the_snapshot_byte_for_byte(tmp_path: Path) -> None:
    # MEMORY_BACKEND=skip: the records tools without a records store or a model
    with StdioServer("--store", f"sqlite:{tmp_path / 'm.db'}", "--records", env={"MEMORY_BACKEND": "skip"}) as server:
        server.initialize()
        capabilities = server.replies["init"]["result"]["capabilities"]
        tools = server.request(1, "tools/list")["result"]
        resources = server.request(2, "resources/list")["result"]
    assert as_text(tools) == as_text(SNAPSHOT["tools/list"])
    assert as_text(resources) == as_text(SNAPSHOT["resources/list"])
    assert as_text(capabilities) == as_text(SNAPSHOT["capabilities"])


def test_without_records_the_nine_reference_tools_are_listed_unchanged() -> None:
    async def run() -> Any:
        async with Client(build_server(open_store("sqlite::memory:")), mode="legacy") as client:
            return (await client.list_tools()).tools

    listed = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in anyio.run(run)]
    assert listed == SNAPSHOT["tools/list"]["tools"][:9]
