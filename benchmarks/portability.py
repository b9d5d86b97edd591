"""Does an adapter behave the same in memlora's engine as in plain PEFT? Counted on real turns.

For every user turn of an episode file (by default the shared spec's example.jsonl), the
conversation so far is rebuilt from the episode's own calls, run on a real store, exactly as a
live session would show it; then the first assistant step after the user's message is decoded
greedily twice: by memlora's engine (prefix cache, conversation cache, drafts, CPU kernels) and
by transformers + PEFT (`PeftModel.from_pretrained`, `generate`), which applies the LoRA to
every token as llama.cpp, vLLM and Ollama do. The count of identical first steps (text, and the
parsed calls) is the number that says whether the adapter is portable.

    python benchmarks/portability.py --adapter adapters/qwen2.5-coder-0.5b-memory \\
        --adapter runs/qwen-long/adapter/checkpoints/checkpoint-20 --out runs/portability.json
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

import memlora.models  # noqa: F401 - OpenMP settings before torch does work
from memlora.agent.loop import build_engine
from memlora.agent.prompt import session_opening, tool_call_message, tool_result_message
from memlora.agent.protocol import model_tools, parse_output
from memlora.models.chat_format import render_prompt, stop_token_ids
from memlora.data.execute import execute
from memlora.models.loading import adapter_prefix_cache, cpu_description, load_model, resolve_model
from memlora.store import open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "spec" / "example.jsonl"


def turn_prompts(path: Path, tools: list[dict[str, Any]], tokenizer: Any) -> list[tuple[str, str]]:
    """(label, prompt text) for every user turn, with the gold history before it."""
    prompts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        episode = json.loads(line)
        store = open_store("sqlite::memory:")
        for session in episode["sessions"]:
            messages = session_opening(store.read_graph().to_dict())
            for index, turn in enumerate(session["turns"], start=1):
                messages.append({"role": "user", "content": turn["user"]})
                prompts.append((f"{episode['id']}/{session['id']}/{index}", render_prompt(tokenizer, messages, tools)))
                calls = turn.get("calls") or []
                if calls:
                    messages.append(tool_call_message(calls))
                    messages += [tool_result_message(c["name"], execute(store, c)) for c in calls]
                messages.append({"role": "assistant", "content": turn.get("reply") or ""})
        store.close()
    return prompts


def peft_first_steps(model_name: str, adapter: str, prompts: list[list[int]], stops: list[int], n: int) -> list[list[int]]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from memlora.models.loading import choose_dtype

    model = AutoModelForCausalLM.from_pretrained(str(resolve_model(model_name)),
                                                 dtype=choose_dtype(torch.device("cpu"), None))
    model = PeftModel.from_pretrained(model, adapter).eval()
    outputs = []
    for ids in prompts:
        tensor = torch.tensor([ids])
        with torch.inference_mode():
            out = model.generate(input_ids=tensor, attention_mask=torch.ones_like(tensor), max_new_tokens=n,
                                 do_sample=False, eos_token_id=stops, pad_token_id=stops[0])
        outputs.append([t for t in out[0, len(ids):].tolist() if t not in stops])
    return outputs


def calls_of(text: str) -> list[tuple[str | None, str]]:
    return [(c.name, json.dumps(c.arguments, sort_keys=True)) for c in parse_output(text).calls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--adapter", action="append", required=True)
    parser.add_argument("--episodes", type=Path, default=EXAMPLE)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results: dict[str, Any] = {"date": date.today().isoformat(), "machine": cpu_description(),
                               "model": args.model, "episodes": str(args.episodes), "adapters": {}}
    for adapter in args.adapter:
        started = time.perf_counter()
        loaded = load_model(args.model, adapters=[adapter])
        tools = model_tools()
        engine = build_engine(loaded, tools)
        name = loaded.adapters[0]
        prompts = turn_prompts(args.episodes, tools, loaded.tokenizer)
        ids = [engine.encode(text) for _, text in prompts]
        memlora_out = [engine.generate_many([p], adapter=name)[0].token_ids for p in ids]
        stops = sorted(stop_token_ids(loaded.tokenizer, loaded.family))
        del engine, loaded
        peft_out = peft_first_steps(args.model, adapter, ids, stops, args.max_new_tokens)
        tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(args.model)))
        turns = []
        for (label, _), ours, theirs in zip(prompts, memlora_out, peft_out):
            a, b = tokenizer.decode(ours), tokenizer.decode(theirs)
            turns.append({"turn": label, "identical_text": a == b, "identical_calls": calls_of(a) == calls_of(b),
                          "memlora": a, "peft": b})
        results["adapters"][adapter] = {
            "prefix_cache": adapter_prefix_cache(adapter),
            "turns": len(turns),
            "identical_text": sum(t["identical_text"] for t in turns),
            "identical_calls": sum(t["identical_calls"] for t in turns),
            "seconds": round(time.perf_counter() - started, 1),
            "by_turn": turns,
        }
        summary = {k: v for k, v in results["adapters"][adapter].items() if k != "by_turn"}
        print(adapter, json.dumps(summary), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
