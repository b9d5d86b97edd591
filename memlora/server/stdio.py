"""The stdio transport, with an answer for every request line the SDK cannot read.

The SDK's stdio reader drops a line that fails to parse (it is only debug-logged), so a client
that sent it waits forever for the reply. pydantic-core's JSON reader refuses more than the
JSON grammar does: a lone UTF-16 surrogate escape such as half an emoji (`"\\ud83d"`) and
nesting deeper than 200 levels. Here each line is checked before the SDK sees it; a line that
would be dropped gets a JSON-RPC error reply carrying the request's id when one can be found
(`null` when not, as JSON-RPC 2.0 asks), and a warning on stderr. Good lines go on to the SDK
unchanged.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Iterator
from io import TextIOWrapper
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

logger = logging.getLogger("memlora.server")

# pydantic-core's JSON reader gives up past this depth ("recursion limit exceeded").
MAX_DEPTH = 200
_NO_ID = object()


def describe_unreadable(line: str, error: ValidationError) -> tuple[object, types.ErrorData]:
    """What to answer for a line the SDK refused: the request id to answer (`_NO_ID`: answer
    nothing, it was a notification or a response) and the error, saying what was wrong and where.
    """
    try:
        message = json.loads(line)
    except RecursionError:
        return _reply_id(_top_level_id(line)), _parse_error(f"the message nests deeper than {MAX_DEPTH} levels")
    except ValueError as bad:
        where = f"line {bad.lineno} column {bad.colno}" if isinstance(bad, json.JSONDecodeError) else "the message"
        reason = bad.msg if isinstance(bad, json.JSONDecodeError) else str(bad)
        return _reply_id(_top_level_id(line)), _parse_error(f"not valid JSON ({reason} at {where})")
    if not isinstance(message, dict):
        return None, types.ErrorData(code=types.INVALID_REQUEST, message="Invalid Request: a JSON-RPC message must be a JSON object")
    if "method" not in message and ("result" in message or "error" in message):
        return _NO_ID, types.ErrorData(code=types.INVALID_REQUEST, message="unreadable response from the client")
    ident = _reply_id(message.get("id")) if "id" in message else _NO_ID
    if (path := _surrogate_path(message)) is not None:
        return ident, _parse_error(f"{path} holds a lone UTF-16 surrogate (half of a surrogate pair), which is not text")
    if (path := _too_deep_path(message)) is not None:
        return ident, _parse_error(f"{path} nests deeper than {MAX_DEPTH} levels")
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return ident, _parse_error(first["msg"])
    return ident, types.ErrorData(code=types.INVALID_REQUEST, message=f"Invalid Request: {_request_problem(message)}")


def _parse_error(reason: str) -> types.ErrorData:
    return types.ErrorData(code=types.PARSE_ERROR, message=f"Parse error: {reason}")


def _reply_id(candidate: object) -> object:
    """The id to answer with: the request's own if it is a valid one, else null."""
    if isinstance(candidate, bool):
        return None
    if isinstance(candidate, int) or (isinstance(candidate, str) and not _has_surrogate(candidate)):
        return candidate
    return None


def _request_problem(message: dict[str, Any]) -> str:
    try:
        types.JSONRPCRequest.model_validate(message, by_name=False)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(_safe_key(part) for part in first["loc"]) or "the message"
        return f"{where}: {first['msg']}"
    return "not a JSON-RPC 2.0 request"


# -- finding the place that the JSON reader refuses ------------------------------------------------


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in text)


def _safe_key(key: object) -> str:
    """A path step that is safe to echo: ASCII, short, surrogates escaped."""
    if isinstance(key, int):
        return f"[{key}]"
    text = str(key)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,40}", text):
        return text
    return "[" + json.dumps(text[:40], ensure_ascii=True) + "]"


