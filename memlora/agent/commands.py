"""`memlora chat` and `memlora replay`: the agent from the command line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import click

from memlora.settings import MACHINE_LOG, hush_progress_bars, model_options


def load_for_chat(model: str, adapter: str | None, device: str | None = None, dtype: str | None = None,
                  quiet: bool = False) -> tuple[Any, str | None]:
    """The model with its adapter attached, and the adapter name to pick per call."""
    from memlora.models.loading import adapter_name, choose_adapter, load_model

    if quiet:
        hush_progress_bars()
    chosen = choose_adapter(model, adapter)
    if chosen is None:
        return load_model(model, device=device, dtype=dtype), None
    return load_model(model, adapters=[chosen], device=device, dtype=dtype), adapter_name(chosen)


def load_llamacpp_engine(model: str, adapter: str | None, threads: int | None, backend: str,
                         quiet: bool = False) -> tuple[Any, str | None]:
    """The bundled model on llama.cpp with its adapter exported to GGUF; says what it chose."""
    from memlora.agent.llamacpp_engine import LlamaCppEngine
    from memlora.models.loading import choose_adapter, cpu_description

    if quiet:
        hush_progress_bars()
    try:
        engine = LlamaCppEngine(model, choose_adapter(model, adapter), threads=threads, backend=backend)
    except (ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from error
    logging.getLogger(MACHINE_LOG).info(f"{cpu_description()}: {engine.describe()}")
    return engine, engine.adapter


def _show_call(call: Any) -> None:
    status = "ok" if call.valid and not call.is_error else "rejected" if not call.executed else "error"
    arguments = json.dumps(call.arguments, ensure_ascii=False) if call.arguments is not None else "?"
    click.secho(f"  -> {call.name}({arguments}) [{call.parse_mode}, {status}]", fg="cyan")
    result = call.result if len(call.result) < 400 else call.result[:400] + "..."
    click.secho(f"  <- {result}", fg="red" if call.is_error else "green")


def _sampling(temperature: float, seed: int | None, max_new_tokens: int) -> Any:
    from memlora.agent.engine import SamplingParams

    return SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)


sampling_options = [
    click.option("--temperature", default=0.0, show_default=True, help="0 means greedy."),
    click.option("--seed", type=int, default=None, help="Seed for sampling."),
    click.option("--max-new-tokens", default=512, show_default=True),
    click.option("--max-steps", default=6, show_default=True, help="Model steps per user turn."),
]


def with_sampling(function: Any) -> Any:
    for option in reversed(sampling_options):
        function = option(function)
    return function


def _history_file(store: str | None) -> Path:
    """Where `chat` keeps the current session's chat context, one file per store."""
    import hashlib

    from memlora.models.loading import cache_root

    key = hashlib.sha256((store or "default").encode()).hexdigest()[:12]
    return cache_root() / "chat" / f"{key}.json"


@click.command()
@model_options
@click.option("--store", default=None, help="Store URL (sqlite:PATH, jsonl:PATH). Default: memlora's user store.")
@click.option("--server", "server_command", default=None, help="Use another memory MCP server, run as this command.")
@click.option("--session", "new_session", is_flag=True, help="Start a fresh session (empty chat context, same memory).")
@click.option("--runtime", type=click.Choice(["memlora", "llamacpp"]), default="memlora", show_default=True,
              help="memlora: the torch engine (--dtype, --device). llamacpp: the bundled GGUF on llama.cpp, the "
                   "adapter exported to a LoRA GGUF on first use; faster for one conversation on a CPU.")
@click.option("--llamacpp-backend", type=click.Choice(["auto", "llama-cpp-python", "xllamacpp"]), default="auto",
              show_default=True, help="llama.cpp binding; auto: llama-cpp-python when installed, else xllamacpp.")
@click.option("--threads", type=int, default=None, help="llama.cpp threads (default: every core).")
@with_sampling
def chat(model: str, adapter: str | None, dtype: str | None, device: str | None, quiet: bool, store: str | None,
         server_command: str | None, new_session: bool, runtime: str, llamacpp_backend: str, threads: int | None,
         temperature: float, seed: int | None, max_new_tokens: int, max_steps: int) -> None:
    """Talk to the model; it keeps what you tell it in its memory. /new starts a new session, /quit leaves."""
    from memlora.agent.loop import MemoryAgent, build_engine, connect_memory

    if runtime == "llamacpp":
        engine, adapter_name = load_llamacpp_engine(model, adapter, threads, llamacpp_backend, quiet)
    else:
        loaded, adapter_name = load_for_chat(model, adapter, device, dtype, quiet)
        engine = build_engine(loaded)
    history = _history_file(store if not server_command else server_command)

    async def run() -> None:
        async with connect_memory(store=store, command=server_command) as memory:
            agent = MemoryAgent(engine, memory, adapter=adapter_name, params=_sampling(temperature, seed, max_new_tokens),
                                max_steps=max_steps, on_call=_show_call)
            if not new_session and history.exists():
                agent.messages = json.loads(history.read_text())
                click.secho("(continuing the last session; --session or /new starts a fresh one)", dim=True)
            else:
                graph = await agent.start_session()
                click.secho(f"(new session; memory: {graph[:300]})", dim=True)
            while True:
                try:
                    user = await asyncio.to_thread(input, "you> ")
                except (EOFError, KeyboardInterrupt):
                    break
                if user.strip() in ("/quit", "/exit"):
                    break
                if user.strip() == "/new":
                    await agent.start_session()
                    click.secho("(new session)", dim=True)
                    continue
                if not user.strip():
                    continue
                record = await agent.turn(user)
                click.echo(f"assistant> {record.reply}" if record.stop == "reply" else "(step limit reached)")
                history.parent.mkdir(parents=True, exist_ok=True)
                history.write_text(json.dumps(agent.messages, ensure_ascii=False))

    try:
        asyncio.run(run())
    finally:
        engine.close()  # on Ctrl-C too: stop the batch being decoded


