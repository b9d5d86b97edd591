"""`memlora eval` and `memlora compare`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import click

from memlora.evaluation.episodes import EpisodeFileError, load_episodes
from memlora.settings import MACHINE_LOG, given, hush_progress_bars, model_options


@click.command("eval")
@click.argument("episodes_path", metavar="EPISODES.jsonl", type=click.Path(exists=True, dir_okay=False))
@model_options
@click.option("--server", "server", default=None,
              help="Memory server command (stdio); {store} is replaced by a fresh file per episode. "
                   "Default: memlora's server in process on a fresh in-memory store.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder (resumable).")
@click.option("--oracle", is_flag=True, help="Replay the episodes' reference calls instead of running a model.")
@click.option("--reference-memory", is_flag=True,
              help="Replay the reference calls for every session and ask only the probes of the model: "
                   "probe accuracy on a perfect memory (reading alone, without writing).")
@click.option("--concurrency", default=32, show_default=True, help="Episodes played at once (batched in the model).")
@click.option("--max-steps", default=6, show_default=True, help="Assistant steps per user turn.")
@click.option("--max-new-tokens", default=512, show_default=True, help="Tokens per assistant step.")
@click.option("--limit", default=None, type=int, help="Only the first N episodes of the file.")
@click.option("--endpoint", default=None,
              help="Score an OpenAI-compatible endpoint with tool calling instead of a local model, e.g. "
                   "http://127.0.0.1:8000/v1 (memlora api) or a hosted API; needs --endpoint-model.")
@click.option("--endpoint-model", default=None, help="The model name to ask the endpoint for.")
@click.option("--endpoint-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Environment variable holding the endpoint's API key (never passed on the command line).")
@click.option("--rescore", is_flag=True,
              help="Score the episodes already finished in --out again under the current rules; loads no model.")
def eval_command(
    episodes_path: str, model: str, adapter: str | None, dtype: str | None, device: str | None, quiet: bool,
    server: str | None, out_dir: str, oracle: bool, reference_memory: bool, concurrency: int, max_steps: int,
    max_new_tokens: int, limit: int | None, rescore: bool, endpoint: str | None = None,
    endpoint_model: str | None = None, endpoint_key_env: str = "OPENAI_API_KEY",
) -> None:
    """Score a model (and adapter), or the oracle, on an episode file; writes report.* to --out.

    With --reference-memory the reference calls write the memory and the model answers only
    the probes: graph scores are then the reference's, every other score the model's probes'.

    Interrupt it any time: rerun the same command to go on where it stopped.
    """
    from memlora.evaluation.metrics import oracle_can_score, score_run
    from memlora.evaluation.report import write_report
    from memlora.files import sha256_file
    from memlora.evaluation.runner import (
        AgentPlayer, OraclePlayer, ReferenceMemoryPlayer, ResumeMismatchError, RunConfig, run_episodes,
    )

    # The file is checked before anything heavy is loaded: a typo must not cost a model load.
    try:
        episodes = load_episodes(episodes_path)
    except EpisodeFileError as error:
        raise click.ClickException(str(error)) from error
    if limit is not None:
        episodes = episodes[:limit]
    for episode in episodes:
        for note in episode.notes:
            click.echo(f"warning: {episodes_path}: {note}", err=True)
    if rescore:
        _rescore(episodes_path, episodes, Path(out_dir))
        return
    model_given = given("model")  # --model has a default: only one typed here conflicts with the modes below
    if oracle and (model_given or adapter):
        raise click.UsageError("--oracle replays reference calls: it takes no --model or --adapter")
    if oracle and reference_memory:
        raise click.UsageError("--reference-memory asks the probes of a model: it does not go with --oracle")
    if reference_memory:
        # oracle_can_score looks at every session up to the one it is given: the last covers all
        incomplete = [e.id for e in episodes if not oracle_can_score(e, len(e.sessions) - 1)]
        if incomplete:
            click.echo(f"warning: {len(incomplete)} episodes (first: {incomplete[0]}) have sessions without "
                       "reference calls: their probes are asked on a memory missing what those sessions hold",
                       err=True)
    if endpoint or endpoint_model:
        if not (endpoint and endpoint_model):
            raise click.UsageError("--endpoint and --endpoint-model go together")
        if oracle or model_given or adapter or device or dtype:
            raise click.UsageError("--endpoint scores a remote model: it takes no --oracle, --model, --adapter, "
                                   "--device or --dtype")
    if not oracle and not endpoint:
        from memlora.models.loading import choose_adapter

        try:
            adapter = choose_adapter(model, adapter)
        except FileNotFoundError as error:
            raise click.BadParameter(str(error), param_hint="--adapter") from error
    player: Any
    engine = None
    weights_dtype = None
    if oracle:
        player = OraclePlayer()
    elif endpoint:
        import os

        from memlora.agent.endpoint import ChatEndpoint
        from memlora.agent.engine import SamplingParams

        remote = ChatEndpoint(endpoint, endpoint_model, api_key=os.environ.get(endpoint_key_env))
        player = AgentPlayer(remote, params=SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0),
                             max_steps=max_steps)
        if reference_memory:
            player = ReferenceMemoryPlayer(player)
        model = endpoint_model
    else:
        from memlora.agent.engine import SamplingParams
        from memlora.agent.loop import build_engine
        from memlora.models.loading import adapter_name, load_model

        if quiet:
            hush_progress_bars()
        loaded = load_model(model, adapters=adapter, device=device, dtype=dtype)
        weights_dtype = str(next(loaded.model.parameters()).dtype).removeprefix("torch.")
        engine = build_engine(loaded, max_batch=max(1, concurrency))
        logging.getLogger(MACHINE_LOG).info(
            f"{concurrency} episodes at once, decoded in one continuous batch; conversation cache "
            f"{engine.conversations.budget_tokens:,} tokens")
        player = AgentPlayer(
            engine, adapter=adapter_name(adapter) if adapter else None,
            params=SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0), max_steps=max_steps,
        )
        if reference_memory:
            player = ReferenceMemoryPlayer(player)
    config = RunConfig(
        episodes=str(episodes_path), episodes_sha256=sha256_file(episodes_path),
        model=None if oracle else model, adapter=adapter, server=server, oracle=oracle, dtype=weights_dtype,
        max_steps=None if oracle else max_steps, max_new_tokens=None if oracle else max_new_tokens,
        reference_memory=reference_memory, endpoint=endpoint,
    )
    out = Path(out_dir)
    try:
        records = asyncio.run(
            run_episodes(episodes, player, out, config, concurrency=concurrency, progress=not quiet)
        )
    except ResumeMismatchError as error:
        raise click.ClickException(str(error)) from error
    finally:
        if engine is not None:  # on Ctrl-C too: stop the batch being decoded, or exit waits for it
            engine.close()
    details, summary = score_run(episodes, {r.id: r for r in records}, oracle=oracle,
                                 max_new_tokens=config.max_new_tokens, reference_memory=reference_memory)
    write_report(out, config.to_dict(), summary, details)
    click.echo((out / "report.md").read_text(encoding="utf-8"))


def _rescore(episodes_path: str, episodes: list[Any], out: Path) -> None:
    """Writes report.* again from a run's results.jsonl, for a scorer that changed since."""
    import json

    from memlora.evaluation.metrics import score_run
    from memlora.evaluation.report import write_report
    from memlora.evaluation.runner import RUN_FILE, load_results
    from memlora.files import sha256_file

    if not (out / RUN_FILE).exists():
        raise click.ClickException(f"--rescore: {out / RUN_FILE} not found: no run to score there")
    config = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    if config.get("episodes_sha256") != sha256_file(episodes_path):
        raise click.ClickException(f"--rescore: {out} holds a run of another episode file ({config.get('episodes')})")
    records = load_results(out)
    missing = [e.id for e in episodes if e.id not in records]
    if missing:
        click.echo(f"warning: {len(missing)} of {len(episodes)} episodes have no result in {out} yet "
                   f"(first: {missing[0]}); they score as empty", err=True)
    details, summary = score_run(episodes, records, oracle=bool(config.get("oracle")),
                                 max_new_tokens=config.get("max_new_tokens"),
                                 reference_memory=bool(config.get("reference_memory")))
    write_report(out, config, summary, details)
    click.echo((out / "report.md").read_text(encoding="utf-8"))


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
def compare(run_dirs: tuple[str, ...]) -> None:
    """Put several `memlora eval` output folders side by side (markdown table)."""
    from memlora.evaluation.report import compare_table

    try:
        click.echo(compare_table([Path(d) for d in run_dirs]), nl=False)
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from error
