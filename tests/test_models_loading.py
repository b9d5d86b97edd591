"""Model resolution and LoRA adapters, on a tiny random model saved to a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from memlora.models import loading
from memlora.models.loading import (
    BUNDLED,
    DTYPE_VARIABLE,
    choose_dtype,
    load_model,
    model_family,
    normalise_adapters,
    resolve_model,
)
from memlora.testing import tiny_model


def test_resolution_of_names() -> None:
    assert set(BUNDLED) == {"qwen2.5-coder-0.5b", "gemma-3-270m"}
    assert resolve_model("someone/some-model") == "someone/some-model"  # a hub id stays a hub id
    assert normalise_adapters(None) == {}
    assert normalise_adapters("none") == {}
    assert normalise_adapters(["x/a", "y/b"]) == {"a": "x/a", "b": "y/b"}
    assert normalise_adapters({"task": "p"}) == {"task": "p"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny base model folder and two LoRA adapters trained on nothing (random B matrices)."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("tiny")
    tiny = tiny_model("qwen")
    tiny.model.save_pretrained(root / "base")
    tiny.tokenizer.save_pretrained(root / "base")
    paths = {"base": root / "base"}
    for index, name in enumerate(["alpha", "beta"]):
        base = tiny_model("qwen").model
        torch.manual_seed(index + 1)  # distinct random LoRA weights per adapter
        config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        get_peft_model(base, config).save_pretrained(root / name)
        paths[name] = root / name
    return paths


def test_local_folder_loads_in_the_chosen_dtype(saved: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DTYPE_VARIABLE, raising=False)
    assert next(load_model(str(saved["base"]), device="cpu", dtype="bf16").model.parameters()).dtype == torch.bfloat16
    monkeypatch.setenv(DTYPE_VARIABLE, "fp32")
    assert next(load_model(str(saved["base"]), device="cpu").model.parameters()).dtype == torch.float32
    monkeypatch.delenv(DTYPE_VARIABLE)
    loaded = load_model(str(saved["base"]), device="cpu")
    assert loaded.family == "qwen" == model_family(loaded.model)
    assert next(loaded.model.parameters()).dtype == choose_dtype(torch.device("cpu"))
    assert loaded.adapters == []
    with loaded.adapter("none") as model:
        assert model is loaded.model
    with pytest.raises(KeyError):
        with loaded.adapter("alpha"):
            pass


def test_several_adapters_on_one_base_are_picked_per_call(saved: dict[str, Path]) -> None:
    base = load_model(str(saved["base"]), device="cpu")
    loaded = load_model(str(saved["base"]), adapters=[str(saved["alpha"]), str(saved["beta"])], device="cpu")
    assert loaded.adapters == ["alpha", "beta"]
    ids = torch.tensor([[5, 6, 7, 8, 9]])

    def logits(name: str | None, lm=loaded) -> torch.Tensor:
        with lm.adapter(name) as model, torch.inference_mode():
            return model(input_ids=ids).logits.float()

    reference = logits(None, base)
    assert torch.allclose(logits("none"), reference)  # "none" is the base model
    alpha, beta = logits("alpha"), logits("beta")
    assert not torch.allclose(alpha, reference) and not torch.allclose(alpha, beta)
    assert torch.allclose(logits("alpha"), alpha)  # switching back and forth is stable
    with pytest.raises(KeyError):
        with loaded.adapter("gamma"):
            pass


def test_adapter_folders_with_dots_get_valid_names() -> None:
    from memlora.models.loading import adapter_name

    assert adapter_name("adapters/qwen2.5-coder-0.5b-memory") == "qwen2_5-coder-0_5b-memory"


def test_auto_dtype_is_bf16_only_where_the_hardware_multiplies_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DTYPE_VARIABLE, raising=False)
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(loading, "cpu_flags", lambda: {"avx2", "fma", "avx512f"})  # AVX-512 alone is not enough
    assert choose_dtype(cpu) == torch.float32
    assert choose_dtype(gpu) == torch.bfloat16
    for flag in ("avx512_bf16", "amx_bf16", "bf16"):  # Zen 4, Sapphire Rapids, Arm v8.6
        monkeypatch.setattr(loading, "cpu_flags", lambda flag=flag: {"avx2", flag})
        assert choose_dtype(cpu) == torch.bfloat16
    # an explicit choice wins over the environment, the environment over auto
    monkeypatch.setenv(DTYPE_VARIABLE, "FP32")
    assert choose_dtype(cpu) == torch.float32
    assert choose_dtype(cpu, "bf16") == torch.bfloat16
    monkeypatch.setenv(DTYPE_VARIABLE, "float16")
    with pytest.raises(ValueError, match=r"\$MEMLORA_DTYPE='float16': expected auto, bf16 or fp32"):
        choose_dtype(cpu)
    with pytest.raises(ValueError, match=r"--dtype='half'"):
        choose_dtype(cpu, "half")


def test_cpu_flags_read_the_flags_line() -> None:
    flags = loading.cpu_flags()
    if Path("/proc/cpuinfo").exists():
        assert "fpu" in flags or "fp" in flags  # x86 or Arm: basic floating point is always listed
