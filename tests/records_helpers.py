"""Shared pieces of the records tests: the real bundled embedder (loaded once) and record builders."""

from __future__ import annotations

from typing import Any

from memlora.records.schema import MemoryRecord, Pose, build_record, validate_draft


def make_record(text: str, *, event: str = "object_seen", tags: list[str] | None = None, mission: str | None = "m1",
                timestamp: float = 1_700_000_000.0, pose: tuple[float, float, float] | None = None,
                source: str = "rules") -> MemoryRecord:
    draft = validate_draft({"event": event, "text": text, "tags": tags or []})
    return build_record(draft, mission_id=mission, timestamp=timestamp, source=source,
                        pose=None if pose is None else Pose(x=pose[0], y=pose[1], yaw=pose[2]))


class ScriptedModel:
    """A chat model that replies from a script: for the writer's retry logic, nothing that claims quality."""

    name = "model:scripted"
    adapter = None
    token_counter = "words"

    def __init__(self, replies: list[str], adapters: dict[str, str] | None = None) -> None:
        self.replies = list(replies)
        self.seen: list[list[dict[str, Any]]] = []
        self.roles: list[str | None] = []  # the adapter role of each conversation, in order
        self.adapters = adapters or {}  # role -> adapter name, as a routed local model reports them

    def adapter_for(self, role: str | None) -> str | None:
        return self.adapters.get(role) if role else None

    def complete(self, conversations: Any, max_tokens: int, role: str | None = None) -> list[str]:
        out = []
        for messages in conversations:
            self.seen.append(messages)
            self.roles.append(role)
            out.append(self.replies.pop(0))
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split())
