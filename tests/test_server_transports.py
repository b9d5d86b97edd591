"""`memlora serve` as a real process: stdio, MEMORY_FILE_PATH, streamable HTTP with a bearer token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from wire import free_port, wait_for_port

ENTITY = {"name": "Ana", "entityType": "person", "observations": ["likes jazz"]}


def serve_params(*args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "memlora.cli", "serve", *args], env={**os.environ, **(env or {})}
    )


async def create_and_read(params: StdioServerParameters) -> Any:
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.call_tool("create_entities", {"entities": [ENTITY]})
        return (await session.call_tool("read_graph", {})).structured_content


def test_stdio_serve_writes_the_named_store(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    graph = anyio.run(create_and_read, serve_params("--store", f"jsonl:{path}"))
    assert graph == {"entities": [ENTITY], "relations": []}
    assert path.read_text(encoding="utf-8") == (
        '{"type":"entity","name":"Ana","entityType":"person","observations":["likes jazz"]}'
    )


def test_memory_file_path_is_honoured_like_the_reference(tmp_path: Path) -> None:
    path = tmp_path / "from-env.jsonl"
    anyio.run(create_and_read, serve_params(env={"MEMORY_FILE_PATH": str(path)}))
    assert '"name":"Ana"' in path.read_text(encoding="utf-8")


@pytest.fixture
def http_server(tmp_path: Path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "memlora.cli", "serve", "--store", f"sqlite:{tmp_path / 'm.db'}", "--http", str(port)],
        env={**os.environ, "MEMLORA_TOKEN": "s3cret"},
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_http_requires_the_bearer_token(http_server: str) -> None:
    response = httpx2.post(http_server, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 401

    async def session_with_token() -> Any:
        async with (
            httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}, timeout=30) as http,
            streamable_http_client(http_server, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await session.call_tool("create_entities", {"entities": [ENTITY]})
            return (await session.call_tool("open_nodes", {"names": ["Ana"]})).structured_content

    assert anyio.run(session_with_token) == {"entities": [ENTITY], "relations": []}
