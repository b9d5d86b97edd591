"""`memlora export-adapter`: an adapter for llama.cpp, Ollama and vLLM (docs/serving.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from memlora.settings import DEVICE, DTYPE, MODEL, QUIET, hush_progress_bars


@click.command("export-adapter")
@click.argument("adapter", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["gguf", "merged", "peft"]), default="gguf", show_default=True,
              help="gguf: a llama.cpp LoRA adapter; merged: base + adapter in one model (safetensors, and GGUF "
                   "for a bundled model); peft: a plain PEFT LoRA with the token rows as LoRA pairs (vLLM).")
@MODEL(more_help="The adapter's base model.")
@DTYPE(more_help="Used by --check's memlora run; merging always works in fp32 and saves the base model's dtype.")
@DEVICE(more_help="Used by --check's memlora run.")
@QUIET
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: exports/<adapter name>).")
@click.option("--base-gguf", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The GGUF the adapter will run on (default: the bundled model's own).")
@click.option("--prefix", type=click.Choice(["auto", "adapted", "base"]), default="auto", show_default=True,
              help="base: llama.cpp runs the system prompt without the adapter (aLoRA invocation tokens), as "
                   "adapters trained on a base-model prefix cache expect; auto reads the adapter's card.")
@click.option("--check", "check_episodes", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Then compare llama.cpp with memlora's engine on the first step of every user turn of this "
                   "episode file (needs memlora[llamacpp]); writes check.json.")
@click.option("--max-new-tokens", default=256, show_default=True, help="Tokens per first step in --check.")
def export_adapter(adapter: str, fmt: str, model: str, dtype: str | None, device: str | None, quiet: bool,
                   out_dir: str | None, base_gguf: str | None, prefix: str, check_episodes: str | None,
                   max_new_tokens: int) -> None:
    """Write ADAPTER as a llama.cpp LoRA GGUF or merged into its base model, with an Ollama Modelfile."""
    if quiet:
        hush_progress_bars()
    from transformers import AutoTokenizer

    from memlora.agent.loop import opening_invocation
    from memlora.agent.prompt import SYSTEM_PROMPT
    from memlora.models.export import (
        BaseGguf, ExportError, ollama_modelfile, read_adapter, write_lora_gguf, write_merged_gguf,
        write_merged_safetensors, write_peft_lora,
    )
    from memlora.models.loading import BUNDLED, adapter_prefix_cache, bundled_gguf, resolve_model

    name = Path(adapter).name
    out = Path(out_dir or Path("exports") / name)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "peft":
        if check_episodes:
            raise click.UsageError("--check runs llama.cpp: use it with --format gguf or merged")
        try:
            write_peft_lora(read_adapter(adapter), model, out)
        except ExportError as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"wrote {out} (a PEFT LoRA without trainable token rows)")
        return
    if base_gguf is None and model not in BUNDLED:
        raise click.UsageError(f"{model} is not a bundled model: name its GGUF with --base-gguf")
    gguf_path = Path(base_gguf) if base_gguf else bundled_gguf(model)
    mode = adapter_prefix_cache(adapter) if prefix == "auto" else prefix
    try:
        weights = read_adapter(adapter)
        base = BaseGguf(gguf_path)
        family = "gemma" if base.arch.startswith("gemma") else "qwen"
        if fmt == "gguf":
            invocation = None
            if mode == "base":
                invocation = opening_invocation(AutoTokenizer.from_pretrained(str(resolve_model(model))))
            target = out / f"{name}.gguf"
            summary = write_lora_gguf(weights, base, target, invocation=invocation)
            modelfile = ollama_modelfile(str(gguf_path.resolve()), str(target.resolve()), family, SYSTEM_PROMPT) \
                if family == "qwen" else None
        else:
            folder = write_merged_safetensors(model, adapter, out / "merged")
            target = out / f"{name}-merged.gguf"
            summary = {"safetensors": str(folder), **write_merged_gguf(weights, base, target)}
            modelfile = ollama_modelfile(str(target.resolve()), None, family, SYSTEM_PROMPT) if family == "qwen" else None
    except ExportError as error:
        raise click.ClickException(str(error)) from error
    if modelfile:
        (out / "Modelfile").write_text(modelfile)
    click.echo(f"wrote {target} ({json.dumps(summary)})")
    if mode == "base":
        how = ("llama.cpp runs the system prompt without it (aLoRA invocation tokens); Ollama and vLLM apply it to "
               "every token" if fmt == "gguf" else "the merged weights apply it to every token")
        click.echo(f"note: {name} was trained on a base-model system prompt cache: {how}", err=True)
    if check_episodes:
        from memlora.evaluation.llamacpp import compare_first_steps

        if fmt == "gguf":
            report = compare_first_steps(model, adapter, gguf_path, target, check_episodes, max_new_tokens,
                                         device=device, dtype=dtype, invocation=invocation)
        else:
            report = compare_first_steps(model, adapter, target, None, check_episodes, max_new_tokens,
                                         device=device, dtype=dtype)
        (out / "check.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        click.echo(f"llama.cpp ({report['backend']}) vs memlora on {report['turns']} user turns ({report['turns_with_calls']} with calls "
                   f"from memlora): same calls {report['same_calls']}, same tokens {report['same_tokens']}")
