"""Where a model's memory mistakes are, token by token, on held-out sessions.

A full evaluation plays every turn and takes minutes per episode on a CPU. This reads
held-out session rows instead and runs each once, teacher-forced: the model sees the gold
conversation and, at every token the assistant must write, we check whether its top choice is
the gold token. The tokens are sorted into what they decide:

- turn start (call / reply): the first token of an assistant message that calls a tool /
  answers in words; "decides to call" and "decides to reply" count only whether the top
  choice is the call tag or not, the first word of a reply aside
- tool name, entity names, types (entityType / relationType), observation text, search query
- observation list opens: the token after `"observations":` or `"contents":`, i.e. store facts
  (`["`) or none (`[]`)
- call syntax: brackets, keys, tags; reply text; end of turn

So "the adapter stores no observations" becomes a number per kind of token, for the bare base
and each adapter on the same rows, and shows which decision more data or capacity must fix.
A whole message counts as exact when every one of its tokens is the model's top choice.

    memlora datagen --episodes 100 --seed 4 --out runs/data-diag
    python benchmarks/token_errors.py --rows runs/data-diag/validation.rows.jsonl --limit 24 \\
        --adapter none --adapter adapters/qwen2.5-coder-0.5b-memory
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import re
import time
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import torch

import memlora.models  # noqa: F401 - OpenMP settings before torch does work
from memlora.models.chat_format import END_OF_TURN
from memlora.models.kv_cache import cache_of, with_cache
from memlora.models.loading import BASE_ADAPTER, adapter_name, load_model
from memlora.training.sft import assistant_spans, read_rows, shared_prefix_ids

KINDS = ("turn start (call)", "turn start (reply)", "tool name", "entity names", "types", "observation list opens", "observation text",
         "search query", "call syntax", "reply text", "end of turn")
VALUE_KINDS = {
    "name": "entity names", "from": "entity names", "to": "entity names", "entityName": "entity names",
    "entityNames": "entity names", "names": "entity names",
    "entityType": "types", "relationType": "types",
    "observations": "observation text", "contents": "observation text",
    "query": "search query",
}
JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def call_kinds(body: str, offset: int, kinds: dict[int, str]) -> None:
    """Marks the characters of one tool call's JSON by the key each string value belongs to."""
    key, depth = None, 0
    position = 0
    while position < len(body):
        char = body[position]
        if char == '"':
            match = JSON_STRING.match(body, position)
            if match is None:
                return
            after = body[match.end():].lstrip()
            if after.startswith(":"):
                key = match.group(1)
                if key in ("observations", "contents"):  # the list's opening decides: facts or none
                    bracket = body.find("[", match.end())
                    if bracket >= 0:
                        kinds[offset + bracket] = "observation list opens"
            else:
                kind = "tool name" if key == "name" and depth == 1 else VALUE_KINDS.get(key or "")
                if kind:
                    for index in range(match.start(1), match.end(1)):
                        kinds.setdefault(offset + index, kind)
            position = match.end()
            continue
        depth += char == "{"
        depth -= char == "}"
        position += 1


def char_kinds(text: str, start: int, end: int, end_of_turn: str) -> dict[int, str]:
    """Kinds of the characters of one assistant message text[start:end] (call syntax by default)."""
    kinds: dict[int, str] = {}
    message = text[start:end]
    calls = list(CALL.finditer(message))
    for call in calls:
        call_kinds(call.group(1), start + call.start(1), kinds)
    stop = message.find(end_of_turn)
    words_end = stop if stop >= 0 else len(message)
    if not calls:
        for index in range(words_end):
            kinds[start + index] = "reply text"
    for index in range(words_end, len(message)):
        kinds[start + index] = "end of turn"
    return kinds


def labelled_tokens(tokenizer: Any, row: dict[str, Any], end_of_turn: str) -> tuple[list[int], list[tuple[int, str, int]]]:
    """Token ids of a session and, for each token the model must write: (position, kind, message number)."""
    text, spans = assistant_spans(tokenizer, row)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    messages = [(start, end, char_kinds(text, start, end, end_of_turn),
                 "turn start (call)" if CALL.search(text, start, end) else "turn start (reply)")
                for start, end in spans]
    targets: list[tuple[int, str, int]] = []
    for position, (begin, finish) in enumerate(encoded["offset_mapping"]):
        for number, (start, end, kinds, opens) in enumerate(messages):
            if start <= begin and finish <= end and finish > begin:
                found = [kinds.get(i, "call syntax") for i in range(begin, finish)]
                kind = next((k for k in found if k != "call syntax"), "call syntax")
                if not targets or targets[-1][2] != number:
                    kind = opens
                targets.append((position, kind, number))
                break
    return encoded["input_ids"], targets


