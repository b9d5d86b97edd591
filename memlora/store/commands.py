"""`memlora import` and `memlora export`: move a graph between stores without losing anything.

    memlora export --store sqlite:a.db --out b.jsonl     # write the reference JSONL format
    memlora import b.jsonl --store sqlite:a.db            # merge a JSONL file (or a store URL) in

A JSONL file is the reference server's format, so either command also moves memories between
memlora and the reference server.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from memlora.store import default_store_url, open_store
from memlora.store.graph import StoreError
from memlora.store.jsonl import format_graph

_STORE_HELP = "Store URL: sqlite:PATH, jsonl:PATH. Default: jsonl:$MEMORY_FILE_PATH if set, else the user SQLite store."
_allow_other_tables = click.option(
    "--allow-other-tables",
    is_flag=True,
    help="Use SQLite files that hold another program's tables (memlora adds its own and switches them to WAL).",
)


def _source_url(source: str) -> str:
    """A bare path is a JSONL file; anything with a known scheme is a store URL."""
    if source.startswith(("sqlite:", "jsonl:")):
        return source
    if not Path(source).is_file():
        raise click.BadParameter(f"{source} is not a file (or a sqlite:/jsonl: store URL)", param_hint="SOURCE")
    return f"jsonl:{source}"


@click.command("import")
@click.argument("source")
@click.option("--store", "store_url", metavar="URL", help=_STORE_HELP)
@_allow_other_tables
def import_command(source: str, store_url: str | None, allow_other_tables: bool) -> None:
    """Merge the graph in SOURCE (a JSONL file or a store URL) into --store.

    New entities and relations are added, observations of entities already present are merged,
    nothing already in the store is removed.
    """
    target_url = store_url or default_store_url()
    try:
        with open_store(_source_url(source), allow_other_tables=allow_other_tables) as origin:
            graph = origin.read_graph()
        with open_store(target_url, allow_other_tables=allow_other_tables) as target:
            report = target.merge_graph(graph)
    except StoreError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"imported into {target_url}: {report.entities_added} entities, "
        f"{report.observations_added} observations, {report.relations_added} relations added",
        err=True,
    )


@click.command("export")
@click.option("--store", "store_url", metavar="URL", help=_STORE_HELP)
@click.option("--out", "out", default="-", show_default=True, metavar="PATH", help="JSONL file to write; - for stdout.")
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
@_allow_other_tables
def export_command(store_url: str | None, out: str, force: bool, allow_other_tables: bool) -> None:
    """Write the whole graph of --store as a reference-format JSONL file."""
    try:
        with open_store(store_url or default_store_url(), allow_other_tables=allow_other_tables) as store:
            graph = store.read_graph()
    except StoreError as error:
        raise click.ClickException(str(error)) from error
    text = format_graph(graph)
    if out == "-":
        sys.stdout.write(text + ("\n" if text else ""))
        return
    path = Path(out)
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temp file + rename, so an interrupted export never leaves half a file under PATH.
    fd, temp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    os.replace(temp, path)
    click.echo(f"exported {len(graph.entities)} entities and {len(graph.relations)} relations to {path}", err=True)
