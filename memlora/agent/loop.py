"""The memory agent: one conversation with a model that keeps its memory through MCP tools.

Per session: the runtime reads the whole graph and shows it to the model (prompt.py). Per user
turn: generate, parse, validate, execute the valid calls through a real MCP client session,
feed the results back, and stop at a reply without calls or at the step limit. Every step is
recorded with what an evaluator needs (raw output, parse mode, validity, results, tokens, time).
"""

from __future__ import annotations

import os
import shlex
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, AsyncIterator, Callable

from memlora.agent.engine import Completion, GenerationEngine, SamplingParams
from memlora.agent.prompt import (
    OPENING_CALL,
    SYSTEM_PROMPT,
    format_tool_result,
    session_opening,
    tool_call_message,
    tool_result_message,
)
from memlora.agent.protocol import (
    ParsedOutput,
    ParseMode,
    ToolValidator,
    error_result,
    example_calls_text,
    list_server_tools,
    model_tools,
    parse_output,
)
from memlora.models.chat_format import render_prompt
from memlora.models.loading import LoadedModel

# --- MCP client ------------------------------------------------------------------------------


class MemoryClient:
    """A connected MCP client session to a memory server, with the few calls the agent needs."""

    def __init__(self, client: Any):
        self.client = client
        self.tools: list[dict[str, Any]] = []

    async def call(self, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        """(result text, is_error). Protocol-level failures come back as error text too."""
        try:
            result = await self.client.call_tool(name, arguments)
        except Exception as error:  # a server that raises instead of returning isError
            return f"Error: {error}", True
        texts = [getattr(part, "text", "") for part in result.content]
        text = "\n".join(t for t in texts if t)
        if not text and result.structured_content is not None:
            import json

            text = json.dumps(result.structured_content)
        return text, bool(result.is_error)

    async def read_graph(self) -> Any:
        """The whole graph as a dict (or the raw text when the server returned something else)."""
        import json

        text, _ = await self.call(OPENING_CALL["name"], OPENING_CALL["arguments"])
        try:
            return json.loads(text)
        except ValueError:
            return text


@asynccontextmanager
async def connect_memory(store: str | None = None, command: str | None = None,
                         env: dict[str, str] | None = None) -> AsyncIterator[MemoryClient]:
    """Connects to memlora's server in process (`store` URL) or to any memory server run as `command`.

    A command is split like a shell would (`npx -y @modelcontextprotocol/server-memory`) and
    spoken to over stdio; MEMORY_FILE_PATH is passed through from `env` or this process.
    """
    from mcp import Client

    if command:
        from mcp.client.stdio import StdioServerParameters

        argv = shlex.split(command)
        extra = {k: v for k, v in os.environ.items() if k == "MEMORY_FILE_PATH"}
        extra.update(env or {})
        target: Any = StdioServerParameters(command=argv[0], args=argv[1:], env=extra)
    else:
        from memlora.server.app import build_server
        from memlora.store import default_store_url, open_store

        target = build_server(open_store(store or default_store_url()))
    async with Client(target) as client:
        memory = MemoryClient(client)
        memory.tools = await list_server_tools(client)
        yield memory


# --- records ---------------------------------------------------------------------------------


@dataclass
class CallRecord:
    name: str | None
    arguments: dict[str, Any] | None
    parse_mode: ParseMode  # strict / tolerant / invalid
    valid: bool  # parsed, known tool, arguments valid against its input schema
    error: str | None  # why it was rejected before the server, or the server's error
    result: str  # the text the model saw as the tool result
    executed: bool  # reached the server
    is_error: bool = False


@dataclass
class StepRecord:
    raw: str
    content: str
    parse_mode: ParseMode
    calls: list[CallRecord]
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    seconds: float
    batch_size: int
    prefill_seconds: float = 0.0


@dataclass
class TurnRecord:
    user: str
    steps: list[StepRecord] = field(default_factory=list)
    reply: str = ""
    stop: str = "reply"  # "reply" or "step_limit"
    seconds: float = 0.0

    @property
    def calls(self) -> list[CallRecord]:
        return [call for step in self.steps for call in step.calls]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the agent -------------------------------------------------------------------------------


def session_prefix(tokenizer: Any, tools: list[dict[str, Any]]) -> str:
    """The text every conversation starts with (system prompt + tool block): the engine caches it."""
    return render_prompt(tokenizer, [{"role": "system", "content": SYSTEM_PROMPT}], tools,
                         add_generation_prompt=False)


def opening_invocation(tokenizer: Any, tools: list[dict[str, Any]] | None = None) -> list[int]:
    """The aLoRA invocation tokens of memlora's sessions (memlora.models.export): where an adapter
    trained on a base-model system prompt cache starts to apply, the runtime's opening read."""
    from memlora.models.export import invocation_tokens

    tools = tools if tools is not None else model_tools()
    conversation = render_prompt(tokenizer, session_opening({"entities": [], "relations": []})
                                 + [{"role": "user", "content": "Hi"}], tools)
    return invocation_tokens(tokenizer, session_prefix(tokenizer, tools), conversation)


def build_engine(loaded: LoadedModel, tools: list[dict[str, Any]] | None = None, max_batch: int = 32) -> GenerationEngine:
    """One engine per model, shared by every agent so their requests batch together."""
    tools = tools if tools is not None else model_tools()
    return GenerationEngine(loaded, prefix=session_prefix(loaded.tokenizer, tools), max_batch=max_batch,
                            draft_corpus=example_calls_text(loaded.tokenizer, tools))


class MemoryAgent:
    """One user's conversation: chat context per session, memory through `client` across sessions."""

    def __init__(self, engine: GenerationEngine, client: MemoryClient, tools: list[dict[str, Any]] | None = None,
                 adapter: str | None = None, params: SamplingParams | None = None, max_steps: int = 6,
                 on_call: Callable[[CallRecord], None] | None = None):
        self.engine = engine
        self.client = client
        self.tools = tools if tools is not None else model_tools()
        self.validator = ToolValidator(client.tools)
        self.adapter = adapter
        self.params = params or SamplingParams()
        self.max_steps = max_steps
        self.on_call = on_call
        self.messages: list[dict[str, Any]] = []
        self.remote = hasattr(engine, "complete")  # a chat endpoint rather than memlora's engine

    async def start_session(self) -> str:
        """Empties the chat context and shows the model the whole memory, as every session starts."""
        text, _ = await self.client.call(OPENING_CALL["name"], OPENING_CALL["arguments"])
        self.messages = session_opening(text)  # type: ignore[arg-type]  # format_tool_result takes text
        return format_tool_result(text)

    def prompt(self) -> str:
        return render_prompt(self.engine.tokenizer, self.messages, self.tools)

    async def turn(self, user: str) -> TurnRecord:
        """Plays one user message to the end: calls, results, and the final reply."""
        if not self.messages:
            await self.start_session()
        started = time.perf_counter()
        record = TurnRecord(user)
        self.messages.append({"role": "user", "content": user})
        for _ in range(self.max_steps):
            completion, parsed = await self._next()
            step = await self._step(completion, parsed)
            record.steps.append(step)
            if not step.calls:
                record.reply = step.content
                break
        else:
            record.stop = "step_limit"
        record.seconds = time.perf_counter() - started
        return record

    async def _next(self) -> tuple[Completion, ParsedOutput]:
        """The model's next step: memlora's engine decodes the rendered prompt and the parser reads
        it, or a chat endpoint (memlora.agent.endpoint.ChatEndpoint) takes the messages themselves."""
        if self.remote:
            return await self.engine.complete(self.messages, self.tools, self.params)
        completion = await self.engine.generate(self.prompt(), self.params, self.adapter)
        return completion, parse_output(completion.text)

    async def _step(self, completion: Completion, parsed: ParsedOutput) -> StepRecord:
        step = StepRecord(
            raw=completion.text, content=parsed.content, parse_mode=parsed.mode, calls=[],
            prompt_tokens=completion.prompt_tokens, cached_prompt_tokens=completion.cached_prompt_tokens,
            completion_tokens=completion.completion_tokens, finish_reason=completion.finish_reason,
            seconds=completion.seconds, batch_size=completion.batch_size,
            prefill_seconds=completion.prefill_seconds,
        )
        if not parsed.calls:
            self.messages.append({"role": "assistant", "content": parsed.content})
            return step
        # Strict output goes back into the history in canonical form; anything else verbatim,
        # so the model sees exactly what it wrote next to the errors it caused.
        if parsed.mode == "strict":
            self.messages.append(tool_call_message(
                [{"name": c.name, "arguments": c.arguments} for c in parsed.calls], parsed.content))
        else:
            self.messages.append({"role": "assistant", "content": completion.text.strip()})
        for call in parsed.calls:
            record = await self._execute(call.name, call.arguments, call.mode, call.error)
            step.calls.append(record)
            self.messages.append(tool_result_message(call.name or "invalid_call", record.result))
            if self.on_call:
                self.on_call(record)
        return step

    async def _execute(self, name: str | None, arguments: dict[str, Any] | None, mode: ParseMode,
                       parse_error: str | None) -> CallRecord:
        """Validates one call and runs it; a rejected call is answered with the error, nothing written."""
        if mode == "invalid":
            message = error_result(parse_error or "could not parse the tool call")
            return CallRecord(name, arguments, mode, False, parse_error, message, executed=False, is_error=True)
        problem = self.validator.error(name, arguments)
        if problem:
            return CallRecord(name, arguments, mode, False, problem, error_result(problem), executed=False,
                              is_error=True)
        text, is_error = await self.client.call(name, arguments or {})  # type: ignore[arg-type]
        return CallRecord(name, arguments, mode, True, text if is_error else None, format_tool_result(text),
                          executed=True, is_error=is_error)
