"""Training rows and test items of the records adapters: deterministic, disjoint splits, valid gold
records, exactly the manager's prompts, gold citations that the evaluator's rule accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from memlora.data import records_rows
from memlora.records import answer as answering
from memlora.records import writer
from memlora.records.items import POSE_TOLERANCE, gold_reply, read_recall_items, read_write_items
from memlora.records.manager import MemoryManager
from memlora.records.scenes import Question, grade, says_not_in_memory, score_citations, support_groups, vocabulary
from memlora.records.schema import SECOND_SENTENCE, validate_record
from memlora.records.store import RecordStore
from records_helpers import ScriptedModel


def _run(out: Path, seed: int = 0) -> dict:
    return records_rows.run_records_datagen(out, seed, writing_rows=120, recall_rows=40, hours=1.0,
                                            tokens_per_second=25.0, test_scenes=2, test_missions=2,
                                            count=lambda texts: [len(t) // 4 for t in texts], token_source="test")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("records-data")
    _run(out)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_rows(data: Path, tmp_path: Path) -> None:
    _run(tmp_path / "again")
    assert _files(tmp_path / "again") == _files(data)
    _run(tmp_path / "other", seed=1)
    assert (tmp_path / "other" / "writing" / "train.rows.jsonl").read_bytes() != \
        (data / "writing" / "train.rows.jsonl").read_bytes()


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_layout_counts_and_stats(data: Path) -> None:
    for task, train in (("writing", 120), ("recall", 40)):
        assert len(_rows(data / task / "train.rows.jsonl")) == train
        assert len(_rows(data / task / "validation.rows.jsonl")) == 16
        stats = json.loads((data / task / "stats.json").read_text())
        assert stats["task"] == f"records-{task}" and stats["seed"] == 0 and stats["estimated_hours"] > 0
    assert len((data / "scenes" / "test.jsonl").read_text().splitlines()) == 2


def _names_in(text: str, split: str) -> set[str]:
    objects, people = vocabulary(split)
    lowered = text.lower()
    found = {o for o in objects if o in lowered or o.replace(" ", "_") in lowered}
    return found | {p for p in people if p.lower() in lowered}


def test_splits_are_disjoint_by_object_and_person(data: Path) -> None:
    # the rows without their system prompts, whose fixed examples (a red ball, Alice) are no data
    texts = {split: "\n".join(json.dumps(r["messages"][1:]) for task in ("writing", "recall")
                              for r in _rows(data / task / f"{split}.rows.jsonl")) for split in ("train", "validation")}
    texts["test"] = "\n".join((data / task / "test.items.jsonl").read_text() for task in ("writing", "recall"))
    for split, text in texts.items():
        assert _names_in(text, split), split  # each split does name its own things
        for other in {"train", "validation", "test"} - {split}:
            assert not _names_in(text, other), (split, other, sorted(_names_in(text, other))[:5])


def test_every_gold_record_validates_and_is_what_the_writer_accepts(data: Path) -> None:
    items = read_write_items(data / "writing" / "test.items.jsonl")
    assert len(items) > 30
    for item in items:
        record = validate_record(item.gold)
        draft, attempt = writer.judge(gold_reply(item.gold))
        assert attempt.record_valid and (draft.event, draft.text, draft.tags) == (record.event, record.text, record.tags)
    for row in _rows(data / "writing" / "train.rows.jsonl"):
        draft, attempt = writer.judge(row["messages"][-1]["content"])
        assert attempt.record_valid and row["messages"][-1]["content"].startswith('{"event":')


def test_written_in_many_ways_with_pose_and_mission_recovered_exactly(data: Path) -> None:
    items = read_write_items(data / "writing" / "test.items.jsonl")
    styles = {style for item in items for style in item.styles}
    assert styles == set(records_rows.STYLES)
    for item in items:
        text, pose, mission = writer.prepare_observation(item.observation)
        gold = item.gold
        if item.pose is None:  # only the text says where: the parser must read it (units and all)
            assert pose is not None, item.observation
            assert all(abs(getattr(pose, k) - gold["pose"][k]) <= POSE_TOLERANCE for k in ("x", "y", "yaw")), item
        else:
            assert item.pose == [gold["pose"]["x"], gold["pose"]["y"], gold["pose"]["yaw"]]
        assert (item.mission or mission) == gold["mission_id"], item.observation
        assert gold["mission_id"] not in text and "x=" not in text.replace(" ", ""), text


def test_writing_rows_are_the_prompt_the_manager_sends(data: Path, minilm) -> None:
    items = read_write_items(data / "writing" / "test.items.jsonl")[:12]
    model = ScriptedModel([gold_reply(item.gold) for item in items])
    manager = MemoryManager(RecordStore(":memory:", minilm), model, adapter_mode="none")
    results = manager.write_many([{"text": i.observation, "pose": i.pose, "mission": i.mission,
                                   "timestamp": i.timestamp} for i in items])
    assert model.seen == [item.messages() for item in items]
    for item, result in zip(items, results):
        assert item.row()["messages"][:-1] == item.messages()
        # a writer that replies with the gold JSON stores the gold record itself (a pose read from
        # degrees in the text is within the tolerance, and so has another id)
        stored, gold = result.record.model_dump(), dict(item.gold)
        if item.pose is None:
            for data in (stored, gold):
                del data["id"], data["pose"]
        assert stored | {"source": "scene"} == gold


def test_recall_gold_answers_cite_only_supporting_records(data: Path) -> None:
    items = read_recall_items(data / "recall" / "test.items.jsonl")
    answerable = unanswerable = 0
    for item in items:
        question = Question(**item.question)
        evidence = item.records()
        citations = answering.parse_citations(item.answer, evidence)
        assert citations.numbers == item.citations and not citations.invalid
        counts = score_citations(question, citations.ids, evidence)
        assert counts["supporting"] == counts["cited"]  # every citation supports the answer
        assert counts["covered"] == counts["groups"]  # and every claim is cited
        if support_groups(question, evidence):
            answerable += 1
            assert grade(question, item.answer, citations.ids)["correct_and_cited"], item
            assert not says_not_in_memory(item.answer)
        else:
            unanswerable += 1
            assert item.answer == answering.NOT_FOUND and not item.citations
        assert item.row()["messages"][:-1] == item.messages()
        assert item.messages()[1]["content"].endswith(f"Question: {question.question}")
    assert answerable and unanswerable
    assert any(item.hidden for item in items) or unanswerable > 2


def test_recall_training_rows_hold_distractors_and_honest_answers(data: Path) -> None:
    rows = _rows(data / "recall" / "train.rows.jsonl")
    answers = [row["messages"][-1]["content"] for row in rows]
    assert any(answer == answering.NOT_FOUND for answer in answers)
    assert any("[" in answer for answer in answers)
    assert all(row["messages"][0]["content"] == answering.ANSWER_SYSTEM_PROMPT for row in rows)
    assert all(row["messages"][1]["content"].count("\n[") >= 2 for row in rows)  # several records shown


def test_the_trainer_reads_the_rows_with_their_prompt_as_the_shared_prefix(data: Path) -> None:
    from memlora.testing import tiny_model
    from memlora.training.sft import tokenize_rows

    tokenizer = tiny_model("qwen").tokenizer
    for task in ("writing", "recall"):
        rows = _rows(data / task / "train.rows.jsonl")[:6]
        cut, prefix = tokenize_rows(tokenizer, rows, frozen_prefix=True)
        system = rows[0]["messages"][0]["content"]
        assert tokenizer.decode(prefix).count(system[:60]) == 1
        for row, tokens in zip(rows, cut):
            learned = tokenizer.decode([t for t, label in zip(tokens["input_ids"], tokens["labels"]) if label != -100])
            assert learned.startswith(row["messages"][-1]["content"]) and "Observation:" not in learned


def test_the_command_writes_rows_and_prints_the_estimate(tmp_path: Path) -> None:
    from memlora.cli import main

    result = CliRunner().invoke(main, ["records", "datagen", "--out", str(tmp_path / "d"), "--writing-rows", "30",
                                       "--recall-rows", "10", "--test-scenes", "1"])
    assert result.exit_code == 0, result.output
    assert "writing: 30 train / 16 validation rows" in result.output and "h of training at 25 tokens/s" in result.output
    assert (tmp_path / "d" / "recall" / "test.items.jsonl").exists()


@pytest.mark.parametrize(("observation", "text", "pose", "mission"), [
    ("saw a cup on the desk (mission: m-7)", "Saw a cup on the desk.", None, "m-7"),
    ("mission id m-1, saw a mug (x: 1.2 m, y: 3.5 m, yaw: 1.57 rad)", "Saw a mug.", (1.2, 3.5, 1.57), "m-1"),
    ("saw a mug at x=120 cm, y=-35 cm, heading 90.0°. Battery at 64%.", "Saw a mug. Battery at 64%.",
     (1.2, -0.35, 1.5708), None),
    ("Hey! entered the lab pose x=1200mm y=3500mm theta=-2.47 for mission m-9", "Hey! entered the lab.",
     (1.2, 3.5, -2.47), "m-9"),
    ("saw a cup (on the desk)", "Saw a cup (on the desk).", None, None),
])
def test_the_manager_reads_poses_in_units_and_keeps_every_sentence_for_the_model(observation, text, pose,
                                                                                  mission) -> None:
    got_text, got_pose, got_mission = writer.prepare_observation(observation)
    assert got_text == text and got_mission == mission
    assert (None if got_pose is None else (got_pose.x, got_pose.y, got_pose.yaw)) == pose
    assert not SECOND_SENTENCE.search(writer.rule_draft(observation).text)  # the rules keep one sentence
