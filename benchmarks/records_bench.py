"""Benchmarks of the memory records on generated robot-mission scenes (docs/benchmarks.md).

    python benchmarks/records_bench.py retrieval --scenes 60            # success@1/@5: fts, vector, hybrid
    python benchmarks/records_bench.py latency --sizes 1000,10000,100000 --queries 100
    python benchmarks/records_bench.py writes --observations 500 --model-sample 30
    python benchmarks/records_bench.py answers --questions 40          # bare base model, strict prompt
    python benchmarks/records_bench.py threads --queries 50            # MiniLM with 1 and 2 threads

Every part uses the real store (SQLite, FTS5, sqlite-vec) and the real bundled all-MiniLM-L6-v2;
the model parts use the bundled Qwen2.5-Coder-0.5B without an adapter. Results are printed and,
with --out, written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from memlora.records.embedding import MiniLMEmbedder
from memlora.records.manager import MemoryManager, RecallRequest
from memlora.records.scenes import generate, grade, make_scene
from memlora.records.store import MODES, RecordFilter, RecordStore
from memlora.records.traces import wilson


def rate(hits: int, n: int) -> dict[str, Any]:
    low, high = wilson(hits, n)
    return {"n": n, "hits": hits, "rate": round(hits / n, 4) if n else None, "ci95": [round(low, 4), round(high, 4)]}


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def test_store(embedder: MiniLMEmbedder, scenes: int, seed: int, folder: Path,
               missions: int = 4) -> tuple[RecordStore, list[Any]]:
    """One store holding the gold records of `scenes` test scenes; questions are scoped to their scene's missions."""
    store = RecordStore(folder / "test.db", embedder)
    made = generate("test", scenes, seed, missions)
    records = [r for scene in made for r in scene.records()]
    for start in tqdm(range(0, len(records), 256), desc="embed + store test records", file=sys.stderr):
        store.add(records[start : start + 256])
    return store, made


def retrieval(args: argparse.Namespace) -> dict[str, Any]:
    embedder = MiniLMEmbedder()
    with tempfile.TemporaryDirectory() as folder:
        store, scenes = test_store(embedder, args.scenes, args.seed, Path(folder), args.missions)
        questions = [q for s in scenes for q in s.questions if q.kind != "not_seen"]
        result: dict[str, Any] = {"records": store.count(), "scenes": len(scenes), "questions": len(questions)}
        for scoped, mode in [(True, m) for m in MODES] + [(False, m) for m in MODES]:
            at1 = at5 = 0
            by_kind: dict[str, list[int]] = {}
            name = mode if scoped else f"{mode}, unscoped"
            for q in tqdm(questions, desc=name, file=sys.stderr):
                # scoped: the robot's own missions (its memory); unscoped: every robot's records compete
                scope = RecordFilter(missions=tuple(q.missions)) if scoped else RecordFilter()
                hits = store.search(q.question, k=5, mode=mode, scope=scope)
                ids = [h.record.id for h in hits]
                one, five = bool(set(q.expected_ids) & set(ids[:1])), bool(set(q.expected_ids) & set(ids))
                at1 += one
                at5 += five
                by_kind.setdefault(q.kind, [0, 0, 0])
                by_kind[q.kind][0] += one
                by_kind[q.kind][1] += five
                by_kind[q.kind][2] += 1
            result[name] = {"success@1": rate(at1, len(questions)), "success@5": rate(at5, len(questions)),
                            "by_kind": {k: {"success@1": rate(v[0], v[2]), "success@5": rate(v[1], v[2])}
                                        for k, v in sorted(by_kind.items())}}
        store.close()
    return result


