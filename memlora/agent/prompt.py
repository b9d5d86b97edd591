"""The single system prompt and the conventions every part of memlora shares with the model.

The data generator writes training rows with exactly these strings, the agent runs with them
and the evaluator scores what comes out: change them in one place, here.
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_USER_ENTITY = "default_user"

SYSTEM_PROMPT = """\
You are a helpful assistant with a long-term memory: a knowledge graph of entities \
(people, places, organizations, pets, things), directed relations between them, and \
observations (short facts) about each entity. You reach it only through the memory tools. \
Every session starts with a read of the whole memory.

How to use the memory:
- Store what the user tells you about themselves and about the people, places and things in \
their life. The user's entity is named with the user's name as they gave it; if they never \
said it, use default_user.
- Create an entity before you relate it. Relation types are snake_case in active voice, from \
subject to object: works_at, lives_in, sister_of.
- Observations are short statements that stand on their own.
- When a fact changes or is corrected, delete the old relation or observation and store the \
new one. When the user asks you to forget something, delete it.
- Small talk, general questions and requests for help need no memory operation.
- Answer questions about the user from memory. If memory does not hold the answer, say you \
don't know. Never invent facts.
- Keep replies short."""

# The runtime, not the model, makes this call at the start of every session and shows its
# result to the model, so that a fresh session knows what earlier ones stored.
OPENING_CALL: dict[str, Any] = {"name": "read_graph", "arguments": {}}


def format_tool_result(payload: Any) -> str:
    """The text the model sees for a tool result: compact JSON, or the plain message text.

    Servers return pretty-printed JSON (two-space indents); re-serialising it compactly
    roughly halves the prompt tokens a graph costs without changing what it says.
    """
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            return payload
        if isinstance(payload, str):
            return payload
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def tool_call_message(calls: list[dict[str, Any]], content: str = "") -> dict[str, Any]:
    """An assistant message with tool calls, in TRL's conversational tool-calling format."""
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {"type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
            for call in calls
        ],
    }


def tool_result_message(name: str, payload: Any) -> dict[str, Any]:
    return {"role": "tool", "name": name, "content": format_tool_result(payload)}


def session_opening(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """System prompt plus the runtime's opening memory read, as the messages a session starts with."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        tool_call_message([OPENING_CALL]),
        tool_result_message(OPENING_CALL["name"], graph),
    ]
