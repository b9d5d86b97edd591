"""`memlora train ...`: adapter training commands."""

from __future__ import annotations

from pathlib import Path

import click

from memlora.training.sft import ATTENTION_MODULES, LoraSettings, SettingsError, SftSettings, train_sft


@click.group()
def train() -> None:
    """Train LoRA adapters that teach a model to use the memory tools."""


@train.command("sft")
@click.option("--data", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder written by `memlora datagen` (train.rows.jsonl, validation.rows.jsonl).")
@click.option("--model", default="qwen2.5-coder-0.5b", show_default=True,
              help="Bundled model name, local folder or hub id.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Adapter folder to write, e.g. adapters/my-memory.")
@click.option("--lora-r", default=16, show_default=True)
@click.option("--lora-alpha", default=32, show_default=True)
@click.option("--lora-dropout", default=0.05, show_default=True)
@click.option("--target-modules", default=",".join(ATTENTION_MODULES), show_default=True)
@click.option("--mlp/--no-mlp", default=False, show_default=True, help="Also adapt the MLP projections.")
@click.option("--lr", "learning_rate", default=2e-4, show_default=True)
@click.option("--epochs", default=1.0, show_default=True)
@click.option("--max-steps", default=-1, show_default=True, help="Optimizer steps; overrides --epochs when > 0.")
@click.option("--batch-size", default=1, show_default=True)
@click.option("--grad-accum", default=8, show_default=True)
@click.option("--max-length", default=4096, show_default=True, help="Tokens per row; longer rows are cut.")
@click.option("--max-train-rows", type=int, default=None, help="Train on a seeded random sample of N training rows (--seed).")
@click.option("--max-eval-rows", default=48, show_default=True)
@click.option("--eval-every", default=25, show_default=True, help="Validation every N optimizer steps.")
@click.option("--save-every", default=25, show_default=True, help="Checkpoint every N optimizer steps.")
@click.option("--patience", default=4, show_default=True, help="Early-stopping patience in evaluations (0: off).")
@click.option("--max-minutes", type=float, default=None,
              help="Wall-time budget of this run: stop after the optimizer step that passes it, validate, "
                   "save and write the adapter.")
@click.option("--seed", default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in OUT/checkpoints.")
@click.option("--init-adapter", type=click.Path(path_type=Path, file_okay=False, exists=True), default=None,
              help="Start from this adapter's weights (same LoRA shape) instead of a fresh LoRA.")
@click.option("--format-token-rows/--no-format-token-rows", default=True, show_default=True,
              help="Train the adapter's own embedding and output rows for the tool-call tags and end-of-turn token.")
@click.option("--prefix-cache", type=click.Choice(["adapted", "base", "off"]), default="adapted", show_default=True,
              help="The shared system prompt + tool block as a KV cache: computed with the current adapter every "
                   "optimizer step (adapted), once by the base model (base, as adapters before 2026-12-07), or "
                   "run in every row (off: exact, about twice the cost).")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: GPU if there is one).")
@click.option("--dtype", type=click.Choice(["auto", "bf16", "fp32"]), default=None,
              help="Weight dtype. Default: $MEMLORA_DTYPE, else auto (bf16 on GPUs and on CPUs with bf16 "
                   "instructions, fp32 on other CPUs).")
def sft(
    data: Path, model: str, out: Path, lora_r: int, lora_alpha: int, lora_dropout: float,
    target_modules: str, mlp: bool, learning_rate: float, epochs: float, max_steps: int,
    batch_size: int, grad_accum: int, max_length: int, max_train_rows: int | None,
    max_eval_rows: int, eval_every: int, save_every: int, patience: int, max_minutes: float | None, seed: int,
    resume: bool, init_adapter: Path | None, format_token_rows: bool, prefix_cache: str, threads: int | None, device: str | None,
    dtype: str | None,
) -> None:
    """Supervised LoRA fine-tuning on generated memory conversations."""
    settings = SftSettings(
        data=data, out=out, model=model,
        lora=LoraSettings(r=lora_r, alpha=lora_alpha, dropout=lora_dropout,
                          target_modules=tuple(m.strip() for m in target_modules.split(",") if m.strip()),
                          include_mlp=mlp, train_format_tokens=format_token_rows),
        learning_rate=learning_rate, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
        grad_accum=grad_accum, max_length=max_length, max_train_rows=max_train_rows,
        max_eval_rows=max_eval_rows, eval_every=eval_every, save_every=save_every,
        early_stopping_patience=patience, max_minutes=max_minutes, seed=seed, resume=resume, init_adapter=init_adapter,
        prefix_cache=prefix_cache,
        threads=threads, device=device, dtype=dtype,
    )
    try:
        path = train_sft(settings)
    except (SettingsError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"adapter written to {path}")


@train.command("grpo")
@click.option("--init", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="The adapter to refine: a `memlora train sft` output folder.")
@click.option("--data", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder written by `memlora datagen`: turns are drawn from its train.episodes.jsonl.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Adapter folder to write, e.g. adapters/my-memory-grpo.")
@click.option("--model", default="qwen2.5-coder-0.5b", show_default=True, help="The base model of --init.")
@click.option("--weights-from", type=click.Path(path_type=Path), default=None,
              help="A `memlora eval` folder (or report.json) on validation episodes: draw the kinds of turn "
                   "the adapter gets wrong there more often. Default: every kind equally often.")
@click.option("--max-steps", default=50, show_default=True, help="Optimizer steps.")
@click.option("--turns-per-step", default=2, show_default=True, help="Distinct turns per optimizer step.")
@click.option("--group-size", default=4, show_default=True, help="Rollouts per turn (GRPO's group), at least 2.")
@click.option("--max-new-tokens", default=160, show_default=True, help="Tokens per assistant step.")
@click.option("--agent-steps", default=3, show_default=True, help="Assistant steps per turn.")
@click.option("--temperature", default=1.0, show_default=True)
@click.option("--top-p", default=1.0, show_default=True)
@click.option("--lr", "learning_rate", default=2e-5, show_default=True)
@click.option("--beta", default=0.0, show_default=True, help="KL penalty towards the --init adapter (0: none).")
@click.option("--epsilon", default=0.2, show_default=True, help="Clipping of the probability ratio.")
@click.option("--micro-batch", default=1, show_default=True, help="Rollouts per forward/backward pass.")
@click.option("--save-every", default=10, show_default=True, help="Checkpoint every N optimizer steps.")
@click.option("--max-minutes", type=float, default=None,
              help="Wall-time budget of this run: stop after the optimizer step that passes it, save and write "
                   "the adapter.")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in OUT/checkpoints.")
@click.option("--seed", default=0, show_default=True)
@click.option("--prefix-cache", type=click.Choice(["auto", "adapted", "base", "off"]), default="auto",
              show_default=True,
              help="The shared system prompt + tool block as a KV cache: as the --init adapter was trained (auto), "
                   "computed with the adapter every step (adapted), once by the base model (base), or run in every "
                   "rollout (off).")
@click.option("--turn-prompt-cache/--no-turn-prompt-cache", default=True, show_default=True,
              help="Run each turn's prompt once per group without gradients (like the shared prefix); off: every "
                   "rollout runs it with gradients.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: GPU if there is one).")
@click.option("--dtype", type=click.Choice(["auto", "bf16", "fp32"]), default=None,
              help="Weight dtype. Default: $MEMLORA_DTYPE, else auto.")
def grpo(**options: object) -> None:
    """Reinforcement learning (GRPO) of an adapter on turns played on a real memory store."""
    from memlora.training.grpo import GrpoSettings, train_grpo
    from memlora.training.sampling import ReportError

    try:
        path = train_grpo(GrpoSettings(**options))  # type: ignore[arg-type]
    except (SettingsError, ReportError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"adapter written to {path}")
