"""`memlora chat --runtime llamacpp`: the bundled GGUF on llama.cpp behind the engine interface.

The slow tests run llama.cpp itself on the bundled model with the shipped adapter: through
each installed binding, the first step of every example turn must write the calls memlora's
engine writes (the shipped adapter was trained without its LoRA on the system prompt, so this
also checks that each binding leaves the tokens before the aLoRA invocation to the base
weights), and a chat turn on the command line must reach the store.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from memlora.models.llamacpp import _last_occurrence, installed_backend

MODEL = "qwen2.5-coder-0.5b"
EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "spec" / "example.jsonl"


def test_the_adapter_starts_at_the_last_occurrence_of_its_invocation() -> None:
    assert _last_occurrence([5, 1, 2, 9, 1, 2, 7], [1, 2]) == 4
    assert _last_occurrence([1, 2], [1, 2]) == 0
    assert _last_occurrence([1, 3, 2], [1, 2]) is None
    assert _last_occurrence([], [1]) is None


def test_an_unknown_backend_or_model_is_refused_by_name() -> None:
    from memlora.agent.llamacpp_engine import LlamaCppEngine

    with pytest.raises(ValueError, match="backend 'llamafile'.*auto, llama-cpp-python, xllamacpp"):
        installed_backend("llamafile")
    with pytest.raises(ValueError, match="bundled model's GGUF.*not 'gpt2'"):
        LlamaCppEngine("gpt2")


def test_chat_says_which_runtime_options_it_has() -> None:
    from memlora.cli import main

    result = CliRunner().invoke(main, ["chat", "--help"])
    assert result.exit_code == 0
    assert "--runtime [memlora|llamacpp]" in result.output and "--llamacpp-backend" in result.output


BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(module) is None,
                                                        reason=f"{name} is not installed"))
            for name, module in [("xllamacpp", "xllamacpp"), ("llama-cpp-python", "llama_cpp")]]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_each_binding_writes_the_engines_calls_with_the_shipped_adapter(backend: str) -> None:
    from memlora.agent.llamacpp_engine import exported_adapter
    from memlora.evaluation.llamacpp import compare_first_steps
    from memlora.models.loading import bundled_gguf, default_adapter, resolve_model
    from transformers import AutoTokenizer

    if not EXAMPLE.exists():
        pytest.skip(f"{EXAMPLE} not found")
    adapter = default_adapter(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(MODEL)))
    gguf, invocation = exported_adapter(MODEL, adapter, tokenizer)
    assert invocation, "the shipped adapter was trained on a base-model system prompt"
    report = compare_first_steps(MODEL, adapter, bundled_gguf(MODEL), gguf, EXAMPLE, max_new_tokens=160,
                                 threads=2, backend=backend, invocation=invocation)
    assert report["backend"] == backend and report["turns"] == 8 and report["turns_with_calls"] >= 4
    assert report["same_calls"] >= 7, json.dumps(report["rows"], indent=1)[:4000]


@pytest.mark.slow
def test_a_chat_turn_on_llamacpp_reaches_the_store(tmp_path: Path) -> None:
    from memlora.cli import main

    store = tmp_path / "memory.db"
    message = "Hi! I'm Alice Chen. I just joined Anthropic as a research engineer.\n/quit\n"
    result = CliRunner().invoke(main, ["chat", "--runtime", "llamacpp", "--store", f"sqlite:{store}", "--session"],
                                input=message)
    assert result.exit_code == 0, result.output
    assert "llama.cpp (" in result.output and "adapter" in result.output  # what it chose, said once
    assert "create_entities" in result.output and "assistant> " in result.output
    with sqlite3.connect(store) as db:
        names = {row[0] for row in db.execute("SELECT name FROM entities")}
    assert "Alice Chen" in names, names


@pytest.mark.slow
def test_an_adapter_llamacpp_cannot_apply_is_refused_with_the_way_out(tmp_path: Path) -> None:
    """The shipped Gemma adapter has its own token rows on a tied head: no LoRA GGUF can say that."""
    from memlora.cli import main

    store = tmp_path / "memory.db"
    result = CliRunner().invoke(main, ["chat", "--runtime", "llamacpp", "--model", "gemma-3-270m",
                                       "--store", f"sqlite:{store}", "--session"], input="Hi, I'm Dana.\n/quit\n")
    assert result.exit_code == 1
    assert "gemma-3-270m-memory" in result.output and "ties its output head" in result.output
    assert "--runtime memlora" in result.output
    assert not store.exists()  # refused before anything was opened
