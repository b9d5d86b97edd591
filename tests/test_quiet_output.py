"""What users run prints no library deprecation warnings: decoding with an adapter, and training.

Every DeprecationWarning and FutureWarning is an error inside these paths, and transformers'
own logged deprecation notes (it logs some instead of warning) are collected and must be none.
The one warning memlora cannot avoid (PEFT reading a deprecated transformers alias) is hidden
by memlora itself (memlora.models.loading.hide_checkpointing_alias_warning), not by this test.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest

from memlora.testing import tiny_model


@contextlib.contextmanager
def strict() -> Iterator[list[str]]:
    """Deprecation warnings raise; transformers' logged warnings are collected into the list."""
    logged: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    library = logging.getLogger("transformers")
    warning_once = getattr(logging.Logger, "warning_once", None)
    if warning_once is not None and hasattr(warning_once, "cache_clear"):
        warning_once.cache_clear()  # logged once per process: earlier tests must not hide it here
    library.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            warnings.simplefilter("error", FutureWarning)
            yield logged
    finally:
        library.removeHandler(handler)


def deprecations(logged: list[str]) -> list[str]:
    return [message for message in logged if "deprecat" in message.lower()]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny base model folder and an adapter for it with LoRA weights and token vectors."""
    from peft import LoraConfig, get_peft_model

    from memlora.models.chat_format import END_OF_TURN
    from memlora.models.token_rows import format_token_ids, trainable_token_targets

    folder = tmp_path_factory.mktemp("quiet")
    tiny = tiny_model("qwen", seed=2, tie_embeddings=False)
    tiny.model.save_pretrained(folder / "base")
    tiny.tokenizer.save_pretrained(folder / "base")
    tokens = trainable_token_targets(tiny.model, format_token_ids(tiny.tokenizer, END_OF_TURN["qwen"]))
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                        trainable_token_indices=tokens)
    get_peft_model(tiny.model, config).save_pretrained(folder / "memory")
    return {"base": folder / "base", "adapter": folder / "memory"}


def test_loading_an_adapter_and_decoding_with_it_warns_of_nothing_deprecated(saved: dict[str, Path]) -> None:
    from memlora.agent.engine import SamplingParams
    from memlora.agent.loop import build_engine
    from memlora.models.loading import load_model

    with strict() as logged:
        loaded = load_model(str(saved["base"]), adapters=[str(saved["adapter"])], device="cpu")
        engine = build_engine(loaded)
        prompts = [engine.encode("Hi, I'm Bob."), engine.encode("Where do I work?")]
        batched = engine.generate_many(prompts, SamplingParams(max_new_tokens=6), adapter="memory")
        alone = engine.generate_many(prompts[:1], SamplingParams(max_new_tokens=6), adapter="memory")
    assert len(batched) == 2 and len(alone) == 1 and alone[0].token_ids
    assert not deprecations(logged)


def test_a_training_step_warns_of_nothing_deprecated(saved: dict[str, Path], tmp_path: Path) -> None:
    from memlora.agent.prompt import session_opening, tool_call_message, tool_result_message
    from memlora.agent.protocol import model_tools
    from memlora.training.sft import LoraSettings, SftSettings, train_sft

    call = {"name": "create_entities",
            "arguments": {"entities": [{"name": "Bob", "entityType": "person", "observations": []}]}}
    messages: list[dict[str, Any]] = session_opening({"entities": [], "relations": []}) + [
        {"role": "user", "content": "Hi, I'm Bob."}, tool_call_message([call]),
        tool_result_message(call["name"], call["arguments"]["entities"]), {"role": "assistant", "content": "Hi Bob!"},
    ]
    row = json.dumps({"messages": messages, "tools": model_tools()}) + "\n"
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.rows.jsonl").write_text(row * 2)
    (data / "validation.rows.jsonl").write_text(row)
    with strict() as logged:
        out = train_sft(SftSettings(data=data, out=tmp_path / "adapter", model=str(saved["base"]),
                                    lora=LoraSettings(r=4, alpha=8), max_steps=1, grad_accum=1, eval_every=1,
                                    save_every=1, device="cpu"))
    assert (out / "adapter_model.safetensors").exists()
    assert not deprecations(logged)
