"""Per-call latency of the memory tools through the MCP stdio transport.

Runs memlora (SQLite and JSONL backends) and the reference server side by side on the same
graph: N entities with 3 observations each and N relations. Each server is a separate process
driven by the official MCP client over stdio, so the numbers include the transport, as a real
client sees them. search_nodes looks for one entity's keyword (a distinct word in one of
its observations), capitalised to exercise case-insensitive matching. The reference reads and rewrites its whole file on every call, so it gets
fewer calls per size (--slow-calls); p50/p95 are reported per tool.

    python benchmarks/store_bench.py --sizes 1000,10000,100000
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from memlora.store.graph import Entity, KnowledgeGraph, Relation
from memlora.store.jsonl import format_graph
from memlora.store.sqlite import SqliteStore

TOOLS = ["search_nodes", "open_nodes", "create_entities", "add_observations"]
REFERENCE_PACKAGE = "@modelcontextprotocol/server-memory"
REFERENCE_VERSION = "2026.8.31"


def keyword(i: int) -> str:
    """A distinct pronounceable word per entity, like the names and nouns real searches look for."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    i = (i * 2_654_435_761) % (len(consonants) * len(vowels)) ** 4  # scatter neighbours over the word space
    letters = []
    for _ in range(4):
        i, c = divmod(i, len(consonants))
        i, v = divmod(i, len(vowels))
        letters += [consonants[c], vowels[v]]
    return "".join(letters)


def build_graph(size: int, seed: int = 0) -> KnowledgeGraph:
    """N entities with 3 observations each (one names the entity's keyword), N relations."""
    rng = random.Random(seed)
    types = ["person", "place", "organization", "pet", "thing"]
    entities = [
        Entity(
            f"entity_{i}",
            types[i % len(types)],
            [f"goes by {keyword(i)}", f"likes item {rng.randrange(1000)}", f"met in year {1950 + rng.randrange(70)}"],
        )
        for i in range(size)
    ]
    relations = [Relation(f"entity_{i}", f"entity_{(i * 7919 + 1) % size}", "knows") for i in range(size)]
    return KnowledgeGraph(entities=entities, relations=relations)


def reference_script() -> Path | None:
    """The reference server from the cache the conformance test uses; installed with npm if missing."""
    cache = Path(os.environ.get("MEMLORA_CACHE", Path.home() / ".cache" / "memlora")) / "reference-server"
    script = cache / "node_modules" / REFERENCE_PACKAGE / "dist" / "index.js"
    if not script.exists() and shutil.which("npm"):
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(cache), "--no-audit", "--no-fund", f"{REFERENCE_PACKAGE}@{REFERENCE_VERSION}"],
            check=False,
            capture_output=True,
        )
    return script if script.exists() else None


