"""The memlora MCP server: the nine memory tools and the knowledge-graph resource over a store.

Built on the SDK's low-level server with explicit definitions: `tools/list` answers with the
hand-written `Tool`s of `schemas.py` as they are, and `tools/call` hands the raw arguments to
`memlora.store.tools`, whose models check them and name the offending field. None of the SDK's
own tool machinery (schemas derived from signatures, argument models) is involved, so an SDK
upgrade cannot change what is published or how arguments are read. Every failure the store
raises on purpose becomes an MCP tool error (isError) with the store's message as its text,
e.g. `Entity with name X not found`.

Store calls run on the event loop, except one that would wait for a lock: that one moves to a
worker thread (see `memlora.store.locking`), so pings and other calls are answered meanwhile.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Collection
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    TextContent,
    TextResourceContents,
    Tool,
)

from memlora.store.base import MemoryStore
from memlora.store.failures import unexpected_failure
from memlora.store.graph import StoreError
from memlora.store.locking import WouldBlock, no_wait
from memlora.store.tools import run_tool
from memlora.server.schemas import KNOWLEDGE_GRAPH, RESOURCE_URI, TOOLS

SERVER_NAME = "memlora"
T = TypeVar("T")
ToolBody = Callable[[dict[str, Any]], Awaitable[CallToolResult]]
Context = ServerRequestContext[Any]
Listing = PaginatedRequestParams | None
logger = logging.getLogger("memlora.server")


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


def read_json_text(arguments: dict[str, Any], text: Collection[str] = ()) -> dict[str, Any]:
    """`arguments` with each string that holds a JSON array, object or null read as that value.

    Some clients send an array argument as JSON text. The SDK's tool layer, which served these
    tools before, read such strings and clients came to rely on it, so memlora keeps doing so;
    parameters named in `text` are text and stay as sent (a search for "null" is a search).
    """
    read = dict(arguments)
    for key, value in arguments.items():
        if key in text or not isinstance(value, str):
            continue
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            continue
        if parsed is None or isinstance(parsed, list | dict):
            read[key] = parsed
    return read


def tool_result(payload: Any, structured: dict[str, Any]) -> CallToolResult:
    text = payload if isinstance(payload, str) else pretty_json(payload)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def tool_error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


async def _graph_tool(store: MemoryStore, name: str, arguments: dict[str, Any]) -> CallToolResult:
    arguments = read_json_text(arguments, text={"query"})
    try:
        payload = await run_store_call(lambda: run_tool(store, name, arguments))
    except StoreError as error:
        return tool_error(str(error))
    except (OSError, sqlite3.Error) as error:  # a failure no store translated: no file names
        return tool_error(str(unexpected_failure(error)))
    if isinstance(payload, str):  # a delete's confirmation
        return tool_result(payload, {"success": True, "message": payload})
    if isinstance(payload, list):  # what a create added, under its output schema's one property
        (key,) = TOOLS[name].output_schema["properties"]  # type: ignore[index]
        return tool_result(payload, {key: payload})
    return tool_result(payload, payload)


def build_server(store: MemoryStore, records: Any = None) -> Server:
    """An MCP server exposing `store` through the nine reference memory tools and one resource.

    `records`, a `memlora.records` MemoryManager, adds the three memory-record tools after the
    nine (memlora.server.records_tools); without it the tool list is exactly the reference one.
    """
    tools: dict[str, tuple[Tool, ToolBody]] = {
        name: (tool, partial(_graph_tool, store, name)) for name, tool in TOOLS.items()
    }
    if records is not None:
        from memlora.server.records_tools import record_tools

        tools |= record_tools(records)
    listing = ListToolsResult(tools=[tool for tool, _ in tools.values()])

    async def list_tools(ctx: Context, params: Listing) -> ListToolsResult:
        return listing

    async def call_tool(ctx: Context, params: CallToolRequestParams) -> CallToolResult:
        if params.name not in tools:
            return tool_error(f"Unknown tool: {params.name}")
        _, body = tools[params.name]
        try:
            return await body(params.arguments or {})
        except Exception:  # a bug: the traceback goes to the log, not to the client
            logger.exception("tool %s failed", params.name)
            return tool_error(f"Error executing tool {params.name}")

    async def list_resources(ctx: Context, params: Listing) -> ListResourcesResult:
        return ListResourcesResult(resources=[KNOWLEDGE_GRAPH])

    async def read_resource(ctx: Context, params: ReadResourceRequestParams) -> ReadResourceResult:
        where = {"uri": params.uri}
        if params.uri != RESOURCE_URI:
            raise MCPError(INVALID_PARAMS, f"Unknown resource: {params.uri}", where)
        # The error's text reaches the client, so a corrupt file's line number is seen where it is needed.
        try:
            graph = await run_store_call(store.read_graph)
        except StoreError as error:
            raise MCPError(INTERNAL_ERROR, str(error), where) from None
        except (OSError, sqlite3.Error) as error:
            raise MCPError(INTERNAL_ERROR, str(unexpected_failure(error)), where) from None
        contents = TextResourceContents(uri=params.uri, text=pretty_json(graph.to_dict()), mime_type="application/json")
        return ReadResourceResult(contents=[contents])

    async def no_prompts(ctx: Context, params: Listing) -> ListPromptsResult:
        return ListPromptsResult(prompts=[])

    async def no_templates(ctx: Context, params: Listing) -> ListResourceTemplatesResult:
        return ListResourceTemplatesResult(resource_templates=[])

    # The empty prompt and template lists and the subscription stream keep the capabilities
    # that clients were shown when the server was built on the SDK's MCPServer.
    return Server(
        SERVER_NAME,
        version=_version(),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
        on_list_prompts=no_prompts,
        on_list_resource_templates=no_templates,
        on_subscriptions_listen=ListenHandler(InMemorySubscriptionBus()),
    )
