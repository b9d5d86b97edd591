"""The CPU inference speedups compute what the stock transformers paths compute."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from memlora.agent.engine import GenerationEngine, SamplingParams
from memlora.agent.loop import session_prefix
from memlora.agent.prompt import session_opening
from memlora.agent.protocol import model_tools
from memlora.models.chat_format import render_prompt
from memlora.models.cpu_inference import (
    PackedLinear,
    growing_cache,
    mkldnn_bf16_available,
    prepare_for_cpu_inference,
    small_query_attention,
)
from memlora.models.kv_cache import cache_of, with_cache
from memlora.testing import tiny_model


class _Heads(nn.Module):
    num_key_value_groups = 3


@pytest.mark.parametrize("q_len", [1, 4])
@pytest.mark.parametrize("masked", [False, True])
def test_small_query_attention_matches_sdpa(q_len: int, masked: bool) -> None:
    torch.manual_seed(0)
    batch, heads, kv_heads, keys, dim = 2, 6, 2, 40, 16
    query = torch.randn(batch, heads, q_len, dim)
    key, value = torch.randn(batch, kv_heads, keys, dim), torch.randn(batch, kv_heads, keys, dim)
    mask = None
    if masked:  # row 0 has 7 padding slots in front, row 1 none; causal over the last q_len keys
        mask = torch.ones(batch, 1, q_len, keys, dtype=torch.bool)
        mask[0, :, :, :7] = False
        mask = mask & torch.ones(q_len, keys, dtype=torch.bool).tril(keys - q_len)
    ours, _ = small_query_attention(_Heads(), query, key, value, mask, scaling=0.3)
    # the reference is transformers' SDPA path: without a mask, several queries are causal
    expected, _ = sdpa_attention_forward(_Heads(), query, key, value, mask, scaling=0.3)
    assert ours.shape == (batch, q_len, heads, dim)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(not mkldnn_bf16_available(), reason="no oneDNN bf16 kernels on this CPU")
def test_packed_linear_matches_linear() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(64, 96, bias=True, dtype=torch.bfloat16)
    for shape in [(1, 64), (1, 1, 64), (3, 5, 64)]:
        x = torch.randn(*shape, dtype=torch.bfloat16)
        torch.testing.assert_close(PackedLinear.of(layer)(x), layer(x))


def test_growing_cache_keeps_what_dynamic_cache_keeps() -> None:
    loaded = tiny_model("qwen")
    ids = torch.randint(0, 200, (2, 9))
    with torch.inference_mode():
        plain = cache_of(loaded.model(input_ids=ids, use_cache=True))
        grown = growing_cache(loaded.model)
        loaded.model(input_ids=ids[:, :5], **with_cache(grown), use_cache=True)
        for step in range(5, 9):  # one token at a time, past the initial capacity
            loaded.model(input_ids=ids[:, step : step + 1], **with_cache(grown), use_cache=True)
    for ours, theirs in zip(grown.layers, plain.layers):
        torch.testing.assert_close(ours.keys, theirs.keys)
        torch.testing.assert_close(ours.values, theirs.values)
    grown.batch_select_indices(torch.tensor([1]))
    torch.testing.assert_close(grown.layers[0].keys, plain.layers[0].keys[1:])


def test_prepared_model_generates_the_same_tokens() -> None:
    loaded = tiny_model("qwen")
    tools = model_tools()
    opening = session_opening({"entities": [], "relations": []})
    prompts = [render_prompt(loaded.tokenizer, opening + [{"role": "user", "content": text}], tools)
               for text in ["I'm Bob.", "My sister Mia lives in Lisbon."]]
    prefix = session_prefix(loaded.tokenizer, tools)
    params = SamplingParams(max_new_tokens=12)
    expected = [r.token_ids for r in GenerationEngine(loaded, prefix=prefix).generate_many(prompts, params)]
    prepared = copy.deepcopy(loaded)
    assert prepare_for_cpu_inference(prepared.model)["attention"] == "memlora_cpu"
    fast = GenerationEngine(prepared, prefix=prefix)
    assert [r.token_ids for r in fast.generate_many(prompts, params)] == expected
    # a lone row with lookup drafts: the rejected drafts stay in the buffer past the view
    plain = GenerationEngine(loaded, prefix=prefix, lookahead=0)
    long = SamplingParams(max_new_tokens=40, ignore_stop=True)
    for prompt in prompts:
        assert fast.generate_many([prompt], long)[0].token_ids == plain.generate_many([prompt], long)[0].token_ids
    assert fast.drafted_tokens > fast.accepted_tokens > 0


def test_sliding_window_layers_attend_only_inside_the_window() -> None:
    torch.manual_seed(1)
    batch, heads, kv_heads, keys, dim, window = 2, 4, 1, 50, 8, 9
    query = torch.randn(batch, heads, 1, dim)
    key, value = torch.randn(batch, kv_heads, keys, dim), torch.randn(batch, kv_heads, keys, dim)
    mask = torch.zeros(batch, 1, 1, keys, dtype=torch.bool)
    mask[..., keys - window :] = True  # what transformers' sliding-window mask allows
    mask[1, ..., keys - 3] = False  # and a padding slot inside the window
    ours, _ = small_query_attention(_Heads(), query, key, value, mask, scaling=0.5, sliding_window=window)
    expected = F.scaled_dot_product_attention(query, key.repeat_interleave(4, 1), value.repeat_interleave(4, 1),
                                              attn_mask=mask, scale=0.5).transpose(1, 2)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("dtype", [
    torch.float32,
    pytest.param(torch.bfloat16, marks=pytest.mark.skipif(not mkldnn_bf16_available(),
                                                          reason="no oneDNN bf16 kernels on this CPU")),
])
def test_merged_lora_layers_compute_what_peft_computes_for_each_adapter(dtype: torch.dtype) -> None:
    from peft import LoraConfig, get_peft_model

    from memlora.models.cpu_inference import MergedLoraLinear

    base = tiny_model("qwen").model.to(dtype)
    torch.manual_seed(5)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        init_lora_weights=False)
    model = get_peft_model(base, config, adapter_name="alpha")
    model.add_adapter("beta", config)
    model.eval()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])

    def logits(adapter: str | None) -> torch.Tensor:
        with torch.inference_mode():
            if adapter is None:
                with model.disable_adapter():
                    return model(input_ids=ids).logits.float()
            model.set_adapter(adapter)
            return model(input_ids=ids).logits.float()

    exact = copy.deepcopy(model).double()  # the same weights in fp64: the reference for rounding
    expected = {name: logits(name) for name in ("alpha", "beta", None)}
    reference = {}
    for name in expected:
        with torch.inference_mode():
            if name is None:
                with exact.disable_adapter():
                    reference[name] = exact(input_ids=ids).logits.float()
            else:
                exact.set_adapter(name)
                reference[name] = exact(input_ids=ids).logits.float()
    done = prepare_for_cpu_inference(model)
    assert done["merged_lora"] == 8  # 4 projections x 2 layers
    assert all(isinstance(m.forward, MergedLoraLinear) for m in model.modules() if hasattr(m, "lora_A"))
    assert not torch.allclose(expected["alpha"], expected["beta"], atol=1e-1)  # the adapters really differ
    for name, peft_bf16 in expected.items():
        merged = logits(name)
        peft_error = (peft_bf16 - reference[name]).abs().mean()
        merged_error = (merged - reference[name]).abs().mean()
        # rounding W + BA to the dtype once costs about what PEFT's base matmul already costs
        assert merged_error < 2 * peft_error + 1e-3 * (dtype == torch.bfloat16) + 1e-6, (name, merged_error, peft_error)


def test_a_build_without_the_private_onednn_operators_falls_back_to_plain_kernels(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The packed kernels are private PyTorch operators: where a build lacks them, a bf16 model
    still loads with plain matmuls, one notice says why, and it generates what stock
    transformers generates."""
    import logging

    from memlora.models import cpu_inference

    def missing(*args: object, **kwargs: object) -> None:
        raise AttributeError("'_OpNamespace' 'mkldnn' object has no attribute '_reorder_linear_weight'")

    monkeypatch.setattr(cpu_inference.PackedLinear, "__init__", lambda self, weight, bias=None: missing())
    cpu_inference.mkldnn_bf16_available.cache_clear()
    try:
        stock = tiny_model("qwen").model.to(torch.bfloat16)
        prepared = tiny_model("qwen").model.to(torch.bfloat16)
        with caplog.at_level(logging.WARNING, logger="memlora.models.cpu_inference"):
            done = cpu_inference.prepare_for_cpu_inference(prepared)
            cpu_inference.prepare_for_cpu_inference(tiny_model("qwen").model.to(torch.bfloat16))
        assert done["packed_linear"] == 0
        notices = [r for r in caplog.records if "oneDNN packed bf16 kernels unavailable" in r.getMessage()]
        assert len(notices) == 1 and "AttributeError" in notices[0].getMessage()
        ids = torch.tensor([[5, 9, 13, 2, 7]])
        with torch.inference_mode():
            expected = stock.generate(ids, max_new_tokens=6, do_sample=False)
            got = prepared.generate(ids, max_new_tokens=6, do_sample=False)
        assert got.tolist() == expected.tolist()
    finally:
        cpu_inference.mkldnn_bf16_available.cache_clear()
