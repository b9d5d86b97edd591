"""The tool-call protocol: tool schemas, parsing the model's calls and validating them.

Tool schemas come from memlora's own server (the single source of truth), listed in process.
How a conversation is rendered for a model family is memlora.models.chat_format; the parser
reads the `<tool_call>` blocks every family's format shares.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from memlora.models.chat_format import render_prompt

ParseMode = Literal["none", "strict", "tolerant", "invalid"]

# --- tool schemas from the server ------------------------------------------------------------


async def list_server_tools(client: Any) -> list[dict[str, Any]]:
    """The tools an MCP client sees, as plain dicts (name, description, inputSchema, ...)."""
    result = await client.list_tools()
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in result.tools]


async def _memlora_server_tools() -> list[dict[str, Any]]:
    from mcp import Client

    from memlora.server.app import build_server
    from memlora.store import open_store

    async with Client(build_server(open_store("sqlite::memory:"))) as client:
        return await list_server_tools(client)


@lru_cache(maxsize=1)
def _server_tools_json() -> str:
    # run in a fresh thread-less loop; callers inside a running loop use server_tools_async
    return json.dumps(asyncio.run(_memlora_server_tools()))


def server_tools() -> list[dict[str, Any]]:
    """memlora's own tool listing (full MCP form), computed once per process."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return json.loads(_server_tools_json())
    # inside a running event loop asyncio.run is not allowed: compute on a helper thread
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return json.loads(pool.submit(_server_tools_json).result())


def _strip_titles(schema: Any) -> Any:
    """Drops JSON-schema `title` and `$schema` keys: they tell the model nothing and cost tokens."""
    if isinstance(schema, dict):
        return {
            key: _strip_titles(value)
            for key, value in schema.items()
            if not (key in ("title", "$schema") and isinstance(value, str))
        }
    if isinstance(schema, list):
        return [_strip_titles(value) for value in schema]
    return schema


def to_function(tool: dict[str, Any], compact: bool = True) -> dict[str, Any]:
    """An MCP tool as an OpenAI/TRL function; compact drops titles, annotations, output schemas."""
    parameters = tool.get("inputSchema", {"type": "object", "properties": {}})
    if compact:
        parameters = _strip_titles(parameters)
        function = {"name": tool["name"], "description": tool.get("description", ""), "parameters": parameters}
    else:
        function = {key: copy.deepcopy(value) for key, value in tool.items() if key != "inputSchema"}
        function["parameters"] = copy.deepcopy(parameters)
    return {"type": "function", "function": function}


