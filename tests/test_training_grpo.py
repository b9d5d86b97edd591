"""GRPO: settings refused up front, rollouts played by the agent on a real store, log-probabilities
under the shared-prefix cache, and a tiny end-to-end run with checkpoints, --resume and a time budget."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from memlora.agent.engine import Completion
from memlora.agent.prompt import tool_call_message, tool_result_message
from memlora.agent.protocol import model_tools
from memlora.models.chat_format import render_prompt
from memlora.evaluation.episodes import load_episodes
from memlora.models.loading import LoadedModel
from memlora.testing import tiny_model
from memlora.training.grpo import GrpoSettings, RolloutRunner, check_settings, grpo_trainer, train_grpo
from memlora.training.rewards import REWARD_TERMS, reference_rollout
from memlora.training.sft import SettingsError
from memlora.training.turns import TurnTask, build_tasks, turn_refs


def save_tiny(folder: Path) -> tuple[Path, Path]:
    """A tiny random model as a local folder, and a random LoRA adapter on it (with tag rows) as --init."""
    from peft import LoraConfig, get_peft_model

    from memlora.models.token_rows import format_token_ids, trainable_token_targets

    tiny = tiny_model("qwen", seed=3, tie_embeddings=False)
    tiny.model.save_pretrained(folder / "model")
    tiny.tokenizer.save_pretrained(folder / "model")
    tags = format_token_ids(tiny.tokenizer, "<|im_end|>")
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        trainable_token_indices=trainable_token_targets(tiny.model, tags), init_lora_weights=False)
    get_peft_model(tiny_model("qwen", seed=3, tie_embeddings=False).model, config).save_pretrained(folder / "init")
    return folder / "model", folder / "init"


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize("change, message", [
    ({"group_size": 1}, "--group-size must be at least 2"),
    ({"temperature": 0.0}, "--temperature must be more than 0"),
    ({"max_new_tokens": 0}, "--max-new-tokens must be at least 1"),
    ({"top_p": 1.5}, "--top-p must be in"),
    ({"max_minutes": 0.0}, "--max-minutes must be more than 0"),
    ({"prefix_cache": "sometimes"}, "--prefix-cache must be one of"),
    ({"init": Path("/nonexistent")}, "no adapter_config.json"),
    ({"data": Path("/nonexistent")}, "run `memlora datagen"),
    ({"model": "gemma-3-270m"}, "trained on qwen2.5-coder-0.5b, not on --model gemma-3-270m"),
])
def test_settings_that_cannot_work_are_refused_before_anything_loads(generated_data: Path, change: dict[str, Any],
                                                                     message: str) -> None:
    settings = GrpoSettings(init=Path(__file__).resolve().parents[1] / "adapters" / "qwen2.5-coder-0.5b-memory",
                            data=generated_data, out=Path("/nonexistent/out"))
    check_settings(settings)  # the defaults are fine
    for key, value in change.items():
        setattr(settings, key, value)
    with pytest.raises(SettingsError, match=message):
        check_settings(settings)


def test_the_command_refuses_rollouts_that_do_not_split_into_micro_batches(generated_data: Path,
                                                                          tmp_path: Path) -> None:
    from click.testing import CliRunner

    from memlora.training.commands import train

    _, init = save_tiny(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(train, ["grpo", "--init", str(init), "--data", str(generated_data), "--out", str(out),
                                        "--model", "no-such-model", "--turns-per-step", "3", "--group-size", "3",
                                        "--micro-batch", "2"])
    assert result.exit_code == 1, result.output
    assert "--turns-per-step x --group-size (9) must be a multiple of --micro-batch (2)" in result.output
    assert not out.exists()  # refused before any model was looked up
    result = CliRunner().invoke(train, ["grpo", "--init", str(init), "--data", str(generated_data), "--out", str(out),
                                        "--weights-from", str(tmp_path / "no-report")])
    assert result.exit_code == 1 and "no report.json there" in result.output


# ----------------------------------------------------------------------------- rollouts


class ScriptedEngine:
    """Writes the reference's own turn: its calls as the chat template renders them, then its reply."""

    def __init__(self, engine: Any, task: TurnTask, tools: list[dict[str, Any]]):
        self.tokenizer = engine.tokenizer
        self.encode = engine.encode
        self.end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        messages = task.history + [{"role": "user", "content": task.user}]
        opened = render_prompt(self.tokenizer, messages, tools)
        self.first_prompt = self.encode(opened)
        call = tool_call_message(list(task.gold_calls))
        self.outputs = [render_prompt(self.tokenizer, messages + [call], tools, add_generation_prompt=False)
                        [len(opened):].removesuffix("<|im_end|>\n")] if task.gold_calls else []
        self.outputs.append(task.gold_reply)

    def forget_caches(self) -> None:
        pass

    def generate_many(self, *args: Any, **kwargs: Any) -> list[Completion]:
        return []  # the runner's shared prefill: nothing to cache here

    async def generate(self, prompt: list[int], params: Any = None, adapter: str | None = None) -> Completion:
        text = self.outputs[0 if prompt == self.first_prompt else -1]  # the calls first, then the reply
        ids = self.encode(text)
        return Completion(text=text, token_ids=ids, prompt_tokens=len(prompt), cached_prompt_tokens=0,
                          completion_tokens=len(ids) + 1, finish_reason="stop", seconds=0.0, batch_size=1,
                          stop_token=self.end)