def score(loaded: Any, rows: list[dict[str, Any]], adapters: list[str], end_of_turn: str) -> dict[str, Any]:
    tokenizer, model = loaded.tokenizer, loaded.model
    prefix = shared_prefix_ids(tokenizer, rows[0]["tools"])
    with loaded.adapter(BASE_ADAPTER), torch.inference_mode():  # as in training and the engine
        prefix_cache = cache_of(model(input_ids=torch.tensor([prefix]), use_cache=True))
    results: dict[str, Any] = {}
    prepared = [labelled_tokens(tokenizer, row, end_of_turn) for row in rows]
    if any(ids[: len(prefix)] != prefix for ids, _ in prepared):
        raise ValueError("a row does not start with the shared system prompt and tool block")
    call_opener = tokenizer("<tool_call>", add_special_tokens=False)["input_ids"][0]
    for adapter in adapters:
        right: dict[str, int] = defaultdict(int)
        total: dict[str, int] = defaultdict(int)
        loss: dict[str, float] = defaultdict(float)
        messages = {"call": [0, 0], "reply": [0, 0]}
        decisions = {"turn start (call)": [0, 0], "turn start (reply)": [0, 0]}
        started = time.perf_counter()
        for ids, targets in prepared:
            if not targets:  # only the runtime's opening call: nothing the model writes
                continue
            rest = torch.tensor([ids[len(prefix):]])
            # logits at position p predict token p + 1: keep those just before each target
            keep = torch.tensor([p - 1 - len(prefix) for p, _, _ in targets])
            with loaded.adapter(None if adapter == BASE_ADAPTER else adapter), torch.inference_mode():
                out = model(input_ids=rest, **with_cache(copy.deepcopy(prefix_cache)), use_cache=True,
                            logits_to_keep=keep)
            logits = out.logits[0].float()
            gold = torch.tensor([ids[p] for p, _, _ in targets])
            top = logits.argmax(-1)
            hits = (top == gold).tolist()
            calls_first = (top == call_opener).tolist()
            nll = torch.nn.functional.cross_entropy(logits, gold, reduction="none").tolist()
            exact: dict[int, bool] = {}
            is_call: dict[int, bool] = {}
            for (_, kind, number), hit, token_loss, calls in zip(targets, hits, nll, calls_first):
                if kind in decisions:
                    decisions[kind][0] += calls == (kind == "turn start (call)")
                    decisions[kind][1] += 1
                total[kind] += 1
                right[kind] += hit
                loss[kind] += token_loss
                exact[number] = exact.get(number, True) and bool(hit)
                is_call[number] = is_call.get(number, False) or kind == "turn start (call)"
            for number, whole in exact.items():
                bucket = messages["call" if is_call[number] else "reply"]
                bucket[0] += whole
                bucket[1] += 1
        results[adapter] = {
            "kinds": {kind: {"tokens": total[kind], "accuracy": right[kind] / total[kind],
                             "mean_loss": loss[kind] / total[kind]} for kind in KINDS if total[kind]},
            "exact_messages": {name: {"exact": hit, "of": count} for name, (hit, count) in messages.items()},
            "decisions": {kind: {"right": hit, "of": count} for kind, (hit, count) in decisions.items()},
            "seconds": round(time.perf_counter() - started, 1),
        }
    return results


def table(results: dict[str, Any]) -> str:
    names = list(results)
    lines = ["| tokens | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for kind in KINDS:
        cells = []
        for name in names:
            entry = results[name]["kinds"].get(kind)
            cells.append(f"{100 * entry['accuracy']:.1f}% (n={entry['tokens']})" if entry else "n/a")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    for kind, label in (("turn start (call)", "decides to call"), ("turn start (reply)", "decides to reply")):
        cells = []
        for name in names:
            entry = results[name]["decisions"][kind]
            cells.append(f"{100 * entry['right'] / entry['of']:.1f}% (n={entry['of']})" if entry["of"] else "n/a")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for bucket in ("call", "reply"):
        cells = [f"{results[n]['exact_messages'][bucket]['exact']} of {results[n]['exact_messages'][bucket]['of']}"
                 for n in names]
        lines.append(f"| {bucket} messages exact | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=Path, required=True, help="validation.rows.jsonl written by memlora datagen")
    parser.add_argument("--limit", type=int, default=24, help="a seeded sample of this many rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--adapter", action="append", default=[], help="'none' for the bare base; repeatable")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    adapters = args.adapter or [BASE_ADAPTER]
    loaded = load_model(args.model, adapters=[a for a in adapters if a != BASE_ADAPTER], cpu_speedups=False)
    names = [a if a == BASE_ADAPTER else adapter_name(a) for a in adapters]
    rows = read_rows(args.rows, args.limit, args.seed)
    results = score(loaded, rows, names, END_OF_TURN[loaded.family])
    results = {label: results[name] for label, name in zip(adapters, names)}
    print(f"{len(rows)} rows of {args.rows}, {args.model}, {platform.machine()}, "
          f"{torch.get_num_threads()} threads, {date.today()}")
    print(table(results))
    if args.json_out:
        args.json_out.write_text(json.dumps({"rows": str(args.rows), "limit": args.limit, "seed": args.seed,
                                             "model": args.model, "results": results}, indent=1))


if __name__ == "__main__":
    main()
