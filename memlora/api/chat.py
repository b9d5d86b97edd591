"""Chat completions on memlora's engine: OpenAI messages in, the model's native format in between.

The prompt is the tokenizer's chat template over the messages in TRL's format (the one the
agent and training use), the client's tools as the tool block; the completion is split by
memlora's own parser (memlora.agent.protocol.parse_output), and its calls come back in the
OpenAI shape. No second template or parser lives here.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from memlora.agent.engine import Completion, SamplingParams
from memlora.agent.protocol import ParsedOutput, parse_output
from memlora.api.schemas import ApiError, ChatRequest, FunctionCallOut, Message, ToolCallOut, Usage, PromptDetails

TOOL_CALL_TAG = "<tool_call>"


def to_trl_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """OpenAI chat messages as the TRL conversational messages memlora's templates render.

    Tool-call arguments arrive as JSON strings and become objects (the templates write them
    with `tojson`); a `developer` message is a system message."""
    converted: list[dict[str, Any]] = []
    for message in messages:
        role = "system" if message.role == "developer" else message.role
        item: dict[str, Any] = {"role": role, "content": message.text}
        if message.role == "assistant" and message.tool_calls:
            item["tool_calls"] = [
                {"type": "function",
                 "function": {"name": call.function.name, "arguments": json.loads(call.function.arguments or "{}")}}
                for call in message.tool_calls
            ]
        if message.role == "tool":
            item["name"] = message.name or "tool"
        converted.append(item)
    return converted


def sampling(request: ChatRequest, default_max: int, limit: int) -> SamplingParams:
    """The engine's sampling settings for a request; a budget above the server's limit is refused."""
    budget = request.budget() or min(default_max, limit)
    if budget > limit:
        field = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        raise ApiError(400, f"{field}: {budget} is more than this server allows ({limit})", param=field)
    return SamplingParams(max_new_tokens=budget, temperature=request.temperature, top_p=request.top_p,
                          seed=request.seed)


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def openai_tool_calls(parsed: ParsedOutput) -> list[ToolCallOut]:
    """The recovered calls in the OpenAI shape; a call that could not be parsed has no name to
    report, so it stays in the text instead (see `message_content`)."""
    return [
        ToolCallOut(id=new_call_id(), function=FunctionCallOut(
            name=call.name, arguments=json.dumps(call.arguments or {}, ensure_ascii=False)))
        for call in parsed.calls if call.name is not None and call.arguments is not None
    ]


def message_content(completion_text: str, parsed: ParsedOutput) -> str | None:
    """The reply text: the text before the calls, then any call that could not be parsed, as the
    model wrote it (a `<tool_call>` block cut off by max_tokens, say), so that the client sees it
    instead of losing it; the whole text when no call was usable."""
    usable = [call for call in parsed.calls if call.name is not None and call.arguments is not None]
    if parsed.calls and not usable:
        return completion_text.strip()
    broken = [call for call in parsed.calls if call not in usable]
    text = "\n".join([parsed.content] * bool(parsed.content) + [f"<tool_call>{call.raw}" for call in broken])
    return text or (None if usable else parsed.content)


def finish_reason(completion: Completion, calls: list[ToolCallOut]) -> str:
    """"length" whenever max_tokens cut the output, even after complete calls, as OpenAI does."""
    if completion.finish_reason == "length":
        return "length"
    return "tool_calls" if calls else "stop"


def usage(completion: Completion) -> Usage:
    return Usage(prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                 total_tokens=completion.prompt_tokens + completion.completion_tokens,
                 prompt_tokens_details=PromptDetails(cached_tokens=completion.cached_prompt_tokens))


@dataclass
class DeltaText:
    """Turns a growing list of output tokens into text deltas for streaming.

    Holds back what may still change or must not show: an incomplete UTF-8 character at the
    end, a tail that could be the start of a `<tool_call>` tag, and everything from the first
    tag on (the calls are sent as tool_calls deltas once the step is parsed)."""

    tokenizer: Any
    sent: str = ""

    def __post_init__(self) -> None:
        self.ids: list[int] = []

    def push(self, tokens: list[int]) -> str:
        self.ids += tokens
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        visible = text.split(TOOL_CALL_TAG, 1)[0]
        for size in range(min(len(TOOL_CALL_TAG) - 1, len(visible)), 0, -1):
            if TOOL_CALL_TAG.startswith(visible[-size:]):
                visible = visible[:-size]
                break
        visible = visible.rstrip("\ufffd")
        if not visible.startswith(self.sent) or len(visible) <= len(self.sent):
            return ""
        delta, self.sent = visible[len(self.sent):], visible
        return delta


def check_prompt_length(prompt_tokens: int, context: int) -> None:
    if prompt_tokens >= context:
        raise ApiError(400, f"messages: the prompt is {prompt_tokens} tokens, the model's context is {context}",
                       param="messages", code="context_length_exceeded")
