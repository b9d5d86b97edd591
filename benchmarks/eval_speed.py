"""Evaluation cost, old path against new, in one process on the same episodes.

Each variant plays the same episodes with a fresh engine on the one loaded model (greedy), and
the script reports wall seconds, prompt tokens run (not found in the engine's caches) and
cached per turn, and whether every call and reply came out identical. Token counts do not
depend on how busy the machine is; seconds do, so variants run alternately, `--pairs` times.

Variants:
- `keep-every-step`: the conversation cache before 2026-12-07, which kept every step of every
  conversation; at high concurrency the entries crowded each other out. Static batches.
- `latest-step`: a conversation's newer entry replaces the entries it extends. Static batches:
  the requests queued when a batch starts decode together until the last of them stops.
- `continuous-64k`: the latest-step cache, and requests join the running batch at the next step.
- `continuous`: the same with the engine's conversation budget, which grows with the batch
  (before 2026-12-08 it was 64k tokens on a CPU, as in the variants above).

    python benchmarks/eval_speed.py runs/data/test.episodes.jsonl --limit 8 --concurrency 16 \\
        --out runs/eval-speed.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import memlora.models  # noqa: F401 - OpenMP settings before torch does work
import torch
from memlora.agent.engine import ConversationCache, SamplingParams, SavedKV
from memlora.agent.loop import build_engine
from memlora.evaluation.episodes import load_episodes
from memlora.evaluation.metrics import score_run
from memlora.evaluation.runner import AgentPlayer, RunConfig, run_episodes
from memlora.models.loading import adapter_name, choose_adapter, cpu_description, load_model


class KeepEveryStep(ConversationCache):
    """The cache as it was: every finished row saved, the least recently saved dropped first."""

    def put(self, adapter: str, saved: SavedKV) -> None:
        if len(saved.tokens) > self.budget_tokens:
            return
        self.entries[self._next_key] = (adapter, saved)
        self._next_key += 1
        self.tokens += len(saved.tokens)
        while self.tokens > self.budget_tokens:
            _, (_, dropped) = self.entries.popitem(last=False)
            self.tokens -= len(dropped.tokens)


# cache policy, continuous batching, conversation budget in tokens (None: the engine's default)
VARIANTS: dict[str, tuple[type[ConversationCache], bool, int | None]] = {
    "keep-every-step": (KeepEveryStep, False, 65536),
    "latest-step": (ConversationCache, False, 65536),
    "continuous-64k": (ConversationCache, True, 65536),
    "continuous": (ConversationCache, True, None),
}


def play(loaded: Any, adapter: str | None, episodes: list[Any], variant: str, concurrency: int,
         max_new_tokens: int) -> tuple[float, list[Any], dict[str, Any]]:
    engine = build_engine(loaded, max_batch=concurrency)
    cache_policy, engine.continuous, budget = VARIANTS[variant]
    engine.conversations = cache_policy(budget or engine.conversations.budget_tokens)
    player = AgentPlayer(engine, adapter=adapter_name(adapter) if adapter else None,
                         params=SamplingParams(max_new_tokens=max_new_tokens))
    with tempfile.TemporaryDirectory() as out:
        config = RunConfig(episodes="bench", episodes_sha256="-", model=loaded.name, adapter=adapter, server=None,
                           oracle=False, dtype=None, max_steps=6, max_new_tokens=max_new_tokens,
                           reference_memory=False)
        started = time.perf_counter()
        records = asyncio.run(run_episodes(episodes, player, Path(out), config, concurrency=concurrency,
                                           progress=False))
        seconds = time.perf_counter() - started
    return seconds, records, batching(engine)


def turns_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    """An episode record's turns: its sessions' turns in order, then its probes' turns."""
    return [t for s in record["sessions"] for t in s["turns"]] + [p["turn"] for p in record["probes"]]


def stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    turns = [turn for record in records for turn in turns_of(record)]
    steps = [step for turn in turns for step in turn.get("steps", [])]
    prompt = sum(s["prompt_tokens"] for s in steps)
    cached = sum(s.get("cached_prompt_tokens", 0) for s in steps)
    return {"turns": len(turns), "steps": len(steps), "prompt_tokens_per_turn": round(prompt / len(turns), 1),
            "run_tokens_per_turn": round((prompt - cached) / len(turns), 1),
            "generated_tokens_per_turn": round(sum(s["completion_tokens"] for s in steps) / len(turns), 1)}


def batching(engine: Any) -> dict[str, Any]:
    """How full the batches were: rows per decode forward (a lone row decoded with lookup
    drafts is not counted, its forwards check several tokens)."""
    return {"conversation_budget_tokens": engine.conversations.budget_tokens,
            "decode_forwards": engine.decode_forwards,
            "rows_per_decode_forward": round(engine.decoded_rows / max(1, engine.decode_forwards), 2),
            "join_seconds": round(engine.join_seconds, 1), "decode_seconds": round(engine.decode_seconds, 1)}


def scores(episodes: list[Any], records: list[Any], max_new_tokens: int) -> dict[str, Any]:
    """The headline scores of a variant's run, each with its count, by the evaluator's own rules."""
    _, summary = score_run(episodes, {r.id: r for r in records}, max_new_tokens=max_new_tokens)
    calls = summary["format_validity"]["calls"]
    return {"calls_valid": calls.get("all"), "graph_f1": summary["graph"]["f1"],
            "probes": summary["probes"]["accuracy"]}


def behaviour(records: list[dict[str, Any]]) -> list[Any]:
    """What scoring sees: every step's raw output and every reply, in order."""
    out = []
    for record in sorted(records, key=lambda r: r["id"]):
        for turn in turns_of(record):
            out.append((record["id"], [step["raw"] for step in turn["steps"]], turn["reply"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("episodes", type=Path)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--variants", default="keep-every-step,latest-step")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    adapter = choose_adapter(args.model, args.adapter)
    episodes = load_episodes(args.episodes)[: args.limit]
    loaded = load_model(args.model, adapters=adapter)
    names = args.variants.split(",")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    outputs: dict[str, list[Any]] = {}
    for pair in range(args.pairs):
        for name in names:
            seconds, played, batches = play(loaded, adapter, episodes, name, args.concurrency, args.max_new_tokens)
            records = [r.to_dict() for r in played]
            runs[name].append({"seconds": round(seconds, 1), **stats(records), **batches,
                               "scores": scores(episodes, played, args.max_new_tokens)})
            if name not in outputs:  # keep the first pair's records, to look at turns that differ
                outputs[name] = behaviour(records)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with open(args.out.with_suffix(f".{name}.jsonl"), "w") as kept:
                    kept.writelines(json.dumps(r) + "\n" for r in records)
            print(pair, name, json.dumps(runs[name][-1]), flush=True)
    first = names[0]
    result = {
        "date": date.today().isoformat(), "machine": cpu_description(),
        "episodes": f"{args.episodes} (first {len(episodes)})", "concurrency": args.concurrency,
        "threads": torch.get_num_threads(), "dtype": str(next(loaded.model.parameters()).dtype),
        "adapter": adapter, "runs": runs,
        "identical_to_" + first: {name: sum(a == b for a, b in zip(outputs[first], outputs[name]))
                                  for name in names},
        "turns": len(outputs[first]),
        "first_differences": {name: [(a[0], index) for index, (a, b) in enumerate(zip(outputs[first], outputs[name]))
                                     if a != b][:10] for name in names[1:]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
