"""Training rows: one conversation per session in TRL's conversational tool-calling format.

Each row opens exactly as a live session does (`prompt.session_opening`: the system prompt and
the runtime's read_graph with the memory as it stood), then the user turns, the gold calls, the
real tool results and the replies.
"""

from __future__ import annotations

from typing import Any

import orjson

from memlora.agent.prompt import session_opening, tool_call_message, tool_result_message
from memlora.data.generator import GeneratedEpisode, GenSession


def session_messages(session: GenSession) -> list[dict[str, Any]]:
    """The conversation of one session, as the row's `messages`.

    A recovery turn has two messages of calls: the first, partly rejected one with the server's
    error texts as its results, marked `"loss": false` (the trainer gives it no loss: the model
    should learn the correction, not the mistake), then the corrected calls."""
    messages = session_opening(session.opening_graph)
    for turn in session.turns:
        messages.append({"role": "user", "content": turn.user})
        calls, results = turn.calls, turn.results
        if turn.attempt is not None:
            messages.append({**tool_call_message(turn.attempt.calls), "loss": False})
            for call, result in zip(turn.attempt.calls, turn.attempt.results, strict=True):
                messages.append(tool_result_message(call["name"], result))
            calls, results = calls[turn.attempt.kept:], results[turn.attempt.kept:]
        if calls:
            messages.append(tool_call_message(calls))
            for call, result in zip(calls, results, strict=True):
                messages.append(tool_result_message(call["name"], result))
        messages.append({"role": "assistant", "content": turn.reply})
    return messages


def episode_rows(generated: GeneratedEpisode, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per session: `messages` and the `tools` block the model sees."""
    return [{"messages": session_messages(s), "tools": tools} for s in generated.sessions]


# A row is one JSON line, {"messages": [...], "tools": [...]} in compact form. Every row carries
# the same tool block (about a third of a row's bytes), so datagen serialises it once and joins
# each row's head to it: row_head(m) + row_tail(tools) is exactly the compact JSON of
# {"messages": m, "tools": tools} and a newline (orjson writes what json.dumps writes with
# ensure_ascii=False and separators=(",", ":") for these values: strings, ints, lists, dicts).


def row_head(messages: list[dict[str, Any]]) -> bytes:
    """A row's line up to its tool block: `{"messages":[...],"tools":`."""
    return b'{"messages":' + orjson.dumps(messages) + b',"tools":'


def row_tail(tools: list[dict[str, Any]]) -> bytes:
    """The end every row's line shares: the tool block, the closing brace and the newline."""
    return orjson.dumps(tools) + b"}\n"