def model_tools(compact: bool = True, tools: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The tool block the model sees: memlora's server tools in OpenAI/TRL function format."""
    return [to_function(tool, compact) for tool in (tools if tools is not None else server_tools())]


def schema_example(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A placeholder value shaped like `schema`: every property in order, one item per array."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {key: schema_example(value, defs) for key, value in schema.get("properties", {}).items()}
    if kind == "array":
        return [schema_example(schema.get("items", {}), defs)]
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    return "x"


def example_calls_text(tokenizer: Any, tools: list[dict[str, Any]]) -> str:
    """One placeholder call per tool in the model's chat format: the JSON a call is built of.

    The engine drafts from it (memlora.agent.engine.lookup_draft): keys, quotes and brackets
    of a call are predictable even where the conversation holds no earlier call.
    """
    from memlora.agent.prompt import tool_call_message

    calls = [{"name": tool["function"]["name"], "arguments": schema_example(tool["function"]["parameters"])}
             for tool in tools]
    return render_prompt(tokenizer, [tool_call_message(calls)], None, add_generation_prompt=False)


# --- parsing ---------------------------------------------------------------------------------


@dataclass
class ToolCall:
    """One call the model wrote; `mode` says how it was recovered, `error` why it is unusable."""

    name: str | None
    arguments: dict[str, Any] | None
    mode: ParseMode
    raw: str
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments, "mode": self.mode, "error": self.error}


@dataclass
class ParsedOutput:
    """An assistant turn split into its reply text and its tool calls.

    `mode` is "none" for a plain reply, "strict" when every call is in the native format,
    "tolerant" when a fallback was needed (a format error), "invalid" when a call could not
    be recovered at all.
    """

    content: str
    calls: list[ToolCall] = field(default_factory=list)
    mode: ParseMode = "none"

    @property
    def format_ok(self) -> bool:
        return self.mode in ("none", "strict")


TOOL_CALL_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
FENCE_BLOCK = re.compile(r"```(?:json|tool_call|tool_code)?\s*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()
BARE_CALL_START = re.compile(r'\s*(?:```\w*\s*)?\{\s*"name"\s*:\s*"[^"]*"\s*,\s*"(?:arguments|parameters)"')


def _as_call(value: Any, bare: bool = False) -> tuple[str, dict[str, Any], bool] | None:
    """(name, arguments, exact) when `value` looks like a call; exact means the native shape.

    `bare` (JSON outside any <tool_call> block) also demands an arguments key, so that a reply
    quoting an entity such as {"name": "Alice", ...} is not mistaken for a call.
    """
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # {"type": "function", "function": {...}}
        inner = _as_call(value["function"], bare)
        return (inner[0], inner[1], False) if inner else None
    name = value.get("name")
    if not isinstance(name, str):
        return None
    if bare and "arguments" not in value and "parameters" not in value:
        return None
    exact = set(value) == {"name", "arguments"}
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # OpenAI wire format: arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
        exact = False
    if not isinstance(arguments, dict):
        return None
    return name, arguments, exact


def _json_objects(text: str) -> list[tuple[Any, int, int]]:
    """Every top-level JSON value starting with { or [ in `text`, with its span."""
    found, index = [], 0
    while index < len(text):
        match = re.compile(r"[\[{]").search(text, index)
        if not match:
            break
        try:
            value, end = _DECODER.raw_decode(text, match.start())
        except ValueError:
            index = match.start() + 1
            continue
        found.append((value, match.start(), end))
        index = end
    return found


def _parse_block(body: str, closed: bool) -> ToolCall:
    stripped = body.strip()
    try:
        value = json.loads(stripped)
        call = _as_call(value)
        if call is not None:
            mode: ParseMode = "strict" if call[2] and closed else "tolerant"
            return ToolCall(call[0], call[1], mode, body)
    except ValueError:
        pass
    objects = _json_objects(stripped)  # JSON with junk around it
    for value, _, _ in objects:
        call = _as_call(value)
        if call is not None:
            return ToolCall(call[0], call[1], "tolerant", body)
    return ToolCall(None, None, "invalid", body, error=f"could not parse a tool call from {stripped[:200]!r}")


def parse_output(text: str) -> ParsedOutput:
    """Splits a completion (end-of-turn already removed) into reply text and tool calls.

    Strict: reply text, then only `<tool_call>` blocks each holding exactly
    {"name": str, "arguments": object}. Tolerant: anything recoverable (missing closing tag,
    junk around the JSON, `parameters` for `arguments`, string arguments, markdown fences,
    bare JSON), which still runs but counts as a format error.
    """
    if "<tool_call>" in text:
        first = text.index("<tool_call>")
        content = text[:first].strip()
        calls: list[ToolCall] = []
        last_end = first
        for match in TOOL_CALL_BLOCK.finditer(text, first):
            closed = match.group(0).endswith("</tool_call>")
            calls.append(_parse_block(match.group(1), closed))
            between = text[last_end:match.start()]
            if between.strip() and calls[:-1]:
                calls[-1].mode = "tolerant" if calls[-1].mode == "strict" else calls[-1].mode
            last_end = match.end()
        trailing = text[last_end:].strip()
        if trailing and calls and calls[-1].mode == "strict":
            calls[-1].mode = "tolerant"
        return ParsedOutput(content, calls, _overall(calls))

    # no native blocks: fenced or bare JSON that looks like calls
    calls, spans = [], []
    fenced = list(FENCE_BLOCK.finditer(text))
    sources = [(m.group(1), m.start(), m.end()) for m in fenced] or [(text, 0, len(text))]
    for source, start, end in sources:
        for value, v_start, v_end in _json_objects(source):
            values = value if isinstance(value, list) else [value]
            parsed = [_as_call(v, bare=True) for v in values]
            if parsed and all(parsed):
                calls.extend(ToolCall(p[0], p[1], "tolerant", json.dumps(v)) for p, v in zip(parsed, values))
                spans.append((start, end) if fenced else (v_start, v_end))
    if not calls:
        if BARE_CALL_START.match(text):  # a call outside any block that does not parse (truncated)
            error = f"could not parse a tool call from {text.strip()[:200]!r}"
            return ParsedOutput("", [ToolCall(None, None, "invalid", text, error=error)], "invalid")
        return ParsedOutput(text.strip())
    content = text
    for start, end in reversed(spans):
        content = content[:start] + content[end:]
    return ParsedOutput(content.strip(), calls, "tolerant")


def _overall(calls: list[ToolCall]) -> ParseMode:
    modes = {call.mode for call in calls}
    for mode in ("invalid", "tolerant", "strict"):
        if mode in modes:
            return mode  # type: ignore[return-value]
    return "none"


# --- validation ------------------------------------------------------------------------------


class ToolValidator:
    """Checks a call against its tool's input schema before anything reaches the server."""

    def __init__(self, tools: list[dict[str, Any]]):
        from jsonschema.validators import validator_for

        self.validators = {}
        for tool in tools:
            schema = tool.get("inputSchema", {})
            self.validators[tool["name"]] = validator_for(schema)(schema)

    @property
    def names(self) -> list[str]:
        return list(self.validators)

    def error(self, name: str | None, arguments: Any) -> str | None:
        """None when the call may run; otherwise the message the model gets as the tool result."""
        if name not in self.validators:
            return f"unknown tool {name!r}; the tools are: {', '.join(self.validators)}"
        errors = sorted(self.validators[name].iter_errors(arguments), key=lambda e: list(e.absolute_path))
        if not errors:
            return None
        messages = []
        for problem in errors[:3]:
            where = "/".join(str(part) for part in problem.absolute_path) or "arguments"
            messages.append(f"{where}: {problem.message}")
        return f"invalid arguments for {name}: " + "; ".join(messages)


def error_result(message: str) -> str:
    """The tool-result text for a call that was rejected before reaching the server."""
    return f"Error: {message}"
