"""How many tokens a second SFT could reach on this CPU if it did nothing but its big kernels.

A LoRA step of the 0.5B model is three kinds of arithmetic: the frozen linear layers (forward,
and the gradient of their inputs: the base weights take none), attention over the shared
prefix's cached keys and values and the row itself, and the output head on the positions that
carry a label. This script counts each one's floating-point operations per token for the rows of
a data folder, times each kernel at the rows' typical shape in the dtype and thread count asked
for, and adds the times up: a bound that the trainer, which also runs norms, activations, LoRA's
small products, dropout and the optimizer, stays under. Compare it with the trainer's own rate
(`benchmarks/train_step.py`, or the long run's `run.json`).

    python benchmarks/train_roofline.py --data runs/qwen-long/data --dtype bf16 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any, Callable

# backward of attention against its forward: the gradients of Q, K, V and of the scores, and a
# second product of Q and K in kernels that recompute it instead of storing the scores
ATTENTION_BACKWARD_FACTOR = 2.5


def row_shapes(data: Path, sample: int) -> dict[str, float]:
    """Prefix length, mean row length after it, keys run per token, labelled share."""
    from transformers import AutoTokenizer

    from memlora.models.loading import resolve_model
    from memlora.training.sft import data_files, read_rows, row_prefix_ids, tokenize_rows

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model("qwen2.5-coder-0.5b")))
    rows = read_rows(data_files(data)[0], sample, seed=0)
    tokenized, prefix = tokenize_rows(tokenizer, rows, True, row_prefix_ids(tokenizer, rows[0]))
    lengths = [len(row["input_ids"]) for row in tokenized]
    labelled = sum(sum(label != -100 for label in row["labels"]) for row in tokenized)
    # a row's token t needs the prefix and tokens 1..t of its row, but the attention kernel, given
    # a mask, runs every key of the row's square (masked ones too: measured, no faster than none)
    keys = sum(length * (len(prefix) + length) for length in lengths)
    return {"prefix": len(prefix), "rows": len(lengths), "tokens": sum(lengths),
            "mean_length": statistics.mean(lengths), "mean_keys": keys / sum(lengths),
            "labelled_share": labelled / sum(lengths)}


def seconds_of(work: Callable[[], None], repeats: int = 3) -> float:
    work()  # warm-up: the first call of a shape builds its kernels
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def kernel_rates(config: Any, shapes: dict[str, float], dtype: Any) -> dict[str, float]:
    """GFLOP/s of each kind of arithmetic at the rows' mean shape (forward and input gradient)."""
    import torch
    import torch.nn.functional as F

    length = round(shapes["mean_length"])
    hidden, inner = config.hidden_size, config.intermediate_size
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = hidden // heads
    keys = int(shapes["prefix"]) + length

    def linear(rows: int, inputs: int, outputs: int) -> float:
        x = torch.randn(rows, inputs, dtype=dtype, requires_grad=True)
        weight = torch.randn(outputs, inputs, dtype=dtype)
        seconds = seconds_of(lambda: (x @ weight.t()).sum().backward())
        return 2 * 2 * rows * inputs * outputs / seconds / 1e9

    q = torch.randn(1, heads, length, head_dim, dtype=dtype, requires_grad=True)
    k = torch.randn(1, kv_heads, keys, head_dim, dtype=dtype, requires_grad=True)
    v = torch.randn(1, kv_heads, keys, head_dim, dtype=dtype, requires_grad=True)
    mask = torch.ones(length, keys, dtype=torch.bool).tril(diagonal=keys - length)[None, None]
    repeat = heads // kv_heads

    def attention() -> None:
        out = F.scaled_dot_product_attention(q, k.repeat_interleave(repeat, 1), v.repeat_interleave(repeat, 1),
                                             attn_mask=mask)
        out.sum().backward()

    attention_flops = (1 + ATTENTION_BACKWARD_FACTOR) * 4 * length * keys * heads * head_dim
    labelled = max(1, round(length * shapes["labelled_share"]))
    return {"linear (MLP up)": linear(length, hidden, inner), "linear (MLP down)": linear(length, inner, hidden),
            "linear (attention q)": linear(length, hidden, hidden),
            "attention": attention_flops / seconds_of(attention) / 1e9,
            "output head": linear(labelled, hidden, config.vocab_size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="A `memlora datagen` folder.")
    parser.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default).")
    parser.add_argument("--rows", type=int, default=200, help="Training rows sampled for the shapes.")
    args = parser.parse_args()

    import memlora.models  # noqa: F401 - OpenMP settings before torch does work
    import torch
    from transformers import AutoConfig

    from memlora.models.loading import choose_dtype, cpu_description, resolve_model

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = choose_dtype(torch.device("cpu"), args.dtype)
    config = AutoConfig.from_pretrained(str(resolve_model("qwen2.5-coder-0.5b")))
    shapes = row_shapes(args.data, args.rows)
    rates = kernel_rates(config, shapes, dtype)

    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    kv_width = config.num_key_value_heads * (hidden // config.num_attention_heads)
    linear_weights = layers * (2 * hidden * hidden + 2 * hidden * kv_width + 3 * hidden * inner)
    linear_rate = statistics.mean(v for k, v in rates.items() if k.startswith("linear"))
    per_token = {  # GFLOP per token of a row, and the rate it runs at
        "linear layers": (2 * 2 * linear_weights / 1e9, linear_rate),
        "attention": ((1 + ATTENTION_BACKWARD_FACTOR) * 4 * shapes["mean_keys"] * hidden * layers / 1e9,
                      rates["attention"]),
        "output head": (2 * 2 * hidden * config.vocab_size * shapes["labelled_share"] / 1e9, rates["output head"]),
    }
    milliseconds = {name: flops / rate * 1e3 for name, (flops, rate) in per_token.items()}
    print(f"{cpu_description()}, {str(dtype).removeprefix('torch.')}, {torch.get_num_threads()} thread(s)")
    print(f"rows: {shapes['rows']} sampled, prefix {shapes['prefix']} tokens, mean row {shapes['mean_length']:.0f} "
          f"tokens after it, {shapes['mean_keys']:.0f} keys run per token, "
          f"{shapes['labelled_share']:.1%} of tokens labelled")
    print("| kernel at the mean row's shape | GFLOP/s |")
    print("| --- | ---: |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} |")
    print("\n| per token of a row | GFLOP | ms at the kernel's rate | share |")
    print("| --- | ---: | ---: | ---: |")
    total = sum(milliseconds.values())
    for name, (flops, _) in per_token.items():
        print(f"| {name} | {flops:.3f} | {milliseconds[name]:.2f} | {milliseconds[name] / total:.0%} |")
    print(f"| all | {sum(f for f, _ in per_token.values()):.3f} | {total:.2f} | |")
    print(f"\nbound: {1e3 / total:.1f} tokens/s with these kernels alone")


if __name__ == "__main__":
    main()
