"""`memlora records ...`: write, recall, purge, stats, export, import and scenes from the command line.

    memlora records write "saw a red ball on the table" --pose 1.2,3.5,1.57 --mission m-2025-10-15-1
    memlora records recall "where did we see the red ball?" --mission m-2025-10-15-1
    memlora records purge --older-than 30d --mission m-2025-10-15-1
    memlora records stats
    memlora records export --out records.jsonl ; memlora records import records.jsonl --store sqlite:other.db

--store defaults to sqlite:<user data folder>/records.db; MEMORY_BACKEND (or --backend) picks
local, openai or skip. Purge, export and stats never load a model.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from memlora.records.errors import RecordsError
from memlora.settings import ADAPTER, DEVICE, DTYPE, MODEL, QUIET, given, hush_progress_bars

_STORE_HELP = "Records store: sqlite:PATH or sqlite::memory:. Default: sqlite:<user data folder>/records.db."
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds from 90, 90s, 15m, 12h, 30d or 2w."""
    match = _DURATION.match(text.lower())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration such as 3600, 90m, 12h, 30d or 2w", param_hint="--older-than")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(str(error))


@contextmanager
def _errors() -> Iterator[None]:
    """Every problem the records layer explains becomes a one-line error, no traceback."""
    from memlora.routing import RoutingError
    from memlora.records.schema import RecordValidationError

    try:
        yield
    except (RecordsError, RecordValidationError, RoutingError) as error:
        raise _fail(error) from error


def store_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--store", "store_url", metavar="URL", help=_STORE_HELP)(function)


def backend_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--backend", type=click.Choice(["local", "openai", "skip"]), default=None,
                     help="Memory backend; default: $MEMORY_BACKEND, else local."),
        MODEL(more_help="With the openai backend: the chat model (when not given, that backend's own default). "
                        "'none': rules to write, extraction to answer."),
        ADAPTER(more_help="Here one records adapter for writing and recall alike; the shipped ones are "
                          "adapters/<model>-records-writing/ and -records-recall/; without them the base model "
                          "answers with a strict prompt."),
        click.option("--adapter-mode", type=click.Choice(["none", "writing", "recall", "auto"]), default=None,
                     help="Which records adapters are on: none, writing (writes only), recall (answers only) or auto "
                          "(each task its own). Default: $ADAPTER_MODE, else auto."),
        click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Trace file; default $MEMLORA_RECORDS_TRACE, else <store>.traces.jsonl beside the store."),
    ]
    for option in reversed(options):
        function = option(function)
    return store_option(function)


def model_load_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--dtype, --device and --quiet, for the commands that may load the local backend's model."""
    for option in (QUIET, DEVICE, DTYPE):
        function = option(function)
    return function


def _manager(backend: str | None, store_url: str | None, model: str | None, adapter: str | None,
             trace_path: Path | None, mission: str | None = None, adapter_mode: str | None = None,
             device: str | None = None, dtype: str | None = None, quiet: bool = False) -> Any:
    from memlora.records.backends import open_manager

    if quiet:
        hush_progress_bars()
    # --model's default is the local backend's; left at it, each backend picks its own
    chosen = model if given("model") else None
    return open_manager(backend, store_url, model=chosen, adapter=adapter, trace=trace_path, mission=mission,
                        adapter_mode=adapter_mode, device=device, dtype=dtype)


def _plain_store(store_url: str | None, backend: str | None) -> Any:
    """The store without a model (purge, export): refuses when memory is off."""
    from memlora.records.backends import choose_backend, default_records_url, store_path
    from memlora.records.store import RecordStore

    if choose_backend(backend) == "skip":
        raise RecordsError("memory is off (MEMORY_BACKEND=skip): there is no store to use")
    return RecordStore(store_path(store_url or default_records_url()), None)


@click.group("records")
def records() -> None:
    """Memory records: compact observations with semantic recall (docs/records.md)."""


