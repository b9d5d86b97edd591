"""LoRA SFT: which tokens carry loss, the frozen-prefix trick, and a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from memlora.agent.prompt import session_opening, tool_call_message, tool_result_message
from memlora.agent.protocol import model_tools
from memlora.testing import tiny_model
from memlora.training.sft import LoraSettings, SettingsError, SftSettings, tokenize_row, tokenize_rows, train_sft

CALL = {
    "name": "create_entities",
    "arguments": {"entities": [{"name": "Ines Duarte", "entityType": "person", "observations": ["Plays cello"]}]},
}


def session_row(user: str = "I'm Ines Duarte and I play the cello.", reply: str = "Nice to meet you, Ines!") -> dict[str, Any]:
    messages = session_opening({"entities": [], "relations": []})
    messages += [
        {"role": "user", "content": user},
        tool_call_message([CALL]),
        tool_result_message(CALL["name"], [CALL["arguments"]["entities"][0]]),
        {"role": "assistant", "content": reply},
    ]
    return {"messages": messages, "tools": model_tools()}


@pytest.fixture(scope="module")
def tiny() -> Any:
    return tiny_model("qwen", seed=3)


def save_tiny(tiny: Any, folder: Path) -> Path:
    """The tiny model as a local model folder, the form `train_sft` loads."""
    model_dir = folder / "tiny-model"
    tiny.model.save_pretrained(model_dir)
    tiny.tokenizer.save_pretrained(model_dir)
    return model_dir


def labelled_text(tokenizer: Any, encoded: dict[str, list[int]]) -> str:
    return tokenizer.decode([t for t in encoded["labels"] if t != -100])


def test_loss_covers_the_model_turns_and_nothing_else(tiny: Any) -> None:
    encoded = tokenize_row(tiny.tokenizer, session_row())
    trained = labelled_text(tiny.tokenizer, encoded)
    assert '"name": "create_entities"' in trained
    assert "Nice to meet you, Ines!" in trained
    assert trained.count("<|im_end|>") == 2  # each model turn learns to stop
    assert "I play the cello" not in trained  # the user's words
    assert "read_graph" not in trained  # the runtime's opening call
    assert "memory tools" not in trained  # the system prompt
    assert '"observations": ["Plays cello"]}]' not in trained.split("</tool_call>")[1]  # the tool result


def test_frozen_prefix_cuts_exactly_the_shared_prompt(tiny: Any) -> None:
    rows = [session_row(), session_row("My name is Ines Duarte.", "Hello Ines.")]
    cut, prefix = tokenize_rows(tiny.tokenizer, rows, frozen_prefix=True)
    whole, none = tokenize_rows(tiny.tokenizer, rows, frozen_prefix=False)
    assert none == [] and len(prefix) > 100
    for short, full in zip(cut, whole):
        assert full["input_ids"] == prefix + short["input_ids"]
        assert full["labels"][len(prefix):] == short["labels"]
        assert set(full["labels"][: len(prefix)]) == {-100}
    assert tiny.tokenizer.decode(cut[0]["input_ids"][:12]).startswith("<|im_start|>assistant")


def test_a_row_with_another_system_prompt_is_rejected_with_its_number(tiny: Any) -> None:
    odd = session_row()
    odd["messages"][0] = {"role": "system", "content": "You are a pirate."}
    with pytest.raises(ValueError, match="row 2: does not start with the shared system prompt"):
        tokenize_rows(tiny.tokenizer, [session_row(), odd], frozen_prefix=True)


def write_rows(folder: Path, rows: dict[str, list[dict[str, Any]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, items in rows.items():
        (folder / f"{split}.rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    (folder / "stats.json").write_text(json.dumps({"seed": 7}))


def untrained_frozen_prefix_trainer(tokenizer: Any, rows: list[dict[str, Any]], tmp_path: Path,
                                    prefix_with_adapter: bool = True) -> tuple[Any, list[dict[str, Any]]]:
    """A prefix-cache trainer on a fresh tiny model (LoRA still the identity), in eval mode,
    and the rows tokenized whole for the plain loss to compare with."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig

    from memlora.training.sft import frozen_prefix_trainer

    cut, prefix = tokenize_rows(tokenizer, rows, frozen_prefix=True)
    full, _ = tokenize_rows(tokenizer, rows, frozen_prefix=False)
    trainer = frozen_prefix_trainer(
        model=tiny_model("qwen", seed=3).model,
        args=SFTConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, activation_checkpointing=False,
                       bf16=False),
        train_dataset=Dataset.from_list(cut),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
        prefix_ids=prefix,
        prefix_with_adapter=prefix_with_adapter,
    )
    trainer.model.eval()
    return trainer, full


