"""A chat turn's latency in each runtime of `memlora chat`, and whether the runtimes write the same calls.

Plays the user turns of an episode file (default: shared/spec/example.jsonl) through
MemoryAgent, as `memlora chat` does, each runtime on its own fresh in-memory store: memlora's
engine (lookup drafts on, as chat runs it) and llama.cpp through each installed binding. Reports
each runtime's turn seconds (p50 and p90 over the turns that wrote to memory, and over all
turns) and how many turns wrote the same calls as the engine. The runtimes are greedy on the same
token prompts, but llama.cpp multiplies the GGUF's quantised weights and the engine their
dequantised copy, so a near tie between two tokens can go either way.

    python benchmarks/chat_turn.py --adapter adapters/qwen2.5-coder-0.5b-memory --out /tmp/chat-turn.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from datetime import date
from pathlib import Path
from typing import Any

import memlora.models  # noqa: F401,I001  (sets the OpenMP spin count before torch is imported)
import torch
from memlora.agent.engine import SamplingParams
from memlora.agent.loop import MemoryAgent, build_engine, connect_memory
from memlora.models.llamacpp import installed_backend
from memlora.models.loading import adapter_name, choose_adapter, cpu_description, load_model

MODEL = "qwen2.5-coder-0.5b"
WRITES = {"create_entities", "create_relations", "add_observations", "delete_entities", "delete_observations",
          "delete_relations"}
WARM_UP = {"id": "warm-up", "sessions": [{"id": "s1", "turns": [{"user": "Hi, I'm Sam and I live in Oslo."}]}]}


async def play(engine: Any, adapter: str | None, episodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every user turn of every episode, in order, on a fresh memory per episode."""
    turns = []
    for episode in episodes:
        async with connect_memory(store="sqlite::memory:") as memory:
            agent = MemoryAgent(engine, memory, adapter=adapter, params=SamplingParams(max_new_tokens=512))
            for session in episode["sessions"]:
                await agent.start_session()
                for index, turn in enumerate(session["turns"]):
                    record = await agent.turn(turn["user"])
                    calls = [(c.name, c.arguments) for c in record.calls]
                    turns.append({"episode": episode["id"], "session": session["id"], "turn": index,
                                  "seconds": round(record.seconds, 2), "steps": len(record.steps),
                                  "generated": sum(s.completion_tokens for s in record.steps),
                                  "prompt_run": sum(s.prompt_tokens - s.cached_prompt_tokens for s in record.steps),
                                  "prefill_s": round(sum(s.prefill_seconds for s in record.steps), 2),
                                  "writes": any(name in WRITES for name, _ in calls), "calls": calls,
                                  "reply": record.reply})
    return turns


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


def summary(turns: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any]:
    writing = [t["seconds"] for t in turns if t["writes"]]
    every = [t["seconds"] for t in turns]
    return {"turns": len(turns), "writing_turns": len(writing),
            "writing_p50_s": round(statistics.median(writing), 2) if writing else None,
            "writing_p90_s": percentile(writing, 0.9),
            "all_p50_s": round(statistics.median(every), 2), "all_p90_s": percentile(every, 0.9),
            "tokens_per_s": round(sum(t["generated"] for t in turns) / sum(every), 1),
            "prompt_run_per_turn": round(sum(t["prompt_run"] for t in turns) / len(turns), 1),
            "prefill_share": round(sum(t["prefill_s"] for t in turns) / sum(every), 2),
            "same_calls_as_engine": sum(a["calls"] == b["calls"] for a, b in zip(turns, reference))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "spec"
                        / "example.jsonl")
    parser.add_argument("--adapter", default=None, help="adapter folder; default the shipped one, 'none' the base model")
    parser.add_argument("--threads", type=int, default=None, help="default: every core, in each runtime")
    parser.add_argument("--runtimes", default="memlora,llama-cpp-python,xllamacpp")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from memlora.agent.llamacpp_engine import LlamaCppEngine, default_threads

    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    adapter = choose_adapter(MODEL, args.adapter)
    episodes = [json.loads(line) for line in args.episodes.read_text().splitlines() if line.strip()]
    results: dict[str, Any] = {}
    reference: list[dict[str, Any]] = []
    for runtime in args.runtimes.split(","):
        if runtime == "memlora":
            loaded = load_model(MODEL, adapters=[adapter] if adapter else None)
            engine: Any = build_engine(loaded)
            name = adapter_name(adapter) if adapter else None
            label = f"memlora engine ({str(next(loaded.model.parameters()).dtype)}, lookup drafts)"
        else:
            try:
                installed_backend(runtime)
            except RuntimeError as error:
                results[runtime] = {"skipped": str(error)}
                continue
            engine = LlamaCppEngine(MODEL, adapter, threads=threads, backend=runtime)
            name, label = engine.adapter, engine.describe()
        asyncio.run(play(engine, name, [WARM_UP]))  # weights paged in, the system prompt's cache filled
        if hasattr(engine, "conversations"):
            engine.conversations.clear()  # the system prompt stays cached, as in a running chat
        turns = asyncio.run(play(engine, name, episodes))
        engine.close()
        reference = reference or turns
        results[runtime] = {"label": label, **summary(turns, reference), "turns_detail": turns}
        print(runtime, json.dumps({k: v for k, v in results[runtime].items() if k != "turns_detail"}), flush=True)
        del engine
    out = {"date": date.today().isoformat(), "machine": cpu_description(), "threads": threads, "adapter": adapter,
           "episodes": str(args.episodes), "runtimes": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
