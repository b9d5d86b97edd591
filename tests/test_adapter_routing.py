"""Adapter routing (ADAPTER_MODE, per call), dynamic against merged serving, on tiny random models:
the adapter that runs is the one of the call's task, in the records model, the MemoryManager and
the OpenAI-compatible API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from memlora.models.loading import adapter_name, choose_adapter, load_model
from memlora.testing import save_tiny_model_with_adapters
from memlora.models.routed import RoutedModel
from memlora.records.chat import LocalChatModel
from memlora.records.manager import MemoryManager
from memlora.records.store import RecordStore
from memlora.routing import MODE_ENV, ROLE_FOLDERS, RoutingError, choose_mode, role_for, shipped_adapters
from records_helpers import ScriptedModel

ROLES = ("writing", "recall", "memory")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny base model folder and three adapters with large random weights, named as shipped ones."""
    root = tmp_path_factory.mktemp("routing")
    folders = {role: f"adapters/tiny-{ROLE_FOLDERS[role]}" for role in ROLES}
    return save_tiny_model_with_adapters(root, seed=5, adapter_folders=folders, adapter_seed=100)


def _load(*args: Any, **kwargs: Any) -> Any:
    return load_model(*args, device="cpu", dtype="fp32", **kwargs)


# -- the policy --------------------------------------------------------------------------------


def test_modes_from_the_argument_the_environment_or_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODE_ENV, raising=False)
    assert choose_mode() == "auto" and choose_mode("Recall") == "recall"
    monkeypatch.setenv(MODE_ENV, "writing")
    assert choose_mode() == "writing" and choose_mode("none") == "none"  # the argument wins
    monkeypatch.setenv(MODE_ENV, "sometimes")
    with pytest.raises(RoutingError, match="ADAPTER_MODE='sometimes'.*none, writing, recall, auto"):
        choose_mode()
    with pytest.raises(RoutingError, match="adapter_mode='x'"):
        choose_mode("x")


def test_each_mode_routes_only_its_tasks() -> None:
    table = {mode: tuple(role_for(mode, task) for task in ("write", "recall", "graph"))
             for mode in ("none", "writing", "recall", "auto")}
    assert table == {"none": (None, None, None), "writing": ("writing", None, None),
                     "recall": (None, "recall", None), "auto": ("writing", "recall", "memory")}
    with pytest.raises(RoutingError, match="task 'chat'"):
        role_for("auto", "chat")


def test_shipped_adapters_are_found_by_role(saved: dict[str, Path]) -> None:
    found = shipped_adapters("tiny", root=saved["writing"].parent)
    assert found == {role: str(saved[role]) for role in ROLES}
    assert shipped_adapters("other-model", root=saved["writing"].parent) == {}


def test_the_graph_adapter_default_follows_adapter_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = choose_adapter("qwen2.5-coder-0.5b", None)
    assert shipped is not None and shipped.endswith("qwen2.5-coder-0.5b-memory")
    monkeypatch.setenv(MODE_ENV, "none")
    assert choose_adapter("qwen2.5-coder-0.5b", None) is None
    monkeypatch.setenv(MODE_ENV, "writing")
    assert choose_adapter("qwen2.5-coder-0.5b", None) is None
    assert choose_adapter("qwen2.5-coder-0.5b", shipped) == shipped  # a named adapter is never overridden


# -- the weights behind the roles ---------------------------------------------------------------


def _logits(loaded: Any, adapter: str | None) -> torch.Tensor:
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with loaded.adapter(adapter) as model, torch.inference_mode():
        return model(input_ids=ids).logits.float()


def test_dynamic_and_merged_serving_run_the_same_weights_per_role(saved: dict[str, Path]) -> None:
    adapters = {role: str(saved[role]) for role in ("writing", "recall")}
    dynamic = RoutedModel(str(saved["base"]), adapters, "dynamic", loader=_load)
    merged = RoutedModel(str(saved["base"]), adapters, "merged", loader=_load)
    one, name = dynamic.target("writing")
    assert name == adapter_name(saved["writing"]) and dynamic.target("recall")[0] is one
    assert dynamic.target(None) == (one, None) and dynamic.target("memory") == (one, None)  # no adapter: base
    assert len(dynamic.loaded_models) == 1 and sorted(one.adapters) == sorted(adapter_name(p) for p in adapters.values())
    results = {}
    for role in ("writing", "recall", None):
        target, adapter = merged.target(role)
        assert adapter is None and not target.adapters and not hasattr(target.model, "peft_config")
        results[role] = _logits(target, None)
        assert torch.allclose(results[role], _logits(*dynamic.target(role)), atol=1e-4), role
    assert not torch.allclose(results["writing"], results["recall"], atol=1e-2)
    assert not torch.allclose(results["writing"], results[None], atol=1e-2)
    assert len(merged.loaded_models) == 3  # a copy per adapter and the base model