@pytest.fixture(scope="module")
def sample_tasks(generated_data: Path) -> dict[str, TurnTask]:
    episodes = load_episodes(generated_data / "train.episodes.jsonl")
    return build_tasks(episodes, turn_refs(episodes))


def test_a_rollout_is_the_agents_turn_on_a_real_store_token_for_token(sample_tasks: dict[str, TurnTask]) -> None:
    """Played by the agent with the reference's outputs, a turn leaves the reference's graph,
    earns what the reference earns, and its tokens are the agent's own conversation: the model's
    outputs (mask 1) in the context they were written in, the tool results between them (mask 0)."""
    task = next(t for t in sample_tasks.values() if t.kind == "update" and len(t.history) > 3)
    tiny = tiny_model("qwen", seed=3)
    loaded = LoadedModel(tiny.model, tiny.tokenizer, "tiny", "qwen", torch.device("cpu"), [])
    tools = model_tools()
    settings = GrpoSettings(init=Path("."), data=Path("."), out=Path("."), agent_steps=3, group_size=2)
    from memlora.agent.loop import session_prefix

    prefix = tiny.tokenizer(session_prefix(tiny.tokenizer, tools), add_special_tokens=False)["input_ids"]
    runner = RolloutRunner({task.key: task}, loaded, settings, prefix)
    runner.engine = ScriptedEngine(runner.engine, task, tools)
    trainer = SimpleNamespace(state=SimpleNamespace(global_step=0), _metrics={"train": defaultdict(list)})
    out = runner([task.key, task.key], trainer)

    rollout = out["rollout"][0]
    assert rollout.graph == task.gold_after
    reference = reference_rollout(task)
    for term in REWARD_TERMS:
        assert term(task, rollout) == term(task, reference), term.__name__
    conversation = task.history + [{"role": "user", "content": task.user}, tool_call_message(list(task.gold_calls))]
    conversation += [tool_result_message(c.name, c.result) for c in rollout.turn.steps[0].calls]
    conversation.append({"role": "assistant", "content": task.gold_reply})
    whole = tiny.tokenizer(render_prompt(tiny.tokenizer, conversation, tools, add_generation_prompt=False),
                           add_special_tokens=False)["input_ids"]
    sequence = prefix + out["prompt_ids"][0] + out["completion_ids"][0]
    assert whole[: len(sequence)] == sequence and tiny.tokenizer.decode(whole[len(sequence):]) == "\n"
    written = [t for t, m in zip(out["completion_ids"][0], out["env_mask"][0]) if m]
    assert tiny.tokenizer.decode(written) == runner.engine.outputs[0] + "<|im_end|>" + task.gold_reply + "<|im_end|>"
    assert runner.totals["rollouts"] == 2 and runner.totals["cut_sequences"] == 0


