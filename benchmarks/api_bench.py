"""`memlora api` against direct engine calls, and the memory each runtime holds.

    python benchmarks/api_bench.py load [--levels 1,8,32] [--requests 8,16,32] [--max-tokens 16]
    python benchmarks/api_bench.py rss-memlora
    python benchmarks/api_bench.py rss-llamacpp --adapter-gguf PATH

`load` loads the bundled model with its shipped adapter once, then for each concurrency level
sends the same requests twice: as direct `engine.generate` calls from that many asyncio tasks,
and as chat completions over HTTP (the real server on 127.0.0.1, the official openai client,
one AsyncOpenAI per simulated client) to the same engine. Every request is a memory-style turn
(memlora's system prompt and tools, a session opening, one user message that differs per
request) with greedy decoding and a fixed max_tokens, so both paths decode the same tokens. The
engine's conversation cache is emptied before each measurement. Client and server share the
process, as they share the machine.

`rss-*` start a fresh process that loads one runtime with the model and adapter, decodes one
prompt and prints its peak resident set size (ru_maxrss) and current RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import threading
import time
from typing import Any

MODEL = "qwen2.5-coder-0.5b"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    return {"requests": len(latencies), "wall_s": round(wall, 2), "req_per_s": round(len(latencies) / wall, 3),
            "p50_s": round(statistics.median(latencies), 2), "p95_s": round(percentile(latencies, 0.95), 2)}


def requests_for(count: int, offset: int) -> list[list[dict[str, Any]]]:
    from memlora.agent.prompt import session_opening

    opening = session_opening({"entities": [], "relations": []})
    return [opening + [{"role": "user", "content": f"My colleague number {offset + i} is called Sam {offset + i} "
                                                   f"and works in office {offset + i}."}]
            for i in range(count)]


async def run_level(clients: int, jobs: list[Any], call: Any) -> dict[str, float]:
    """`clients` tasks take jobs from a shared queue until it is empty; latency per job."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    latencies: list[float] = []

    async def client(index: int) -> None:
        while not queue.empty():
            job = queue.get_nowait()
            started = time.perf_counter()
            await call(index, job)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return summary(latencies, time.perf_counter() - started)


def load(args: argparse.Namespace) -> None:
    import openai
    import uvicorn

    from memlora.agent.endpoint import openai_messages
    from memlora.agent.engine import SamplingParams
    from memlora.agent.protocol import model_tools
    from memlora.models.chat_format import render_prompt
    from memlora.api.app import ApiSettings, build_app
    from memlora.models.loading import adapter_name, default_adapter, load_model

    adapter = default_adapter(MODEL)
    loaded = load_model(MODEL, adapters=[adapter])
    name = adapter_name(adapter)
    app = build_app(loaded, ApiSettings(max_concurrency=256, embeddings=False), adapters={"memory": name},
                    base_id=MODEL, max_batch=32)
    engine = app.app.state.engine
    tools = model_tools()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/v1"
    params = SamplingParams(max_new_tokens=args.max_tokens)
    results: list[dict[str, Any]] = []
    levels = [int(x) for x in args.levels.split(",")]
    counts = [int(x) for x in args.requests.split(",")]

    async def measure() -> None:
        warm = requests_for(2, 10_000)
        for messages in warm:  # the adapter's prefix cache and first-call costs, outside the numbers
            await engine.generate(render_prompt(loaded.tokenizer, messages, tools), params, name)
        for clients, count in zip(levels, counts):
            jobs = requests_for(count, clients * 1000)
            prompts = [render_prompt(loaded.tokenizer, m, tools) for m in jobs]

            async def direct(index: int, prompt: str) -> None:
                await engine.generate(prompt, params, name)

            engine.conversations.clear()
            row = {"clients": clients, "path": "engine", **await run_level(clients, prompts, direct)}
            results.append(row)
            print(json.dumps(row), flush=True)
            http = [openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0, timeout=3600)
                    for _ in range(clients)]

            async def over_http(index: int, messages: list[dict[str, Any]]) -> None:
                await http[index].chat.completions.create(model=f"{MODEL}+memory", messages=openai_messages(messages),
                                                          tools=tools,
                                                          max_tokens=args.max_tokens, temperature=0)

            engine.conversations.clear()
            row = {"clients": clients, "path": "http", **await run_level(clients, jobs, over_http)}
            results.append(row)
            print(json.dumps(row), flush=True)

    asyncio.run(measure())
    server.should_exit = True
    thread.join(timeout=30)
    print(json.dumps({"results": results}))


def rss_report(label: str) -> None:
    import psutil

    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    current = psutil.Process().memory_info().rss
    print(json.dumps({"runtime": label, "peak_rss_mib": round(peak_kib / 1024, 1),
                      "rss_mib": round(current / 2**20, 1)}))


def rss_memlora(args: argparse.Namespace) -> None:
    from memlora.agent.engine import SamplingParams
    from memlora.agent.loop import build_engine
    from memlora.agent.prompt import session_opening
    from memlora.agent.protocol import model_tools
    from memlora.models.chat_format import render_prompt
    from memlora.models.loading import adapter_name, default_adapter, load_model

    adapter = default_adapter(MODEL)
    loaded = load_model(MODEL, adapters=[adapter])
    engine = build_engine(loaded)
    prompt = render_prompt(loaded.tokenizer, session_opening({"entities": [], "relations": []})
                           + [{"role": "user", "content": "Hi, I'm Dana."}], model_tools())
    engine.generate_many([prompt], SamplingParams(max_new_tokens=16), adapter=adapter_name(adapter))
    dtype = str(next(loaded.model.parameters()).dtype)
    rss_report(f"memlora engine ({dtype}, adapter attached)")


def rss_llamacpp(args: argparse.Namespace) -> None:
    from transformers import AutoTokenizer

    from memlora.agent.prompt import session_opening
    from memlora.agent.protocol import model_tools
    from memlora.models.chat_format import render_prompt
    from memlora.models.llamacpp import LlamaCpp
    from memlora.models.loading import bundled_gguf, resolve_model

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(MODEL)))
    runtime = LlamaCpp(bundled_gguf(MODEL), args.adapter_gguf, threads=1, context=8192)
    prompt = render_prompt(tokenizer, session_opening({"entities": [], "relations": []})
                           + [{"role": "user", "content": "Hi, I'm Dana."}], model_tools())
    runtime.greedy(tokenizer(prompt, add_special_tokens=False)["input_ids"], 16)
    rss_report("llama.cpp (bundled GGUF, LoRA GGUF, n_ctx 8192)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("load")
    run.add_argument("--levels", default="1,8,32")
    run.add_argument("--requests", default="8,16,32", help="requests per level")
    run.add_argument("--max-tokens", type=int, default=16)
    sub.add_parser("rss-memlora")
    llama = sub.add_parser("rss-llamacpp")
    llama.add_argument("--adapter-gguf", required=True)
    args = parser.parse_args()
    {"load": load, "rss-memlora": rss_memlora, "rss-llamacpp": rss_llamacpp}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
