"""Single-stream decode speed of the bundled Qwen model in each runtime on this machine.

One prompt at a time (a fresh session and a memory-writing user message, the opening of
`memlora chat`), greedy, `--new-tokens` tokens past the prompt; each runtime first runs the
prompt once, so the figure is decode alone (the prompt comes from the runtime's own cache).

Runtimes: memlora's engine (bf16 or fp32 weights dequantised from the GGUF, lookup drafts on
and off); llama.cpp through the prebuilt `xllamacpp` wheel (an AVX2 build) and, when it is
installed, through `llama-cpp-python` built from source for this CPU
(`CMAKE_ARGS="-DGGML_NATIVE=ON" pip install llama-cpp-python`). Both llama.cpp runtimes read
the GGUF's own 4-6 bit weights, so their tokens can differ from the engine's; the script
counts how many of each runtime's tokens agree with the engine's greedy tokens.

    python benchmarks/single_stream.py --threads 1,2 --out /tmp/single-stream.json
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable

import memlora.models  # noqa: F401,I001  (sets the OpenMP spin count before torch is imported)
import torch
from memlora.agent.engine import SamplingParams
from memlora.agent.loop import build_engine
from memlora.agent.protocol import model_tools
from memlora.models.loading import bundled_gguf, cpu_description, load_model

from generate_bench import USERS, prompts_for

MODEL = "qwen2.5-coder-0.5b"


def timed(decode: Callable[[list[int], int], list[int]], prompt: list[int], new_tokens: int) -> dict[str, Any]:
    """Runs the prompt once (one token), then times the full decode from the cached prompt."""
    decode(prompt, 1)
    started = time.perf_counter()
    tokens = decode(prompt, new_tokens)
    seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "tok_s": len(tokens) / seconds}


def engine_runtime(loaded: Any, lookahead: int) -> Callable[[list[int], int], list[int]]:
    engine = build_engine(loaded, model_tools())
    engine.lookahead = lookahead

    def decode(prompt: list[int], new_tokens: int) -> list[int]:
        params = SamplingParams(max_new_tokens=new_tokens, ignore_stop=True)
        return engine.generate_many([prompt], params)[0].token_ids

    return decode


def xllamacpp_runtime(gguf: Path, threads: int) -> Callable[[list[int], int], list[int]]:
    from memlora.models.llamacpp import LlamaCpp

    runtime = LlamaCpp(gguf, threads=threads)

    def decode(prompt: list[int], new_tokens: int) -> list[int]:
        result = runtime.server.handle_completions({
            "prompt": prompt, "n_predict": new_tokens, "temperature": 0.0, "top_k": 1, "logprobs": 1,
            "cache_prompt": True, "ignore_eos": True})
        return [int(item["id"]) for item in result["choices"][0]["logprobs"]["content"]]

    return decode


def llama_cpp_python_runtime(gguf: Path, threads: int) -> Callable[[list[int], int], list[int]]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=8192, n_threads=threads, n_threads_batch=threads, verbose=False)

    def decode(prompt: list[int], new_tokens: int) -> list[int]:
        out: list[int] = []  # generate() reuses the KV of the longest prefix it already evaluated
        for token in llm.generate(prompt, top_k=1, temp=0.0, repeat_penalty=1.0):
            out.append(int(token))
            if len(out) >= new_tokens:
                break
        return out

    return decode


def agreement(tokens: list[int], reference: list[int]) -> int:
    """How many leading tokens agree with the reference."""
    count = 0
    for a, b in zip(tokens, reference):
        if a != b:
            break
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2", help="thread counts to measure, comma separated")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompts", type=int, default=2, help="how many of the benchmark's user messages")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    gguf = bundled_gguf(MODEL)
    rows: list[dict[str, Any]] = []
    reference: dict[int, list[int]] = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        loaded = load_model(MODEL)
        prompts = [loaded.tokenizer(p, add_special_tokens=False)["input_ids"]
                   for p in prompts_for(loaded, model_tools(), args.prompts)]
        runtimes: dict[str, Callable[[], Callable[[list[int], int], list[int]]]] = {
            "memlora engine, no drafts": lambda: engine_runtime(loaded, 0),
            "memlora engine, lookup drafts": lambda: engine_runtime(loaded, 3),
            "llama.cpp, xllamacpp wheel": lambda: xllamacpp_runtime(gguf, threads),
            "llama.cpp, llama-cpp-python built here": lambda: llama_cpp_python_runtime(gguf, threads),
        }
        for name, make in runtimes.items():
            try:
                decode = make()
            except ImportError as error:
                rows.append({"runtime": name, "threads": threads, "skipped": str(error)})
                continue
            for index, prompt in enumerate(prompts):
                result = timed(decode, prompt, args.new_tokens)
                reference.setdefault(index, result["tokens"])
                rows.append({"runtime": name, "threads": threads, "prompt": USERS[index], "prompt_tokens": len(prompt),
                             "tok_s": round(result["tok_s"], 1), "seconds": round(result["seconds"], 2),
                             "agree_with_engine": agreement(result["tokens"], reference[index])})
                print(json.dumps(rows[-1]), flush=True)
            del decode
        del loaded
    result = {"date": date.today().isoformat(), "machine": cpu_description(), "torch": torch.__version__,
              "new_tokens": args.new_tokens, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
