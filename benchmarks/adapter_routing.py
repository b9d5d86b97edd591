"""Adapter routing: dynamic serving (adapters on one base, switched per batch) against merged
serving (one merged copy of the base per adapter), side by side (docs/benchmarks.md).

    python benchmarks/adapter_routing.py [--model qwen2.5-coder-0.5b] [--writing-adapter PATH]
        [--recall-adapter PATH] [--memory-adapter PATH] [--requests 12] [--max-tokens 32] [--out FILE]

For each serving, a fresh process (so that resident memory is that serving's alone) loads the
base model and the three task adapters (records writing, records recall, graph memory) through
`memlora.models.routed.RoutedModel`, loading every role's weights up front, then measures:

- **memory**: peak and current resident set size, and the bytes of the weights loaded;
- **load time**: the whole load, and per target (the base with its adapters, or each merged copy);
- **latency per request**: one request at a time (`LocalChatModel.complete`, greedy, at most
  --max-tokens new tokens), the same role again and again: writing prompts for the writing
  adapter, answer prompts for the recall adapter and for the base model;
- **switching cost**: the same requests with the role changing at every request (writing,
  recall, base, ...): the median latency there minus the median with no change.

Prompts are the test items of `memlora records datagen` (made here, seed 0). Without trained
records adapters (none given, none shipped) the benchmark makes random LoRA adapters of the
recipe's shape (r 16 on q, k, v, o): speed and memory do not depend on the weights' values.
Run it on an idle machine; it is CPU-heavy for a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROLES = ("writing", "recall", "memory")


def random_adapters(model: str, folder: Path, roles: list[str]) -> dict[str, str]:
    """LoRAs of the records recipe's shape with random weights (what speed and memory depend on)."""
    import gc

    import torch
    from peft import LoraConfig, get_peft_model

    from memlora.models.loading import load_model

    base = load_model(model, device="cpu", cpu_speedups=False).model
    made = {}
    for seed, role in enumerate(roles):
        torch.manual_seed(seed)
        config = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                            init_lora_weights=False, task_type="CAUSAL_LM")
        peft_model = get_peft_model(base, config)
        peft_model.save_pretrained(folder / f"random-{role}")
        base = peft_model.unload()
        made[role] = str(folder / f"random-{role}")
    del base
    gc.collect()  # the children measure their own memory, but the machine is shared
    return made


def prompts(count: int, offset: int) -> dict[str | None, list[list[dict[str, str]]]]:
    """`count` writing prompts for the writing role, answer prompts for the recall role and the base
    model, from the `offset`-th on (each phase gets prompts of its own: none is a cache hit)."""
    from memlora.data.records_rows import test_sets

    scenes = 2 + (offset + count) // 6
    _, writes, recalls = test_sets(0, scenes, 2)
    answers = [item.messages() for item in recalls[offset : offset + count]]
    return {"writing": [item.messages() for item in writes[offset : offset + count]], "recall": answers, None: answers}


def weight_bytes(models: list[Any]) -> int:
    seen: set[int] = set()
    total = 0
    for loaded in models:
        for tensor in list(loaded.model.parameters()) + list(loaded.model.buffers()):
            key = tensor.untyped_storage().data_ptr()
            if key not in seen:
                seen.add(key)
                total += tensor.untyped_storage().nbytes()
    return total


def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One serving in this process: load, then latency with and without switching."""
    import peft  # noqa: F401 - imports are not load time
    import transformers  # noqa: F401

    import memlora.models.loading  # noqa: F401
    from memlora.records.chat import LocalChatModel

    adapters = json.loads(args.adapters)
    started = time.perf_counter()
    chat = LocalChatModel(args.model, adapters=adapters, serving=args.serving)
    per_target: dict[str, float] = {}
    for role in (None, *adapters):
        began = time.perf_counter()
        chat.routed.target(role)
        per_target[role or "base"] = round(time.perf_counter() - began, 2)
    load_seconds = time.perf_counter() - started
    by_role = prompts(args.requests, 0)

    def timed(role: str | None, messages: list[dict[str, str]]) -> float:
        began = time.perf_counter()
        chat.complete([messages], args.max_tokens, role=role)
        return time.perf_counter() - began

    for role, items in by_role.items():  # warm up: every engine computes its prompt's cache once
        timed(role, items[0])
    same = {role or "base": [timed(role, m) for m in items] for role, items in by_role.items()}
    fresh = prompts(args.requests, args.requests)
    switching = [timed(role, fresh[role][index]) for index in range(args.requests) for role in fresh]
    same_all = [value for values in same.values() for value in values]
    return {
        "serving": args.serving,
        "load_seconds": round(load_seconds, 2), "load_seconds_per_target": per_target,
        "weight_bytes": weight_bytes(chat.routed.loaded_models), "models_in_memory": len(chat.routed.loaded_models),
        "rss_bytes": rss_bytes(), "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "latency_s_same_role": {role: {"p50": round(statistics.median(v), 3), "n": len(v)} for role, v in same.items()},
        "latency_s_p50_same_role_all": round(statistics.median(same_all), 3),
        "latency_s_p50_switching_every_request": round(statistics.median(switching), 3),
        "switching_cost_s_p50": round(statistics.median(switching) - statistics.median(same_all), 3),
        "requests_switching": len(switching),
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| serving | models in memory | weights | peak RSS | load | p50 latency, same role | p50 latency, role "
             "changes every request | switching cost (p50) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r['serving']} | {r['models_in_memory']} | {r['weight_bytes'] / 2**20:.0f} MiB "
                     f"| {r['peak_rss_bytes'] / 2**20:.0f} MiB | {r['load_seconds']} s "
                     f"| {r['latency_s_p50_same_role_all']} s | {r['latency_s_p50_switching_every_request']} s "
                     f"| {r['switching_cost_s_p50']} s |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    for role in ROLES:
        parser.add_argument(f"--{role}-adapter", default=None, help=f"default: the shipped {role} adapter, else random")
    parser.add_argument("--servings", default="dynamic,merged")
    parser.add_argument("--requests", type=int, default=12, help="requests per role")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--serving", help=argparse.SUPPRESS)  # child process
    parser.add_argument("--adapters", help=argparse.SUPPRESS)  # child process: {role: path} as JSON
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.serving:
        print(json.dumps(child(args)))
        return
    from memlora.models.loading import cpu_description
    from memlora.routing import shipped_adapter

    with tempfile.TemporaryDirectory() as folder:
        adapters = {role: getattr(args, f"{role}_adapter") or shipped_adapter(args.model, role) for role in ROLES}
        made = [role for role, path in adapters.items() if path is None]
        if made:
            adapters.update(random_adapters(args.model, Path(folder), made))
        results = []
        for serving in args.servings.split(","):
            command = [sys.executable, __file__, "--model", args.model, "--serving", serving, "--adapters",
                       json.dumps(adapters), "--requests", str(args.requests), "--max-tokens", str(args.max_tokens)]
            print(f"{serving}: {' '.join(command[:6])} ...", file=sys.stderr)
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), file=sys.stderr)
    report = {"model": args.model, "adapters": adapters, "random_adapters": made, "cpu": cpu_description(),
              "requests_per_role": args.requests, "max_tokens": args.max_tokens, "results": results,
              "table": table(results)}
    text = json.dumps(report, indent=2)
    print(text)
    print(report["table"], file=sys.stderr)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
