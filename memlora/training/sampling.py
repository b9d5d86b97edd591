"""Which turns a GRPO run trains on: drawn by kind, weighted toward what the adapter still gets wrong.

A turn's kind is the generator's action (`intro`, `tell`, `person`, `update`, `correct`,
`forget`, `small_talk`, `ask`, `ask_unknown`; `write` / `read` / `none` in files without
provenance) or `probe:<kind>` for probes. Each draw picks a kind with probability proportional
to its weight, then a turn of that kind uniformly.

Default (no report): every kind weighs 1, so rare kinds (corrections, forgetting, questions
memory cannot answer) are drawn as often as common ones. With `memlora eval` run on
validation episodes (never test ones), a kind weighs `MIN_WEIGHT + its error rate` there, so a
kind the adapter always gets right is still drawn now and then; a kind the report has no turn
of weighs `MIN_WEIGHT +` the mean error rate of the others.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from memlora.evaluation.episodes import Episode, fact_to_dict, load_episodes
from memlora.evaluation.scoring import score_probe
from memlora.training.turns import TurnRef, episode_tasks

MIN_WEIGHT = 0.1


class ReportError(ValueError):
    """A report that cannot give sampling weights (missing, of test episodes, of another file)."""


def sample_turns(refs: Sequence[TurnRef], count: int, weights: Mapping[str, float] | None = None,
                 seed: int = 0) -> list[TurnRef]:
    """`count` turns drawn with replacement: a kind by weight, then a turn of it uniformly.

    Each draw depends only on the draws before it, so a longer run (`--resume` with a larger
    `--max-steps`) begins with the same turns as the shorter one it continues."""
    by_kind: dict[str, list[TurnRef]] = defaultdict(list)
    for ref in refs:
        by_kind[ref.kind].append(ref)
    if not by_kind:
        raise ValueError("no turns to sample from")
    kinds = sorted(by_kind)
    chances = [kind_weight(weights, kind) for kind in kinds]
    rng = random.Random(seed)
    return [rng.choice(by_kind[rng.choices(kinds, chances)[0]]) for _ in range(count)]


def kind_weight(weights: Mapping[str, float] | None, kind: str) -> float:
    if not weights:
        return 1.0
    if kind in weights:
        return weights[kind]
    return MIN_WEIGHT + sum(w - MIN_WEIGHT for w in weights.values()) / len(weights)


def report_file(path: Path) -> Path:
    """A `memlora eval` output folder or its report.json."""
    report = path / "report.json" if path.is_dir() else path
    if not report.exists():
        raise ReportError(f"--weights-from {path}: no report.json there (run `memlora eval` on validation episodes)")
    return report


def weights_from_report(path: Path, episodes_path: Path | None = None) -> dict[str, float]:
    """Sampling weights per kind from a `memlora eval` report on validation episodes.

    The report's own verdicts decide what was wrong (`kind_errors`); the episode file (the one
    the report names, or `episodes_path`) gives each turn its kind. Reports of test episodes are
    refused: weighting training by test results would leak the test set into training.
    """
    report = json.loads(report_file(path).read_text(encoding="utf-8"))
    if report.get("config", {}).get("oracle") or report.get("config", {}).get("reference_memory"):
        raise ReportError(f"--weights-from {path}: a report of the oracle or of --reference-memory says nothing "
                          "about the adapter's own turns")
    source = Path(episodes_path or report.get("config", {}).get("episodes", ""))
    if not source.is_file():
        raise ReportError(f"--weights-from {path}: its episode file {str(source)!r} is not there")
    episodes = load_episodes(source)
    test = [e.id for e in episodes if e.raw.get("split") == "test"] or ([source.name] if source.name.startswith("test") else [])
    if test:
        raise ReportError(f"--weights-from {path}: the report is of test episodes ({test[0]}); weigh training by "
                          "validation episodes only")
    rates = {kind: wrong / total for kind, (wrong, total) in kind_errors(report, episodes).items() if total}
    return {kind: MIN_WEIGHT + rate for kind, rate in sorted(rates.items())}


def kind_errors(report: dict[str, Any], episodes: Sequence[Episode]) -> dict[str, tuple[int, int]]:
    """(turns judged wrong, turns) per kind, from the report's records and scores.

    A session turn is wrong when a step of it was badly formatted, when it wrote on a turn that
    needed no write, when a fact it had to add (or retract) and that the session still expects
    (or retracts) is missing (or still there) in the report's snapshot after the session, or when
    it answers a question wrongly by the probe matcher. A probe is wrong when the report says so.
    """
    by_id = {episode.id: episode for episode in episodes}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for scored in report.get("episodes", []):
        episode = by_id.get(scored["id"])
        if episode is None:
            raise ReportError(f"episode {scored['id']!r} of the report is not in the episode file")
        tasks = {task.key: task for task in episode_tasks(episode)}
        for s, session in enumerate(scored["sessions"]):
            missed = {json.dumps(f["fact"], sort_keys=True) for f in session["score"]["facts"] if not f["retrievable"]}
            kept = {json.dumps(r["fact"], sort_keys=True) for r in session["score"]["retractions"] if not r["honoured"]}
            for t, turn in enumerate(session["turns"]):
                task = tasks.get(f"{episode.id}#{s}.{t}")
                if task is None:
                    continue
                wrong = (
                    not all(step["format_valid"] for step in turn["steps"])
                    or (turn["needs_no_write"] and turn["writes"] > 0)
                    or any(json.dumps(fact_to_dict(f), sort_keys=True) in missed for f in task.adds)
                    or any(json.dumps(fact_to_dict(f), sort_keys=True) in kept for f in task.retracts)
                    or (bool(task.probes) and not all(score_probe(p, turn["reply"]).correct for p in task.probes))
                )
                counts[task.kind][0] += wrong
                counts[task.kind][1] += 1
        for probe in scored["probes"]:
            key = f"probe:{probe['kind']}"
            counts[key][0] += not probe["correct"]
            counts[key][1] += 1
    return {kind: (wrong, total) for kind, (wrong, total) in counts.items()}
