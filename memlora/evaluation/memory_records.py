"""Scoring the records adapters against the base model with the strict prompts.

On the test items `memlora records datagen` writes (held-out scenes: no object or person of
them is in any training row), three parts, each a pure function of the model's outputs so that
the rules can be tested on hand-made outputs:

- **writing**: every test observation goes through `MemoryManager.write_many` with the caller's
  pose and mission as the item gives them (some only in the text, with units). Scored: the first
  reply is one JSON object, and a valid record; replies per attempt; fallbacks to the rules;
  field accuracy of the stored record against the gold one (event, tag set, pose within
  POSE_TOLERANCE, mission, all four); the chatter the observation carried is gone from the
  text; tokens of the accepted reply per record (fewer for the same fields is better).
- **recall**: the answer prompt on each item's fixed evidence, answered by the model alone (no
  retrieval): answers that are right (`scenes.grade`) on questions the evidence supports,
  citation precision and recall (`scenes.score_citations`), an honest `Not in memory.` without
  citations where no record supports an answer, and prompt and evidence tokens against the budget.
- **end to end**: the stores the writing part filled (one per writing adapter) are asked every
  test question through `MemoryManager.recall_many` under each routing mode (none, writing,
  recall, auto): success@1 and @k of retrieval against the records written for the gold ones,
  and the same answer scores. Modes that share a writing adapter share a store.

Every proportion is a count with its 95% Wilson interval (`memlora.records.traces.rate`).
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from memlora.records.items import POSE_TOLERANCE, RecallItem, WriteItem
from memlora.records import answer as answering
from memlora.records.scenes import Question, Scene, grade, says_not_in_memory, score_citations
from memlora.records.schema import MemoryRecord
from memlora.records.traces import rate
from memlora.routing import role_for

MODES = ("none", "writing", "recall", "auto")


def pose_matches(pose: Any, gold: dict[str, float] | None, tolerance: float = POSE_TOLERANCE) -> bool:
    if gold is None or pose is None:
        return pose is None and gold is None
    got = pose if isinstance(pose, dict) else pose.model_dump()
    return all(abs(got[key] - gold[key]) <= tolerance for key in ("x", "y", "yaw"))


def _chatter_words(chatter: str, gold_text: str) -> set[str]:
    """The words of a piece of chatter that the gold text does not have (what must be gone)."""
    gold = set(re.findall(r"[a-z]+", gold_text.lower()))
    return {w for w in re.findall(r"[a-z]+", chatter.lower()) if len(w) >= 4 and w not in gold}


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 2) if values else None


# -- writing -------------------------------------------------------------------------------------


def score_writes(items: Sequence[WriteItem], results: Sequence[Any], count_tokens: Callable[[str], int]) -> dict[str, Any]:
    """Scores for write results (manager.WriteResult) of `items`, in the same order."""
    n = len(items)
    first_json = first_valid = attempts = json_ok = valid_ok = modelled = fallbacks = 0
    event = tags = pose = mission = every = exact_text = 0
    tag_hits = tag_written = tag_gold = 0
    chatter_items = chatter_gone = 0
    reply_tokens: list[int] = []
    all_tokens: list[int] = []
    for item, result in zip(items, results, strict=True):
        tries = result.attempts
        if tries:
            modelled += 1
            first_json += tries[0].json_valid
            first_valid += tries[0].record_valid
            attempts += len(tries)
            json_ok += sum(t.json_valid for t in tries)
            valid_ok += sum(t.record_valid for t in tries)
            fallbacks += result.method == "rules"
            all_tokens.append(sum(count_tokens(t.output) for t in tries))
            if result.method == "model":
                reply_tokens.append(count_tokens(tries[-1].output))
        record, gold = result.record, item.gold
        ok_event = record.event == gold["event"]
        ok_tags = set(record.tags) == set(gold["tags"])
        ok_pose = pose_matches(record.pose, gold["pose"])
        ok_mission = record.mission_id == gold["mission_id"]
        event += ok_event
        tags += ok_tags
        pose += ok_pose
        mission += ok_mission
        every += ok_event and ok_tags and ok_pose and ok_mission
        exact_text += record.text == gold["text"]
        tag_hits += len(set(record.tags) & set(gold["tags"]))
        tag_written += len(set(record.tags))
        tag_gold += len(set(gold["tags"]))
        if item.chatter:
            chatter_items += 1
            leftover = set().union(*(_chatter_words(c, gold["text"]) for c in item.chatter))
            chatter_gone += not (leftover & set(re.findall(r"[a-z]+", record.text.lower())))
    return {
        "observations": n,
        "model_writes": modelled,
        "json_valid_first_attempt": rate(first_json, modelled),
        "record_valid_first_attempt": rate(first_valid, modelled),
        "json_valid_per_attempt": rate(json_ok, attempts),
        "record_valid_per_attempt": rate(valid_ok, attempts),
        "fell_back_to_rules": rate(fallbacks, modelled),
        "field_accuracy": {"event": rate(event, n), "tags": rate(tags, n), "pose": rate(pose, n),
                           "mission": rate(mission, n), "all_four": rate(every, n)},
        "tag_precision": rate(tag_hits, tag_written),
        "tag_recall": rate(tag_hits, tag_gold),
        "text_as_gold": rate(exact_text, n),
        "chatter_dropped": rate(chatter_gone, chatter_items),
        "tokens_per_record": {"accepted_reply_mean": _mean(reply_tokens), "all_attempts_mean": _mean(all_tokens),
                              "n": len(reply_tokens)},
    }


# -- recall --------------------------------------------------------------------------------------


def score_answers(questions: Sequence[Question], evidences: Sequence[Sequence[MemoryRecord]], answers: Sequence[str],
                  prompt_tokens: Sequence[int | None] = (), evidence_tokens: Sequence[int | None] = (),
                  budget: int = 512) -> dict[str, Any]:
    """Scores answers to `questions`, each given the records of `evidences` (numbered from 1)."""
    answerable = right = right_cited = false_none = unanswerable = honest = 0
    cited = supporting = groups = covered = invalid = 0
    for question, evidence, answer in zip(questions, evidences, answers, strict=True):
        citations = answering.parse_citations(answer, evidence)
        counts = score_citations(question, citations.ids, evidence)
        cited += counts["cited"]
        supporting += counts["supporting"]
        groups += counts["groups"]
        covered += counts["covered"]
        invalid += bool(citations.invalid)
        if counts["groups"]:
            answerable += 1
            graded = grade(question, answer, citations.ids)
            right += graded["correct"]
            right_cited += graded["correct_and_cited"]
            false_none += says_not_in_memory(answer)
        else:
            unanswerable += 1
            honest += says_not_in_memory(answer) and not citations.ids
    n = len(answers)
    prompts = [t for t in prompt_tokens if t is not None]
    evidence_counts = [t for t in evidence_tokens if t is not None]
    return {
        "questions": n,
        "answer_accuracy": rate(right_cited + honest, n),  # right and cited, or honestly not in memory
        "answerable": {"correct": rate(right, answerable), "correct_and_cited": rate(right_cited, answerable),
                       "said_not_in_memory": rate(false_none, answerable)},
        "honest_not_in_memory": rate(honest, unanswerable),
        "citation_precision": rate(supporting, cited),
        "citation_recall": rate(covered, groups),
        "answers_with_invalid_citation_numbers": rate(invalid, n),
        "prompt_tokens": {"mean": _mean(prompts), "max": max(prompts, default=None), "n": len(prompts)},
        "evidence_tokens": {"mean": _mean(evidence_counts), "max": max(evidence_counts, default=None),
                            "budget": budget, "within_budget": rate(sum(t <= budget for t in evidence_counts),
                                                                    len(evidence_counts))},
    }


def answer_items(model: Any, items: Sequence[RecallItem], role: str | None, max_tokens: int,
                 batch: int) -> tuple[list[str], list[int], list[int]]:
    """The model's answers to the items' prompts (fixed evidence), with prompt and evidence tokens."""
    answers: list[str] = []
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        replies = model.complete([item.messages() for item in chunk], max_tokens, role=role)
        answers += [answering.clean_answer(reply) or answering.NOT_FOUND for reply in replies]
    prompts = [sum(model.count_tokens(m["content"]) for m in item.messages()) for item in items]
    evidence = [sum(model.count_tokens(line + "\n") for line in item.shown().lines) for item in items]
    return answers, prompts, evidence


# -- end to end ------------------------------------------------------------------------------------


def mapped_question(question: Question, written: dict[str, str]) -> Question:
    """The question with its gold record ids replaced by the ids of the records written for them."""
    return Question(**{**asdict(question), "expected_ids": [written[i] for i in question.expected_ids if i in written]})


def score_end_to_end(questions: Sequence[Question], results: Sequence[Any], k: int) -> dict[str, Any]:
    """Retrieval success@1 and @k against the written gold records, and the answers' scores."""
    judged = at1 = atk = 0
    for question, result in zip(questions, results, strict=True):
        if question.expected_ids:
            judged += 1
            retrieved = [hit.record.id for hit in result.hits]
            at1 += bool(set(question.expected_ids) & set(retrieved[:1]))
            atk += bool(set(question.expected_ids) & set(retrieved[:k]))
    answers = score_answers(questions, [r.evidence for r in results], [r.answer for r in results],
                            [r.trace.get("prompt_tokens") for r in results],
                            [r.trace.get("evidence_tokens") for r in results],
                            results[0].trace.get("token_budget", 512) if results else 512)
    # on the end-to-end path a question is answerable when retrieval found its record
    return {"success@1": rate(at1, judged), f"success@{k}": rate(atk, judged), **answers}


