"""`memlora datagen`: episodes and training rows for every split, with a stats report."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import click
import orjson

from memlora.agent.prompt import session_opening
from memlora.data import vocab
from memlora.settings import QUIET

SPLIT_SHARES = {"train": 0.8, "validation": 0.1, "test": 0.1}
ROW_SPLITS = ("train", "validation")  # the test split is for evaluation only: no rows
TOKEN_SAMPLE = 8
WRITE_BUFFER = 1 << 20  # bytes; train rows run to hundreds of MB


def split_counts(total: int) -> dict[str, int]:
    """Episodes per split: 80/10/10, at least one validation and test episode once total >= 3."""
    held = 0 if total < 3 else max(1, round(total * SPLIT_SHARES["test"]))
    return {"train": total - 2 * held, "validation": held, "test": held}


@dataclass
class EpisodeOutput:
    """What a worker sends back: the episode's JSON line, each row's line up to its tool block
    (`rows.row_head`; the parent appends the shared block), the rows' token counts (sampled
    episodes only) and the counts the report needs. Lines are UTF-8 bytes, written as they come."""

    episode_line: bytes
    row_heads: list[bytes]
    row_tokens: list[int]
    stats: dict[str, Any] = field(default_factory=dict)


def _dumps(value: Any) -> str:
    """Compact JSON keeping non-ASCII: the text json.dumps(value, ensure_ascii=False,
    separators=(",", ":")) gives, from orjson (several times faster)."""
    return orjson.dumps(value).decode()


# The kinds of turn the report counts: what the data must teach beyond plain statements.
TURN_KINDS = ("recovery", "multi_fact", "buried", "free_form", "no_memory", "retrieval", "update", "correct",
              "forget", "pronoun", "kin_word")
WRITE_TOOLS = {"create_entities", "create_relations", "add_observations", "delete_entities", "delete_observations",
               "delete_relations"}


def turn_kinds(turn: Any) -> set[str]:
    """The report's kinds of one turn (a generator GenTurn): a recovery from a tool error, a
    message with three facts or more, a fact buried in a request, a free-form detail, no memory
    operation, a retrieval, a change, a pronoun for the previous turn's person, a kin word."""
    provenance = turn.provenance
    kinds = {name for name in ("buried", "free_form", "pronoun", "kin_word") if provenance.get(name)}
    if turn.attempt is not None:
        kinds.add("recovery")
    if provenance.get("facts", 0) >= 3:
        kinds.add("multi_fact")
    if not turn.calls:
        kinds.add("no_memory")
    if turn.retrieval:
        kinds.add("retrieval")
    if provenance["action"] in ("update", "correct", "forget"):
        kinds.add(provenance["action"])
    return kinds


def _generate(job: tuple[int, str, int]) -> EpisodeOutput:
    from memlora.data.generator import generate_episode
    from memlora.data.rows import row_head, session_messages

    seed, split, index = job
    generated = generate_episode(seed, split, index)  # type: ignore[arg-type]
    conversations = [session_messages(s) for s in generated.sessions] if split in ROW_SPLITS else []
    stats: dict[str, Any] = {
        "sessions": len(generated.sessions),
        "turns_per_session": [len(s.turns) for s in generated.sessions],
        "tools": Counter(c["name"] for s in generated.sessions for t in s.turns for c in t.calls),
        "actions": Counter(t.provenance["action"] for s in generated.sessions for t in s.turns),
        "facts": Counter(_fact_label(f) for s in generated.sessions for f in s.learn),
        "retracts": Counter(_fact_label(f) for s in generated.sessions for f in s.retract),
        "probes": Counter(p["kind"] for p in generated.episode["probes"]),
        "typos": sum(t.provenance.get("typo", False) for s in generated.sessions for t in s.turns),
        "casual": sum(t.provenance.get("casual", False) for s in generated.sessions for t in s.turns),
        "unnamed": generated.episode["user"]["name"] is None,
        "kinds": Counter(k for s in generated.sessions for t in s.turns for k in turn_kinds(t)),
        "row_kinds": Counter(k for s in generated.sessions if split in ROW_SPLITS
                             for k in set().union(*(turn_kinds(t) for t in s.turns))),
        "writing_turns": sum(any(c["name"] in WRITE_TOOLS for c in t.calls)
                             for s in generated.sessions for t in s.turns),
        "recoveries": Counter(t.provenance["recovery"] for s in generated.sessions for t in s.turns
                              if t.attempt is not None),
    }
    # token lengths are measured on every TOKEN_SAMPLE-th episode: tokenising every row would
    # cost more than generating it. Workers count them, so the parent only writes.
    sampled = index % TOKEN_SAMPLE == 0
    tokens = token_counter().count_rows([_row_text(m) for m in conversations]) if sampled else []
    return EpisodeOutput(orjson.dumps(generated.episode, option=orjson.OPT_APPEND_NEWLINE),
                         [row_head(m) for m in conversations], tokens, stats)