def test_the_rollouts_of_a_turn_share_one_prefill_of_its_prompt(sample_tasks: dict[str, TurnTask]) -> None:
    from memlora.agent.engine import SamplingParams

    from peft import LoraConfig, get_peft_model

    task = next(t for t in sample_tasks.values() if len(t.history) > 3)
    tiny = tiny_model("qwen", seed=3)
    model = get_peft_model(tiny.model, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    loaded = LoadedModel(model, tiny.tokenizer, "tiny", "qwen", torch.device("cpu"), ["default"])
    settings = GrpoSettings(init=Path("."), data=Path("."), out=Path("."), group_size=2)
    runner = RolloutRunner({task.key: task}, loaded, settings, [])
    tools = model_tools()
    prompt = runner.engine.encode(render_prompt(tiny.tokenizer, task.history + [{"role": "user", "content": task.user}],
                                                tools))
    cold = runner.engine.generate_many([prompt], SamplingParams(max_new_tokens=2), "default")[0]
    runner.engine.forget_caches()
    runner._prefill_once([task.key, task.key])
    warm = runner.engine.generate_many([prompt, prompt], SamplingParams(max_new_tokens=2), "default")
    assert cold.cached_prompt_tokens == len(runner.engine.prefix_ids) < len(prompt) - 1
    assert [w.cached_prompt_tokens for w in warm] == [len(prompt) - 1] * 2  # only the last token runs again
    assert all(w.token_ids == cold.token_ids for w in warm)


# ----------------------------------------------------------------------------- log-probabilities


@pytest.mark.parametrize("turn_prompt_cache", [False, True], ids=["prefix-cache", "turn-prompt-cache"])
def test_log_probabilities_under_the_caches_equal_the_plain_ones(tmp_path: Path, turn_prompt_cache: bool) -> None:
    """Rows of different lengths, left-padded after the cached prefix and right-padded after the
    completion, two of them sharing a prompt (a group), with the adapter away from the identity,
    before and after an optimizer step; and gradients reach the adapter."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from trl import GRPOConfig

    tiny = tiny_model("qwen", seed=3)
    model = get_peft_model(tiny.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    stub = SimpleNamespace(totals={})
    trainer = grpo_trainer(
        model=model, reward_funcs=[lambda prompts, **_: [0.0] * len(prompts)],
        args=GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, num_generations=2,
                        per_device_train_batch_size=2, report_to="none", activation_checkpointing=False, max_steps=1,
                        temperature=0.7),
        train_dataset=Dataset.from_list([{"prompt": "a"}]), processing_class=tiny.tokenizer, runner=stub,
        prefix_ids=list(range(40, 70)), prefix_mode="adapted", turn_prompt_cache=turn_prompt_cache,
    )
    trainer.model.eval()
    prefix = trainer.prefix_ids
    prompts = [[5, 6, 7, 8, 9], [11, 12], [5, 6, 7, 8, 9]]  # rows 0 and 2: one turn's group
    completions = [[20, 21, 22], [23, 24, 25, 26], [27, 28]]
    width, length = max(map(len, prompts)), max(map(len, completions))
    pad = tiny.tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p + c + [pad] * (length - len(c)) for p, c in zip(prompts, completions)])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * (len(p) + len(c)) + [0] * (length - len(c))
                         for p, c in zip(prompts, completions)])

    def plain(row: int) -> torch.Tensor:
        full = torch.tensor([prefix + prompts[row] + completions[row]])
        logits = trainer.model(input_ids=full).logits[0].float() / 0.7
        n = len(completions[row])
        return torch.log_softmax(logits[-n - 1:-1], -1).gather(-1, full[0, -n:, None])[:, 0]

    for step in (0, 1):
        if step:
            torch.manual_seed(5)
            with torch.no_grad():
                for name, parameter in trainer.model.named_parameters():
                    if "lora_B" in name:
                        parameter.normal_(0, 0.5)
            trainer.state.global_step = 1  # the caches are computed again for the new weights
        for batch_size in (3, 2):
            logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
                trainer.model, ids, mask, length, batch_size=batch_size, compute_entropy=True)
            with torch.no_grad():
                for row in range(3):
                    n = len(completions[row])
                    torch.testing.assert_close(logps[row, :n], plain(row), atol=1e-4, rtol=1e-4)
            assert entropies.shape == logps.shape and bool((entropies[:, :2] > 0).all())
    (logps * mask[:, -length:]).sum().backward()
    grads = [p.grad for n, p in trainer.model.named_parameters() if "lora_" in n]
    assert grads and all(g is not None for g in grads) and any(bool(g.abs().sum() > 0) for g in grads)


# ----------------------------------------------------------------------------- end to end


def test_a_tiny_run_writes_an_adapter_and_resumes_from_its_checkpoints(generated_data: Path, tmp_path: Path) -> None:
    model_dir, init = save_tiny(tmp_path)
    # long enough for some random replies to pass the free reply length: rewards differ within a group
    settings = GrpoSettings(init=init, data=generated_data, out=tmp_path / "out", model=str(model_dir), max_steps=2,
                            turns_per_step=2, group_size=2, max_new_tokens=100, agent_steps=1, save_every=1,
                            learning_rate=1e-2, device="cpu")
    out = train_grpo(settings)
    for name in ("adapter_model.safetensors", "adapter_config.json", "card.json", "README.md", "reward.png",
                 "training_log.json"):
        assert (out / name).exists(), name
    card = json.loads((out / "card.json").read_text())
    training = card["training"]
    assert training["optimizer_steps"] == 2 and training["rollouts"] == 8  # 2 steps x 2 turns x 2 rollouts
    assert training["generated_tokens"] > 0 and training["rollouts_per_second"] > 0
    assert card["data"]["turns_drawn"] == 4 and sum(card["data"]["kinds_drawn"].values()) == 4
    assert card["hyperparameters"]["prefix_cache"] == "adapted"  # resolved from the init adapter (no card: a standard one)
    history = json.loads((out / "training_log.json").read_text())
    assert [e["step"] for e in history if "reward" in e] == [1, 2]
    assert all(f"rewards/{name}/mean" in history[0] for name in ("format", "destroyed", "long_reply"))
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert any(e["grad_norm"] > 0 for e in history if "grad_norm" in e)  # a group that disagreed moved the policy
    from safetensors.torch import load_file

    start, end = load_file(str(init / "adapter_model.safetensors")), load_file(str(out / "adapter_model.safetensors"))
    assert start.keys() == end.keys() and any(not torch.equal(start[k], end[k]) for k in start)

    settings.resume, settings.max_steps = True, 3  # one more step: the totals go on from the checkpoint
    training = json.loads((train_grpo(settings) / "card.json").read_text())["training"]
    assert training["optimizer_steps"] == 3 and training["rollouts"] == 12
    weights = (out / "adapter_model.safetensors").read_bytes()
    again = json.loads((train_grpo(settings) / "card.json").read_text())["training"]  # nothing left to do
    assert again["optimizer_steps"] == 3 and again["rollouts"] == 12
    assert (out / "adapter_model.safetensors").read_bytes() == weights


def test_a_time_budget_ends_the_run_after_the_step_that_passes_it(generated_data: Path, tmp_path: Path) -> None:
    model_dir, init = save_tiny(tmp_path)
    settings = GrpoSettings(init=init, data=generated_data, out=tmp_path / "out", model=str(model_dir), max_steps=3,
                            turns_per_step=1, group_size=2, max_new_tokens=4, agent_steps=1, save_every=5,
                            max_minutes=1e-6, device="cpu")
    out = train_grpo(settings)
    assert json.loads((out / "card.json").read_text())["training"]["optimizer_steps"] == 1
    assert (out / "checkpoints" / "checkpoint-1").is_dir()  # saved off schedule, so --resume can go on
