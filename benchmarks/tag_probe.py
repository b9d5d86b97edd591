"""Look at the tool-call tag tokens of a model (and adapter): their rows, and their logits in use.

Prints the output-head rows of the tags next to nearby special tokens, then decodes the first
memory-writing turn of a validation session greedily and shows the top logits wherever a
reserved token wins or a tag was expected. This is how the first adapter's format failure was
traced (docs/benchmarks.md, "Why the first adapter wrote no valid call").

    python benchmarks/tag_probe.py --adapter adapters/qwen2.5-coder-0.5b-memory
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import memlora.models  # noqa: F401 - OpenMP settings before torch does work
from memlora.models.chat_format import render_prompt
from memlora.models.kv_cache import cache_of, with_cache
from memlora.models.loading import load_model
from memlora.training.sft import is_opening_call

SPECIAL = ("<tool_call>", "</tool_call>", "<|im_start|>", "<|im_end|>")


def first_writing_turn(rows: Path) -> tuple[list[dict], list[dict], str]:
    """(messages before the first model-made call, tools, the user's words) of the first row that has one."""
    with rows.open() as handle:
        for line in handle:
            row = json.loads(line)
            messages = row["messages"]
            for index, message in enumerate(messages):
                if message["role"] == "assistant" and message.get("tool_calls") and not is_opening_call(messages, index):
                    return messages[:index], row["tools"], messages[index - 1]["content"]
    raise SystemExit(f"{rows}: no session with a memory call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--adapter", default=None, help="adapter folder (default: the base model)")
    parser.add_argument("--rows", type=Path, default=Path("runs/data-v1/validation.rows.jsonl"))
    parser.add_argument("--max-new-tokens", type=int, default=120)
    args = parser.parse_args()

    loaded = load_model(args.model, adapters=args.adapter, cpu_speedups=False)
    tokenizer, model = loaded.tokenizer, loaded.model
    ids = {text: tokenizer.convert_tokens_to_ids(text) for text in SPECIAL}
    head = model.get_output_embeddings()
    weight = getattr(head, "weight", None)
    if weight is None:  # wrapped by PEFT (trainable tag rows): the base head's rows
        weight = head.base_layer.weight if hasattr(head, "base_layer") else head.original_module.weight
    weight = weight.float()
    tag = weight[ids["<tool_call>"]]
    print("base output-head rows:")
    for text, index in ids.items():
        row = weight[index]
        print(f"  {text:14} id {index:6}  norm {row.norm():.3f}  cosine with <tool_call> "
              f"{torch.cosine_similarity(row, tag, dim=0):.3f}")
    print(f"  mean row norm {weight.norm(dim=1).mean():.3f}")

    messages, tools, user = first_writing_turn(args.rows)
    print(f"\nuser: {user}")
    prompt = render_prompt(tokenizer, messages, tools, add_generation_prompt=True)
    feed = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    reserved = min(ids.values())
    cache, written = None, []
    with loaded.adapter(loaded.adapters[0] if loaded.adapters else None), torch.inference_mode():
        for position in range(args.max_new_tokens):
            out = model(input_ids=feed, **with_cache(cache), use_cache=True)
            cache, logits = cache_of(out), out.logits[0, -1].float()
            top = logits.topk(3)
            token = int(top.indices[0])
            if token >= reserved or position == 0:
                shown = ", ".join(f"{tokenizer.decode([int(i)])!r} {float(v):.2f}" for v, i in zip(top.values, top.indices))
                print(f"  position {position:3}: {shown}   <tool_call> {logits[ids['<tool_call>']]:.2f}"
                      f"  </tool_call> {logits[ids['</tool_call>']]:.2f}")
            written.append(token)
            if token == ids["<|im_end|>"]:
                break
            feed = torch.tensor([[token]])
    print("\nwritten:", repr(tokenizer.decode(written)))


if __name__ == "__main__":
    main()