def _fact_label(fact: dict[str, Any]) -> str:
    if fact["kind"] == "relation":
        return f"relation:{fact['type'][0]}"
    if fact["kind"] == "entity":
        return f"entity:{fact['type'][0]}" if fact.get("type") else "entity"
    return "observation"


def _row_text(messages: list[dict[str, Any]]) -> str:
    """The text of a row the tokenizer counts: contents and call JSON (not the template's markup)."""
    parts = []
    for m in messages:
        parts.append(m.get("content") or "")
        for call in m.get("tool_calls", []):
            parts.append(_dumps(call["function"]))
    return "\n".join(parts)


# the text every row's `_row_text` starts with: the system prompt and the runtime's opening call
ROW_TEXT_PREFIX = _row_text(session_opening({"entities": [], "relations": []})[:2]) + "\n"


def model_cache_root() -> Path:
    """memlora.models.loading.cache_root, without importing that module: it imports torch
    (seconds), which counting tokens does not need. A test checks that the two agree."""
    if os.environ.get("MEMLORA_CACHE"):
        return Path(os.environ["MEMLORA_CACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("memlora"))


class TokenCounter:
    """Qwen's tokenizer when its tokenizer.json is in memlora's model cache, else characters / CHARS_PER_TOKEN."""

    CHARS_PER_TOKEN = 3.6

    def __init__(self) -> None:
        self.tokenizer: Any = None
        self.prefix_tokens: int | None = None
        self.source = f"approximation: characters / {self.CHARS_PER_TOKEN}"
        try:
            from tokenizers import Tokenizer

            path = model_cache_root() / "models" / "qwen2.5-coder-0.5b" / "tokenizer.json"
            if path.is_file():
                self.tokenizer = Tokenizer.from_file(str(path))
                self.source = f"Qwen2.5 tokenizer ({path})"
        except Exception:  # noqa: BLE001 - any failure falls back to the approximation
            self.tokenizer = None

    def count(self, texts: list[str]) -> list[int]:
        if self.tokenizer is None:
            return [round(len(t) / self.CHARS_PER_TOKEN) for t in texts]
        return [len(self.tokenizer.encode(t, add_special_tokens=False).ids) for t in texts]

    def count_rows(self, texts: list[str]) -> list[int]:
        """`count` for `_row_text` texts, tokenising their shared opening once.

        Every row's text starts with ROW_TEXT_PREFIX (system prompt, opening call), a large share
        of its tokens. It ends in `}}` and a newline, a piece Qwen's pre-tokenizer closes whatever
        follows, and BPE never merges across pieces: a row's count is the prefix's count plus
        the rest's. A test checks that against whole-text counts on generated rows.
        """
        if self.tokenizer is None:
            return self.count(texts)
        if self.prefix_tokens is None:
            self.prefix_tokens = self.count([ROW_TEXT_PREFIX])[0]
        cut = len(ROW_TEXT_PREFIX)
        counts = []
        for text in texts:
            if text.startswith(ROW_TEXT_PREFIX):
                counts.append(self.prefix_tokens + self.count([text[cut:]])[0])
            else:
                counts.append(self.count([text])[0])
        return counts


@lru_cache(maxsize=1)
def token_counter() -> TokenCounter:
    """This process's counter, made once: loading the tokenizer is not free."""
    return TokenCounter()


def _percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"min": ordered[0], "mean": round(sum(ordered) / len(ordered), 1), "p50": at(0.5), "p90": at(0.9),
            "p99": at(0.99), "max": ordered[-1]}


class CorpusError(click.ClickException):
    """A hand-written episode failed its check: datagen stops before writing anything."""


@dataclass
class Handwritten:
    """The hand-written corpus, checked: train-split episodes become rows, test-split ones a
    held-out episode file (memlora.data.handwritten.corpus_split)."""

    folder: Path
    files: int
    train: list[Any]
    test: list[Any]


def load_handwritten(folder: Path) -> Handwritten:
    """Checks every episode of `folder`/*.jsonl; raises CorpusError listing the problems."""
    from memlora.data.handwritten import check_corpus, corpus_files, corpus_split

    paths = corpus_files(folder)
    good, problems = check_corpus(paths)
    if problems:
        raise CorpusError(f"{len(problems)} hand-written episode(s) in {folder} fail the check "
                          "(`memlora corpus check`):\n" + "\n".join(problems))
    return Handwritten(folder, len(paths), [e for e in good if corpus_split(e.episode["id"]) == "train"],
                       [e for e in good if corpus_split(e.episode["id"]) == "test"])


def run_datagen(episodes: int, seed: int, out: Path, workers: int, progress: bool = True,
                handwritten: Path | None = None) -> dict[str, Any]:
    """Generates every split into `out` and returns the stats (also written to stats.json).

    Workers generate and serialise episodes and count the sampled rows' tokens; this process
    writes them in job order (so the bytes do not depend on the worker count) and appends the
    shared tool block to each row. Its own start-up work (listing the tools from the server,
    loading the tokenizer for the tool block's count) runs after the workers have started.

    `handwritten`: a corpus folder, checked first; its train-split episodes' rows follow the
    generated train rows (the trainer shuffles), its test-split episodes go to
    handwritten-test.episodes.jsonl.
    """
    started = time.perf_counter()
    from tqdm import tqdm

    import memlora.data.generator  # noqa: F401 - imported before forking, so workers inherit it
    from memlora.agent.protocol import model_tools
    from memlora.data.rows import row_head, row_tail, session_messages

    corpus = load_handwritten(handwritten) if handwritten is not None else None
    out.mkdir(parents=True, exist_ok=True)
    counts = split_counts(episodes)
    jobs = [(seed, split, i) for split in vocab.SPLITS for i in range(counts[split])]
    totals: dict[str, Counter] = {k: Counter() for k in ("tools", "actions", "facts", "retracts", "probes", "kinds",
                                                         "row_kinds", "recoveries")}
    turns_per_session: list[int] = []
    sessions: list[int] = []
    token_lengths: list[int] = []
    typos = casual = unnamed = turns = writing_turns = handwritten_rows = 0
    rows = Counter()
    pool = None
    files: dict[str, Any] = {}
    row_files: dict[str, Any] = {}
    try:
        if workers > 1:
            pool = multiprocessing.get_context("fork" if os.name == "posix" else "spawn").Pool(workers)
            results = pool.imap(_generate, jobs, chunksize=16)
        else:
            results = map(_generate, jobs)
        tools = model_tools()
        tail = row_tail(tools)
        counter = token_counter()
        files = {split: (out / f"{split}.episodes.jsonl").open("wb", buffering=WRITE_BUFFER) for split in vocab.SPLITS}
        row_files = {split: (out / f"{split}.rows.jsonl").open("wb", buffering=WRITE_BUFFER) for split in ROW_SPLITS}
        for job, result in tqdm(zip(jobs, results), total=len(jobs), desc="episodes", disable=not progress,
                                unit="ep"):
            split = job[1]
            files[split].write(result.episode_line)
            for head in result.row_heads:
                row_files[split].write(head)
                row_files[split].write(tail)
            rows[split] += len(result.row_heads)
            token_lengths.extend(result.row_tokens)
            s = result.stats
            for key in totals:
                totals[key].update(s[key])
            turns_per_session.extend(s["turns_per_session"])
            sessions.append(s["sessions"])
            turns += sum(s["turns_per_session"])
            typos += s["typos"]
            casual += s["casual"]
            unnamed += s["unnamed"]
            writing_turns += s["writing_turns"]
        if pool is not None:
            pool.close()
            pool.join()
        generated_rows = sum(rows.values())
        if corpus is not None:
            for item in corpus.train:
                for session in item.sessions:
                    row_files["train"].write(row_head(session_messages(session)))
                    row_files["train"].write(tail)
                    handwritten_rows += 1
            rows["train"] += handwritten_rows
            with (out / "handwritten-test.episodes.jsonl").open("wb") as handle:
                for item in corpus.test:
                    handle.write(orjson.dumps(item.episode, option=orjson.OPT_APPEND_NEWLINE))
    finally:
        if pool is not None:
            pool.terminate()
        for handle in [*files.values(), *row_files.values()]:
            handle.close()
    tool_tokens = counter.count([_dumps(tools)])[0]
    stats = {
        "episodes": counts,
        "seed": seed,
        "rows": dict(rows),
        "sessions_per_episode": _percentiles(sessions),
        "turns_per_session": _percentiles(turns_per_session),
        "turn_actions": dict(totals["actions"].most_common()),
        "tool_calls": dict(totals["tools"].most_common()),
        "learnt_facts": dict(totals["facts"].most_common()),
        "retracted_facts": dict(totals["retracts"].most_common()),
        "probe_kinds": dict(totals["probes"].most_common()),
        "unnamed_users": unnamed,
        "turns_with_typo": typos,
        "casual_turns": casual,
        "turns": turns,
        "writing_turns": writing_turns,
        "turn_kinds": {k: totals["kinds"][k] for k in TURN_KINDS},
        "row_kinds": {k: totals["row_kinds"][k] for k in TURN_KINDS},
        "recovery_kinds": dict(totals["recoveries"].most_common()),
        "shares": _shares(totals, turns, writing_turns, generated_rows, unnamed, sum(counts.values())),
        "handwritten": None if corpus is None else {
            "dir": str(corpus.folder), "files": corpus.files,
            "episodes": {"train": len(corpus.train), "test": len(corpus.test)},
            "train_rows": handwritten_rows,
            "test_file": "handwritten-test.episodes.jsonl",
        },
        "row_tokens": _percentiles(token_lengths),
        "row_tokens_sample": f"rows of every {TOKEN_SAMPLE}th episode, contents and call JSON without template markup",
        "tools_block_tokens": tool_tokens,
        "token_count_source": counter.source,
        "seconds": round(time.perf_counter() - started, 2),
        "workers": workers,
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats


def _shares(totals: dict[str, Counter], turns: int, writing_turns: int, rows: int, unnamed: int,
            episodes: int) -> dict[str, Any]:
    """The report's shares: of turns (all splits) and of rows (train and validation sessions)."""
    def share(count: int, total: int) -> float:
        return round(count / total, 4) if total else 0.0

    return {
        "unnamed_users": share(unnamed, episodes),
        "recovery_of_writing_turns": share(totals["kinds"]["recovery"], writing_turns),
        "of_turns": {k: share(totals["kinds"][k], turns) for k in TURN_KINDS},
        "of_rows": {k: share(totals["row_kinds"][k], rows) for k in TURN_KINDS},
    }


def format_report(stats: dict[str, Any]) -> str:
    lines = [f"episodes {stats['episodes']}  rows {stats['rows']}  in {stats['seconds']} s ({stats['workers']} workers)"]
    for key in ("sessions_per_episode", "turns_per_session", "row_tokens"):
        lines.append(f"{key}: {stats[key]}")
    lines.append(f"tools block: {stats['tools_block_tokens']} tokens (counted with {stats['token_count_source']})")
    for key in ("turn_actions", "tool_calls", "probe_kinds", "learnt_facts", "retracted_facts"):
        lines.append(f"{key}: " + ", ".join(f"{k} {v}" for k, v in stats[key].items()))
    lines.append(f"unnamed users {stats['unnamed_users']}, turns with a typo {stats['turns_with_typo']}, "
                 f"casual turns {stats['casual_turns']} of {stats['turns']}")
    shares = stats["shares"]
    lines.append(f"unnamed users {shares['unnamed_users']:.1%} of episodes; recovery turns "
                 f"{shares['recovery_of_writing_turns']:.1%} of {stats['writing_turns']} writing turns "
                 f"({', '.join(f'{k} {v}' for k, v in stats['recovery_kinds'].items())})")
    for of in ("of_turns", "of_rows"):
        lines.append(f"share {of.replace('_', ' ')}: " + ", ".join(f"{k} {v:.1%}" for k, v in shares[of].items()))
    corpus = stats.get("handwritten")
    if corpus:
        lines.append(f"hand-written ({corpus['dir']}): {corpus['episodes']['train']} train episodes as "
                     f"{corpus['train_rows']} rows appended to train.rows.jsonl, {corpus['episodes']['test']} test "
                     f"episodes in {corpus['test_file']}")
    return "\n".join(lines)


@click.command()
@click.option("--episodes", "-n", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Episodes over all splits (80% train, 10% validation, 10% test).")
@click.option("--seed", "-s", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for {train,validation,test}.episodes.jsonl, {train,validation}.rows.jsonl, stats.json.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: the CPUs available).")
@QUIET
@click.option("--handwritten", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Hand-written corpus folder: train-split episodes become train rows, test-split ones "
                   "handwritten-test.episodes.jsonl [default: corpus/handwritten when it holds *.jsonl files].")
@click.option("--no-handwritten", is_flag=True, help="Generated episodes only.")
def datagen(episodes: int, seed: int, out: Path, workers: int | None, quiet: bool, handwritten: Path | None,
            no_handwritten: bool) -> None:
    """Generate multi-session memory episodes with gold tool calls, and training rows."""
    from memlora.data.handwritten import CORPUS_DIR, corpus_files

    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if no_handwritten:
        handwritten = None
    elif handwritten is None and corpus_files(CORPUS_DIR):
        handwritten = CORPUS_DIR
    stats = run_datagen(episodes, seed, out, workers, progress=not quiet, handwritten=handwritten)
    click.echo(format_report(stats))


@click.group()
def corpus() -> None:
    """The hand-written episode corpus (corpus/handwritten/)."""


@corpus.command("check")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def corpus_check(files: tuple[Path, ...]) -> None:
    """Replay every episode's gold calls on a real store and gate each session.

    FILES default to every corpus/handwritten/*.jsonl. Prints one line per problem (file, line,
    episode, session, turn) and the corpus stats; exits 1 when any episode fails.
    """
    from memlora.data.handwritten import check_corpus, corpus_files, corpus_stats

    paths = list(files) or corpus_files()
    good, problems = check_corpus(paths)
    for problem in problems:
        click.echo(problem, err=True)
    click.echo(json.dumps(corpus_stats(good)))
    click.echo(f"{len(good)} episode(s) pass, {len(problems)} problem(s) in {len(paths)} file(s)")
    if problems:
        raise SystemExit(1)