# -- the run -------------------------------------------------------------------------------------


class Parts:
    """Finished parts of a run as JSON files in OUT/parts: a rerun skips them (hours of model time)."""

    def __init__(self, out: Path) -> None:
        self.folder = out / "parts"
        self.folder.mkdir(parents=True, exist_ok=True)

    def get(self, name: str) -> dict[str, Any] | None:
        path = self.folder / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, name: str, value: dict[str, Any]) -> dict[str, Any]:
        path = self.folder / f"{name}.json"
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(value, indent=1, default=str))
        temp.replace(path)
        return value


def role_label(role: str | None) -> str:
    return role or "base"


def evaluate(*, model: Any, scenes: Sequence[Scene], write_items: Sequence[WriteItem],
             recall_items: Sequence[RecallItem], out: Path, embedder: Any, modes: Sequence[str] = MODES,
             parts: Sequence[str] = ("writing", "recall", "e2e"), k: int = 5, budget: int = 512, batch: int = 8,
             with_rules: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs the asked parts for `model` (a records ChatModel whose roles are the adapters to
    score; a role it has no adapter for is skipped, since it would repeat the base model) and
    writes OUT/report.json and OUT/report.md."""
    from memlora.records.manager import ANSWER_MAX_TOKENS, MemoryManager, RecallRequest
    from memlora.records.store import RecordStore

    done = Parts(out)
    report: dict[str, Any] = {"model": getattr(model, "name", None), "items": {
        "scenes": len(scenes), "observations": len(write_items), "recall_items": len(recall_items),
        "questions": sum(len(s.questions) for s in scenes)}, "writing": {}, "recall": {}, "end_to_end": {}}
    available = {None} | {role for role in ("writing", "recall") if model is not None and model.adapter_for(role)}
    write_roles = [r for r in (None, "writing") if r in available]
    stores: dict[str, Any] = {}
    written: dict[str, dict[str, str]] = {}
    writers: list[tuple[str, Any, str | None]] = [(role_label(r), model, r) for r in write_roles]
    if with_rules:
        writers.insert(0, ("rules", None, None))
    needs_stores = "e2e" in parts
    for label, chat, role in writers:
        if "writing" not in parts and not needs_stores:
            break
        path = out / "stores" / f"{label}.db"
        saved = done.get(f"writing-{label}")
        if saved is None or not path.exists():
            log(f"writing {len(write_items)} observations with {label} ...")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            store = RecordStore(path, embedder)
            manager = MemoryManager(store, chat, trace=out / "traces" / f"write-{label}.jsonl",
                                    adapter_mode="writing" if role else "none")
            started = time.perf_counter()
            results = []
            for start in range(0, len(write_items), batch):
                chunk = write_items[start : start + batch]
                results += manager.write_many([{"text": i.observation, "pose": i.pose, "mission": i.mission,
                                                "timestamp": i.timestamp} for i in chunk])
                log(f"  {label}: {len(results)}/{len(write_items)} written")
            seconds = time.perf_counter() - started
            count = chat.count_tokens if chat is not None else (lambda text: len(text.split()))
            scores = score_writes(write_items, results, count)
            saved = done.put(f"writing-{label}", {
                "writer": label, "seconds": round(seconds, 1), **scores,
                "written": {i.gold["id"]: r.record.id for i, r in zip(write_items, results)},
                "examples": [{"observation": i.observation, "attempts": [a.trace() for a in r.attempts],
                              "record": r.record.model_dump(), "gold": i.gold}
                             for i, r in list(zip(write_items, results))[:: max(1, len(results) // 6)]]})
            stores[label] = store
        else:
            stores[label] = RecordStore(path, embedder)
        written[label] = saved["written"]
        if "writing" in parts:
            report["writing"][label] = {key: value for key, value in saved.items() if key != "written"}

    if "recall" in parts:
        for role in [r for r in (None, "recall") if r in available]:
            label = role_label(role)
            saved = done.get(f"recall-{label}")
            if saved is None:
                log(f"answering {len(recall_items)} questions on fixed evidence with {label} ...")
                started = time.perf_counter()
                answers, prompts, evidence = answer_items(model, recall_items, role, ANSWER_MAX_TOKENS, batch)
                questions = [Question(**item.question) for item in recall_items]
                scores = score_answers(questions, [item.records() for item in recall_items], answers, prompts,
                                       evidence, budget)
                saved = done.put(f"recall-{label}", {
                    "answerer": label, "seconds": round(time.perf_counter() - started, 1), **scores,
                    "examples": [{"question": q.question, "answer": a, "gold": item.answer}
                                 for q, a, item in list(zip(questions, answers, recall_items))[:: max(1, len(answers) // 8)]]})
            report["recall"][label] = saved

    if "e2e" in parts:
        rows: list[tuple[str, str, str | None]] = []  # (name, writer label, mode)
        if with_rules:
            rows.append(("no model (rules + extractive)", "rules", None))
        for mode in modes:
            write_role, recall_role = role_for(mode, "write"), role_for(mode, "recall")
            if write_role not in available or recall_role not in available:
                log(f"end to end: mode {mode} skipped (no {write_role if write_role not in available else recall_role} "
                    "adapter loaded)")
                continue
            rows.append((mode, role_label(write_role), mode))
        questions = [q for scene in scenes for q in scene.questions]
        for name, writer_label, mode in rows:
            saved = done.get(f"e2e-{name}")
            if saved is None:
                log(f"end to end, {name}: {len(questions)} questions ...")
                chat = None if mode is None else model
                manager = MemoryManager(stores[writer_label], chat, trace=out / "traces" / f"recall-{name}.jsonl",
                                        adapter_mode=mode or "none")
                mapped = [mapped_question(q, written[writer_label]) for q in questions]
                requests = [RecallRequest(q.question, k=k, token_budget=budget, missions=tuple(q.missions),
                                          expected_ids=q.expected_ids) for q in mapped]
                started = time.perf_counter()
                results = []
                for start in range(0, len(requests), batch):
                    results += manager.recall_many(requests[start : start + batch])
                scores = score_end_to_end(mapped, results, k)
                saved = done.put(f"e2e-{name}", {"routing": name, "writer": writer_label,
                                                 "seconds": round(time.perf_counter() - started, 1), **scores})
            report["end_to_end"][name] = saved
    for store in stores.values():
        store.close()
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.md").write_text(markdown(report))
    return report


# -- the tables ------------------------------------------------------------------------------------


def cell(value: dict[str, Any] | None) -> str:
    """'97.1% (134/138) [92.8-98.9]'; 'n/a' without a count."""
    if not value or not value.get("n"):
        return "n/a"
    low, high = value["ci95"]
    return f"{100 * value['rate']:.1f}% ({value['hits']}/{value['n']}) [{100 * low:.1f}-{100 * high:.1f}]"


def markdown(report: dict[str, Any]) -> str:
    """The report as the tables docs/benchmarks.md holds."""
    lines = [f"Items: {report['items']}", ""]
    if report["writing"]:
        lines += ["Writing (every test observation through `MemoryManager.write_many`):", "",
                  "| writer | JSON valid, 1st reply | record valid, 1st reply | fell back to rules | event | tags | pose "
                  "| mission | all four | chatter dropped | tokens per record |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for label, w in report["writing"].items():
            f = w["field_accuracy"]
            lines.append(f"| {label} | {cell(w['json_valid_first_attempt'])} | {cell(w['record_valid_first_attempt'])} "
                         f"| {cell(w['fell_back_to_rules'])} | {cell(f['event'])} | {cell(f['tags'])} | {cell(f['pose'])} "
                         f"| {cell(f['mission'])} | {cell(f['all_four'])} | {cell(w['chatter_dropped'])} "
                         f"| {w['tokens_per_record']['accepted_reply_mean'] or 'n/a'} |")
        lines.append("")
    if report["recall"]:
        lines += ["Recall on fixed evidence (answer prompt only, no retrieval):", "",
                  "| answerer | answer accuracy | correct and cited (answerable) | citation precision | citation recall "
                  "| honest not in memory | prompt tokens (mean / max) | evidence tokens within budget |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for label, r in report["recall"].items():
            lines.append(f"| {label} | {cell(r['answer_accuracy'])} | {cell(r['answerable']['correct_and_cited'])} "
                         f"| {cell(r['citation_precision'])} | {cell(r['citation_recall'])} "
                         f"| {cell(r['honest_not_in_memory'])} | {r['prompt_tokens']['mean']} / {r['prompt_tokens']['max']} "
                         f"| {cell(r['evidence_tokens']['within_budget'])} |")
        lines.append("")
    if report["end_to_end"]:
        first = next(iter(report["end_to_end"].values()))
        at_k = next(key for key in first if key.startswith("success@") and key != "success@1")
        lines += ["End to end through the MemoryManager (written records, hybrid retrieval, answers):", "",
                  f"| routing | writer | success@1 | {at_k} | answer accuracy | correct and cited (answerable) "
                  "| citation precision | honest not in memory |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, e in report["end_to_end"].items():
            lines.append(f"| {name} | {e['writer']} | {cell(e['success@1'])} | {cell(e[at_k])} "
                         f"| {cell(e['answer_accuracy'])} | {cell(e['answerable']['correct_and_cited'])} "
                         f"| {cell(e['citation_precision'])} | {cell(e['honest_not_in_memory'])} |")
        lines.append("")
    return "\n".join(lines)