def test_frozen_prefix_loss_equals_the_full_sequence_loss_before_training(tiny: Any, tmp_path: Path) -> None:
    """LoRA starts as the identity, so a frozen base-model prefix must give the plain loss exactly."""
    trainer, full = untrained_frozen_prefix_trainer(tiny.tokenizer, [session_row()], tmp_path)
    batch = trainer.data_collator(list(trainer.train_dataset))
    with torch.no_grad():
        frozen = trainer.compute_loss(trainer.model, dict(batch))
        ids = torch.tensor([full[0]["input_ids"]])
        labels = torch.tensor([full[0]["labels"]])
        plain = trainer.model(input_ids=ids, labels=labels).loss
    assert torch.allclose(frozen, plain, atol=1e-4), (frozen, plain)


def test_frozen_prefix_loss_of_a_padded_batch_equals_the_rows_plain_loss(tiny: Any, tmp_path: Path) -> None:
    """On a GPU rows go several to a batch: the shared cache is repeated and short rows padded.

    Padding must not shift positions or leak into the loss, so the batch loss is the plain
    per-token loss over both rows' labelled tokens together."""
    rows = [session_row(), session_row("My name is Ines Duarte, and I would like you to keep that in mind.",
                                       "Hello Ines, I will remember your name from now on.")]
    trainer, full = untrained_frozen_prefix_trainer(tiny.tokenizer, rows, tmp_path)
    batch = trainer.data_collator(list(trainer.train_dataset))
    assert batch["input_ids"].shape[0] == 2 and not bool(batch["attention_mask"].all())  # one row padded
    with torch.no_grad():
        frozen = trainer.compute_loss(trainer.model, dict(batch))
        total, count = torch.tensor(0.0), 0
        for row in full:
            labels = torch.tensor([row["labels"]])
            logits = trainer.model(input_ids=torch.tensor([row["input_ids"]])).logits.float()
            total += torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="sum")
            count += int((labels[0, 1:] != -100).sum())
    assert torch.allclose(frozen, total / count, atol=1e-4), (frozen, total / count)


def plain_loss(model: Any, row: dict[str, Any]) -> torch.Tensor:
    return model(input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]])).loss