def latency(args: argparse.Namespace) -> dict[str, Any]:
    """Recall latency at growing sizes, one store filled step by step in one run.

    Filler records are generated train scenes; past the first `--unique-texts` distinct texts,
    records reuse earlier texts (and so their vectors) with their own missions, times and ids,
    which keeps the run within minutes while the indexes hold the full count.
    """
    sizes = [int(s) for s in args.sizes.split(",")]
    embedder = MiniLMEmbedder(capacity=args.unique_texts + 1000)
    rng = random.Random(args.seed)
    out: dict[str, Any] = {"sizes": {}}
    with tempfile.TemporaryDirectory() as folder:
        store = RecordStore(Path(folder) / "latency.db", embedder)
        manager = MemoryManager(store, None, trace=Path(folder) / "trace.jsonl")
        scene_index = 0
        pool: list[str] = []
        missions: list[str] = []
        questions = [q for s in generate("validation", 30, args.seed) for q in s.questions]
        for size in sizes:
            bar = tqdm(total=size - store.count(), desc=f"fill to {size}", file=sys.stderr)
            while store.count() < size:
                scene = make_scene("train", scene_index, args.seed)
                scene_index += 1
                records = scene.records()[: size - store.count()]
                if len(pool) >= args.unique_texts:
                    records = [r.model_copy(update={"text": rng.choice(pool)}) for r in records]
                    records = [r.model_copy(update={"id": f"f{scene_index}-{i}"}) for i, r in enumerate(records)]
                else:
                    pool += [r.text for r in records]
                missions += scene.missions
                bar.update(sum(store.add(records)))
            bar.close()
            timings: dict[str, list[float]] = {"recall, one mission": [], "recall, all missions": [],
                                               "search fts, all missions": [], "search vector, all missions": []}
            for n in range(args.queries + 5):
                q = rng.choice(questions)
                mission = rng.choice(missions)
                measured = []
                for call in (lambda: manager.recall(q.question, k=5, mission=mission),
                             lambda: manager.recall(q.question, k=5, across_missions=True),
                             lambda: store.search(q.question, k=5, mode="fts"),
                             lambda: store.search(q.question, k=5, mode="vector")):
                    embedder._cache.clear()  # every call embeds its question, as a new question would
                    started = time.perf_counter()
                    call()
                    measured.append(time.perf_counter() - started)
                one, every, fts, vec = measured
                if n >= 5:  # the first five warm the caches
                    for key, value in zip(timings, (one, every, fts, vec)):
                        timings[key].append(value * 1000)
            out["sizes"][size] = {key: {"p50_ms": round(percentile(v, 50), 2), "p95_ms": round(percentile(v, 95), 2),
                                        "n": len(v)} for key, v in timings.items()}
            out["sizes"][size]["distinct_texts"] = len(set(pool))
            print(json.dumps({size: out["sizes"][size]}), file=sys.stderr)
        store.close()
    return out


def writes(args: argparse.Namespace) -> dict[str, Any]:
    embedder = MiniLMEmbedder()
    observations = [o for s in generate("test", 40, args.seed) for o in s.observations]
    rng = random.Random(args.seed)
    rng.shuffle(observations)
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = RecordStore(Path(folder) / "w.db", embedder)
        embedder.embed(["warm up"])
        manager = MemoryManager(store, None, trace=Path(folder) / "trace.jsonl")
        sample = observations[: args.observations]
        started = time.perf_counter()
        for o in tqdm(sample, desc="rules, one at a time", file=sys.stderr):
            manager.write(o.text, pose=tuple(o.pose), mission=o.mission, timestamp=o.timestamp)
        seconds = time.perf_counter() - started
        exact = sum(1 for o in sample
                    if {r.text for r in store.get([o.record["id"]])} == {o.record["text"]})
        result["rules_one_at_a_time"] = {"observations": len(sample), "seconds": round(seconds, 2),
                                         "per_second": round(len(sample) / seconds, 1),
                                         "same_record_as_gold": rate(exact, len(sample))}
        batch = observations[args.observations : 2 * args.observations]
        started = time.perf_counter()
        for start in tqdm(range(0, len(batch), 100), desc="rules, batches of 100", file=sys.stderr):
            manager.write_many([{"text": o.text, "pose": tuple(o.pose), "mission": o.mission, "timestamp": o.timestamp}
                                for o in batch[start : start + 100]])
        seconds = time.perf_counter() - started
        result["rules_batches_of_100"] = {"observations": len(batch), "seconds": round(seconds, 2),
                                          "per_second": round(len(batch) / seconds, 1)}
        if args.model_sample:
            from memlora.records.chat import LocalChatModel
            from memlora.records.traces import read_traces, summarise

            model = LocalChatModel(args.model, adapter="none")
            model.loaded  # load before timing
            trace = Path(folder) / "model-trace.jsonl"
            modelled = MemoryManager(RecordStore(Path(folder) / "m.db", embedder), model, trace=trace)
            sample = observations[2 * args.observations : 2 * args.observations + args.model_sample]
            started = time.perf_counter()
            results = modelled.write_many([{"text": o.text, "pose": tuple(o.pose), "mission": o.mission,
                                            "timestamp": o.timestamp} for o in sample])
            seconds = time.perf_counter() - started
            gold = {o.record["id"]: o.record for o in sample}
            same_event = sum(r.record.event == o.record["event"] for r, o in zip(results, sample))
            stats = summarise(read_traces(trace))["writes"]
            result["base_model_batched"] = {
                "model": args.model, "observations": len(sample), "seconds": round(seconds, 2),
                "per_second": round(len(sample) / seconds, 3),
                "json_valid_per_attempt": stats["json_valid_per_attempt"],
                "record_valid_per_attempt": stats["record_valid_per_attempt"],
                "record_valid_first_attempt": stats["record_valid_first_attempt"],
                "fell_back_to_rules": stats["fell_back_to_rules"],
                "event_as_gold": rate(same_event, len(sample)),
                "examples": [{"observation": o.text, "attempts": [a.trace() for a in r.attempts],
                              "record": r.record.text, "gold": gold[o.record["id"]]["text"]}
                             for r, o in list(zip(results, sample))[:3]],
            }
        store.close()
    return result


