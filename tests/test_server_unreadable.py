"""Requests the SDK's JSON reader refuses still get an answer over stdio, and change nothing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from wire import StdioServer

SEED = '{"type":"entity","name":"Ana","entityType":"person","observations":["likes jazz"]}'


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def search_line(ident: Any, query_json: str) -> bytes:
    return (
        '{"jsonrpc":"2.0","id":' + json.dumps(ident) + ',"method":"tools/call",'
        '"params":{"name":"search_nodes","arguments":{"query":' + query_json + "}}}"
    ).encode()


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    path = tmp_path / "memory.jsonl"
    path.write_text(SEED, encoding="utf-8")
    return path


def test_half_an_emoji_gets_an_error_reply_naming_the_field(seeded: Path) -> None:
    with StdioServer("--store", f"jsonl:{seeded}") as server:
        server.initialize()
        server.send(search_line(7, '"\\ud83d"'))
        assert server.request(8, "ping")["result"] == {}
        reply = server.wait_for(7)
        server.close()
    assert reply["error"]["code"] == -32700
    assert "params.arguments.query" in reply["error"]["message"]
    assert "surrogate" in reply["error"]["message"]
    assert b"unreadable message (id 7" in server.stderr
    assert seeded.read_text(encoding="utf-8") == SEED


@pytest.mark.parametrize(
    ("line", "ident", "code", "text"),
    [
        (search_line(9, json.dumps(nested(250))), 9, -32700, "params.arguments.query[0][0][0][0][0]"),
        # deeper than Python's own parser goes: the id is found by scanning the top level
        (search_line("deep", "[" * 5000 + "]" * 5000), "deep", -32700, "deeper than 200 levels"),
        (b'{"jsonrpc":"2.0","id":11,"method":"ping",', 11, -32700, "not valid JSON"),
        (b'{"jsonrpc":"2.0","id":12}', 12, -32600, "method: Field required"),
        (b'{"jsonrpc":"1.0","id":13,"method":"ping"}', 13, -32600, "jsonrpc"),
    ],
    ids=["250-levels", "5000-levels", "cut-short", "no-method", "wrong-version"],
)
def test_every_unreadable_request_with_an_id_is_answered(
    seeded: Path, line: bytes, ident: Any, code: int, text: str
) -> None:
    with StdioServer("--store", f"jsonl:{seeded}") as server:
        server.initialize()
        server.send(line)
        reply = server.wait_for(ident)
        assert server.request("after", "ping")["result"] == {}  # still serving
    assert reply["error"]["code"] == code
    assert text in reply["error"]["message"]
    assert seeded.read_text(encoding="utf-8") == SEED


def test_lines_without_a_usable_id_get_a_null_id_reply_or_none(seeded: Path) -> None:
    with StdioServer("--store", f"jsonl:{seeded}") as server:
        server.initialize()
        server.send(b"[1, 2]")  # not an object: Invalid Request, id null
        server.send(b"\xff\xfe garbage")  # not JSON at all: Parse error, id null
        server.send(b'{"jsonrpc":"2.0","method":"notifications/x","params":{"a":"\\udc00"}}')  # a notification: no reply
        assert server.request(1, "ping")["result"] == {}
    codes = sorted(reply["error"]["code"] for reply in server.null_replies)
    assert codes == [-32700, -32600]


def test_official_client_gets_an_error_instead_of_waiting_forever(seeded: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "memlora.cli", "serve", "--store", f"jsonl:{seeded}"], env=dict(os.environ)
    )

    async def run() -> str:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            with anyio.fail_after(60):  # generous: only "a reply came at all" is checked
                try:
                    await session.call_tool("search_nodes", {"query": nested(240)})
                except MCPError as error:
                    return str(error)
            raise AssertionError("a 240-level argument was accepted")

    assert "nests deeper than 200 levels" in anyio.run(run)
    assert seeded.read_text(encoding="utf-8") == SEED
