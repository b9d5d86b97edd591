"""bf16 against fp32 on this CPU, measured in one run: what `MEMLORA_DTYPE=auto` should pick.

Two measurements per dtype: plain matrix products of the bundled Qwen 0.5B's MLP shape
(896 -> 4864) at 1, 8, 32 and 512 rows, and memlora's engine on the real model: building the
shared prefix cache (a 1,351-token prefill) and greedy decoding at batch 1 (no lookup drafts)
and batch 8. Run it on an otherwise idle machine (a few minutes; bf16 is slow where the CPU
has no bf16 instructions):

    python benchmarks/dtype_bench.py --threads 2 > dtype.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import memlora.models  # noqa: F401,I001  (sets the OpenMP spin count before torch is imported)
import torch
from generate_bench import engine_decode, prompts_for
from memlora.agent.loop import build_engine
from memlora.agent.protocol import model_tools
from memlora.models.loading import DTYPES, NATIVE_BF16_FLAGS, choose_dtype, cpu_flags, load_model


def matmul_rates(dtype: torch.dtype, rows: list[int]) -> list[dict[str, float]]:
    """GFLOP/s of `x @ W.T` for a (4864, 896) weight, best of three timed loops per row count."""
    torch.manual_seed(0)
    weight = torch.randn(4864, 896).to(dtype)
    results = []
    for count in rows:
        x = torch.randn(count, 896).to(dtype)
        torch.nn.functional.linear(x, weight)  # warm up
        repeats = max(3, 512 // count)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(repeats):
                torch.nn.functional.linear(x, weight)
            best = min(best, (time.perf_counter() - start) / repeats)
        results.append({"rows": count, "ms": best * 1e3, "gflop_s": 2 * count * weight.numel() / best / 1e9})
    return results


def engine_rates(model: str, dtype: str, batches: list[int], new_tokens: int) -> dict[str, Any]:
    loaded = load_model(model, dtype=dtype)
    tools = model_tools()
    start = time.perf_counter()
    engine = build_engine(loaded, tools)
    engine._prefix_kv()  # the shared prefix is built on first use: time it here
    prefix_s = time.perf_counter() - start
    engine.lookahead = 0  # decode speed itself, not the drafts
    result: dict[str, Any] = {"prefix_tokens": len(engine.prefix_ids), "prefix_prefill_s": prefix_s, "decode": []}
    for batch in batches:
        result["decode"].append(engine_decode(engine, prompts_for(loaded, tools, batch), new_tokens))
        print(json.dumps({"dtype": dtype, **result["decode"][-1]}), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batches", default="1,8")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]

    report: dict[str, Any] = {
        "machine": platform.processor() or platform.machine(),
        "native_bf16_flags": sorted(cpu_flags() & NATIVE_BF16_FLAGS),
        "avx512f": "avx512f" in cpu_flags(),
        "auto_dtype": str(choose_dtype(torch.device("cpu"), "auto")),
        "torch": torch.__version__, "threads": args.threads, "date": time.strftime("%Y-%m-%d"),
        "matmul": {}, "engine": {},
    }
    for name, dtype in DTYPES.items():
        report["matmul"][name] = matmul_rates(dtype, [1, 8, 32, 512])
        print(json.dumps({"dtype": name, "matmul": report["matmul"][name]}), flush=True)
    for name in DTYPES:
        report["engine"][name] = engine_rates(args.model, name, batches, args.new_tokens)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