def answers(args: argparse.Namespace) -> dict[str, Any]:
    """Answer accuracy with citations on a stratified sample of test questions, base model vs extraction."""
    embedder = MiniLMEmbedder()
    rng = random.Random(args.seed)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        store, scenes = test_store(embedder, args.scenes, args.seed, Path(folder), args.missions)
        by_kind: dict[str, list[Any]] = {}
        for scene in scenes:
            for q in scene.questions:
                by_kind.setdefault(q.kind, []).append(q)
        per_kind = args.questions // len(by_kind)
        sample = [q for kind in sorted(by_kind) for q in rng.sample(by_kind[kind], min(per_kind, len(by_kind[kind])))]
        requests = [RecallRequest(q.question, k=args.k, token_budget=args.budget, missions=tuple(q.missions),
                                  expected_ids=q.expected_ids) for q in sample]
        runs: list[tuple[str, Any]] = [("extractive (no model)", None)]
        if args.model != "none":
            from memlora.records.chat import LocalChatModel

            model = LocalChatModel(args.model, adapter="none")
            model.loaded
            runs.append((f"{args.model} base, strict prompt", model))
        for name, model in runs:
            manager = MemoryManager(store, model, trace=Path(folder) / f"{len(out)}.jsonl")
            started = time.perf_counter()
            results = []
            for start in tqdm(range(0, len(requests), args.batch), desc=name, file=sys.stderr):
                results += manager.recall_many(requests[start : start + args.batch])
            seconds = time.perf_counter() - started
            grades = [grade(q, r.answer, r.citations) for q, r in zip(sample, results)]
            kinds: dict[str, Any] = {}
            for q, g in zip(sample, grades):
                kinds.setdefault(q.kind, []).append(g)
            out[name] = {
                "questions": len(sample), "seconds": round(seconds, 1),
                "correct": rate(sum(g["correct"] for g in grades), len(grades)),
                "correct_and_cited": rate(sum(g["correct_and_cited"] for g in grades), len(grades)),
                "within_budget": rate(sum(r.trace["within_budget"] for r in results), len(results)),
                "by_kind": {k: rate(sum(g["correct_and_cited"] for g in v), len(v)) for k, v in sorted(kinds.items())},
                "examples": [{"question": q.question, "answer": r.answer, "gold": q.answer, **g}
                             for q, r, g in list(zip(sample, results, grades))[:: max(1, len(sample) // 8)]],
            }
        store.close()
    return out


def threads(args: argparse.Namespace) -> dict[str, Any]:
    """MiniLM embedding time with 1 and 2 torch threads: one question at a time, and 64 sentences."""
    from memlora.records import embedding

    out: dict[str, Any] = {}
    for count in (1, 2):
        os.environ[embedding.THREADS_ENV] = str(count)
        embedder = MiniLMEmbedder()
        embedder.embed(["warm up"])
        single = []
        for i in range(args.queries):
            started = time.perf_counter()
            embedder.embed([f"where did we see the red ball number {count}-{i}?"])
            single.append((time.perf_counter() - started) * 1000)
        batches = []
        for i in range(5):
            started = time.perf_counter()
            embedder.embed([f"saw item {count}-{i}-{j} on the table in the kitchen" for j in range(64)])
            batches.append((time.perf_counter() - started) * 1000)
        out[f"{count} thread(s)"] = {"one question p50_ms": round(percentile(single, 50), 1),
                                     "one question p95_ms": round(percentile(single, 95), 1), "n": len(single),
                                     "64 sentences median_ms": round(statistics.median(batches), 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["retrieval", "latency", "writes", "answers", "threads"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=60, help="test scenes in the store (retrieval, answers)")
    parser.add_argument("--missions", type=int, default=4, help="missions per scene (one robot's memory)")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--unique-texts", type=int, default=10000,
                        help="latency: records with their own generated text; later ones reuse those texts")
    parser.add_argument("--observations", type=int, default=500)
    parser.add_argument("--model-sample", type=int, default=0)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--budget", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.time()
    result = {"part": args.part, "args": vars(args) | {"out": str(args.out)}, **globals()[args.part](args)}
    result["wall_seconds"] = round(time.time() - started, 1)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
