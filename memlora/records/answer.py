"""Answering from retrieved records: the evidence block, the strict prompt, citations, extraction.

Evidence is shown to the model as numbered lines, best first, and only as many as fit the
token budget; the model must answer in one sentence and cite the lines it used as [1], [2].
Citations are mapped back to record ids; a number that points at no line is kept in the trace
as invalid. Without a model the answer is extractive: the best record's own sentence, cited.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memlora.records.schema import MemoryRecord
from memlora.records.store import Hit

NOT_FOUND = "Not in memory."
ANSWER_SYSTEM_PROMPT = (
    "You answer questions about what a robot observed, using only its numbered memory records.\n"
    "Answer in one short sentence and cite every record you used by its number in square brackets, "
    "e.g. [1] or [2][3]. Say where (room and place), when (date and time) or in which mission, as asked.\n"
    f"If no record answers the question, reply exactly: {NOT_FOUND}\n"
    # Two worked examples: without them the bare 0.5B model replied with citation numbers alone
    # ("[1]"), rarely correct (docs/benchmarks.md); the examples cost nothing per question, since
    # the system prompt's KV cache is computed once.
    "Example:\n"
    "Records:\n"
    "[1] 2025-10-15 14:03 UTC, mission m-7, at x=1.20, y=3.50, yaw=1.57, object_seen: "
    "Saw a red ball on the table in the kitchen. (object:red_ball, place:table, room:kitchen)\n"
    "[2] 2025-10-15 14:10 UTC, mission m-7, at x=4.00, y=1.00, yaw=0.10, person_met: Met Alice in the lobby. "
    "(person:alice, room:lobby)\n"
    "Question: Where did we see the red ball?\n"
    "Answer: On the table in the kitchen, on 2025-10-15 during mission m-7 [1].\n"
    "Question: Where did we see the green hat?\n"
    f"Answer: {NOT_FOUND}"
)
# Extractive answering: below this cosine similarity the best record is treated as unrelated.
EXTRACTIVE_MIN_SIMILARITY = 0.45
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def evidence_line(number: int, record: MemoryRecord) -> str:
    """How one record is shown to the answering model: number, time, mission, pose, event, text, tags."""
    parts = [f"[{number}] {when(record.timestamp)}"]
    if record.mission_id:
        parts.append(f"mission {record.mission_id}")
    if record.pose is not None:
        parts.append(f"at {record.pose.short()}")
    head = ", ".join(parts)
    tags = f" ({', '.join(record.tags)})" if record.tags else ""
    return f"{head}, {record.event}: {record.text}{tags}"


@dataclass
class Evidence:
    """The records that fit the budget, in rank order, and what they cost."""

    records: list[MemoryRecord]
    lines: list[str]
    tokens: int
    budget: int
    dropped: list[str] = field(default_factory=list)  # ids retrieved but left out for the budget

    @property
    def within_budget(self) -> bool:
        return self.tokens <= self.budget


def fit_budget(hits: Sequence[Hit], budget: int, count_tokens: Callable[[str], int]) -> Evidence:
    """Takes hits in rank order while their lines fit `budget` tokens; stops at the first that does not."""
    records, lines, used = [], [], 0
    dropped: list[str] = []
    for hit in hits:
        if dropped:
            dropped.append(hit.record.id)
            continue
        line = evidence_line(len(lines) + 1, hit.record)
        cost = count_tokens(line + "\n")
        if used + cost > budget:
            dropped.append(hit.record.id)
            continue
        records.append(hit.record)
        lines.append(line)
        used += cost
    return Evidence(records, lines, used, budget, dropped)


def answer_messages(question: str, evidence: Evidence) -> list[dict[str, str]]:
    block = "\n".join(evidence.lines) if evidence.lines else "(no records)"
    return [
        {"role": "system", "content": ANSWER_SYSTEM_PROMPT},
        {"role": "user", "content": f"Records:\n{block}\n\nQuestion: {question}"},
    ]


@dataclass
class Citations:
    ids: list[str]  # cited record ids, in order of first citation
    numbers: list[int]
    invalid: list[int]  # numbers that point at no evidence line


def parse_citations(answer: str, evidence: Sequence[MemoryRecord]) -> Citations:
    ids, numbers, invalid = [], [], []
    for match in _CITATION.finditer(answer):
        for piece in match[1].split(","):
            number = int(piece)
            if 1 <= number <= len(evidence):
                if number not in numbers:
                    numbers.append(number)
                    ids.append(evidence[number - 1].id)
            elif number not in invalid:
                invalid.append(number)
    return Citations(ids, numbers, invalid)


def extractive_answer(hits: Sequence[Hit], evidence: Evidence) -> str:
    """The best evidence record's sentence with its time and mission, cited as [1]; or NOT_FOUND."""
    if not evidence.records:
        return NOT_FOUND
    best = hits[0]
    related = best.fts_rank is not None or (best.similarity is not None and best.similarity >= EXTRACTIVE_MIN_SIMILARITY)
    if not related:
        return NOT_FOUND
    record = evidence.records[0]
    where = f" (mission {record.mission_id}, {when(record.timestamp)})" if record.mission_id else f" ({when(record.timestamp)})"
    return f"{record.text.rstrip('.')}{where} [1]."


def clean_answer(text: str) -> str:
    """The model's reply as one line: no chat markers, no trailing whitespace, at most 400 characters."""
    text = text.replace("<|im_end|>", "").replace("<end_of_turn>", "").strip()
    text = " ".join(text.split())
    return text[:400]


def summary(record: MemoryRecord) -> dict[str, Any]:
    """A record as shown in CLI and MCP answers."""
    return {"id": record.id, "text": record.text, "event": record.event, "mission_id": record.mission_id,
            "timestamp": record.timestamp, "pose": None if record.pose is None else record.pose.model_dump(),
            "tags": record.tags}
