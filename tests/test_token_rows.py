"""Adapters with their own rows for the tool-call tags: what PEFT computes, memlora computes cheaply."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from memlora.models.loading import load_model
from memlora.testing import tiny_model
from memlora.models.token_rows import (
    install_fast_token_vectors,
    format_token_ids,
    trainable_token_targets,
)


def adapter_with_tag_rows(tie_embeddings: bool, seed: int = 3) -> tuple[object, list[int]]:
    """A PEFT model whose LoRA weights and tag rows are random (as if trained)."""
    from peft import LoraConfig, get_peft_model

    tiny = tiny_model("qwen", tie_embeddings=tie_embeddings)
    tags = format_token_ids(tiny.tokenizer, "<|im_end|>")
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                        trainable_token_indices=trainable_token_targets(tiny.model, tags))
    torch.manual_seed(seed)
    peft_model = get_peft_model(tiny.model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "trainable_tokens_delta" in name:
                parameter.copy_(torch.randn_like(parameter))
    return peft_model.eval(), tags


def test_format_tokens_are_the_single_token_tags_and_the_end_of_turn() -> None:
    qwen, gemma = tiny_model("qwen").tokenizer, tiny_model("gemma").tokenizer
    assert format_token_ids(qwen, "<|im_end|>") == qwen.convert_tokens_to_ids(["<tool_call>", "</tool_call>", "<|im_end|>"])
    assert format_token_ids(gemma, "<end_of_turn>") == [gemma.convert_tokens_to_ids("<end_of_turn>")]  # tags are text


def test_targets_name_the_output_head_only_when_it_is_untied() -> None:
    untied = tiny_model("qwen", tie_embeddings=False).model
    tied = tiny_model("qwen").model
    assert trainable_token_targets(untied, [3, 4]) == {"embed_tokens": [3, 4], "lm_head": [3, 4]}
    assert trainable_token_targets(tied, [3, 4]) == {"embed_tokens": [3, 4]}
    assert trainable_token_targets(untied, []) == {}


@pytest.mark.parametrize("tie_embeddings", [False, True])
def test_fast_rows_give_the_logits_peft_gives(tie_embeddings: bool) -> None:
    peft_model, tags = adapter_with_tag_rows(tie_embeddings)
    ids = torch.tensor([[5, tags[0], 9, 11, tags[1], 7], [tags[1], 8, 8, tags[0], 6, 5]])
    with torch.inference_mode():
        expected = peft_model(input_ids=ids).logits
        with peft_model.disable_adapter():
            base = peft_model(input_ids=ids).logits
    assert install_fast_token_vectors(peft_model) == 2  # a tied head gets a layer sharing the rows
    with torch.inference_mode():
        fast = peft_model(input_ids=ids).logits
        with peft_model.disable_adapter():
            fast_base = peft_model(input_ids=ids).logits
    assert not torch.allclose(expected[..., tags], base[..., tags])  # the rows change the tag logits
    torch.testing.assert_close(fast, expected)
    torch.testing.assert_close(fast_base, base)  # switched off, the base rows are back


def test_a_saved_adapter_with_tag_rows_loads_with_the_fast_path(tmp_path: Path) -> None:
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    peft_model, tags = adapter_with_tag_rows(tie_embeddings=False)
    peft_model.save_pretrained(tmp_path / "adapter")
    base = tiny_model("qwen", tie_embeddings=False)  # seeded: the same weights the adapter was built on
    base.model.save_pretrained(tmp_path / "base")
    base.tokenizer.save_pretrained(tmp_path / "base")
    ids = torch.tensor([[5, tags[0], 9, 11, tags[1], 7]])
    with torch.inference_mode():
        expected = peft_model(input_ids=ids).logits.float()

    loaded = load_model(str(tmp_path / "base"), adapters=[str(tmp_path / "adapter")], device="cpu",
                        dtype=torch.float32, cpu_speedups=False)
    layers = [m for m in loaded.model.modules() if isinstance(m, TrainableTokensLayer)]
    assert len(layers) == 2 and all(type(m.forward).__name__ == "FastTokenVectors" for m in layers)
    with loaded.adapter("adapter") as model, torch.inference_mode():
        got = model(input_ids=ids).logits.float()
    torch.testing.assert_close(got, expected)


def test_fast_rows_train_like_peft_even_after_a_pass_under_inference_mode() -> None:
    """GRPO samples with the adapter being trained (inference mode), then takes gradients through it."""
    peft_model, tags = adapter_with_tag_rows(tie_embeddings=False)
    ids = torch.tensor([[5, tags[0], 9, 11, tags[1], 7]])

    def loss_and_grads() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        peft_model.zero_grad()
        loss = peft_model(input_ids=ids, labels=ids).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in peft_model.named_parameters() if p.requires_grad}

    peft_model.train()
    expected_loss, expected = loss_and_grads()
    install_fast_token_vectors(peft_model)
    with torch.inference_mode():
        peft_model(input_ids=ids)  # the rows' token index is made here
    loss, grads = loss_and_grads()
    torch.testing.assert_close(loss, expected_loss)
    assert any("trainable_tokens_delta" in name for name in grads)
    for name, grad in expected.items():
        torch.testing.assert_close(grads[name], grad, msg=name)
