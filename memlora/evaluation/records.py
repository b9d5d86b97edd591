"""What a run records per episode, as plain dataclasses that round-trip through JSON.

The runner appends one `EpisodeRecord` per finished episode to `results.jsonl`; scores are
computed from these records afterwards, so a resumed run and a fresh one score alike and a
scoring fix can be applied to an old run without replaying it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CallRecord:
    """One tool call as the assistant wrote it and what the memory server answered."""

    name: str | None
    arguments: Any
    mode: str = "strict"  # how it was parsed: strict / tolerant / invalid
    invalid: str | None = None  # why it never reached the server (unknown tool, bad arguments)
    result: str | None = None
    is_error: bool = False  # the server answered with an error


@dataclass
class StepRecord:
    """One assistant generation: its raw text, the calls parsed from it and their cost."""

    raw: str
    mode: str  # none (plain reply) / strict / tolerant / invalid
    calls: list[CallRecord] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cached_prompt_tokens: int = 0  # of prompt_tokens, reused from the engine's caches, not run again
    prefill_seconds: float = 0.0  # of seconds, running the prompt tokens that were not cached

    @property
    def format_valid(self) -> bool:
        """Parsed strictly (or a plain reply), every tool known, every argument schema-valid."""
        return self.mode in ("none", "strict") and all(c.invalid is None and c.mode == "strict" for c in self.calls)


@dataclass
class TurnRecord:
    user: str
    steps: list[StepRecord] = field(default_factory=list)
    reply: str = ""
    seconds: float = 0.0
    stop: str = "reply"  # "reply", or "step_limit" when the agent ran out of steps
    error: str | None = None

    @property
    def tokens(self) -> int:
        return sum(s.prompt_tokens + s.completion_tokens for s in self.steps)

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.steps)

    @property
    def write_calls(self) -> list[CallRecord]:
        from memlora.evaluation.episodes import WRITE_TOOLS

        return [c for s in self.steps for c in s.calls if c.name in WRITE_TOOLS]


@dataclass
class SessionRecord:
    id: str
    turns: list[TurnRecord] = field(default_factory=list)
    graph: dict[str, Any] = field(default_factory=dict)  # read_graph right after the session


@dataclass
class ProbeRecord:
    index: int
    after: str
    question: str
    turn: TurnRecord


@dataclass
class EpisodeRecord:
    id: str
    sessions: list[SessionRecord] = field(default_factory=list)
    probes: list[ProbeRecord] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # the episode could not be played to the end

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeRecord:
        return cls(
            id=data["id"],
            sessions=[
                SessionRecord(id=s["id"], turns=[_turn(t) for t in s["turns"]], graph=s.get("graph") or {})
                for s in data.get("sessions", [])
            ],
            probes=[
                ProbeRecord(index=p["index"], after=p["after"], question=p["question"], turn=_turn(p["turn"]))
                for p in data.get("probes", [])
            ],
            seconds=data.get("seconds", 0.0),
            error=data.get("error"),
        )


def _turn(data: dict[str, Any]) -> TurnRecord:
    return TurnRecord(
        user=data["user"],
        steps=[
            StepRecord(
                raw=s["raw"],
                mode=s["mode"],
                calls=[CallRecord(**c) for c in s.get("calls", [])],
                prompt_tokens=s.get("prompt_tokens", 0),
                completion_tokens=s.get("completion_tokens", 0),
                seconds=s.get("seconds", 0.0),
                cached_prompt_tokens=s.get("cached_prompt_tokens", 0),
                prefill_seconds=s.get("prefill_seconds", 0.0),
            )
            for s in data.get("steps", [])
        ],
        reply=data.get("reply", ""),
        seconds=data.get("seconds", 0.0),
        stop=data.get("stop", "reply"),
        error=data.get("error"),
    )
