"""The records adapters' evaluator: scores computed right on hand-made outputs, and the whole run
(writing, recall, end to end per routing mode) with a model that answers from a script."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from memlora.data.records_rows import run_records_datagen
from memlora.evaluation.memory_records import _chatter_words, cell, evaluate, score_answers, score_writes
from memlora.records import answer as answering
from memlora.records.items import gold_reply, read_recall_items, read_write_items
from memlora.records.scenes import Question, load_scenes
from memlora.records.schema import MemoryRecord, Pose
from memlora.records.writer import Attempt
from records_helpers import make_record


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("records-eval-data")
    run_records_datagen(out, 3, writing_rows=16, recall_rows=16, hours=1.0, tokens_per_second=25.0, test_scenes=1,
                        test_missions=2, count=lambda texts: [len(t) // 4 for t in texts], token_source="test")
    return out


# -- hand-made outputs -----------------------------------------------------------------------------


@dataclass
class Written:  # what score_writes reads of a manager.WriteResult
    record: MemoryRecord
    method: str
    attempts: list[Attempt] = field(default_factory=list)


def test_write_scores_on_hand_made_results(data: Path) -> None:
    items = read_write_items(data / "writing" / "test.items.jsonl")[:4]
    exact = [MemoryRecord.model_validate(i.gold) for i in items]
    results = [
        Written(exact[0], "model", [Attempt(gold_reply(items[0].gold), True, True)]),  # perfect, first try
        Written(exact[1], "model", [Attempt("no json", False, False), Attempt(gold_reply(items[1].gold), True, True)]),
        Written(exact[2].model_copy(update={"event": "note", "tags": exact[2].tags[:1]}), "rules",
                [Attempt('{"event": "seen"}', True, False), Attempt('{"event": "seen"}', True, False)]),
        Written(exact[3].model_copy(update={"pose": Pose(x=0.0, y=0.0, yaw=0.0), "mission_id": "m-other"}), "model",
                [Attempt(gold_reply(items[3].gold), True, True)]),
    ]
    scores = score_writes(items, results, count_tokens=lambda text: len(text))
    assert scores["json_valid_first_attempt"]["hits"] == 3 and scores["record_valid_first_attempt"]["hits"] == 2
    assert (scores["json_valid_per_attempt"]["hits"], scores["json_valid_per_attempt"]["n"]) == (5, 6)
    assert scores["fell_back_to_rules"]["hits"] == 1
    fields = scores["field_accuracy"]
    assert [fields[k]["hits"] for k in ("event", "tags", "pose", "mission", "all_four")] == [3, 3, 3, 3, 2]
    accepted = [len(gold_reply(items[i].gold)) for i in (0, 1, 3)]
    assert scores["tokens_per_record"]["accepted_reply_mean"] == round(sum(accepted) / 3, 2)
    low, high = scores["field_accuracy"]["all_four"]["ci95"]
    assert low < 0.5 < high and cell(scores["field_accuracy"]["all_four"]).startswith("50.0% (2/4) [")


def test_chatter_left_in_the_text_is_counted(data: Path) -> None:
    item = next(i for i in read_write_items(data / "writing" / "test.items.jsonl")
                if i.chatter and _chatter_words(i.chatter[0], i.gold["text"]))
    gold = MemoryRecord.model_validate(item.gold)
    chatty = gold.model_copy(update={"text": gold.text.rstrip(".") + " " + item.chatter[0].rstrip(".!") + "."})
    scores = score_writes([item, item], [Written(gold, "rules"), Written(chatty, "rules")], len)
    assert scores["chatter_dropped"]["hits"] == 1 and scores["chatter_dropped"]["n"] == 2
    assert scores["model_writes"] == 0 and scores["tokens_per_record"]["n"] == 0


def test_answer_scores_on_hand_made_answers() -> None:
    ball = make_record("Saw a red ball on the table in the kitchen.", tags=["object:red_ball", "room:kitchen"])
    mug = make_record("Saw a blue mug on the desk in the office.", tags=["object:blue_mug", "room:office"])
    where = Question("q1", "where", "Where did we see the red ball?", ["m1"], [ball.id], "", [["kitchen"]])
    unseen = Question("q2", "not_seen", "Where did we see the green hat?", ["m1"], [], "", [])
    evidence = [mug, ball]
    cases = [
        (where, "On the table in the kitchen [2].", True),  # right, cites the support
        (where, "In the kitchen [1][2].", True),  # right, one citation of a distractor
        (where, "Not in memory.", False),  # support was shown: a false "not in memory"
        (unseen, "Not in memory.", True),  # honest
        (unseen, "In the office [1].", False),  # cites a record that does not support anything
        (where, "In the kitchen [7].", False),  # a number that points at no record
    ]
    scores = score_answers([c[0] for c in cases], [evidence] * len(cases), [c[1] for c in cases],
                           prompt_tokens=[100] * 6, evidence_tokens=[40, 40, 40, 40, 40, 600], budget=512)
    assert scores["answer_accuracy"]["hits"] == 3 and scores["answer_accuracy"]["n"] == 6
    answerable = scores["answerable"]
    assert (answerable["correct"]["hits"], answerable["correct"]["n"]) == (3, 4)  # [7] still names the kitchen
    assert answerable["correct_and_cited"]["hits"] == 2 and answerable["said_not_in_memory"]["hits"] == 1
    assert (scores["honest_not_in_memory"]["hits"], scores["honest_not_in_memory"]["n"]) == (1, 2)
    assert (scores["citation_precision"]["hits"], scores["citation_precision"]["n"]) == (2, 4)
    assert (scores["citation_recall"]["hits"], scores["citation_recall"]["n"]) == (2, 4)
    assert scores["answers_with_invalid_citation_numbers"]["hits"] == 1
    assert scores["evidence_tokens"]["within_budget"]["hits"] == 5 and scores["prompt_tokens"]["mean"] == 100


# -- the whole run -----------------------------------------------------------------------------------


class OracleModel:
    """Replies like a perfect adapter for its roles (the gold reply of the prompt it was given) and like
    a hopeless base model otherwise; counts its calls per role."""

    name = "model:oracle"
    token_counter = "characters"

    def __init__(self, data: Path) -> None:
        self.gold: dict[str, str] = {}
        for item in read_write_items(data / "writing" / "test.items.jsonl"):
            self.gold[item.messages()[-1]["content"]] = gold_reply(item.gold)
        for item in read_recall_items(data / "recall" / "test.items.jsonl"):
            self.gold[item.messages()[-1]["content"]] = item.answer
        self.calls: dict[str | None, int] = {}

    def adapter_for(self, role: str | None) -> str | None:
        return {"writing": "oracle-writing", "recall": "oracle-recall"}.get(role or "")

    def complete(self, conversations: Any, max_tokens: int, role: str | None = None) -> list[str]:
        self.calls[role] = self.calls.get(role, 0) + len(conversations)
        replies = []
        for messages in conversations:
            prompt = messages[-1]["content"]
            if role is None:
                replies.append("Sure, here it is!" if prompt.startswith("Observation") else answering.NOT_FOUND)
            else:
                replies.append(self.gold.get(prompt, answering.NOT_FOUND))
        return replies

    def count_tokens(self, text: str) -> int:
        return len(text)


def test_the_whole_run_scores_an_oracle_against_a_hopeless_base(data: Path, tmp_path: Path, minilm) -> None:
    scenes = load_scenes(data / "scenes" / "test.jsonl")
    writes = read_write_items(data / "writing" / "test.items.jsonl")
    recalls = read_recall_items(data / "recall" / "test.items.jsonl")
    model = OracleModel(data)
    report = evaluate(model=model, scenes=scenes, write_items=writes, recall_items=recalls, out=tmp_path,
                      embedder=minilm, batch=16, log=lambda line: None)
    assert set(report["writing"]) == {"rules", "base", "writing"}
    oracle, base = report["writing"]["writing"], report["writing"]["base"]
    assert oracle["record_valid_first_attempt"]["rate"] == 1.0 == oracle["field_accuracy"]["all_four"]["rate"]
    assert oracle["chatter_dropped"]["rate"] in (1.0, None) and oracle["text_as_gold"]["rate"] == 1.0
    assert base["json_valid_first_attempt"]["rate"] == 0.0 and base["fell_back_to_rules"]["rate"] == 1.0
    assert base["field_accuracy"]["pose"]["rate"] == 1.0  # pose and mission come from the caller, not the model
    perfect, hopeless = report["recall"]["recall"], report["recall"]["base"]
    assert perfect["answer_accuracy"]["rate"] == 1.0
    assert perfect["citation_precision"]["rate"] == 1.0 == perfect["citation_recall"]["rate"]
    assert hopeless["honest_not_in_memory"]["rate"] == 1.0 and hopeless["answerable"]["correct"]["rate"] == 0.0
    e2e = report["end_to_end"]
    assert list(e2e) == ["no model (rules + extractive)", "none", "writing", "recall", "auto"]
    assert {name: row["writer"] for name, row in e2e.items()} == {
        "no model (rules + extractive)": "rules", "none": "base", "writing": "writing", "recall": "base",
        "auto": "writing"}
    assert e2e["auto"]["success@5"]["n"] == sum(1 for s in scenes for q in s.questions if q.expected_ids)
    assert e2e["auto"]["success@5"]["rate"] > 0.5
    # writes go through once per writer (rules, base, writing); answers on fixed evidence and end to end
    questions = sum(len(s.questions) for s in scenes)
    assert model.calls["writing"] == len(writes)
    assert model.calls["recall"] <= len(recalls) + 2 * questions
    markdown = (tmp_path / "report.md").read_text()
    assert "| writing |" in markdown and "| auto | writing |" in markdown
    assert json.loads((tmp_path / "report.json").read_text())["items"]["observations"] == len(writes)

    class Refuses(OracleModel):
        def complete(self, *args: Any, **kwargs: Any) -> list[str]:
            raise AssertionError("a finished part ran again")

    again = evaluate(model=Refuses(data), scenes=scenes, write_items=writes, recall_items=recalls, out=tmp_path,
                     embedder=minilm, batch=16, log=lambda line: None)
    assert again["end_to_end"] == report["end_to_end"] and again["recall"] == report["recall"]


def test_modes_without_their_adapter_are_left_out(data: Path, tmp_path: Path, minilm) -> None:
    class WritingOnly(OracleModel):
        def adapter_for(self, role: str | None) -> str | None:
            return "oracle-writing" if role == "writing" else None

    scenes = load_scenes(data / "scenes" / "test.jsonl")
    lines: list[str] = []
    report = evaluate(model=WritingOnly(data), scenes=scenes, write_items=read_write_items(data / "writing" / "test.items.jsonl"),
                      recall_items=read_recall_items(data / "recall" / "test.items.jsonl"), out=tmp_path,
                      embedder=minilm, parts=("recall", "e2e"), with_rules=False, log=lines.append)
    assert list(report["recall"]) == ["base"] and report["writing"] == {}
    assert list(report["end_to_end"]) == ["none", "writing"]
    assert any("mode recall skipped" in line for line in lines) and any("mode auto skipped" in line for line in lines)
