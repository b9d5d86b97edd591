"""An adapter behaves the same in memlora's engine as in plain PEFT: the LoRA applies to every
token, the shared system prompt included, and the engine's prefix cache is one per adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from memlora.agent.engine import GenerationEngine, SamplingParams
from memlora.agent.loop import session_prefix
from memlora.agent.prompt import session_opening
from memlora.agent.protocol import model_tools
from memlora.models.chat_format import END_OF_TURN, render_prompt
from memlora.models.loading import BASE_ADAPTER, adapter_prefix_cache, load_model
from memlora.testing import tiny_model
from memlora.models.token_rows import format_token_ids, trainable_token_targets

USERS = ["I'm Bob and I work at Lumen Labs.", "My sister Mia lives in Lisbon and she is an architect.",
         "hey, what's my sister's name?"]


def save_adapter(folder: Path, seed: int) -> tuple[Path, Path]:
    """A tiny base model and a LoRA adapter with random (not identity) weights and its own
    format-token rows, saved as a model folder and a PEFT adapter folder."""
    from peft import LoraConfig, get_peft_model

    tiny = tiny_model("qwen", seed=3, tie_embeddings=False)
    model_dir = folder / "model"
    tiny.model.save_pretrained(model_dir)
    tiny.tokenizer.save_pretrained(model_dir)
    rows = trainable_token_targets(tiny.model, format_token_ids(tiny.tokenizer, END_OF_TURN["qwen"]))
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        init_lora_weights=False, trainable_token_indices=rows, task_type="CAUSAL_LM")
    torch.manual_seed(seed)
    peft_model = get_peft_model(tiny.model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.3)  # strong enough to change greedy choices
            elif "trainable_tokens_delta" in name:
                parameter.add_(torch.randn_like(parameter))
    adapter_dir = folder / "adapter"
    peft_model.save_pretrained(adapter_dir)
    return model_dir, adapter_dir


def peft_greedy(model_dir: Path, adapter_dir: Path | None, prompt_ids: list[int], stops: list[int], n: int) -> list[int]:
    """Plain transformers + PEFT: `PeftModel.from_pretrained` and `generate`, nothing of memlora."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    ids = torch.tensor([prompt_ids])
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                             eos_token_id=stops, pad_token_id=stops[0])
    return [t for t in out[0, ids.shape[1]:].tolist() if t not in stops]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return save_adapter(tmp_path_factory.mktemp("portable"), seed=5)


def prompts(tokenizer: Any) -> tuple[list[str], str]:
    tools = model_tools()
    opening = session_opening({"entities": [], "relations": []})
    texts = [render_prompt(tokenizer, opening + [{"role": "user", "content": u}], tools) for u in USERS]
    return texts, session_prefix(tokenizer, tools)


def test_engine_gives_the_greedy_tokens_of_plain_peft_with_an_adapter(saved: tuple[Path, Path]) -> None:
    model_dir, adapter_dir = saved
    assert adapter_prefix_cache(adapter_dir) == "adapted"  # no memlora card: a standard adapter
    loaded = load_model(str(model_dir), adapters=[adapter_dir], device="cpu", dtype="fp32")
    texts, prefix = prompts(loaded.tokenizer)
    engine = GenerationEngine(loaded, prefix=prefix)
    name = loaded.adapters[0]
    batched = engine.generate_many(texts, SamplingParams(max_new_tokens=12), adapter=name)
    assert all(r.cached_prompt_tokens == len(engine.prefix_ids) for r in batched)  # the prefix cache was used
    alone = [engine.generate_many([t], SamplingParams(max_new_tokens=12), adapter=name)[0] for t in texts]
    bare = [engine.generate_many([t], SamplingParams(max_new_tokens=12), adapter=BASE_ADAPTER)[0] for t in texts]
    stops = sorted(engine.stop_ids)
    expected = [peft_greedy(model_dir, adapter_dir, engine.encode(t), stops, 12) for t in texts]
    assert [r.token_ids for r in batched] == expected
    assert [r.token_ids for r in alone] == expected  # lone rows decode with drafts
    assert [r.token_ids for r in bare] == [peft_greedy(model_dir, None, engine.encode(t), stops, 12) for t in texts]
    assert [r.token_ids for r in bare] != expected  # the adapter really changes the output


def test_older_memlora_adapters_keep_the_base_model_prefix(saved: tuple[Path, Path], tmp_path: Path) -> None:
    """Adapters trained before 2026-12-07 saw a base-model prefix cache; their card says so, and
    the engine gives them that cache while a standard adapter gets its own."""
    import shutil

    model_dir, adapter_dir = saved
    legacy = tmp_path / "legacy"
    shutil.copytree(adapter_dir, legacy)
    (legacy / "card.json").write_text(json.dumps({"hyperparameters": {"frozen_prefix": True}}))
    assert adapter_prefix_cache(legacy) == "base"
    loaded = load_model(str(model_dir), adapters={"standard": adapter_dir, "legacy": legacy}, device="cpu",
                        dtype="fp32")
    _, prefix = prompts(loaded.tokenizer)
    engine = GenerationEngine(loaded, prefix=prefix)
    with torch.inference_mode():
        caches = {name: engine._prefix_kv(name) for name in ("standard", "legacy", BASE_ADAPTER)}
    keys = {name: cache.layers[0][0] for name, cache in caches.items()}
    assert caches["legacy"] is caches[BASE_ADAPTER]
    assert not torch.allclose(keys["standard"], keys[BASE_ADAPTER], atol=1e-3)
