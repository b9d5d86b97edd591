"""Traces: one JSON line per write and per recall, and the statistics drawn from them.

A recall line holds the request, the retrieved record ids with their scores and ranks, the
evidence tokens against the budget, the answer, its citations, the latencies and the model or
adapter that answered; a write line holds each model attempt's JSON and schema validity.
`memlora records stats` reads these files, so numbers come from what actually ran.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

TRACE_VERSION = 1


class TraceLog:
    """Appends JSON lines to one file; a file lock keeps lines whole when processes share it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path) + ".lock")

    def append(self, entry: dict[str, Any]) -> None:
        line = json.dumps({"trace_version": TRACE_VERSION, **entry}, ensure_ascii=False, default=str)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def read_traces(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every trace line; a damaged line (a crash mid-write on another system) is skipped with a count."""
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                yield {"op": "damaged"}
                continue
            if isinstance(entry, dict):
                yield entry


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (sound for small samples and 0 or 100%)."""
    if total == 0:
        return (math.nan, math.nan)
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(successes: int, total: int) -> dict[str, Any]:
    """A proportion with its count and 95% Wilson interval, as every records report gives it."""
    low, high = wilson(successes, total)
    return {"n": total, "hits": successes, "rate": (successes / total) if total else None,
            "ci95": [low, high] if total else None}


_rate = rate


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarise(entries: Iterable[dict[str, Any]], ks: tuple[int, ...] = (1, 5)) -> dict[str, Any]:
    """JSON validity of model writes, success@k of recalls with expected ids, budget compliance, latency."""
    writes = recalls = damaged = 0
    attempts = json_ok = record_ok = first_ok = model_writes = fallbacks = stored = 0
    methods: dict[str, int] = {}
    success = {k: 0 for k in ks}
    judged = within = cited = answered = 0
    latencies: list[float] = []
    for entry in entries:
        op = entry.get("op")
        if op == "damaged":
            damaged += 1
        elif op == "write":
            writes += 1
            method = entry.get("method", "?")
            methods[method] = methods.get(method, 0) + 1
            stored += bool(entry.get("stored"))
            tries = entry.get("attempts") or []
            if tries:
                model_writes += 1
                first_ok += bool(tries[0].get("record_valid"))
                fallbacks += method == "rules"
            attempts += len(tries)
            json_ok += sum(bool(t.get("json_valid")) for t in tries)
            record_ok += sum(bool(t.get("record_valid")) for t in tries)
        elif op == "recall":
            recalls += 1
            within += bool(entry.get("within_budget"))
            latency = (entry.get("latency_ms") or {}).get("total")
            if isinstance(latency, int | float):
                latencies.append(float(latency))
            if entry.get("evidence_ids"):
                answered += 1
                cited += bool(entry.get("citations"))
            expected = entry.get("expected_ids")
            if expected:
                judged += 1
                retrieved = [hit["id"] for hit in entry.get("retrieved", [])]
                for k in ks:
                    success[k] += bool(set(expected) & set(retrieved[:k]))
    return {
        "writes": {
            "total": writes, "stored": stored, "by_method": methods,
            "model_writes": model_writes,
            "json_valid_per_attempt": _rate(json_ok, attempts),
            "record_valid_per_attempt": _rate(record_ok, attempts),
            "record_valid_first_attempt": _rate(first_ok, model_writes),
            "fell_back_to_rules": _rate(fallbacks, model_writes),
        },
        "recalls": {
            "total": recalls,
            **{f"success@{k}": _rate(success[k], judged) for k in ks},
            "within_budget": _rate(within, recalls),
            "answers_with_citations": _rate(cited, answered),
            "latency_ms_p50": _percentile(latencies, 50),
            "latency_ms_p95": _percentile(latencies, 95),
        },
        "damaged_lines": damaged,
    }
