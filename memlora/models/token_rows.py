"""Format-token vectors: the embedding and output-head vectors an adapter trains for the special
tokens it writes (the tool-call tags, the end of turn). Each is one row of its weight matrix;
memlora calls them token vectors so that "rows" keeps meaning training rows.

Why adapters need them: in the bundled Qwen weights `<tool_call>` and `</tool_call>` are
untrained special tokens whose vectors are identical, in the embedding and in the output head
(docs/benchmarks.md, "Why the first adapter wrote no valid call"). Their two logits are
therefore always equal, so no LoRA on the layers below can make the model open a call with one
and close it with the other, and the tag direction they share lies close to `<|im_start|>`,
which wins where a tag belongs. An adapter trained by memlora carries its own vectors for these
tokens (PEFT "trainable tokens"), trained together with the LoRA weights.

PEFT applies them by copying the whole weight with the vectors swapped in, at every forward:
for Qwen's output head, the whole vocabulary's matrix written per decoded token. For inference
`install_fast_token_vectors` runs the base layer as it is and overwrites only the adapter's
embedding vectors (input) or logit columns (output head), which gives the same result.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

TOOL_CALL_TAGS = ("<tool_call>", "</tool_call>")


def format_token_ids(tokenizer: Any, end_of_turn: str) -> list[int]:
    """The special tokens the model itself writes in memlora's chat format, each a single token.

    The tool-call tags where the vocabulary has them as single tokens (Qwen; in memlora's Gemma
    format they are plain text), and the end-of-turn token: in the Gemma 3 base model
    `<end_of_turn>` is as untrained as Qwen's tags (its vector sits among those of unused tokens
    and rare words, docs/benchmarks.md), so without its own vector an adapter never ends a turn.
    """
    def single(text: str) -> int | None:
        pieces = tokenizer(text, add_special_tokens=False)["input_ids"]
        return pieces[0] if len(pieces) == 1 else None

    tags = [single(tag) for tag in TOOL_CALL_TAGS]
    ids = [t for t in tags if t is not None] if all(t is not None for t in tags) else []
    end = single(end_of_turn)
    return ids + ([end] if end is not None else [])


def trainable_token_targets(model: Any, token_ids: list[int]) -> dict[str, list[int]]:
    """PEFT's `trainable_token_indices`: the input embedding, and the output head when it is untied."""
    if not token_ids:
        return {}
    names = {module: name for name, module in model.named_modules()}
    targets = {names[model.get_input_embeddings()].rsplit(".", 1)[-1]: list(token_ids)}
    if not getattr(model.config, "tie_word_embeddings", False):
        targets[names[model.get_output_embeddings()].rsplit(".", 1)[-1]] = list(token_ids)
    return targets


class FastTokenVectors:
    """Forward of a PEFT TrainableTokensLayer: the base layer's output with the adapter's token vectors set."""

    def __init__(self, layer: nn.Module):
        self.layer = layer
        self.index: dict[str, torch.Tensor] = {}  # per adapter, its token ids as a tensor, made once

    def __call__(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        layer = self.layer
        result = layer.base_layer(x, *args, **kwargs)
        if layer.disable_adapters or layer.merged:
            return result
        for name in layer.active_adapters:
            if name not in layer.token_indices:
                continue
            index = self.index.get(name)
            if index is None:  # a plain tensor even when first made under inference mode, so training can use it
                with torch.inference_mode(False):
                    index = self.index[name] = torch.tensor(layer.token_indices[name], device=result.device)
            vectors = layer.trainable_tokens_delta[name]
            base = layer.base_layer
            if isinstance(base, nn.Embedding):
                scale = layer._get_embed_scale()
                vectors = vectors.to(result.dtype) * (scale.to(result.dtype) if scale is not None else 1)
                hits = (x.unsqueeze(-1) == index).nonzero()  # (..., which index) per hit
                if len(hits):
                    result[tuple(hits[:, :-1].unbind(1))] = vectors[hits[:, -1]]
            elif isinstance(base, nn.Linear):
                columns = x.to(vectors.dtype) @ vectors.t()
                if base.bias is not None:
                    columns = columns + base.bias[index]
                result[..., index] = columns.to(result.dtype)
            else:
                raise TypeError(f"trainable token vectors on a {type(base).__name__} are not supported")
        return result


def install_fast_token_vectors(model: Any) -> int:
    """Switches every trainable-token layer of a PEFT model to FastTokenVectors; returns how many."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    count = 0
    for module in model.modules():
        if isinstance(module, TrainableTokensLayer):
            module.forward = FastTokenVectors(module)
            count += 1
    return count
