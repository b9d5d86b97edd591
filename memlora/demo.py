"""`memlora demo`: the main job on the embedded defaults.

The bundled model with its adapter talks with one user over five sessions, writing to a fresh
SQLite memory; then a new session (empty chat context, same memory) asks about the earlier
ones. Everything the model does is printed: calls, results, the graph and the answers.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from memlora.settings import model_options

SESSIONS: list[list[str]] = [
    ["Hi, I'm Lena Okafor. I work as a nurse at St. Mary's Hospital.", "I live in Leeds."],
    ["My brother Tobi just moved to Nairobi.", "Can you suggest a name for a book club?"],
    ["We adopted a grey cat called Pebble yesterday!"],
    ["Big change: I left St. Mary's Hospital, I'm now at Leeds General Infirmary."],
    ["I'm allergic to peanuts, by the way.", "What's a good stretch after a long shift?"],
]

QUESTIONS: list[tuple[str, str]] = [
    ("Where do I work now?", "Leeds General Infirmary"),
    ("Which city did my brother move to?", "Nairobi"),
    ("What is my cat called?", "Pebble"),
    ("What am I allergic to?", "peanut"),
]


async def run_demo(model: str, adapter: str | None, store_path: Path, console: Console, device: str | None = None,
                   dtype: str | None = None, quiet: bool = False) -> int:
    from memlora.agent.commands import load_for_chat
    from memlora.agent.engine import SamplingParams
    from memlora.agent.loop import MemoryAgent, build_engine, connect_memory

    console.print(f"[bold]Loading {model}[/] (the first run converts the bundled GGUF and caches it)")
    loaded, adapter_name = load_for_chat(model, adapter, device, dtype, quiet)
    console.print(f"adapter: {adapter_name or 'none (base model)'}; memory: sqlite:{store_path}\n")
    engine = build_engine(loaded, max_batch=1)
    params = SamplingParams(max_new_tokens=256)

    def show_call(call: object) -> None:
        name = getattr(call, "name", None)
        arguments = getattr(call, "arguments", None)
        status = "ok" if getattr(call, "valid", False) and not getattr(call, "is_error", False) else "rejected"
        console.print(f"    [cyan]→ {name}[/] {arguments} [dim]({status})[/]")

    async with connect_memory(store=f"sqlite:{store_path}") as memory:
        agent = MemoryAgent(engine, memory, adapter=adapter_name, params=params, on_call=show_call)
        for number, turns in enumerate(SESSIONS, start=1):
            console.rule(f"session {number}")
            await agent.start_session()
            for user in turns:
                console.print(f"[bold green]user[/]: {user}")
                record = await agent.turn(user)
                console.print(f"[bold magenta]assistant[/]: {record.reply}")

        console.rule("memory after five sessions")
        graph = await memory.read_graph()
        print_graph(graph, console)

        console.rule("new session: questions about earlier sessions")
        right = 0
        table = Table("question", "answer", "expected", "right")
        for question, expected in QUESTIONS:
            await agent.start_session()
            record = await agent.turn(question)
            correct = expected.lower() in (record.reply or "").lower()
            right += correct
            table.add_row(question, record.reply or "", expected, "yes" if correct else "no")
        console.print(table)
        console.print(f"{right}/{len(QUESTIONS)} questions answered from memory")
    engine.close()
    return right


def print_graph(graph: object, console: Console) -> None:
    if not isinstance(graph, dict):
        console.print(graph)
        return
    for entity in graph.get("entities", []):
        console.print(f"  [bold]{entity['name']}[/] ({entity['entityType']}): {entity['observations']}")
    for relation in graph.get("relations", []):
        console.print(f"  {relation['from']} --{relation['relationType']}--> {relation['to']}")


@click.command()
@model_options
@click.option("--store", "store_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="SQLite file for the memory (default: a fresh temporary file).")
def demo(model: str, adapter: str | None, dtype: str | None, device: str | None, quiet: bool,
         store_path: Path | None) -> None:
    """Five sessions with the bundled model and its adapter, then recall questions."""
    console = Console()
    with tempfile.TemporaryDirectory(prefix="memlora-demo-") as folder:
        path = store_path or Path(folder) / "memory.db"
        asyncio.run(run_demo(model, adapter, path, console, device, dtype, quiet))
