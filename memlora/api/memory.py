"""Memory mode: the server runs the memory tools for the model, so a plain chat client gets a
model that remembers across conversations.

Each user id (the request's `user` field) has its own store, named by the `--store` URL with
`{user}` filled in (`sqlite::memory:` keeps one in-memory store per user for the process).
A request is one agent turn (memlora.agent.loop.MemoryAgent, the same loop `memlora chat` and
the evaluator run): a new session reads the user's whole memory, the client's earlier turns
follow, then the model calls tools against that memory until it replies. One user's requests
run one at a time, so two of them never interleave their writes; different users' requests
run together and their generations share the engine's batches.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from typing import Any

from memlora.api.schemas import ApiError, MemoryCall, Message

USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
MEMORY_SUFFIX = ":remember"  # a model id plus this suffix is that model in memory mode


def check_store_template(url: str) -> str:
    """`--store` must give every user a store of their own: a `{user}` in the path, or in-memory."""
    if url == "sqlite::memory:" or "{user}" in url:
        return url
    raise ValueError(f"--store {url!r} must contain {{user}} so that each user has their own memory, "
                     "e.g. sqlite:/data/memlora/{user}.db (or sqlite::memory: for memories that end with the process)")


def check_user(user: str | None) -> str:
    if not user:
        raise ApiError(400, "user: memory mode needs a user id (the request's `user` field or the X-Memlora-User "
                            "header) to know whose memory to use", param="user")
    if not USER_ID.match(user):
        raise ApiError(400, "user: a user id is 1-128 letters, digits and . _ @ - (starting with a letter or "
                            "digit)", param="user")
    return user


class UserMemories:
    """Opens each user's store once and keeps its MCP server; the least recently used close first."""

    def __init__(self, template: str, keep_open: int = 256) -> None:
        self.template = check_store_template(template)
        self.keep_open = keep_open
        self._open: OrderedDict[str, tuple[Any, Any]] = OrderedDict()  # user -> (store, server)
        self._locks: dict[str, asyncio.Lock] = {}

    def url(self, user: str) -> str:
        return self.template.replace("{user}", user)

    def lock(self, user: str) -> asyncio.Lock:
        return self._locks.setdefault(user, asyncio.Lock())

    def server(self, user: str) -> Any:
        from memlora.server.app import build_server
        from memlora.store import open_store

        if user in self._open:
            self._open.move_to_end(user)
            return self._open[user][1]
        url = self.url(user)
        if url.startswith("sqlite:") and url != "sqlite::memory:":
            from pathlib import Path

            Path(url.removeprefix("sqlite:")).parent.mkdir(parents=True, exist_ok=True)
        store = open_store(url)
        self._open[user] = (store, build_server(store))
        if self.template != "sqlite::memory:":  # closing an in-memory store would lose that user's memory
            idle = [name for name in self._open if name != user and not self.lock(name).locked()]
            for name in idle[: max(0, len(self._open) - self.keep_open)]:
                self._open.pop(name)[0].close()
        return self._open[user][1]

    def close(self) -> None:
        for store, _ in self._open.values():
            store.close()
        self._open.clear()


def client_history(messages: list[Message]) -> tuple[list[dict[str, Any]], str]:
    """The client's earlier turns as agent messages, and the new user message.

    Memory mode owns the system prompt and the tools: a client's system messages are dropped
    (chat UIs send one by default), while tool messages or tool calls are refused, since the
    client never saw the memory tools."""
    for index, message in enumerate(messages):
        if message.role == "tool" or message.tool_calls:
            raise ApiError(400, f"messages.{index}: memory mode runs the memory tools itself; send only user and "
                                "assistant messages", param=f"messages.{index}")
    if messages[-1].role != "user":
        raise ApiError(400, "messages: in memory mode the last message must be the user's", param="messages")
    history = [{"role": m.role, "content": m.text} for m in messages[:-1] if m.role in ("user", "assistant")]
    return history, messages[-1].text


async def remember(engine: Any, memories: UserMemories, user: str, adapter: str | None, messages: list[Message],
                   params: Any, max_steps: int) -> Any:
    """One agent turn against the user's memory; returns memlora.agent.loop.TurnRecord."""
    from mcp import Client

    from memlora.agent.loop import MemoryAgent, MemoryClient
    from memlora.agent.protocol import server_tools

    history, last = client_history(messages)
    async with memories.lock(user):
        async with Client(memories.server(user)) as client:
            memory = MemoryClient(client)
            memory.tools = server_tools()  # memlora's own server: its listing, computed once
            agent = MemoryAgent(engine, memory, adapter=adapter, params=params, max_steps=max_steps)
            await agent.start_session()
            agent.messages += history
            return await agent.turn(last)


def memory_calls(turn: Any) -> list[MemoryCall]:
    return [MemoryCall(name=call.name, arguments=call.arguments, result=call.result,
                       ok=bool(call.valid and not call.is_error)) for call in turn.calls]