@records.command("write")
@click.argument("text")
@click.option("--pose", metavar="X,Y,YAW", help="Where the agent was: metres, metres, radians in [-pi, pi].")
@click.option("--mission", metavar="ID", help="Mission id (the collection the record joins).")
@click.option("--tag", "tags", multiple=True, metavar="KIND:VALUE", help="Extra tag; repeatable.")
@click.option("--time", "timestamp", type=float, metavar="UNIX_SECONDS", help="When it happened; default now.")
@click.option("--event", metavar="EVENT", help="Force the event instead of the writer's choice.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@backend_options
@model_load_options
def write(text: str, pose: str | None, mission: str | None, tags: tuple[str, ...], timestamp: float | None,
          event: str | None, as_json: bool, store_url: str | None, backend: str | None, model: str,
          adapter: str | None, adapter_mode: str | None, trace_path: Path | None, dtype: str | None,
          device: str | None, quiet: bool) -> None:
    """Turn the observation TEXT into a record and store it."""
    with _errors(), _manager(backend, store_url, model, adapter, trace_path, adapter_mode=adapter_mode,
                             device=device, dtype=dtype, quiet=quiet) as manager:
        result = manager.write(text, pose=pose, mission=mission, tags=tags, timestamp=timestamp, event=event)
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    if result.record is None:
        click.echo("memory is off (MEMORY_BACKEND=skip): nothing stored", err=True)
        return
    record = result.record
    status = "stored" if result.stored else "already stored"
    details = [record.event]
    if record.mission_id:
        details.append(f"mission {record.mission_id}")
    if record.pose:
        details.append(record.pose.short())
    click.echo(f"{status} {record.id} ({result.method}): {record.text}")
    click.echo(f"  {'; '.join(details)}; tags: {', '.join(record.tags) or '-'}")
    for purged in result.purged:
        click.echo(f"  quota removed {purged}", err=True)


@records.command("recall")
@click.argument("question")
@click.option("--mission", metavar="ID", help="Search this mission only (the default scope when given).")
@click.option("--all-missions", "across", is_flag=True, help="Search every mission.")
@click.option("-k", "k", type=int, default=5, show_default=True, help="How many records to retrieve.")
@click.option("--budget", type=int, default=512, show_default=True, metavar="TOKENS",
              help="Token budget for the evidence shown to the answering model.")
@click.option("--since", type=float, metavar="UNIX_SECONDS", help="Only records at or after this time.")
@click.option("--until", type=float, metavar="UNIX_SECONDS", help="Only records before this time.")
@click.option("--tag", "tags", multiple=True, metavar="KIND:VALUE", help="Only records with this tag; repeatable.")
@click.option("--mode", type=click.Choice(["hybrid", "fts", "vector"]), default="hybrid", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print answer, citations, evidence and trace as JSON.")
@backend_options
@model_load_options
def recall(question: str, mission: str | None, across: bool, k: int, budget: int, since: float | None,
           until: float | None, tags: tuple[str, ...], mode: str, as_json: bool, store_url: str | None,
           backend: str | None, model: str, adapter: str | None, adapter_mode: str | None,
           trace_path: Path | None, dtype: str | None, device: str | None, quiet: bool) -> None:
    """Answer QUESTION from the records, citing them as [1], [2]."""
    if mission and across:
        raise click.UsageError("--mission and --all-missions exclude each other")
    with _errors(), _manager(backend, store_url, model, adapter, trace_path, adapter_mode=adapter_mode,
                             device=device, dtype=dtype, quiet=quiet) as manager:
        result = manager.recall(question, k=k, token_budget=budget, mission=mission, across_missions=across,
                                since=since, until=until, tags=tags, mode=mode)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    from memlora.records.answer import when

    click.echo(result.answer)
    for number, record in enumerate(result.evidence, 1):
        where = f"mission {record.mission_id}, " if record.mission_id else ""
        pose = f", {record.pose.short()}" if record.pose else ""
        mark = "*" if record.id in result.citations else " "
        click.echo(f"{mark}[{number}] {record.id} {where}{when(record.timestamp)}{pose}: {record.text}")


@records.command("purge")
@click.option("--older-than", "older_than", metavar="DURATION", help="Delete records older than this (30d, 12h, 3600).")
@click.option("--max-per-mission", type=int, metavar="N", help="Keep at most N records in each mission in scope.")
@click.option("--max-total", type=int, metavar="N", help="Delete records in scope until the store holds at most N.")
@click.option("--order", type=click.Choice(["oldest", "least-recalled"]), default="oldest", show_default=True,
              help="Which records a quota deletes first.")
@click.option("--mission", metavar="ID", help="Delete only inside this mission.")
@click.option("--dry-run", is_flag=True, help="List what would go; delete nothing.")
@click.option("--backend", type=click.Choice(["local", "openai", "skip"]), default=None)
@store_option
def purge(older_than: str | None, max_per_mission: int | None, max_total: int | None, order: str,
          mission: str | None, dry_run: bool, backend: str | None, store_url: str | None) -> None:
    """Retention: delete by age and/or quotas, never outside --mission when it is given."""
    from memlora.records.manager import MemoryManager

    seconds = parse_duration(older_than) if older_than else None
    with _errors():
        with _plain_store(store_url, backend) as store:
            report = MemoryManager(store, None).purge(
                older_than=seconds, max_per_mission=max_per_mission, max_total=max_total,
                order=order.replace("-", "_"), mission=mission, dry_run=dry_run,  # type: ignore[arg-type]
            )
    verb = "would delete" if dry_run else "deleted"
    for record_id in report.deleted:
        click.echo(record_id)
    click.echo(f"{verb} {len(report.deleted)} records; {report.kept if not dry_run else report.kept} in the store"
               + (" now" if not dry_run else ""), err=True)


@records.command("stats")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Trace file to summarise; default the store's.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--backend", type=click.Choice(["local", "openai", "skip"]), default=None)
@store_option
def stats(trace_path: Path | None, as_json: bool, backend: str | None, store_url: str | None) -> None:
    """JSON validity of model writes, success@k, budget compliance, latency; records per mission."""
    from memlora.records.backends import default_records_url, default_trace_path
    from memlora.records.traces import read_traces, summarise

    url = store_url or default_records_url()
    with _errors():
        path = trace_path or default_trace_path(url)
        summary: dict[str, Any] = {"trace": str(path) if path else None}
        summary.update(summarise(read_traces(path)) if path and path.exists() else summarise([]))
        with _plain_store(url, backend) as store:
            summary["missions"] = [m.__dict__ for m in store.missions()]
            summary["records"] = sum(m["records"] for m in summary["missions"])
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    click.echo(_stats_text(summary))


def _rate_text(rate: dict[str, Any]) -> str:
    if not rate["n"]:
        return "n/a (n=0)"
    low, high = rate["ci95"]
    return f"{100 * rate['rate']:.1f}% of {rate['n']} (95% CI {100 * low:.1f}-{100 * high:.1f}%)"


def _stats_text(summary: dict[str, Any]) -> str:
    writes, recalls = summary["writes"], summary["recalls"]
    lines = [
        f"store: {summary['records']} records in {len(summary['missions'])} missions; trace: {summary['trace']}",
        f"writes: {writes['total']} ({', '.join(f'{k} {v}' for k, v in writes['by_method'].items()) or 'none'})",
        f"  model JSON valid per attempt:   {_rate_text(writes['json_valid_per_attempt'])}",
        f"  model record valid per attempt: {_rate_text(writes['record_valid_per_attempt'])}",
        f"  valid at the first attempt:     {_rate_text(writes['record_valid_first_attempt'])}",
        f"  fell back to rules:             {_rate_text(writes['fell_back_to_rules'])}",
        f"recalls: {recalls['total']}",
        f"  success@1 (with expected ids):  {_rate_text(recalls['success@1'])}",
        f"  success@5 (with expected ids):  {_rate_text(recalls['success@5'])}",
        f"  within the token budget:        {_rate_text(recalls['within_budget'])}",
        f"  answers citing a record:        {_rate_text(recalls['answers_with_citations'])}",
    ]
    if recalls["latency_ms_p50"] is not None:
        lines.append(f"  latency p50 / p95:              {recalls['latency_ms_p50']:.1f} / {recalls['latency_ms_p95']:.1f} ms")
    if summary["damaged_lines"]:
        lines.append(f"damaged trace lines skipped: {summary['damaged_lines']}")
    return "\n".join(lines)


@records.command("export")
@click.option("--out", default="-", show_default=True, metavar="PATH", help="JSONL file to write; - for stdout.")
@click.option("--mission", metavar="ID", help="Export this mission only.")
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
@click.option("--backend", type=click.Choice(["local", "openai", "skip"]), default=None)
@store_option
def export(out: str, mission: str | None, force: bool, backend: str | None, store_url: str | None) -> None:
    """Write the records as JSON lines (one record per line, oldest first)."""
    from memlora.records.store import RecordFilter
    from memlora.records.transfer import export_jsonl

    scope = RecordFilter(missions=None if mission is None else (mission,))
    with _errors(), _plain_store(store_url, backend) as store:
        if out == "-":
            count = export_jsonl(store, sys.stdout, scope)
        else:
            path = Path(out)
            if path.exists() and not force:
                raise click.ClickException(f"{path} exists; pass --force to overwrite it")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                count = export_jsonl(store, handle, scope)
            os.replace(temp, path)  # never half a file under PATH
    click.echo(f"exported {count} records", err=True)


@records.command("import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@backend_options
@QUIET
def import_command(source: Path, store_url: str | None, backend: str | None, model: str | None,
                   adapter: str | None, adapter_mode: str | None, trace_path: Path | None, quiet: bool) -> None:
    """Add the records of a JSONL file (every line is checked first; ids already present are kept)."""
    from tqdm import tqdm

    from memlora.records.backends import open_manager
    from memlora.records.transfer import import_jsonl

    with _errors(), open_manager(backend, store_url, model="none", adapter=None, trace=False) as manager:
        if manager.backend == "skip":
            raise RecordsError("memory is off (MEMORY_BACKEND=skip): nothing imported")
        lines = source.read_text(encoding="utf-8").splitlines()
        with tqdm(total=sum(1 for line in lines if line.strip()), unit="record", desc="import", file=sys.stderr,
                  disable=True if quiet else None) as bar:
            report = import_jsonl(manager.store, lines, source=str(source), progress=bar.update)
    click.echo(f"read {report.read} records: {report.added} added, {report.already_present} already present", err=True)


@records.command("scenes")
@click.option("--missions", "per_split", default="40,5,5", show_default=True, metavar="TRAIN,VAL,TEST",
              help="Missions per split.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
def scenes(per_split: str, seed: int, out_dir: Path) -> None:
    """Generate robot-mission scenes: observations, gold records and questions per split."""
    from memlora.records.scenes import write_splits

    try:
        counts = [int(part) for part in per_split.split(",")]
        if len(counts) != 3 or min(counts) < 0:
            raise ValueError
    except ValueError:
        raise click.BadParameter("give three counts, e.g. 40,5,5", param_hint="--missions") from None
    with _errors():
        summary = write_splits(out_dir, dict(zip(("train", "validation", "test"), counts)), seed)
    for split, info in summary.items():
        click.echo(f"{split}: {info['missions']} missions, {info['records']} records, {info['questions']} questions",
                   err=True)


@records.command("datagen")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write: writing/ and recall/ (train and validation rows for `memlora train sft`, "
                   "test items), scenes/test.jsonl and stats.json.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--writing-rows", type=int, default=None,
              help="Training rows of the writing task. Default: as many as --hours of training takes.")
@click.option("--recall-rows", type=int, default=None,
              help="Training rows of the recall task. Default: as many as --hours of training takes.")
@click.option("--hours", type=float, default=1.0, show_default=True,
              help="Training time each task's rows should take at --tokens-per-second (when no row count is given).")
@click.option("--tokens-per-second", type=float, default=25.0, show_default=True,
              help="Training throughput to size the rows by (25: one CPU core of a 2-core box).")
@click.option("--test-scenes", type=int, default=6, show_default=True, help="Held-out test scenes (robots).")
@click.option("--test-missions", type=int, default=2, show_default=True, help="Missions per test scene.")
def datagen(out_dir: Path, seed: int, writing_rows: int | None, recall_rows: int | None, hours: float,
            tokens_per_second: float, test_scenes: int, test_missions: int) -> None:
    """Training rows and test items for the records writing and recall adapters (docs/records.md)."""
    from memlora.data.commands import token_counter
    from memlora.data.records_rows import run_records_datagen

    if hours <= 0 or tokens_per_second <= 0 or test_scenes < 1 or test_missions < 1:
        raise click.BadParameter("--hours and --tokens-per-second must be positive, --test-scenes and "
                                 "--test-missions at least 1")
    counter = token_counter()
    with _errors():
        stats = run_records_datagen(out_dir, seed, writing_rows, recall_rows, hours, tokens_per_second, test_scenes,
                                    test_missions, counter.count, counter.source)
    for task, info in stats["tasks"].items():
        click.echo(f"{task}: {info['train_rows']} train / {info['validation_rows']} validation rows, "
                   f"{info['mean_row_tokens']} tokens a row beyond the {info['prefix_tokens']}-token shared prompt, "
                   f"{info['optimizer_steps']} optimizer steps (grad-accum 8): ~{info['estimated_hours']} h of training "
                   f"at {info['tokens_per_second']:g} tokens/s; {info['test_items']} test items", err=True)
    test = stats["test"]
    click.echo(f"test: {test['scenes']} scenes x {test['missions_per_scene']} missions, {test['write_items']} "
               f"observations, {test['recall_items']} questions ({test['questions_without_support']} without a "
               f"supporting record); tokens counted by {stats['token_counter']}", err=True)


@records.command("eval")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Folder written by `memlora records datagen` (its test items and test scenes).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: report.json, report.md, the stores written, traces; a rerun skips finished parts.")
@MODEL
@DTYPE
@DEVICE
@QUIET
@click.option("--writing-adapter", default=None,
              help="Writing adapter to score against the base model; default the shipped one; 'none': base only.")
@click.option("--recall-adapter", default=None,
              help="Recall adapter to score against the base model; default the shipped one; 'none': base only.")
@click.option("--modes", default="none,writing,recall,auto", show_default=True,
              help="Routing modes for the end-to-end part.")
@click.option("--parts", default="writing,recall,e2e", show_default=True, help="Which parts to run.")
@click.option("--scenes", "max_scenes", type=int, default=None, help="Only the first N test scenes (and their items).")
@click.option("--serving", type=click.Choice(["dynamic", "merged"]), default="dynamic", show_default=True,
              help="Adapters on one base (dynamic) or merged into copies of it (merged).")
@click.option("--batch", type=int, default=8, show_default=True, help="Observations or questions per model batch.")
@click.option("-k", "k", type=int, default=5, show_default=True, help="Records retrieved per question (end to end).")
@click.option("--budget", type=int, default=512, show_default=True, help="Evidence token budget (end to end).")
@click.option("--rules/--no-rules", "with_rules", default=True, show_default=True,
              help="Also score the rule-based writer and extractive answers (no model; seconds).")
def eval_command(data_dir: Path, out_dir: Path, model: str, dtype: str | None, device: str | None, quiet: bool,
                 writing_adapter: str | None, recall_adapter: str | None, modes: str, parts: str,
                 max_scenes: int | None, serving: str, batch: int, k: int, budget: int, with_rules: bool) -> None:
    """Score the records adapters against the base model with strict prompts: writing, recall, end to end."""
    from memlora.evaluation.memory_records import MODES, evaluate
    from memlora.records.chat import LocalChatModel
    from memlora.records.embedding import MiniLMEmbedder
    from memlora.records.items import read_recall_items, read_write_items
    from memlora.records.scenes import load_scenes
    from memlora.routing import shipped_adapter

    chosen_modes = [m.strip() for m in modes.split(",") if m.strip()]
    chosen_parts = [p.strip() for p in parts.split(",") if p.strip()]
    if not set(chosen_modes) <= set(MODES) or not set(chosen_parts) <= {"writing", "recall", "e2e"} or batch < 1:
        raise click.BadParameter(f"--modes takes {', '.join(MODES)}; --parts takes writing, recall, e2e; --batch >= 1")
    if quiet:
        hush_progress_bars()
    adapters: dict[str, str] = {}
    for role, asked in (("writing", writing_adapter), ("recall", recall_adapter)):
        path = shipped_adapter(model, role) if asked is None else (None if asked == "none" else asked)
        if path is not None:
            if not (Path(path) / "adapter_config.json").exists():
                raise click.BadParameter(f"{path}: no adapter_config.json there", param_hint=f"--{role}-adapter")
            adapters[role] = path
    scenes = load_scenes(data_dir / "scenes" / "test.jsonl")[:max_scenes]
    kept = {s.id for s in scenes}
    writes = [i for i in read_write_items(data_dir / "writing" / "test.items.jsonl") if i.id.rsplit("-o", 1)[0] in kept]
    recalls = [i for i in read_recall_items(data_dir / "recall" / "test.items.jsonl")
               if i.question["id"].rsplit("-q", 1)[0] in kept]
    runs = 2 if "writing" in adapters else 1
    click.echo(f"{len(scenes)} test scenes: {len(writes)} observations, {len(recalls)} questions; adapters: "
               f"{adapters or 'none (base model only)'}; model calls, about: writing {runs * len(writes)}, "
               f"recall {(2 if 'recall' in adapters else 1) * len(recalls)}, end to end "
               f"{len(chosen_modes) * sum(len(s.questions) for s in scenes)}", err=True)
    chat = LocalChatModel(model, adapters=adapters, serving=serving, device=device, dtype=dtype)
    with _errors():
        evaluate(model=chat, scenes=scenes, write_items=writes, recall_items=recalls, out=out_dir,
                 embedder=MiniLMEmbedder(), modes=chosen_modes, parts=chosen_parts, k=k, budget=budget, batch=batch,
                 with_rules=with_rules, log=lambda line: click.echo(line, err=True))
    click.echo((out_dir / "report.md").read_text())
