"""Generation speed of the bundled model on this machine: memlora's engine against `model.generate`.

Measures single-stream decode tokens/s, aggregate tokens/s at batch 8 and 32, and the p50
latency of one memory-writing agent turn; estimates the bytes each decode step moves and the
tokens/s that memory bandwidth allows. Run once (it takes minutes on 2 cores):

    python benchmarks/generate_bench.py --threads 2 > bench.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from typing import Any

import memlora.models  # noqa: F401,I001  (sets the OpenMP spin count before torch is imported)
import torch
from memlora.agent.engine import SamplingParams
from memlora.agent.loop import MemoryAgent, build_engine, connect_memory
from memlora.agent.prompt import session_opening
from memlora.agent.protocol import model_tools
from memlora.models.chat_format import render_prompt
from memlora.models.loading import load_model

USERS = [
    "Hi! I'm Alice Chen. I just joined Anthropic as a research engineer.",
    "My sister Mia lives in Lisbon and works as an architect.",
    "I adopted a cat called Tom last week.",
    "Can you recommend a good book on statistics?",
    "I moved from Berlin to Munich in March.",
    "My manager is Priya; she leads the infra team.",
    "I'm allergic to peanuts.",
    "My favourite band is Radiohead.",
]


def prompts_for(loaded: Any, tools: list[dict[str, Any]], count: int) -> list[str]:
    opening = session_opening({"entities": [], "relations": []})
    return [render_prompt(loaded.tokenizer, opening + [{"role": "user", "content": USERS[i % len(USERS)]}], tools)
            for i in range(count)]


def memory_bandwidth_gbs() -> dict[str, float]:
    """Read bandwidth (summing 1 GiB of fp32) and copy bandwidth (512 MiB, read + write counted).

    Decoding one token reads every weight once, so the read figure is the ceiling for decode.
    fp32, because summing bf16 is compute-bound on CPUs without bf16 instructions."""
    source = torch.ones(256 * 1024 * 1024, dtype=torch.float32)
    target = torch.empty(256 * 1024 * 1024, dtype=torch.int16)
    half = source.view(torch.int16)[: target.numel()]

    def best_of(run: Any) -> float:
        run()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    read = source.numel() * 4 / best_of(source.sum) / 1e9
    copy = 2 * target.numel() * 2 / best_of(lambda: target.copy_(half)) / 1e9
    return {"read": read, "copy": copy}


def bytes_per_step(model: Any, context: int, batch: int) -> dict[str, float]:
    """Bytes a decode step reads: every weight except the embedding table, plus the KV cache."""
    config = model.config
    weights = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "embed_tokens" not in n)
    embedding = model.get_input_embeddings().weight
    if config.tie_word_embeddings:
        weights += embedding.numel() * embedding.element_size()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * embedding.element_size() * context * batch
    return {"weights": weights, "kv_cache": kv, "total": weights + kv}


def engine_decode(engine: Any, prompts: list[str], new_tokens: int, adapter: str | None = None) -> dict[str, float]:
    params = SamplingParams(max_new_tokens=new_tokens, ignore_stop=True)
    engine.conversations.clear()  # fresh conversations: only the shared system prefix is cached
    start = time.perf_counter()
    results = engine.generate_many(prompts, params, adapter=adapter)
    wall = time.perf_counter() - start
    decode = results[0].seconds - results[0].prefill_seconds
    tokens = sum(r.completion_tokens for r in results)
    return {"batch": len(prompts), "tokens": tokens, "wall_s": wall, "prefill_s": results[0].prefill_seconds,
            "decode_tok_s": tokens / decode, "end_to_end_tok_s": tokens / wall}


def hf_generate(loaded: Any, prompts: list[str], new_tokens: int) -> dict[str, float]:
    """The baseline: plain `model.generate` on stock transformers, greedy, left padding, no prefix cache.

    Prefill ends when generate first asks for the next token's logits to be processed; a
    logits processor notes that moment, so prefill and decode come from the same call."""
    from transformers import LogitsProcessor, LogitsProcessorList

    class FirstCall(LogitsProcessor):
        at: float | None = None

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            if self.at is None:
                self.at = time.perf_counter()
            return scores

    tokenizer = loaded.tokenizer
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    first = FirstCall()
    with torch.inference_mode():
        start = time.perf_counter()
        out = loaded.model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id, logits_processor=LogitsProcessorList([first]))
        wall = time.perf_counter() - start
    prefill = (first.at or start) - start
    tokens = (out.shape[1] - batch["input_ids"].shape[1]) * len(prompts)
    return {"batch": len(prompts), "tokens": tokens, "wall_s": wall, "prefill_s": prefill,
            "decode_tok_s": tokens / max(wall - prefill, 1e-9), "end_to_end_tok_s": tokens / wall}


async def turn_latencies(engine: Any, runs: int, adapter: str | None = None) -> list[dict[str, Any]]:
    """One memory-writing turn in a fresh session against a fresh store, `runs` times."""
    results = []
    for _ in range(runs):
        async with connect_memory("sqlite::memory:") as memory:
            # the base model rambles through every tool without an adapter: cap the turn
            agent = MemoryAgent(engine, memory, params=SamplingParams(max_new_tokens=128), max_steps=2,
                                adapter=adapter)
            record = await agent.turn(USERS[0])
            results.append({"seconds": record.seconds, "steps": len(record.steps), "calls": len(record.calls),
                            "tokens": sum(s.completion_tokens for s in record.steps),
                            "valid_calls": sum(c.valid for c in record.calls)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--dtype", default=None, help="auto, bf16 or fp32 (default: $MEMLORA_DTYPE, else auto)")
    parser.add_argument("--adapter", default="none",
                        help="adapter folder, 'default' for the shipped one, or 'none' (the base model)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    from memlora.models.loading import adapter_name, choose_adapter

    adapter_path = choose_adapter(args.model, None if args.adapter == "default" else args.adapter)
    adapter = adapter_name(adapter_path) if adapter_path else None
    loaded = load_model(args.model, adapters=adapter_path, dtype=args.dtype)
    load_s = time.perf_counter() - start
    # the stock model gets the same adapter through plain PEFT (active by default)
    stock = None if args.skip_hf else load_model(args.model, adapters=adapter_path, dtype=args.dtype,
                                                   cpu_speedups=False)
    tools = model_tools()
    engine = build_engine(loaded)
    engine.generate_many(prompts_for(loaded, tools, 1), SamplingParams(max_new_tokens=2), adapter=adapter)  # warm up

    report: dict[str, Any] = {
        "model": args.model, "adapter": adapter_path, "threads": args.threads, "torch": torch.__version__,
        "dtype": str(loaded.model.dtype),
        "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
        "load_s": load_s, "prefix_tokens": len(engine.prefix_ids), "engine": [], "hf_generate": [],
    }
    for batch in [int(b) for b in args.batches.split(",")]:
        prompts = prompts_for(loaded, tools, batch)
        if batch == 1:  # a lone row also gets lookup drafts; measure it without them too
            engine.lookahead, lookahead = 0, engine.lookahead
            report["engine_without_drafts"] = engine_decode(engine, prompts, args.new_tokens, adapter)
            print(json.dumps(report["engine_without_drafts"]), flush=True)
            engine.lookahead = lookahead
            engine.drafted_tokens = engine.accepted_tokens = 0
        report["engine"].append(engine_decode(engine, prompts, args.new_tokens, adapter))
        if batch == 1:
            report["engine"][-1].update(drafted=engine.drafted_tokens, accepted=engine.accepted_tokens)
        print(json.dumps(report["engine"][-1]), flush=True)
        if not args.skip_hf:
            report["hf_generate"].append(hf_generate(stock, prompts, args.new_tokens))
            print(json.dumps(report["hf_generate"][-1]), flush=True)
    turns = asyncio.run(turn_latencies(engine, args.turns, adapter))
    report["turns"] = turns
    report["turn_p50_s"] = statistics.median(t["seconds"] for t in turns)
    context = len(prompts_for(loaded, tools, 1)[0]) and len(engine.encode(prompts_for(loaded, tools, 1)[0])) + args.new_tokens
    report["bytes_per_step_batch1"] = bytes_per_step(loaded.model, context, 1)
    report["bandwidth_gbs"] = memory_bandwidth_gbs()
    report["bound_tok_s_batch1"] = report["bandwidth_gbs"]["read"] * 1e9 / report["bytes_per_step_batch1"]["total"]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
