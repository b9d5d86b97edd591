"""memlora against the real reference memory server, on the same random sequences of tool calls.

The reference (`@modelcontextprotocol/server-memory` from npm) and memlora (SQLite and JSONL)
run as stdio servers; hypothesis generates sequences of the nine tools, each call goes to every
server, and results (isError, text, structured content), the final graphs and the JSONL files
must agree. The one documented difference the generator reaches, a relation naming a missing
entity, is checked on its own terms: memlora must refuse it naming the entity, and it is not
sent to the reference. The generator keeps names unique inside one batch and strings
non-empty, so the other documented differences (in-batch dedup, input limits) never arise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from memlora.store.memory import GraphState
from memlora.store.tools import CreateEntities, CreateRelations

pytestmark = pytest.mark.node

# Kept small so the suite stays quick on a 2-core box; raise it for a deeper run.
EXAMPLES = int(os.environ.get("MEMLORA_CONFORMANCE_EXAMPLES", "25"))

REFERENCE_PACKAGE = "@modelcontextprotocol/server-memory"
REFERENCE_VERSION = "2026.8.31"  # the release this conformance was written against


def reference_entry_point() -> Path:
    """Installs the reference server once into the user cache folder and returns its script."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("npm/node not installed: cannot run the reference memory server")
    cache = Path(os.environ.get("MEMLORA_CACHE", Path.home() / ".cache" / "memlora")) / "reference-server"
    script = cache / "node_modules" / REFERENCE_PACKAGE / "dist" / "index.js"
    if not script.exists():
        cache.mkdir(parents=True, exist_ok=True)
        install = subprocess.run(
            [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", f"{REFERENCE_PACKAGE}@{REFERENCE_VERSION}"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if install.returncode != 0 or not script.exists():
            pytest.skip(f"npm could not install {REFERENCE_PACKAGE}: {install.stderr.strip()[-500:]}")
    return script


class Servers:
    """Open MCP sessions to the reference and to memlora, driven from synchronous test code."""

    def __init__(self, portal: BlockingPortal, sessions: dict[str, ClientSession], files: dict[str, Path]) -> None:
        self.portal = portal
        self.sessions = sessions
        self.files = files

    def call(self, server: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
        result = self.portal.call(self.sessions[server].call_tool, name, args)
        return {
            "isError": bool(result.is_error),
            "text": [block.text for block in result.content],
            "structured": result.structured_content,
        }


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    script = reference_entry_point()
    folder = tmp_path_factory.mktemp("conformance")
    files = {"reference": folder / "reference.jsonl", "jsonl": folder / "memlora.jsonl"}
    params = {
        "reference": StdioServerParameters(
            command="node", args=[str(script)], env={**os.environ, "MEMORY_FILE_PATH": str(files["reference"])}
        ),
        "sqlite": StdioServerParameters(
            command=sys.executable, args=["-m", "memlora.cli", "serve", "--store", f"sqlite:{folder / 'm.db'}"], env=dict(os.environ)
        ),
        "jsonl": StdioServerParameters(
            command=sys.executable, args=["-m", "memlora.cli", "serve", "--store", f"jsonl:{files['jsonl']}"], env=dict(os.environ)
        ),
    }
    with start_blocking_portal() as portal:
        sessions = {}
        contexts = []
        try:
            for name, param in params.items():
                streams = portal.wrap_async_context_manager(stdio_client(param, errlog=open(os.devnull, "w")))
                read, write = streams.__enter__()
                contexts.append(streams)
                session_cm = portal.wrap_async_context_manager(ClientSession(read, write))
                session = session_cm.__enter__()
                contexts.append(session_cm)
                portal.call(session.initialize)
                sessions[name] = session
            yield Servers(portal, sessions, files)
        finally:
            for context in reversed(contexts):
                context.__exit__(None, None, None)


# -- the generator: small pools so that calls collide with each other often ---------------------

NAMES = ["alice", "Bob", "carol", "DAVE", "Élodie"]
TYPES = ["person", "City", "pet"]
TEXTS = ["likes tea", "Lives in Paris", "has a dog", "TEA lover", "born 1990", "speaks Français"]
RELATION_TYPES = ["knows", "lives_in", "Owns"]
QUERIES = ["", "a", "bo", "TEA", "paris", "person", "city", "ç", "dog", "xyz", "ALICE"]

names = st.sampled_from(NAMES)
texts = st.lists(st.sampled_from(TEXTS), unique=True, max_size=3)
relations = st.builds(lambda f, t, r: {"from": f, "to": t, "relationType": r}, names, names, st.sampled_from(RELATION_TYPES))

calls = st.one_of(
    st.builds(
        lambda batch: ("create_entities", {"entities": batch}),
        st.lists(
            st.builds(lambda n, t, o: {"name": n, "entityType": t, "observations": o}, names, st.sampled_from(TYPES), texts),
            min_size=1, max_size=3, unique_by=lambda e: e["name"],
        ),
    ),
    st.builds(
        lambda batch: ("create_relations", {"relations": batch}),
        st.lists(relations, min_size=1, max_size=3, unique_by=lambda r: tuple(r.values())),
    ),
    st.builds(
        lambda batch: ("add_observations", {"observations": batch}),
        st.lists(st.builds(lambda n, c: {"entityName": n, "contents": c}, names, texts), min_size=1, max_size=2),
    ),
    st.builds(lambda batch: ("delete_entities", {"entityNames": batch}), st.lists(names, max_size=2)),
    st.builds(
        lambda batch: ("delete_observations", {"deletions": batch}),
        st.lists(st.builds(lambda n, o: {"entityName": n, "observations": o}, names, texts), max_size=2),
    ),
    st.builds(lambda batch: ("delete_relations", {"relations": batch}), st.lists(relations, max_size=2)),
    st.builds(lambda q: ("search_nodes", {"query": q}), st.sampled_from(QUERIES)),
    st.builds(lambda batch: ("open_nodes", {"names": batch}), st.lists(names, max_size=3)),
    st.just(("read_graph", {})),
)


def reset(servers: Servers) -> None:
    """Empties every server's graph (the generator never leaves dangling relations)."""
    for server in servers.sessions:
        graph = servers.call(server, "read_graph", {})["structured"]
        servers.call(server, "delete_entities", {"entityNames": [e["name"] for e in graph["entities"]]})
        assert servers.call(server, "read_graph", {})["structured"] == {"entities": [], "relations": []}


def missing_endpoint(state: GraphState, args: dict[str, Any]) -> str | None:
    known = {e.name for e in state.entities}
    for relation in CreateRelations.parse(args).relations:
        for name in (relation.source, relation.target):
            if name not in known:
                return name
    return None


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(calls, min_size=1, max_size=12))
def test_same_results_and_graphs_as_the_reference(servers: Servers, sequence: list[tuple[str, dict[str, Any]]]) -> None:
    reset(servers)
    state = GraphState()  # tracks which entities exist, to recognise the documented difference
    for name, args in sequence:
        if name == "create_relations" and (missing := missing_endpoint(state, args)) is not None:
            # Documented difference: memlora refuses a relation to a missing entity.
            for server in ("sqlite", "jsonl"):
                result = servers.call(server, name, args)
                assert result["isError"] and result["text"] == [f"Entity with name {missing} not found"]
            continue
        expected = servers.call("reference", name, args)
        for server in ("sqlite", "jsonl"):
            assert servers.call(server, name, args) == expected, (server, name, args)
        if name == "create_entities":
            state.create_entities(CreateEntities.parse(args).entities)
        elif name == "create_relations":
            state.create_relations(CreateRelations.parse(args).relations)
        elif name == "delete_entities":
            state.delete_entities(args["entityNames"])

    final = servers.call("reference", "read_graph", {})
    assert servers.call("sqlite", "read_graph", {}) == final
    assert servers.call("jsonl", "read_graph", {}) == final
    # The JSONL backend writes the very file the reference writes.
    reference_text = servers.files["reference"].read_text(encoding="utf-8") if servers.files["reference"].exists() else ""
    memlora_text = servers.files["jsonl"].read_text(encoding="utf-8") if servers.files["jsonl"].exists() else ""
    assert memlora_text == reference_text