async def replay_episode(episode: dict[str, Any], engine: Any, adapter: str | None, params: Any, max_steps: int,
                         store: str, server_command: str | None, probes: bool) -> list[str]:
    """Plays one episode's user turns (and its probes) against a fresh memory; returns the log lines."""
    from memlora.agent.loop import MemoryAgent, connect_memory

    lines = [f"=== episode {episode['id']}"]
    with tempfile.TemporaryDirectory() as scratch:
        env = {"MEMORY_FILE_PATH": os.path.join(scratch, "memory.jsonl")}
        async with connect_memory(store=store, command=server_command, env=env) as memory:
            agent = MemoryAgent(engine, memory, adapter=adapter, params=params, max_steps=max_steps)
            for session in episode["sessions"]:
                lines.append(f"--- session {session['id']}")
                await agent.start_session()
                for turn in session["turns"]:
                    record = await agent.turn(turn["user"])
                    lines.append(f"user> {turn['user']}")
                    for call in record.calls:
                        status = "ok" if call.valid and not call.is_error else "rejected" if not call.executed else "error"
                        lines.append(f"  -> {call.name}({json.dumps(call.arguments, ensure_ascii=False)}) "
                                     f"[{call.parse_mode}, {status}]")
                        lines.append(f"  <- {call.result}")
                    tokens = sum(s.completion_tokens for s in record.steps)
                    lines.append(f"assistant> {record.reply if record.stop == 'reply' else '(step limit)'}"
                                 f"   [{len(record.steps)} steps, {tokens} tokens, {record.seconds:.1f}s]")
                for probe in episode.get("probes", []) if probes else []:
                    if probe["after"] != session["id"]:
                        continue
                    await agent.start_session()
                    record = await agent.turn(probe["question"])
                    lines.append(f"probe> {probe['question']}  (expected: {probe['answers'] or 'not known'})")
                    for call in record.calls:
                        lines.append(f"  -> {call.name}({json.dumps(call.arguments, ensure_ascii=False)})")
                    lines.append(f"assistant> {record.reply}")
            graph = await memory.read_graph()
            lines.append("final graph: " + json.dumps(graph, ensure_ascii=False))
    return lines


@click.command()
@click.argument("episodes", type=click.Path(exists=True, dir_okay=False))
@model_options
@click.option("--store", default="sqlite::memory:", show_default=True,
              help="Store URL for memlora's server; each episode starts from a fresh in-memory store by default.")
@click.option("--server", "server_command", default=None,
              help="Use another memory MCP server run as this command, e.g. "
                   "'npx -y @modelcontextprotocol/server-memory' (a fresh MEMORY_FILE_PATH per episode).")
@click.option("--probes/--no-probes", default=True, show_default=True, help="Also ask each episode's probe questions.")
@click.option("--concurrency", default=8, show_default=True, help="Episodes played at once (batched generation).")
@with_sampling
def replay(episodes: str, model: str, adapter: str | None, dtype: str | None, device: str | None, quiet: bool,
           store: str, server_command: str | None, probes: bool, concurrency: int, temperature: float,
           seed: int | None, max_new_tokens: int, max_steps: int) -> None:
    """Play the user turns of EPISODES.jsonl; print each call, its result and the final graph."""
    from memlora.agent.loop import build_engine

    loaded, adapter_name = load_for_chat(model, adapter, device, dtype, quiet)
    engine = build_engine(loaded)
    items = [json.loads(line) for line in Path(episodes).read_text().splitlines() if line.strip()]
    params = _sampling(temperature, seed, max_new_tokens)

    async def run() -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(episode: dict[str, Any]) -> list[str]:
            async with gate:
                return await replay_episode(episode, engine, adapter_name, params, max_steps, store,
                                            server_command, probes)

        for lines in await asyncio.gather(*(one(e) for e in items)):
            click.echo("\n".join(lines))

    try:
        asyncio.run(run())
    finally:
        engine.close()  # on Ctrl-C too: stop the batch being decoded
