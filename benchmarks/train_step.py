"""Seconds per SFT optimizer step, one training path against another, paired.

The variants:
- `memlora`: the default path (dtype chosen for the CPU, one row per forward, memlora's format-token
  vectors).
- `peft`: the same with PEFT's own format-token path, which copies the whole embedding and output
  head with the adapter's vectors swapped in at every forward (and takes a gradient for all of
  the head); memlora's `install_fast_token_vectors` sets only those vectors. Same loss.
- `fp32`, `bf16`: the default path in that dtype (bf16 only runs on CPUs with bf16 instructions).
- `bf16-batch2`, `fp32-batch2`: two rows per forward (padded to the longer), half the
  accumulation steps: the micro-batch shape.

Each run is a whole `train_sft` of one optimizer step on the same rows (same seed) in a process
of its own, the variants alternating; the step's seconds and tokens come from the run's own log,
so loading the model is not counted (the prefix cache and the first forward's warm-up are). The
runs volunteer to the kernel's out-of-memory killer (oom_score_adj 1000), so that a long
training beside them is never the one it picks.

    python benchmarks/train_step.py --data runs/qwen-long/data --rows 4 --repeats 2 --threads 1
    python benchmarks/train_step.py --data runs/qwen-long/data --rows 4 --variants fp32,bf16 --threads 1
    python benchmarks/train_step.py --data runs/qwen-long/data --rows 3 --variants bf16 --repeats 1 --profile

`--profile` also reports where the time of each run's second forward and backward goes (the
first one pays for warming up): matrix products, attention, and the rest, from torch's profiler.
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
from typing import Any

# settings each variant changes from the default path; "format_tokens": "peft" keeps PEFT's forward
VARIANTS: dict[str, dict[str, Any]] = {
    "memlora": {},
    "peft": {"format_tokens": "peft"},
    "fp32": {"dtype": "fp32"},
    "bf16": {"dtype": "bf16"},
    "fp32-batch2": {"dtype": "fp32", "batch_size": 2},
    "bf16-batch2": {"dtype": "bf16", "batch_size": 2},
}


# torch profiler names of the kernels each share of a step is counted under
TIME_SHARES = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu",
                  "aten::_scaled_dot_product_flash_attention_for_cpu_backward"),
}


def profile_second_micro_step(shares: dict[str, float]) -> None:
    """Wraps the trainer's micro-step so that the second one runs under torch's profiler."""
    import transformers
    from torch.profiler import ProfilerActivity, profile

    real = transformers.Trainer.training_step
    calls = [0]

    def training_step(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] != 2:
            return real(self, *args, **kwargs)
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            result = real(self, *args, **kwargs)
        averages = profiler.key_averages()
        total = sum(event.self_cpu_time_total for event in averages)
        for share, names in TIME_SHARES.items():
            shares[share] = sum(e.self_cpu_time_total for e in averages if e.key in names) / total
        shares["the rest"] = 1.0 - sum(shares.values())
        shares["profiled seconds"] = total / 1e6
        return result

    transformers.Trainer.training_step = training_step


def one_step(data: Path, rows: int, threads: int, variant: str, out: Path, profiled: bool = False) -> dict[str, Any]:
    from memlora.models import token_rows
    from memlora.training.sft import SftSettings, train_sft

    changes = dict(VARIANTS[variant])
    real_install = token_rows.install_fast_token_vectors
    if changes.pop("format_tokens", None) == "peft":
        token_rows.install_fast_token_vectors = lambda model: 0  # PEFT's own forward stays
    batch = changes.get("batch_size", 1)
    if rows % batch:
        raise SystemExit(f"--rows {rows} is not a multiple of {variant}'s batch of {batch}")
    shares: dict[str, float] = {}
    if profiled:
        profile_second_micro_step(shares)
    try:
        shutil.rmtree(out, ignore_errors=True)
        train_sft(SftSettings(data=data, out=out, max_steps=1, grad_accum=rows // batch, max_train_rows=rows,
                              max_eval_rows=1, eval_every=100, save_every=100, early_stopping_patience=0,
                              threads=threads, seed=17, max_length=4096, quiet=True, **changes))
    finally:
        token_rows.install_fast_token_vectors = real_install
    step = next(e for e in json.loads((out / "training_log.json").read_text()) if "loss" in e)
    return {"seconds": step["train_seconds"], "tokens": step["tokens_processed"], "loss": step["loss"],
            "time_shares": shares}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="A `memlora datagen` folder.")
    parser.add_argument("--rows", type=int, default=4, help="Rows in the step (its gradient accumulation).")
    parser.add_argument("--repeats", type=int, default=2, help="Runs of each variant, alternating.")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default).")
    parser.add_argument("--variants", default="peft,memlora",
                        help=f"Comma-separated, from: {', '.join(VARIANTS)}.")
    parser.add_argument("--profile", action="store_true", help="Also say where a micro-step's time goes.")
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)  # one run, in a child
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        try:
            Path("/proc/self/oom_score_adj").write_text("1000")
        except OSError:
            pass
        print(json.dumps(one_step(args.data, args.rows, args.threads, args.variant, args.out, args.profile)))
        return
    names = args.variants.split(",")
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    from memlora.models.loading import cpu_description

    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for name in names if repeat % 2 == 0 else names[::-1]:
                child = subprocess.run([sys.executable, __file__, "--data", str(args.data), "--rows", str(args.rows),
                                        "--threads", str(args.threads), "--variant", name, "--out",
                                        str(Path(folder) / name), *(["--profile"] if args.profile else [])],
                                       check=True, capture_output=True, text=True)
                result = json.loads(child.stdout.strip().splitlines()[-1])
                results[name].append(result)
                shares = result["time_shares"]
                where = ("; profiled micro-step " + ", ".join(
                    f"{key} {value:.1f} s" if key == "profiled seconds" else f"{key} {value:.0%}"
                    for key, value in shares.items())) if shares else ""
                print(f"{name}: {result['seconds']:.1f} s, {result['tokens']} tokens, loss {result['loss']:.6f}{where}",
                      flush=True)
    print(f"\n{cpu_description()}, {args.rows} rows per step, threads {args.threads or 'default'}")
    print("| variant | seconds per step (each run) | median | tokens/s | loss |")
    print("| --- | --- | ---: | ---: | --- |")
    for name, runs in results.items():
        median = statistics.median(r["seconds"] for r in runs)
        seconds = ", ".join(f"{r['seconds']:.1f}" for r in runs)
        losses = ", ".join(f"{r['loss']:.6f}" for r in runs)
        print(f"| {name} | {seconds} | {median:.1f} | {runs[0]['tokens'] / median:.1f} | {losses} |")


if __name__ == "__main__":
    main()
