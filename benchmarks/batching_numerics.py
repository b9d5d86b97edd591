"""Does batching change the real model's greedy tokens? Alone, static batch, continuous batch.

The first user turns of a few test episodes (each prompt the session as the reference calls
left it, memlora.evaluation.llamacpp.reference_prompts) are decoded greedily three ways with the
same engine settings: one prompt at a time, all as one static batch, and continuously with the
prompts arriving a few tenths of a second apart, so that they join a batch already decoding.
In fp32 the three must agree; in bf16 the order in which the kernels add depends on which rows
share a forward, and near-ties can flip.

    python benchmarks/batching_numerics.py --dtype fp32 --prompts 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import memlora.models  # noqa: F401 - OpenMP settings before torch does work
from memlora.agent.engine import GenerationEngine, SamplingParams
from memlora.agent.loop import build_engine
from memlora.evaluation.episodes import load_episodes
from memlora.evaluation.llamacpp import reference_prompts
from memlora.models.loading import adapter_name, choose_adapter, cpu_description, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=Path, default=Path("runs/qwen-long/data/test.episodes.jsonl"))
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=48)
    args = parser.parse_args()
    adapter = choose_adapter(args.model, args.adapter)
    loaded = load_model(args.model, adapters=adapter, dtype=args.dtype)
    name = adapter_name(adapter) if adapter else None
    episodes = load_episodes(args.episodes)[:3]
    prompts = [p.text for p in asyncio.run(reference_prompts(episodes, loaded.tokenizer))][: args.prompts]
    params = SamplingParams(max_new_tokens=args.new_tokens)

    def engine(continuous: bool = True) -> GenerationEngine:
        built = build_engine(loaded, max_batch=16)
        built.continuous, built.lookahead = continuous, 0  # no drafts: every path decodes token by token
        return built

    started = time.perf_counter()
    alone = [engine().generate_many([p], params, adapter=name)[0].token_ids for p in prompts]
    static = [r.token_ids for r in engine(continuous=False).generate_many(prompts, params, adapter=name)]

    async def staggered() -> list[list[int]]:
        running = engine()
        tasks = []
        for index, prompt in enumerate(prompts):
            tasks.append(asyncio.create_task(running.generate(prompt, params, adapter=name)))
            await asyncio.sleep(0.3 * (index % 3))
        return [r.token_ids for r in await asyncio.gather(*tasks)]

    continuous = asyncio.run(staggered())
    print(json.dumps({"machine": cpu_description(), "dtype": args.dtype, "adapter": adapter, "prompts": len(prompts),
                      "seconds": round(time.perf_counter() - started),
                      "static_equals_alone": sum(a == b for a, b in zip(alone, static)),
                      "continuous_equals_alone": sum(a == b for a, b in zip(alone, continuous)),
                      "new_tokens_alone": [len(a) for a in alone]}))


if __name__ == "__main__":
    main()
