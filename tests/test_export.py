"""`memlora export-adapter`: the llama.cpp LoRA GGUF says exactly what the PEFT adapter does.

A tiny model with a random adapter (LoRA and its own token rows) is written as a small base GGUF
(F32 tensors under llama.cpp's names); the exported adapter, applied the way llama.cpp applies
it (W + alpha/rank * B @ A, token_embd gathered by token id), must give PEFT's merged weights.
tests/test_llamacpp_runtime.py runs llama.cpp itself on the bundled model and the shipped adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from memlora.agent.prompt import SYSTEM_PROMPT  # noqa: E402
from memlora.models.chat_format import END_OF_TURN  # noqa: E402
from memlora.models.export import (  # noqa: E402
    BaseGguf, ExportError, exact_rank, ollama_modelfile, read_adapter, write_lora_gguf, write_merged_gguf,
)
from memlora.testing import tiny_model  # noqa: E402
from memlora.models.token_rows import format_token_ids, trainable_token_targets  # noqa: E402

HF_TO_GGUF = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output"}


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from peft import LoraConfig, get_peft_model

    folder = tmp_path_factory.mktemp("export")
    tiny = tiny_model("qwen", seed=4, tie_embeddings=False)
    state = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    base = folder / "base.gguf"
    writer = gguf.GGUFWriter(str(base), "qwen2")
    writer.add_block_count(tiny.model.config.num_hidden_layers)
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"].numpy())
    writer.add_tensor("output.weight", state["lm_head.weight"].numpy())
    for layer in range(tiny.model.config.num_hidden_layers):
        for hf, name in HF_TO_GGUF.items():
            writer.add_tensor(f"blk.{layer}.{name}.weight", state[f"model.layers.{layer}.{hf}.weight"].numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    rows = trainable_token_targets(tiny.model, format_token_ids(tiny.tokenizer, END_OF_TURN["qwen"]))
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        init_lora_weights=False, trainable_token_indices=rows, task_type="CAUSAL_LM")
    torch.manual_seed(7)
    peft_model = get_peft_model(tiny.model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.3)
            elif "trainable_tokens_delta" in name:
                parameter.add_(torch.randn_like(parameter))
    adapter = folder / "adapter"
    peft_model.save_pretrained(adapter)
    merged = {k: v.detach().clone() for k, v in peft_model.merge_and_unload().state_dict().items()}
    return {"folder": folder, "base": base, "adapter": adapter, "merged": merged, "rows": rows, "tokenizer": tiny.tokenizer}


def tensors_of(path: Path) -> dict[str, np.ndarray]:
    reader = gguf.GGUFReader(str(path))
    return {t.name: np.asarray(t.data, dtype=np.float32).reshape([int(d) for d in reversed(t.shape)])
            for t in reader.tensors}


def apply_like_llamacpp(base: dict[str, np.ndarray], lora: dict[str, np.ndarray], alpha: float) -> dict[str, np.ndarray]:
    """W + alpha/rank * delta, with rank = lora_b's first ggml dimension, as llama.cpp's get_scale."""
    out = dict(base)
    for name in {n.rsplit(".", 1)[0] for n in lora}:
        a, b = lora[name + ".lora_a"], lora[name + ".lora_b"]
        rank = b.shape[1]  # numpy (out, rank) == ggml ne [rank, out]
        scale = np.float32(alpha) / np.float32(rank)
        if name == "token_embd.weight":  # rows gathered from A (vocab x rank), times B (hidden x rank)
            out[name] = base[name] + scale * (a @ b.T)
        else:
            out[name] = base[name] + scale * (b @ a)
    return out


def test_exact_rank_makes_the_one_hot_product_exact() -> None:
    rank, one = exact_rank(32.0, 3)
    assert (rank, one) == (4, 0.125)
    assert np.float32(32.0) / np.float32(rank) * np.float32(one) == 1.0
    assert exact_rank(24.0, 3) == (3, 0.125)


def test_the_lora_gguf_applied_as_llamacpp_does_gives_the_peft_merged_weights(tiny_export: dict[str, Any]) -> None:
    out = tiny_export["folder"] / "adapter.gguf"
    summary = write_lora_gguf(read_adapter(tiny_export["adapter"]), BaseGguf(tiny_export["base"]), out)
    reader = gguf.GGUFReader(str(out))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["general.architecture"].contents() == "qwen2"
    assert reader.fields["adapter.type"].contents() == "lora"
    alpha = float(reader.fields["adapter.lora.alpha"].contents())
    assert alpha == 8.0 and summary["tensors"] == 2 * 4 + 2
    lora = tensors_of(out)
    assert lora["blk.1.attn_q.weight.lora_a"].shape == (4, 64)  # rank x in
    assert lora["blk.1.attn_q.weight.lora_b"].shape == (64, 4)  # out x rank
    vocab = len(tiny_export["tokenizer"])
    assert lora["token_embd.weight.lora_a"].shape[0] == vocab  # gathered by token id
    applied = apply_like_llamacpp(tensors_of(tiny_export["base"]), lora, alpha)
    merged = tiny_export["merged"]
    for layer in range(2):
        for hf, name in HF_TO_GGUF.items():
            np.testing.assert_allclose(applied[f"blk.{layer}.{name}.weight"],
                                       merged[f"model.layers.{layer}.{hf}.weight"].numpy(), atol=1e-5)
    ids = tiny_export["rows"]["embed_tokens"]
    embed, head = merged["model.embed_tokens.weight"].numpy(), merged["lm_head.weight"].numpy()
    assert np.array_equal(applied["token_embd.weight"][ids], embed[ids])  # replaced rows, exactly
    assert np.array_equal(applied["output.weight"][ids], head[ids])
    untouched = [i for i in range(vocab) if i not in ids]
    assert np.array_equal(applied["output.weight"][untouched], head[untouched])


def test_base_prefix_adapters_name_invocation_tokens(tiny_export: dict[str, Any]) -> None:
    from memlora.agent.loop import opening_invocation

    invocation = opening_invocation(tiny_export["tokenizer"])
    decoded = tiny_export["tokenizer"].decode(invocation)
    assert decoded.startswith("assistant\n<tool_call>") and "read_graph" in decoded and "<tool_response>" in decoded
    out = tiny_export["folder"] / "alora.gguf"
    write_lora_gguf(read_adapter(tiny_export["adapter"]), BaseGguf(tiny_export["base"]), out, invocation=invocation)
    field = gguf.GGUFReader(str(out)).fields["adapter.alora.invocation_tokens"]
    assert field.types == [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT32]
    assert [int(t) for t in field.contents()] == invocation


def test_merged_gguf_holds_base_plus_adapter(tiny_export: dict[str, Any]) -> None:
    out = tiny_export["folder"] / "merged.gguf"
    write_merged_gguf(read_adapter(tiny_export["adapter"]), BaseGguf(tiny_export["base"]), out)
    merged_gguf, merged = tensors_of(out), tiny_export["merged"]
    np.testing.assert_allclose(merged_gguf["blk.0.attn_v.weight"], merged["model.layers.0.self_attn.v_proj.weight"],
                               atol=2e-3)  # stored as F16
    np.testing.assert_array_equal(merged_gguf["output.weight"], merged["lm_head.weight"].numpy())


def test_tied_base_models_and_stray_tensors_are_refused(tiny_export: dict[str, Any], tmp_path: Path) -> None:
    reader = gguf.GGUFReader(str(tiny_export["base"]))
    tied = tmp_path / "tied.gguf"
    writer = gguf.GGUFWriter(str(tied), "qwen2")
    writer.add_block_count(2)
    for tensor in reader.tensors:
        if tensor.name != "output.weight":
            writer.add_tensor(tensor.name, np.asarray(tensor.data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ExportError, match="ties its output head"):
        write_lora_gguf(read_adapter(tiny_export["adapter"]), BaseGguf(tied), tmp_path / "x.gguf")
    config = json.loads((tiny_export["adapter"] / "adapter_config.json").read_text())
    dora = tmp_path / "dora"
    dora.mkdir()
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(ExportError, match="use_dora"):
        read_adapter(dora)


def test_ollama_modelfile_names_base_adapter_and_stop_token() -> None:
    text = ollama_modelfile("/m/base.gguf", "/m/adapter.gguf", "qwen", SYSTEM_PROMPT)
    assert text.startswith("FROM /m/base.gguf\nADAPTER /m/adapter.gguf\nTEMPLATE \"\"\"")
    assert 'PARAMETER stop "<|im_end|>"' in text and "<tool_response>" in text and "SYSTEM" in text


def test_the_peft_export_without_token_rows_gives_the_same_greedy_tokens(tiny_export: dict[str, Any]) -> None:
    """`--format peft` (for vLLM): the token rows as LoRA pairs on embed_tokens and lm_head."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from memlora.models.export import write_peft_lora

    folder = tiny_export["folder"]
    base_dir = folder / "hf-base"
    tiny = tiny_model("qwen", seed=4, tie_embeddings=False)  # the same weights the adapter was made on
    tiny.model.save_pretrained(base_dir)
    tiny.tokenizer.save_pretrained(base_dir)
    out = write_peft_lora(read_adapter(tiny_export["adapter"]), str(base_dir), folder / "peft")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["trainable_token_indices"] is None and {"embed_tokens", "lm_head"} <= set(config["target_modules"])

    def greedy(adapter: Path) -> tuple[list[int], torch.Tensor]:
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base_dir)), str(adapter)).eval()
        ids = tiny_export["tokenizer"]("<tool_call>\n{\"name\": \"read_graph\"}</tool_call> hello", return_tensors="pt")
        with torch.inference_mode():
            logits = model(**ids).logits
            out = model.generate(**ids, max_new_tokens=12, do_sample=False)
        return out[0].tolist(), logits

    original, exported = greedy(tiny_export["adapter"]), greedy(out)
    assert exported[0] == original[0]
    torch.testing.assert_close(exported[1], original[1], atol=1e-4, rtol=1e-4)