def _walk(value: object) -> Iterator[tuple[list[object], object]]:
    """Every value inside `value` with its path, depth first, without recursion."""
    stack: list[tuple[list[object], object]] = [([], value)]
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict):
            stack.extend((path + [key], child) for key, child in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((path + [index], child) for index, child in reversed(list(enumerate(item))))


def _format_path(path: list[object], keep: int = 8) -> str:
    steps = [_safe_key(step) for step in path]
    shown = "".join(s if s.startswith("[") else f".{s}" for s in steps[:keep]).lstrip(".")
    if len(steps) > keep:
        shown += f"... ({len(steps) - keep} levels more)"
    return shown or "the message"


def _surrogate_path(message: dict[str, Any]) -> str | None:
    for path, item in _walk(message):
        if isinstance(item, str) and _has_surrogate(item):
            return _format_path(path)
        if isinstance(item, dict) and any(_has_surrogate(key) for key in item):
            key = next(key for key in item if _has_surrogate(key))
            return f"a key in {_format_path(path)}" if path else f"the key {_safe_key(key)}"
    return None


def _too_deep_path(message: dict[str, Any]) -> str | None:
    for path, item in _walk(message):
        if len(path) >= MAX_DEPTH and isinstance(item, dict | list):
            return _format_path(path)
    return None


# A JSON token: a string, a structural character, or a run of anything else (numbers, literals).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s{}\[\],:"]+', re.DOTALL)


def _top_level_id(text: str) -> object:
    """The `id` member of the outermost object, read token by token.

    For lines the JSON reader cannot take at all: nesting too deep for any recursive parser, or
    a syntax error after the id. Nested values are skipped by counting brackets, so their depth
    does not matter.
    """
    depth, state, key = 0, "open", None
    for match in _TOKEN.finditer(text):
        token = match.group()
        if depth > 1:  # inside a nested value: only brackets matter
            if token in ("{", "["):
                depth += 1
            elif token in ("}", "]"):
                depth -= 1
                state = "next" if depth == 1 else state
            continue
        if state == "open":
            if token != "{":
                return None
            depth, state = 1, "key"
        elif state == "key":
            if not token.startswith('"'):
                return None
            key, state = _loads(token), "colon"
        elif state == "colon":
            if token != ":":
                return None
            state = "value"
        elif state == "value":
            if token in ("{", "["):
                depth = 2
            elif key == "id":
                return _loads(token)
            else:
                state = "next"
        elif state == "next":
            if token != ",":
                return None
            state = "key"
    return None


def _loads(token: str) -> object:
    try:
        return json.loads(token)
    except ValueError:
        return None


# -- the transport ------------------------------------------------------------------------------


class _UnownedText(TextIOWrapper):
    """Text over stdin's buffer that never closes it: the buffer is the process's, not ours."""

    def close(self) -> None:
        try:
            self.detach()
        except ValueError:  # already detached
            pass


class _CheckedLines:
    """stdin as the SDK's reader consumes it, minus the lines it would drop; those are answered here."""

    def __init__(self) -> None:
        self._replies: Any = None
        self._ready = anyio.Event()
        # Lines end at \n only: a CR inside a message is JSON whitespace, not a line end.
        wire = _UnownedText(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n")
        self._wire = anyio.wrap_file(wire)

    def answer_on(self, replies: Any) -> None:
        self._replies = replies
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        await self._ready.wait()
        async for line in self._wire:
            if not line.strip():
                continue
            try:
                types.jsonrpc_message_adapter.validate_json(line, by_name=False)
            except ValidationError as error:
                await self._answer(line, error)
                continue
            yield line

    async def _answer(self, line: str, error: ValidationError) -> None:
        ident, data = describe_unreadable(line, error)
        shown = "no id" if ident is _NO_ID or ident is None else f"id {ident!r}"
        logger.warning("unreadable message (%s, %d characters): %s", shown, len(line), data.message)
        if ident is _NO_ID:
            return
        reply = types.JSONRPCError(jsonrpc="2.0", id=ident, error=data)
        await self._replies.send(SessionMessage(reply))


async def serve_stdio(server: Server) -> None:
    """Runs `server` on stdin/stdout until stdin closes, answering unreadable requests with errors."""
    lines = _CheckedLines()
    async with stdio_server(stdin=lines) as (read_stream, write_stream):  # type: ignore[arg-type]
        lines.answer_on(write_stream)
        await server.run(read_stream, write_stream, server.create_initialization_options())
