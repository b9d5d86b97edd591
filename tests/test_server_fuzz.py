"""Arbitrary bytes and JSON against real servers: every request with an id is answered, nothing stored changes.

The stdio server is a subprocess fed raw lines; the HTTP server is a subprocess on 127.0.0.1
fed raw POST bodies. Requests are random JSON-RPC envelopes around random arguments, some
poisoned the ways the SDK's JSON reader refuses (a lone surrogate, nesting past 200 levels,
a line cut short after its id), mixed with random bytes. Writing tools only ever get
arguments that cannot be valid, and deletes name nothing that is stored, so the store must
come out byte for byte as it went in. Bounded: MEMLORA_FUZZ_EXAMPLES examples per transport
(default 25) and a pytest timeout; the only timing check is a generous bound on "a reply came".
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire import PROTOCOL_VERSION, StdioServer, free_port, wait_for_port

from memlora.store import open_store
from memlora.store.graph import Entity, Relation

EXAMPLES = int(os.environ.get("MEMLORA_FUZZ_EXAMPLES", "25"))
REPLY_BOUND_S = float(os.environ.get("MEMLORA_FUZZ_REPLY_S", "60"))  # generous: only "a reply came at all" is checked

# Names no generated string will hit, so random deletes change nothing.
SEED_ENTITIES = [Entity("Ana ✓ seed-1", "person", ["likes jazz"]), Entity("Bo ✓ seed-2", "city", [])]
SEED_RELATION = Relation("Ana ✓ seed-1", "Bo ✓ seed-2", "lives_in")

READ_TOOLS = ["read_graph", "search_nodes", "open_nodes", "delete_entities", "delete_observations", "delete_relations"]
WRITE_TOOLS = ["create_entities", "create_relations", "add_observations"]
PROPERTY_NAMES = [
    "entities", "relations", "observations", "entityNames", "deletions", "query", "names", "name",
    "entityType", "from", "to", "relationType", "entityName", "contents",
]
LONE_SURROGATES = ["\ud83d", "\ude00", "\udbff", "\udc00"]

ids = itertools.count(1)

texts = st.one_of(
    st.text(max_size=12),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=4), st.sampled_from(LONE_SURROGATES), st.text(max_size=4)),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), texts)


def json_values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=3)),
        max_leaves=12,
    )


pool_keys = st.one_of(st.sampled_from(PROPERTY_NAMES), texts)
# Keys never in the schemas: whatever a writing tool gets under them cannot be a valid argument.
odd_keys = texts.filter(lambda key: key not in PROPERTY_NAMES)


DEEP = "<the deeply nested value>"


@st.composite
def requests(draw: st.DrawFn) -> tuple[int, bytes]:
    """One JSON-RPC request line with a fresh id, possibly poisoned; the id always comes first."""
    method = draw(st.sampled_from(["ping", "tools/list", "tools/call", "resources/list", "resources/read", "no/such"]))
    params: Any
    if method == "tools/call":
        if draw(st.booleans()):
            name = draw(st.sampled_from(READ_TOOLS))
            arguments = draw(st.dictionaries(pool_keys, json_values(pool_keys), max_size=3))
        else:
            name = draw(st.sampled_from(WRITE_TOOLS))
            arguments = draw(st.dictionaries(odd_keys, json_values(odd_keys), max_size=3))
        params = {"name": name, "arguments": arguments}
    elif method == "resources/read":
        params = {"uri": draw(st.one_of(st.just("memory://knowledge-graph"), texts))}
    else:
        params = draw(st.one_of(st.none(), json_values(pool_keys)))
    poison = draw(st.sampled_from(["none", "surrogate", "deep", "cut"]))
    deep = ""
    if poison == "surrogate":
        params = {"p": params, "s": draw(st.sampled_from(LONE_SURROGATES))}
    elif poison == "deep":  # spliced in as text: json.dumps itself stops near 1000 levels
        depth = draw(st.integers(200, 3000))
        deep = "[" * depth + json.dumps(params) + "]" * depth
        params = {"p": DEEP}
    ident = next(ids)
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": ident, "method": method}
    if params is not None:
        message["params"] = params
    line = json.dumps(message)  # ASCII, lone surrogates as \\uXXXX escapes
    if deep:
        line = line.replace(json.dumps(DEEP), deep)
    if poison == "cut":
        after_id = line.index(f'"id": {ident}') + len(f'"id": {ident}')
        line = line[: draw(st.integers(after_id, len(line) - 1))]
    return ident, line.encode()


garbage = st.binary(max_size=200).map(lambda data: data.replace(b"\n", b" "))
batches = st.lists(st.one_of(requests(), garbage.map(lambda data: (None, data))), min_size=1, max_size=5)


def seed(url: str) -> None:
    with open_store(url) as store:
        store.create_entities(SEED_ENTITIES)
        store.create_relations([SEED_RELATION])


# -- stdio ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stdio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StdioServer, Path]]:
    path = tmp_path_factory.mktemp("fuzz-stdio") / "memory.jsonl"
    seed(f"jsonl:{path}")
    with StdioServer("--store", f"jsonl:{path}") as server:
        server.initialize()
        yield server, path


@pytest.mark.timeout(600)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=batches)
def test_stdio_answers_every_request_and_changes_nothing(stdio: tuple[StdioServer, Path], batch: list[tuple[int | None, bytes]]) -> None:
    server, path = stdio
    before = path.read_bytes()
    for _, line in batch:
        server.send(line)
    for ident, _ in batch:
        if ident is not None:
            reply = server.wait_for(ident, timeout=REPLY_BOUND_S)
            assert ("result" in reply) != ("error" in reply), reply
    ping = next(ids)
    assert server.request(ping, "ping")["result"] == {}
    assert server.process.poll() is None
    assert path.read_bytes() == before


# -- streamable HTTP ------------------------------------------------------------------------------


def graph_rows(path: Path) -> tuple[list[Any], list[Any]]:
    with sqlite3.connect(path) as db:
        return (
            db.execute("SELECT name, entity_type, observations FROM entities ORDER BY id").fetchall(),
            db.execute("SELECT source, target, relation_type FROM relations ORDER BY id").fetchall(),
        )


class HttpSession:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx2.Client(timeout=REPLY_BOUND_S)
        self.headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        response = self.post(
            json.dumps(
                {
                    "jsonrpc": "2.0", "id": 0, "method": "initialize",
                    "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}},
                }
            ).encode()
        )
        assert response.status_code == 200, response.text
        session = response.headers.get("mcp-session-id")
        if session:
            self.headers["mcp-session-id"] = session
        self.headers["mcp-protocol-version"] = PROTOCOL_VERSION
        self.post(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')

    def post(self, body: bytes) -> httpx2.Response:
        return self.client.post(self.url, content=body, headers=self.headers)


def replies_in(response: httpx2.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages in a JSON or server-sent-events body."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
    return [json.loads(response.text)] if response.text.strip() else []


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpSession, Path]]:
    path = tmp_path_factory.mktemp("fuzz-http") / "memory.db"
    seed(f"sqlite:{path}")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "memlora.cli", "serve", "--store", f"sqlite:{path}", "--http", str(port)],
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, process)
        yield HttpSession(f"http://127.0.0.1:{port}/mcp"), path
        assert process.poll() is None, "the HTTP server died"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.timeout(600)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=batches)
def test_http_answers_every_request_and_changes_nothing(http: tuple[HttpSession, Path], batch: list[tuple[int | None, bytes]]) -> None:
    session, path = http
    before = graph_rows(path)
    for ident, body in batch:
        response = session.post(body)  # raises if no answer comes within the bound
        assert response.status_code < 500, (response.status_code, response.text[:500])
        if ident is None:
            continue
        messages = replies_in(response)
        if response.status_code == 200:
            assert [m["id"] for m in messages if "id" in m] == [ident], messages
        else:  # refused before the id was read: a JSON-RPC error, as the SDK's client expects
            assert response.status_code in (400, 404), response.status_code
            assert messages and "error" in messages[-1], response.text[:500]
    assert session.post(json.dumps({"jsonrpc": "2.0", "id": next(ids), "method": "ping"}).encode()).status_code == 200
    assert graph_rows(path) == before
