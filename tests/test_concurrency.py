"""Concurrent writers lose nothing: many calls to one server, and two servers sharing one store."""

from __future__ import annotations

import os
import sys

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from memlora.store import open_store


def server(url: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "memlora.cli", "serve", "--store", url], env=dict(os.environ))


async def create_concurrently(url: str, prefix: str, count: int) -> None:
    """Opens one session and fires `count` create_entities calls at once."""
    async with stdio_client(server(url)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()

        async def create(i: int) -> None:
            entity = {"name": f"{prefix}{i}", "entityType": "item", "observations": [f"number {i}"]}
            result = await session.call_tool("create_entities", {"entities": [entity]})
            assert not result.is_error, result.content

        async with anyio.create_task_group() as group:
            for i in range(count):
                group.start_soon(create, i)


def stored_names(url: str) -> set[str]:
    with open_store(url) as store:
        return {e.name for e in store.read_graph().entities}


def test_twenty_concurrent_calls_to_one_server_all_survive(url: str) -> None:
    anyio.run(create_concurrently, url, "E", 20)
    assert stored_names(url) == {f"E{i}" for i in range(20)}


def test_two_server_processes_sharing_one_store_keep_all_writes(url: str) -> None:
    async def both() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(create_concurrently, url, "A", 10)
            group.start_soon(create_concurrently, url, "B", 10)

    anyio.run(both)
    assert stored_names(url) == {f"A{i}" for i in range(10)} | {f"B{i}" for i in range(10)}