def call_plan(size: int, server: str, calls: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """The arguments of every timed call, per tool; writes use names no other call uses."""
    rng = random.Random(seed)
    pick = lambda: rng.randrange(size)  # noqa: E731
    return {
        "search_nodes": [{"query": keyword(pick()).capitalize()} for _ in range(calls)],
        "open_nodes": [{"names": [f"entity_{pick()}"]} for _ in range(calls)],
        "create_entities": [
            {"entities": [{"name": f"new_{server}_{j}", "entityType": "person", "observations": ["a", "b", "c"]}]}
            for j in range(calls)
        ],
        "add_observations": [
            {"observations": [{"entityName": f"entity_{pick()}", "contents": [f"added note {server} {j}"]}]}
            for j in range(calls)
        ],
    }


WARMUP_CALLS = 3


async def time_server(params: StdioServerParameters, plan: dict[str, list[dict[str, Any]]]) -> dict[str, list[float]]:
    """Milliseconds per call for each tool, measured at the client.

    Tools take turns call by call, so a slow phase of the machine hits all of them alike; the
    first WARMUP_CALLS calls of each tool warm the caches and are not counted.
    """
    timings: dict[str, list[float]] = {tool: [] for tool in TOOLS}
    with open(os.devnull, "w") as devnull:
        async with stdio_client(params, errlog=devnull) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            for index in range(len(plan[TOOLS[0]])):
                for tool in TOOLS:
                    start = time.perf_counter()
                    result = await session.call_tool(tool, plan[tool][index])
                    elapsed = (time.perf_counter() - start) * 1000
                    if result.is_error:
                        raise RuntimeError(f"{tool} failed: {result.content}")
                    if index >= WARMUP_CALLS:
                        timings[tool].append(elapsed)
    return timings


def percentile(samples: list[float], q: float) -> float:
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def run_size(size: int, calls: int, slow_calls: int, script: Path | None, log: Callable[[str], None]) -> dict[str, Any]:
    graph = build_graph(size)
    text = format_graph(graph)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="memlora-bench-") as folder:
        base = Path(folder)
        (base / "memlora.jsonl").write_text(text, encoding="utf-8")
        (base / "reference.jsonl").write_text(text, encoding="utf-8")
        with SqliteStore(base / "memlora.db") as store:
            store.merge_graph(graph)
        python = [sys.executable, "-m", "memlora.cli", "serve", "--store"]
        servers: dict[str, tuple[StdioServerParameters, int]] = {
            "memlora-sqlite": (StdioServerParameters(command=python[0], args=[*python[1:], f"sqlite:{base / 'memlora.db'}"], env=dict(os.environ)), calls),
            "memlora-jsonl": (StdioServerParameters(command=python[0], args=[*python[1:], f"jsonl:{base / 'memlora.jsonl'}"], env=dict(os.environ)), slow_calls),
        }
        if script is not None:
            env = {**os.environ, "MEMORY_FILE_PATH": str(base / "reference.jsonl")}
            servers["reference"] = (StdioServerParameters(command="node", args=[str(script)], env=env), slow_calls)
        for name, (params, count) in servers.items():
            log(f"  {name}: {count} calls per tool")
            timings = anyio.run(time_server, params, call_plan(size, name, count + WARMUP_CALLS, seed=size))
            results[name] = {tool: {"p50": percentile(s, 50), "p95": percentile(s, 95), "n": len(s)} for tool, s in timings.items()}
    return results


def report(all_results: dict[int, dict[str, Any]], command: str) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}",
        "",
        "| entities | tool | memlora SQLite p50 / p95 (ms) | memlora JSONL p50 / p95 (ms) | reference p50 / p95 (ms) | reference / SQLite (p50) |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for size, results in all_results.items():
        for tool in TOOLS:
            cells = []
            for server in ("memlora-sqlite", "memlora-jsonl", "reference"):
                stats = results.get(server, {}).get(tool)
                cells.append(f"{stats['p50']:.2f} / {stats['p95']:.2f} (n={stats['n']})" if stats else "n/a")
            ratio = "n/a"
            if "reference" in results:
                ratio = f"{results['reference'][tool]['p50'] / results['memlora-sqlite'][tool]['p50']:.0f}x"
            lines.append(f"| {size:,} | {tool} | {' | '.join(cells)} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated entity counts")
    parser.add_argument("--calls", type=int, default=50, help="timed calls per tool for memlora SQLite")
    parser.add_argument("--slow-calls", type=int, default=10, help="timed calls per tool for the file-rewriting servers")
    parser.add_argument("--no-reference", action="store_true", help="skip the npm reference server")
    args = parser.parse_args()
    script = None if args.no_reference else reference_script()
    if script is None and not args.no_reference:
        print("reference server unavailable (npm missing?); running memlora only", file=sys.stderr)
    all_results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"{size} entities", file=sys.stderr)
        all_results[size] = run_size(size, args.calls, args.slow_calls, script, lambda m: print(m, file=sys.stderr))
    print(report(all_results, "python benchmarks/store_bench.py " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
