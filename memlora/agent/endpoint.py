"""Any OpenAI-compatible chat endpoint with tool calling, in the place of memlora's engine.

The agent loop (memlora.agent.loop.MemoryAgent) keeps its conversation in TRL's message
format; here it becomes the OpenAI wire format (tool-call ids, JSON-string arguments, `tool`
messages answering those ids), goes to the endpoint with memlora's tool block as `tools`, and
the endpoint's message comes back as the loop's (Completion, ParsedOutput) pair. A structured
call with arguments that are not a JSON object is an invalid call (the model is told it could not
be parsed, as with the local engine); a reply without structured calls is read by memlora's own
parser, so an endpoint that leaves `<tool_call>` text in the content is scored as the engine's
output would be. The evaluator's AgentPlayer takes a ChatEndpoint where it takes an engine.
"""

from __future__ import annotations

import json
import time
from typing import Any

from memlora.agent.engine import Completion, SamplingParams
from memlora.agent.protocol import ParsedOutput, ToolCall, parse_output


def openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TRL conversational messages as OpenAI chat messages: each assistant call gets an id, and the
    tool messages after it answer those ids in order.

    Results of calls the model wrote as text that did not parse strictly (the agent keeps such a
    step verbatim) answer no call id; they go back as one user message of `<tool_response>`
    blocks, which is the user turn Qwen's format renders them as anyway."""
    converted: list[dict[str, Any]] = []
    pending: list[str] = []
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "tool" and not pending:
            block = f"<tool_response>\n{message.get('content', '')}\n</tool_response>"
            previous = converted[-1] if converted else None
            if previous is not None and previous.get("role") == "user" and previous.get("tool_responses"):
                previous["content"] += "\n" + block
            else:
                converted.append({"role": "user", "content": block, "tool_responses": True})
            continue
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for number, call in enumerate(message["tool_calls"]):
                function = call.get("function", call)
                arguments = function.get("arguments", {})
                calls.append({"id": f"call_{index}_{number}", "type": "function",
                              "function": {"name": function["name"],
                                           "arguments": arguments if isinstance(arguments, str)
                                           else json.dumps(arguments, ensure_ascii=False)}})
            pending = [call["id"] for call in calls]
            converted.append({"role": "assistant", "content": message.get("content") or None, "tool_calls": calls})
        elif role == "tool":
            call_id = pending.pop(0)
            converted.append({"role": "tool", "tool_call_id": call_id, "content": message.get("content", "")})
        else:
            pending = []
            converted.append({"role": role, "content": message.get("content", "")})
    for message in converted:
        message.pop("tool_responses", None)
    return converted


def parsed_message(message: Any) -> tuple[str, ParsedOutput]:
    """(raw text, parsed output) for an endpoint's assistant message."""
    content = message.content or ""
    if not message.tool_calls:
        return content, parse_output(content)
    in_text = parse_output(content)  # calls left in the text beside the structured ones (unparseable ones)
    content = in_text.content if in_text.calls else content
    calls = []
    for call in message.tool_calls:
        raw = call.function.arguments or "{}"
        try:
            arguments = json.loads(raw)
        except ValueError:
            arguments = None
        if isinstance(arguments, dict):
            calls.append(ToolCall(call.function.name, arguments, "strict", raw))
        else:
            calls.append(ToolCall(call.function.name, None, "invalid", raw,
                                  error=f"could not parse the arguments of {call.function.name}: {raw[:200]!r}"))
    text = content + "".join(f"\n<tool_call>\n{{\"name\": {json.dumps(c.name)}, \"arguments\": {c.raw}}}\n</tool_call>"
                             for c in calls) + "".join(f"\n<tool_call>{c.raw}" for c in in_text.calls)
    calls += in_text.calls
    modes = {call.mode for call in calls}
    mode = next((m for m in ("invalid", "tolerant") if m in modes), "strict")
    return text.strip(), ParsedOutput(content.strip(), calls, mode)  # type: ignore[arg-type]


class ChatEndpoint:
    """An OpenAI-compatible endpoint (`base_url` ending in /v1) and the model name it serves."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 600.0,
                 max_retries: int = 2) -> None:
        try:
            from openai import AsyncOpenAI
        except ImportError as error:
            raise RuntimeError("--endpoint needs the openai client: pip install 'memlora[api]'") from error
        self.base_url = base_url
        self.model = model
        self.client = AsyncOpenAI(base_url=base_url, api_key=api_key or "none", timeout=timeout,
                                  max_retries=max_retries)
        self.budget_field = "max_tokens"  # newer hosted models want max_completion_tokens: switched on refusal

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                       params: SamplingParams) -> tuple[Completion, ParsedOutput]:
        from openai import BadRequestError

        started = time.perf_counter()
        request: dict[str, Any] = {"model": self.model, "messages": openai_messages(messages), "tools": tools,
                                   "temperature": params.temperature, self.budget_field: params.max_new_tokens}
        if params.seed is not None:
            request["seed"] = params.seed
        try:
            response = await self.client.chat.completions.create(**request)
        except BadRequestError as error:
            if self.budget_field != "max_tokens" or "max_completion_tokens" not in str(error):
                raise
            self.budget_field = "max_completion_tokens"
            request["max_completion_tokens"] = request.pop("max_tokens")
            response = await self.client.chat.completions.create(**request)
        choice = response.choices[0]
        text, parsed = parsed_message(choice.message)
        usage = response.usage
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        completion = Completion(
            text=text, token_ids=[], prompt_tokens=usage.prompt_tokens if usage else 0,
            cached_prompt_tokens=(getattr(details, "cached_tokens", 0) or 0) if details else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason="length" if choice.finish_reason == "length" else "stop",
            seconds=time.perf_counter() - started, batch_size=1)
        return completion, parsed
