"""CPU time per episode of `memlora datagen`'s worker steps, in one process.

`memlora datagen` spends nearly all its time in workers running `_generate` on one episode after
another; this runs the same steps in-process and reports CPU milliseconds per episode for each,
so a change can be measured on one core without timing a whole multi-process run:

- generate: `generate_episode` (gold calls on the in-memory SQLite store, the gate after each session)
- rows: the rows' messages (`session_messages`, with the real tool results rendered)
- serialise: the episode line and the row heads (orjson)
- tokens: row token counts, on every TOKEN_SAMPLE-th episode as datagen does (Qwen tokenizer
  when cached), averaged over all episodes

Pin it to one core for stable numbers, and take the minimum over repeats (shared machines):

    taskset -c 1 python benchmarks/datagen_bench.py --episodes 1000 --repeats 3
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import defaultdict

import orjson

from memlora.data.commands import TOKEN_SAMPLE, _row_text, token_counter
from memlora.data.generator import generate_episode
from memlora.data.rows import row_head, session_messages


def run(episodes: int, seed: int) -> dict[str, float]:
    """CPU ms per episode for each step over `episodes` train episodes."""
    spent: dict[str, float] = defaultdict(float)
    clock = time.process_time
    counter = token_counter()
    for index in range(episodes):
        start = clock()
        generated = generate_episode(seed, "train", index)
        after_generate = clock()
        conversations = [session_messages(s) for s in generated.sessions]
        after_rows = clock()
        orjson.dumps(generated.episode)
        for messages in conversations:
            row_head(messages)
        after_serialise = clock()
        if index % TOKEN_SAMPLE == 0:
            counter.count_rows([_row_text(m) for m in conversations])
        end = clock()
        spent["generate"] += after_generate - start
        spent["rows"] += after_rows - after_generate
        spent["serialise"] += after_serialise - after_rows
        spent["tokens"] += end - after_serialise
    result = {step: seconds / episodes * 1e3 for step, seconds in spent.items()}
    result["total"] = sum(result.values())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run(30, args.seed + 1)  # warm-up: imports, the tokenizer, the store's statement cache
    runs = [run(args.episodes, args.seed) for _ in range(args.repeats)]
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"{args.episodes} train episodes x {args.repeats} repeats; CPU ms per episode, min (max)")
    for step in runs[0]:
        values = [r[step] for r in runs]
        print(f"  {step:10s} {min(values):6.2f} ({max(values):.2f})")
    print(f"  tokens: {token_counter().source}")


if __name__ == "__main__":
    main()