def perturb_lora(model: Any, seed: int) -> None:
    """Moves the LoRA away from the identity, as training does."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)


def test_adapted_prefix_loss_equals_the_full_sequence_loss_with_the_adapter_on_every_token(
        tiny: Any, tmp_path: Path) -> None:
    """The cache holds the prompt's keys and values under the current adapter, so the loss is the
    plain loss of a model whose LoRA applies everywhere (as PEFT runs it), after every optimizer
    step: the cache is recomputed when the step count moves. A base-model cache is not."""
    trainer, full = untrained_frozen_prefix_trainer(tiny.tokenizer, [session_row()], tmp_path)
    base_trainer, _ = untrained_frozen_prefix_trainer(tiny.tokenizer, [session_row()], tmp_path,
                                                     prefix_with_adapter=False)
    batch = trainer.data_collator(list(trainer.train_dataset))
    with torch.no_grad():
        trainer.compute_loss(trainer.model, dict(batch))  # the cache of step 0, LoRA still the identity
        for step, seed in ((1, 11), (2, 12)):
            perturb_lora(trainer.model, seed)
            trainer.state.global_step = step
            adapted = trainer.compute_loss(trainer.model, dict(batch))
            plain = plain_loss(trainer.model, full[0])
            assert torch.allclose(adapted, plain, atol=1e-4), (step, adapted, plain)
        perturb_lora(base_trainer.model, 12)
        frozen = base_trainer.compute_loss(base_trainer.model, dict(batch))
    assert not torch.allclose(frozen, plain, atol=1e-2)  # the prompt's states differ under the adapter


def test_validation_counts_exact_calls_and_replies_teacher_forced(tiny: Any, tmp_path: Path) -> None:
    """One entry per message the model writes: right only when every token of it is."""
    trainer, _ = untrained_frozen_prefix_trainer(tiny.tokenizer, [session_row()], tmp_path)
    batch = dict(trainer.data_collator(list(trainer.train_dataset)))
    with torch.no_grad():
        trainer.compute_loss(trainer.model, batch)  # eval mode: the model is in eval()
    metrics = trainer._metrics["eval"]
    assert len(metrics["exact_call_accuracy"]) == 1 and len(metrics["exact_reply_accuracy"]) == 1
    targets = batch["labels"][:, 1:]
    keep = (targets != -100).any(dim=0).nonzero().squeeze(1)
    chosen = targets[:, keep]
    trainer._metrics["eval"].clear()
    perfect = chosen.clone()
    trainer._record_exact_messages(perfect, chosen, keep)
    assert trainer._metrics["eval"]["exact_call_accuracy"] == [1.0]
    assert trainer._metrics["eval"]["exact_reply_accuracy"] == [1.0]
    trainer._metrics["eval"].clear()
    perfect[0, -1] = perfect[0, -1] + 1  # the reply's last token (its end of turn) wrong
    trainer._record_exact_messages(perfect, chosen, keep)
    assert trainer._metrics["eval"]["exact_call_accuracy"] == [1.0]
    assert trainer._metrics["eval"]["exact_reply_accuracy"] == [0.0]


def test_an_assistant_message_marked_loss_false_carries_no_loss(tiny: Any) -> None:
    """A call the server rejects is shown in the row, so the model learns the recovery, not the
    mistake."""
    row = session_row()
    wrong = tool_call_message([{"name": "create_relations", "arguments": {"relations": [
        {"from": "default_user", "to": "Ines Duarte", "relationType": "friend_of"}]}}])
    wrong["loss"] = False
    row["messages"][4:4] = [wrong, tool_result_message("create_relations", "Entity with name default_user not found")]
    trained = labelled_text(tiny.tokenizer, tokenize_row(tiny.tokenizer, row))
    assert "friend_of" not in trained and "not found" not in trained
    assert '"name": "create_entities"' in trained and "Nice to meet you, Ines!" in trained


def test_tiny_end_to_end_run_writes_adapter_card_and_plot(tiny: Any, tmp_path: Path) -> None:
    model_dir = save_tiny(tiny, tmp_path)
    data = tmp_path / "data"
    write_rows(data, {"train": [session_row()] * 4, "validation": [session_row()]})
    out = train_sft(SftSettings(
        data=data, out=tmp_path / "adapter", model=str(model_dir), lora=LoraSettings(r=4, alpha=8),
        max_steps=2, grad_accum=2, eval_every=1, save_every=1, learning_rate=1e-3, device="cpu",
    ))
    assert (out / "adapter_model.safetensors").exists()
    assert (out / "loss.png").stat().st_size > 0
    card = json.loads((out / "card.json").read_text())
    assert card["data"]["seed"] == 7 and card["data"]["train_rows"] == 4
    assert card["training"]["optimizer_steps"] == 2 and card["training"]["tokens"] > 0
    assert card["hyperparameters"]["lora"]["r"] == 4
    assert "Ines" not in (out / "README.md").read_text()  # the card describes, it does not leak rows
    history = json.loads((out / "training_log.json").read_text())
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    exact = [entry["eval_exact_call_accuracy"] for entry in history if "eval_exact_call_accuracy" in entry]
    assert len(exact) == 2 and all(0.0 <= value <= 1.0 for value in exact)
    counts = [entry["tokens_processed"] for entry in history if "tokens_processed" in entry]
    assert counts == sorted(counts) and counts[-1] == card["training"]["tokens"]


def test_resume_continues_from_the_newest_checkpoint(tiny: Any, tmp_path: Path) -> None:
    model_dir = save_tiny(tiny, tmp_path)
    data = tmp_path / "data"
    write_rows(data, {"train": [session_row()] * 4})
    settings = SftSettings(data=data, out=tmp_path / "adapter", model=str(model_dir), lora=LoraSettings(r=4, alpha=8),
                           max_steps=1, grad_accum=2, save_every=1, device="cpu")
    first = json.loads((train_sft(settings) / "card.json").read_text())["training"]
    settings.max_steps, settings.resume = 2, True
    second = json.loads((train_sft(settings) / "card.json").read_text())["training"]
    assert first["optimizer_steps"] == 1 and second["optimizer_steps"] == 2
    assert second["tokens"] == 2 * first["tokens"]  # the same rows again: the count went on from the checkpoint
    # the wall time too: the second run trained one step, the card counts both
    history = json.loads((tmp_path / "adapter" / "training_log.json").read_text())
    seconds = {e["step"]: e["train_seconds"] for e in history if "train_seconds" in e}
    assert 0 < seconds[1] <= first["wall_seconds"]
    assert seconds[1] < seconds[2] <= second["wall_seconds"]  # the resumed run counts on from the checkpoint

    # Asking again for steps a checkpoint already holds trains nothing more (the trainer alone
    # would take one extra step), and a smaller count takes the checkpoint at that step.
    weights = (tmp_path / "adapter" / "adapter_model.safetensors").read_bytes()
    again = json.loads((train_sft(settings) / "card.json").read_text())["training"]
    assert again["optimizer_steps"] == 2 and again["tokens"] == second["tokens"]
    assert (tmp_path / "adapter" / "adapter_model.safetensors").read_bytes() == weights
    assert sorted(p.name for p in (tmp_path / "adapter" / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    settings.max_steps = 1
    back = json.loads((train_sft(settings) / "card.json").read_text())["training"]
    assert back["optimizer_steps"] == 1 and back["tokens"] == first["tokens"]


def test_a_time_budget_ends_the_run_after_the_step_that_passes_it(tiny: Any, tmp_path: Path) -> None:
    model_dir = save_tiny(tiny, tmp_path)
    data = tmp_path / "data"
    write_rows(data, {"train": [session_row()] * 8, "validation": [session_row()]})
    settings = SftSettings(data=data, out=tmp_path / "adapter", model=str(model_dir), lora=LoraSettings(r=4, alpha=8),
                           max_steps=4, grad_accum=2, eval_every=2, save_every=2, max_minutes=1e-6, device="cpu")
    out = train_sft(settings)
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["optimizer_steps"] == 1  # of the 4 asked for
    assert card["hyperparameters"]["max_minutes"] == 1e-6
    history = json.loads((out / "training_log.json").read_text())
    assert [e["step"] for e in history if "eval_loss" in e] == [1]  # validated although step 1 is off schedule
    assert (out / "checkpoints" / "checkpoint-1").is_dir()  # saved too, so --resume can go on from it
    assert (out / "adapter_model.safetensors").exists()
    settings.max_minutes, settings.resume = None, True
    assert json.loads((train_sft(settings) / "card.json").read_text())["training"]["optimizer_steps"] == 4


def test_sigterm_ends_the_run_after_the_step_in_progress_with_a_checkpoint(tiny: Any, tmp_path: Path) -> None:
    """A long run stopped by its machine (Ctrl-C, SIGTERM) keeps every step it finished."""
    import signal
    import subprocess
    import sys

    model_dir = save_tiny(tiny, tmp_path)
    data = tmp_path / "data"
    write_rows(data, {"train": [session_row()] * 8, "validation": [session_row()]})
    out = tmp_path / "adapter"
    command = [sys.executable, "-m", "memlora.cli", "train", "sft", "--data", str(data), "--out", str(out),
               "--model", str(model_dir), "--lora-r", "4", "--lora-alpha", "8", "--grad-accum", "1",
               "--max-steps", "1000", "--epochs", "200", "--save-every", "500", "--eval-every", "500", "--device", "cpu", "--dtype", "fp32"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    for line in process.stdout:  # type: ignore[union-attr]
        lines.append(line)
        if "'loss'" in line:  # a step has finished
            process.send_signal(signal.SIGTERM)
            break
    rest, _ = process.communicate(timeout=300)
    assert process.returncode == 0, "".join(lines) + rest
    assert "SIGTERM: finishing this optimizer step, then saving" in rest
    steps = json.loads((out / "card.json").read_text())["training"]["optimizer_steps"]
    assert 1 <= steps < 1000
    assert (out / "checkpoints" / f"checkpoint-{steps}").is_dir()
    history = json.loads((out / "training_log.json").read_text())
    assert not [e for e in history if "eval_loss" in e]  # no validation pass on the way out


def test_a_time_budget_must_be_positive(tmp_path: Path) -> None:
    write_rows(tmp_path, {"train": [session_row()]})
    with pytest.raises(SettingsError, match="--max-minutes must be more than 0, not 0"):
        train_sft(SftSettings(data=tmp_path, out=tmp_path / "adapter", max_minutes=0))  # before loading a model


def test_resume_refuses_a_step_count_before_every_checkpoint(tmp_path: Path) -> None:
    for step in (3, 4):
        (tmp_path / "adapter" / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
    settings = SftSettings(data=tmp_path, out=tmp_path / "adapter", max_steps=2, resume=True)
    write_rows(tmp_path, {"train": [session_row()]})
    with pytest.raises(SettingsError, match=r"--max-steps 2: every checkpoint .* \(steps 3, 4\)"):
        train_sft(settings)  # refused before any model is loaded


def test_rows_are_checked_against_a_given_prefix(tiny: Any) -> None:
    """Validation rows must continue the training prefix, not merely their own."""
    _, prefix = tokenize_rows(tiny.tokenizer, [session_row()], frozen_prefix=True)
    odd = session_row()
    odd["tools"] = odd["tools"][:3]  # another tool block: consistent with itself, not with training
    tokenize_rows(tiny.tokenizer, [odd], frozen_prefix=True)  # fine on its own
    with pytest.raises(ValueError, match="row 1: does not start with the shared system prompt"):
        tokenize_rows(tiny.tokenizer, [odd], frozen_prefix=True, prefix=prefix)


def test_format_token_rows_are_trained_saved_and_carried_on_by_init_adapter(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import load_file

    from memlora.models import token_rows

    installed: list[int] = []
    real_install = token_rows.install_fast_token_vectors
    monkeypatch.setattr(token_rows, "install_fast_token_vectors", lambda model: installed.append(real_install(model)))

    untied = tiny_model("qwen", seed=3, tie_embeddings=False)  # like the converted bundled Qwen
    model_dir = tmp_path / "tiny-model"
    untied.model.save_pretrained(model_dir)
    untied.tokenizer.save_pretrained(model_dir)
    tags = [untied.tokenizer.convert_tokens_to_ids(t) for t in ("<tool_call>", "</tool_call>", "<|im_end|>")]
    data = tmp_path / "data"
    write_rows(data, {"train": [session_row()] * 4})
    first = train_sft(SftSettings(data=data, out=tmp_path / "first", model=str(model_dir),
                                  lora=LoraSettings(r=4, alpha=8), max_steps=2, grad_accum=2,
                                  learning_rate=1e-2, device="cpu"))
    assert installed == [2]  # trained through memlora's token vectors, in the embedding and the head
    config = json.loads((first / "adapter_config.json").read_text())
    assert config["trainable_token_indices"] == {"embed_tokens": tags, "lm_head": tags}
    saved = load_file(str(first / "adapter_model.safetensors"))
    head_rows = next(v for k, v in saved.items() if "lm_head" in k and "trainable_tokens_delta" in k)
    assert not torch.allclose(head_rows.float(), untied.model.lm_head.weight[tags].float())  # they moved

    # continuing from it: the second run starts exactly where the first ended
    from peft import get_peft_model, LoraConfig
    from memlora.training.sft import load_initial_adapter

    fresh = get_peft_model(tiny_model("qwen", seed=3, tie_embeddings=False).model,
                           LoraConfig(r=4, lora_alpha=8, target_modules=list(LoraSettings().modules()),
                                      trainable_token_indices={"embed_tokens": tags, "lm_head": tags}))
    load_initial_adapter(fresh, first, fresh.peft_config["default"])
    from peft import get_peft_model_state_dict

    for key, value in get_peft_model_state_dict(fresh).items():
        torch.testing.assert_close(value, saved[key])
    other = LoraConfig(r=8, lora_alpha=8, target_modules=list(LoraSettings().modules()))
    with pytest.raises(ValueError, match="r is 4, this run's is 8"):
        load_initial_adapter(fresh, first, other)


def test_init_adapter_without_tag_rows_gets_them_from_the_base(tmp_path: Path) -> None:
    """The shipped first adapter had no tag rows: continuing it must add them, not fail."""
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    from memlora.training.sft import load_initial_adapter

    targets = list(LoraSettings().modules())
    old = get_peft_model(tiny_model("qwen", seed=3, tie_embeddings=False).model,
                         LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False))
    old.save_pretrained(tmp_path / "old")
    base = tiny_model("qwen", seed=3, tie_embeddings=False)
    tags = [base.tokenizer.convert_tokens_to_ids(t) for t in ("<tool_call>", "</tool_call>")]
    head_rows = base.model.lm_head.weight[tags].detach().clone()
    fresh = get_peft_model(base.model, LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                                                  trainable_token_indices={"embed_tokens": tags, "lm_head": tags}))
    load_initial_adapter(fresh, tmp_path / "old", fresh.peft_config["default"])
    state = get_peft_model_state_dict(fresh)
    for key, value in get_peft_model_state_dict(old).items():
        torch.testing.assert_close(state[key], value)  # the LoRA weights came over
    rows = next(v for k, v in state.items() if "lm_head" in k and "trainable_tokens_delta" in k)
    torch.testing.assert_close(rows, head_rows)  # the tag rows start as the base model's


def test_init_adapter_with_fewer_token_rows_keeps_them_by_token_id(tmp_path: Path) -> None:
    """The shipped Qwen adapter trains the two tool tags; a run now trains the end of turn too."""
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    from memlora.training.sft import load_initial_adapter

    targets = list(LoraSettings().modules())
    base = tiny_model("qwen", seed=3, tie_embeddings=False)
    tags = [base.tokenizer.convert_tokens_to_ids(t) for t in ("<tool_call>", "</tool_call>")]
    end = base.tokenizer.convert_tokens_to_ids("<|im_end|>")
    old = get_peft_model(base.model, LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                                                trainable_token_indices={"embed_tokens": tags, "lm_head": tags}))
    with torch.no_grad():
        for name, parameter in old.named_parameters():
            if "trainable_tokens_delta" in name:
                parameter.add_(torch.randn_like(parameter))  # what training would have moved
    old.save_pretrained(tmp_path / "old")
    saved = get_peft_model_state_dict(old)

    wider = [end, *tags]  # another order too: rows are matched by token id, not position
    fresh_base = tiny_model("qwen", seed=3, tie_embeddings=False)
    fresh = get_peft_model(fresh_base.model, LoraConfig(
        r=4, lora_alpha=8, target_modules=targets,
        trainable_token_indices={"embed_tokens": wider, "lm_head": wider}))
    start = {k: v.clone() for k, v in get_peft_model_state_dict(fresh).items()}
    load_initial_adapter(fresh, tmp_path / "old", fresh.peft_config["default"])
    state = get_peft_model_state_dict(fresh)
    for key, value in saved.items():
        if "trainable_tokens_delta" in key:
            torch.testing.assert_close(state[key][1:], value)  # the tags' rows came over
            torch.testing.assert_close(state[key][0], start[key][0])  # end of turn: its start value
        else:
            torch.testing.assert_close(state[key], value)


def test_cli_refuses_checkpoints_between_validations_before_loading_anything(tmp_path: Path) -> None:
    """transformers refuses it only after the model has loaded; memlora says so at once, in its own terms."""
    from click.testing import CliRunner

    from memlora.training.commands import train

    data = tmp_path / "data"
    write_rows(data, {"train": [session_row()], "validation": [session_row()]})
    out = tmp_path / "adapter"
    result = CliRunner().invoke(train, ["sft", "--data", str(data), "--out", str(out), "--model", "no-such-model",
                                        "--eval-every", "25", "--save-every", "5"])
    assert result.exit_code == 1
    assert "--save-every (5) must be a multiple of --eval-every (25)" in result.output
    assert not out.exists()  # nothing written, no model looked up

    result = CliRunner().invoke(train, ["sft", "--data", str(tmp_path / "empty"), "--out", str(out)])
    assert result.exit_code == 1 and "run `memlora datagen" in result.output
