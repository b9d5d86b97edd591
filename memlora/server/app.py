"""The memlora MCP server: the nine memory tools and the knowledge-graph resource over a store.

Tools are registered from the hand-written specs in `schemas.py` rather than derived from
Python signatures, so the published schemas stay exactly those of the reference server.
Arguments arrive as raw JSON and are checked by `memlora.store.validate`, which names the
offending field; every failure the store raises on purpose becomes an MCP tool error (isError)
with the store's message as its text, e.g. `Entity with name X not found`.

Store calls run on the event loop, except one that would wait for a lock: that one moves to a
worker thread (see `memlora.store.locking`), so pings and other calls are answered meanwhile.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.mcpserver.resources import FunctionResource
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent

from memlora.store import validate
from memlora.store.base import MemoryStore
from memlora.store.failures import unexpected_failure
from memlora.store.graph import DEFAULT_LIMITS, KnowledgeGraph, Limits, StoreError
from memlora.store.locking import WouldBlock, no_wait
from memlora.server.schemas import RESOURCE_URI, TOOL_SPECS

SERVER_NAME = "memlora"
T = TypeVar("T")


async def run_store_call(call: Callable[[], T]) -> T:
    """Runs `call` on the event loop, or on a worker thread if it would wait for a lock.

    The store runs on the event loop thread on purpose: an SQLite call takes tens of
    microseconds, a hop to a worker thread costs milliseconds on a busy machine. But a call
    that waits there stalls every other request, so under `no_wait()` a store raises
    `WouldBlock` before doing anything, and the call starts over where waiting is harmless.
    """
    try:
        with no_wait():
            return call()
    except WouldBlock:
        return await anyio.to_thread.run_sync(call)


def _version() -> str:
    try:
        return version("memlora")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


def pretty_json(value: Any) -> str:
    """The text the reference server returns: JSON.stringify(value, null, 2)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def _result(text: str, structured: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _graph_result(graph: KnowledgeGraph) -> CallToolResult:
    data = graph.to_dict()
    return _result(pretty_json(data), data)


def _message_result(message: str) -> CallToolResult:
    return _result(message, {"success": True, "message": message})


def _error(error: StoreError) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=str(error))], is_error=True)


class _Tools:
    """The tool bodies: parse raw arguments, call the store off the event loop, shape the result."""

    def __init__(self, store: MemoryStore, limits: Limits) -> None:
        self.store = store
        self.limits = limits

    async def _run(self, call: Callable[[], CallToolResult]) -> CallToolResult:
        try:
            return await run_store_call(call)
        except StoreError as error:
            return _error(error)
        except (OSError, sqlite3.Error) as error:  # a failure no store translated: no file names
            return _error(unexpected_failure(error))

    async def create_entities(self, entities: Any = None) -> CallToolResult:
        def call() -> CallToolResult:
            parsed = validate.parse_entities(entities)
            validate.check_entities(parsed, self.limits)
            added = [e.to_dict() for e in self.store.create_entities(parsed)]
            return _result(pretty_json(added), {"entities": added})

        return await self._run(call)

    async def create_relations(self, relations: Any = None) -> CallToolResult:
        def call() -> CallToolResult:
            parsed = validate.parse_relations(relations)
            validate.check_relations(parsed, self.limits)
            added = [r.to_dict() for r in self.store.create_relations(parsed)]
            return _result(pretty_json(added), {"relations": added})

        return await self._run(call)

    async def add_observations(self, observations: Any = None) -> CallToolResult:
        def call() -> CallToolResult:
            parsed = validate.parse_additions(observations)
            validate.check_additions(parsed, self.limits)
            results = [r.to_dict() for r in self.store.add_observations(parsed)]
            return _result(pretty_json(results), {"results": results})

        return await self._run(call)

    async def delete_entities(self, entityNames: Any = None) -> CallToolResult:  # noqa: N803 - wire name
        def call() -> CallToolResult:
            names = validate.parse_names(entityNames, "entityNames")
            validate.check_names(names, self.limits, "entityNames")
            self.store.delete_entities(names)
            return _message_result("Entities deleted successfully")

        return await self._run(call)

    async def delete_observations(self, deletions: Any = None) -> CallToolResult:
        def call() -> CallToolResult:
            parsed = validate.parse_deletions(deletions)
            validate.check_deletions(parsed, self.limits)
            self.store.delete_observations(parsed)
            return _message_result("Observations deleted successfully")

        return await self._run(call)

    async def delete_relations(self, relations: Any = None) -> CallToolResult:
        def call() -> CallToolResult:
            parsed = validate.parse_relations(relations)
            validate.check_relations(parsed, self.limits, required=False)
            self.store.delete_relations(parsed)
            return _message_result("Relations deleted successfully")

        return await self._run(call)

    async def read_graph(self) -> CallToolResult:
        return await self._run(lambda: _graph_result(self.store.read_graph()))

    async def search_nodes(self, query: str) -> CallToolResult:
        # `query` is typed str so the SDK never JSON-decodes it (a search for "true" stays text).
        def call() -> CallToolResult:
            validate.check_query(validate.parse_query(query), self.limits)
            return _graph_result(self.store.search_nodes(query))

        return await self._run(call)

    async def open_nodes(self, names: Any = None) -> CallToolResult:
        def call() -> CallToolResult:
            parsed = validate.parse_names(names, "names")
            validate.check_names(parsed, self.limits, "names")
            return _graph_result(self.store.open_nodes(parsed))

        return await self._run(call)


def build_server(store: MemoryStore, limits: Limits = DEFAULT_LIMITS, records: Any = None) -> MCPServer:
    """An MCP server exposing `store` through the nine reference memory tools and one resource.

    `records`, a `memlora.records` MemoryManager, adds the three memory-record tools after the
    nine (memlora.server.records_tools); without it the tool list is exactly the reference one.
    """
    bodies = _Tools(store, limits)
    tools = []
    for spec in TOOL_SPECS.values():
        tool = Tool.from_function(
            getattr(bodies, spec.name),
            name=spec.name,
            title=spec.title,
            description=spec.description,
            annotations=spec.annotations,
        )
        # Publish the reference schemas; arguments are checked by memlora.store.validate.
        tool.parameters = spec.input_schema
        tool.fn_metadata.output_schema = spec.output_schema
        tools.append(tool)
    if records is not None:
        from memlora.server.records_tools import record_tools

        tools += record_tools(records)

    async def knowledge_graph() -> str:
        # A ResourceError's text reaches the client (anything else becomes a bare "Error
        # reading resource"), so a corrupt file's line number is seen where it is needed.
        try:
            graph = await run_store_call(store.read_graph)
        except StoreError as error:
            raise ResourceError(str(error)) from None
        except (OSError, sqlite3.Error) as error:
            raise ResourceError(str(unexpected_failure(error))) from None
        return pretty_json(graph.to_dict())

    resource = FunctionResource.from_function(
        knowledge_graph,
        uri=RESOURCE_URI,
        name="knowledge-graph",
        title="Knowledge Graph",
        description="Every entity and relation in the memory",
        mime_type="application/json",
    )
    return MCPServer(SERVER_NAME, version=_version(), tools=tools, resources=[resource])