def test_merged_serving_loads_the_base_model_only_when_a_call_needs_it(saved: dict[str, Path]) -> None:
    calls: list[Any] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("adapters"))
        return _load(*args, **kwargs)

    merged = RoutedModel(str(saved["base"]), {"writing": str(saved["writing"])}, "merged", loader=counting)
    merged.target("writing")
    merged.target("writing")
    assert calls == [[str(saved["writing"])]]
    merged.target("recall")  # no recall adapter: the base model, loaded now
    assert calls == [[str(saved["writing"])], None]


def test_two_adapter_folders_of_one_name_are_refused(saved: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    twin = tmp_path / saved["writing"].name
    shutil.copytree(saved["writing"], twin)
    with pytest.raises(RoutingError, match="would load under one name"):
        RoutedModel(str(saved["base"]), {"writing": str(saved["writing"]), "recall": str(twin)})


# -- the records model and the manager ------------------------------------------------------------

CONVERSATION = [{"role": "system", "content": "You write records."}, {"role": "user", "content": "Observation: hi"}]


def test_the_records_model_runs_the_adapter_of_each_call(saved: dict[str, Path]) -> None:
    routed = LocalChatModel(str(saved["base"]), adapters={r: str(saved[r]) for r in ("writing", "recall")})
    routed.routed.loader = _load
    outputs = {role: routed.complete([CONVERSATION], 12, role=role)[0] for role in ("writing", "recall", None)}
    for role in ("writing", "recall"):
        alone = LocalChatModel(str(saved["base"]), adapter=str(saved[role]))  # one adapter for every role
        alone.routed.loader = _load
        assert alone.complete([CONVERSATION], 12, role="recall")[0] == outputs[role]
        assert routed.adapter_for(role) == adapter_name(saved[role])
    base = LocalChatModel(str(saved["base"]), adapter="none")
    base.routed.loader = _load
    assert base.complete([CONVERSATION], 12, role="writing")[0] == outputs[None]
    assert len(set(outputs.values())) == 3  # three different weights, three different greedy replies
    merged = LocalChatModel(str(saved["base"]), adapters={r: str(saved[r]) for r in ("writing", "recall")},
                            serving="merged")
    merged.routed.loader = _load
    assert {role: merged.complete([CONVERSATION], 12, role=role)[0] for role in outputs} == outputs


def test_the_manager_routes_writes_and_recalls_by_mode_and_per_call(minilm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODE_ENV, raising=False)
    reply = '{"event": "object_seen", "text": "Saw a red ball.", "tags": ["object:red_ball"]}'
    model = ScriptedModel([reply, "[1]"] * 3, adapters={"writing": "w-adapter", "recall": "r-adapter"})
    manager = MemoryManager(RecordStore(":memory:", minilm), model)  # auto: each task its own adapter
    written = manager.write("saw a red ball")
    assert model.roles == ["writing"] and written.record.source == "adapter:w-adapter"
    assert manager.recall("where is the red ball?").trace["adapter"] == "r-adapter"
    assert model.roles[-1] == "recall"
    manager.write("saw a red ball again", adapter_mode="recall")  # per call: writes get the base model
    assert model.roles[-1] is None
    result = manager.recall("where is the red ball?", adapter_mode="writing")
    assert model.roles[-1] is None and result.trace["adapter"] is None and result.trace["adapter_mode"] == "writing"
    monkeypatch.setenv(MODE_ENV, "none")
    off = MemoryManager(RecordStore(":memory:", minilm), model)
    off.write("saw a blue cup")
    assert model.roles[-1] is None
    off.recall("where is the cup?", adapter_mode="auto")  # the call's mode beats the environment's
    assert model.roles[-1] == "recall"


def test_a_routed_local_model_through_the_manager(saved: dict[str, Path], minilm) -> None:
    chat = LocalChatModel(str(saved["base"]), adapters={r: str(saved[r]) for r in ("writing", "recall")})
    chat.routed.loader = _load
    manager = MemoryManager(RecordStore(":memory:", minilm), chat, write_attempts=1, adapter_mode="auto")
    manager.write_max_tokens = manager.answer_max_tokens = 8  # a random model: only the routing matters
    result = manager.write("saw a red ball", pose=(1, 2, 0.5))
    assert result.attempts and (result.method == "rules" or result.record.source.startswith("adapter:"))
    recall = manager.recall("red ball")
    assert recall.trace["adapter"] == adapter_name(saved["recall"])
    assert manager.recall("red ball", adapter_mode="none").trace["adapter"] is None
