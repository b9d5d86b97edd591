"""Lock waits are bounded and name the holder; while one call waits the server answers the rest."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import store_url
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from wire import LockHolder, StdioServer

from memlora.store import open_store
from memlora.store.graph import Entity, StoreBusyError

ANA = {"name": "Ana", "entityType": "person", "observations": ["likes jazz"]}


def store_path(backend: str, folder: Path) -> Path:
    return Path(store_url(backend, folder).split(":", 1)[1])


def names(url: str) -> set[str]:
    with open_store(url) as store:
        return {e.name for e in store.read_graph().entities}


@pytest.mark.timeout(120)
def test_a_write_waits_at_most_lock_timeout_then_says_the_store_is_locked(backend: str, tmp_path: Path) -> None:
    url = store_url(backend, tmp_path)
    with open_store(url) as store:
        store.create_entities([Entity("Ana", "person", [])])
    with open_store(url, lock_timeout=0.5) as store, LockHolder(backend, store_path(backend, tmp_path)):
        with pytest.raises(StoreBusyError) as caught:
            store.create_entities([Entity("Bo", "city", [])])
    assert str(caught.value) == f"{store_path(backend, tmp_path)}: locked by another process for 0.5 s; gave up, nothing was changed"
    assert names(url) == {"Ana"}


@pytest.mark.timeout(180)
def test_pings_and_reads_are_answered_while_a_write_waits_for_the_lock(backend: str, tmp_path: Path) -> None:
    path = store_path(backend, tmp_path)
    with StdioServer("--store", store_url(backend, tmp_path)) as server:
        server.initialize()
        with LockHolder(backend, path) as holder:
            server.send_json(
                {"jsonrpc": "2.0", "id": "write", "method": "tools/call",
                 "params": {"name": "create_entities", "arguments": {"entities": [ANA]}}}
            )
            assert server.request("ping", "ping")["result"] == {}
            if backend == "sqlite":  # WAL lets reads through another process's write lock
                read = server.request("read", "tools/call", {"name": "read_graph", "arguments": {}})
                assert read["result"]["structuredContent"] == {"entities": [], "relations": []}
            assert "write" not in server.replies  # still waiting: the lock is held
            holder.release()
            written = server.wait_for("write")
    assert not written["result"].get("isError"), written
    assert names(store_url(backend, tmp_path)) == {"Ana"}


@pytest.mark.timeout(180)
def test_a_call_that_waits_too_long_is_a_tool_error_naming_the_store(backend: str, tmp_path: Path) -> None:
    url = store_url(backend, tmp_path)
    path = store_path(backend, tmp_path)
    open_store(url).close()
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "memlora.cli", "serve", "--store", url, "--lock-timeout", "1"], env=dict(os.environ)
    )

    async def run() -> Any:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            with LockHolder(backend, path), anyio.fail_after(60):
                return await session.call_tool("create_entities", {"entities": [ANA]})

    result = anyio.run(run)
    assert result.is_error
    assert result.content[0].text == f"{path}: locked by another process for 1 s; gave up, nothing was changed"
    assert names(url) == set()
