"""The items of the two records tasks: an observation with its gold record (writing), a question
with the records shown for it and its gold answer (recall).

`memlora records datagen` (memlora.data.records_rows) makes them from the scene generator; their
`row()` is a training row for `memlora train sft` and their `messages()` the exact prompt the
MemoryManager builds (`writer.prepare_observation` + `writer.write_messages`,
`answer.answer_messages`), so the evaluator (memlora.evaluation.memory_records) and the trainer
read one definition.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memlora.records import answer as answering
from memlora.records import writer
from memlora.records.schema import MemoryRecord
from memlora.records.store import Hit

POSE_TOLERANCE = 0.005  # metres and radians: a pose spelled in degrees with one decimal is within it


def gold_reply(record: dict[str, Any]) -> str:
    """The reply the writing adapter learns: event, text and tags, compact JSON (the fewest
    tokens the writer accepts; pose, mission and time come from the caller)."""
    return json.dumps({"event": record["event"], "text": record["text"], "tags": record["tags"]},
                      ensure_ascii=False, separators=(",", ":"))


@dataclass
class WriteItem:
    """One observation as a caller hands it to `MemoryManager.write`, with its gold record."""

    id: str
    observation: str
    pose: list[float] | None  # the caller's pose; None when only the text says it
    mission: str | None  # the caller's mission; None when only the text says it
    timestamp: float
    styles: list[str]
    chatter: list[str]  # what was added that the record must drop
    gold: dict[str, Any]

    def messages(self) -> list[dict[str, str]]:
        """The writer's prompt for this observation, as the manager builds it."""
        text, _, _ = writer.prepare_observation(self.observation)
        return writer.write_messages(text)

    def row(self) -> dict[str, Any]:
        return {"messages": [*self.messages(), {"role": "assistant", "content": gold_reply(self.gold)}]}


@dataclass
class RecallItem:
    """One question, the records shown for it (rank order) and the gold answer with its citations."""

    id: str
    question: dict[str, Any]  # a scenes.Question as a dict
    evidence: list[dict[str, Any]]  # MemoryRecord dumps, best first
    answer: str
    citations: list[int]  # evidence numbers the gold answer cites
    hidden: bool = False  # the supporting records were left out of the evidence on purpose

    def records(self) -> list[MemoryRecord]:
        return [MemoryRecord.model_validate(r) for r in self.evidence]

    def shown(self) -> answering.Evidence:
        return evidence_of(self.records())

    def messages(self) -> list[dict[str, str]]:
        """The answer prompt for this question and evidence, as the manager builds it."""
        return answering.answer_messages(self.question["question"], self.shown())

    def row(self) -> dict[str, Any]:
        return {"messages": [*self.messages(), {"role": "assistant", "content": self.answer}]}


def evidence_of(records: Sequence[MemoryRecord], budget: int = 512) -> answering.Evidence:
    """The numbered evidence the manager would show for these records in this order (`fit_budget`
    with a conservative three characters a token: a handful of records never reach the budget)."""
    return answering.fit_budget([Hit(r, 0.0) for r in records], budget, lambda text: len(text) // 3 + 1)


def read_write_items(path: Path) -> list[WriteItem]:
    return [WriteItem(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_recall_items(path: Path) -> list[RecallItem]:
    return [RecallItem(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
