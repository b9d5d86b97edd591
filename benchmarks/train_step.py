"""Seconds per SFT optimizer step with PEFT's format-token path against memlora's, paired.

PEFT applies an adapter's own token vectors (the tool-call tags, the end of turn) by copying the
whole embedding and output-head matrices with the vectors swapped in, at every forward, and so
takes a gradient for the whole head; memlora's `install_fast_token_vectors` runs the base layers
as they are and sets only those vectors. Both give the same loss; this measures the time.

Each run is a whole `train_sft` of one optimizer step on the same rows (same seed) in a process
of its own, the two paths alternating; the step's seconds and tokens come from the run's own
log, so loading the model is not counted. The runs volunteer to the kernel's out-of-memory killer
(oom_score_adj 1000), so that a long training beside them is never the one it picks.

    python benchmarks/train_step.py --data runs/qwen-long/data --rows 4 --repeats 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def one_step(data: Path, rows: int, threads: int, fast: bool, out: Path) -> dict[str, float]:
    from memlora.models import token_rows
    from memlora.training.sft import SftSettings, train_sft

    real_install = token_rows.install_fast_token_vectors
    if not fast:
        token_rows.install_fast_token_vectors = lambda model: 0  # PEFT's own forward stays
    try:
        shutil.rmtree(out, ignore_errors=True)
        train_sft(SftSettings(data=data, out=out, max_steps=1, grad_accum=rows, max_train_rows=rows, max_eval_rows=1,
                              eval_every=100, save_every=100, early_stopping_patience=0, threads=threads, seed=17,
                              max_length=4096, quiet=True))
    finally:
        token_rows.install_fast_token_vectors = real_install
    step = next(e for e in json.loads((out / "training_log.json").read_text()) if "loss" in e)
    return {"seconds": step["train_seconds"], "tokens": step["tokens_processed"], "loss": step["loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="A `memlora datagen` folder.")
    parser.add_argument("--rows", type=int, default=4, help="Rows in the step (its gradient accumulation).")
    parser.add_argument("--repeats", type=int, default=2, help="Runs of each path, alternating.")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default).")
    parser.add_argument("--path", choices=("peft", "memlora"), help=argparse.SUPPRESS)  # one run, in a child
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        try:
            Path("/proc/self/oom_score_adj").write_text("1000")
        except OSError:
            pass
        print(json.dumps(one_step(args.data, args.rows, args.threads, args.path == "memlora", args.out)))
        return
    from memlora.models.loading import cpu_description

    results: dict[str, list[dict[str, float]]] = {"peft": [], "memlora": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for name in ("peft", "memlora") if repeat % 2 == 0 else ("memlora", "peft"):
                child = subprocess.run([sys.executable, __file__, "--data", str(args.data), "--rows", str(args.rows),
                                        "--threads", str(args.threads), "--path", name, "--out",
                                        str(Path(folder) / name)], check=True, capture_output=True, text=True)
                result = json.loads(child.stdout.strip().splitlines()[-1])
                results[name].append(result)
                print(f"{name}: {result['seconds']:.1f} s, {result['tokens']} tokens, loss {result['loss']:.6f}",
                      flush=True)
    print(f"\n{cpu_description()}, {args.rows} rows per step, threads {args.threads or 'default'}")
    print("| format-token path | seconds per step (each run) | median | tokens/s | loss |")
    print("| --- | --- | ---: | ---: | --- |")
    for name, runs in results.items():
        median = statistics.median(r["seconds"] for r in runs)
        seconds = ", ".join(f"{r['seconds']:.1f}" for r in runs)
        losses = ", ".join(f"{r['loss']:.6f}" for r in runs)
        print(f"| {name} | {seconds} | {median:.1f} | {runs[0]['tokens'] / median:.1f} | {losses} |")


if __name__ == "__main__":
    main()
