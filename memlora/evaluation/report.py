"""Writes a run's report: report.json (every detail), report.md (the tables) and PNG plots.

`compare_table` puts several finished runs side by side from their report.json files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PLOT_BY_KIND = "scores_by_kind.png"
PLOT_BY_DISTANCE = "probe_accuracy_by_distance.png"


def _get(data: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


# (label, path into the summary); a path to a {"value", "count"} share or to a plain number
HEADLINE: tuple[tuple[str, str], ...] = (
    ("tool-call format validity, per step", "format_validity.steps.all"),
    ("tool-call format validity, per call", "format_validity.calls.all"),
    ("invalid steps that used the whole token budget", "format_validity.invalid_steps_at_token_budget"),
    ("unnecessary writes (lower is better)", "unnecessary_writes.all"),
    ("graph recall, structural", "graph.recall_structural"),
    ("graph recall, retrievable", "graph.recall_retrievable"),
    ("graph precision", "graph.precision"),
    ("graph F1", "graph.f1"),
    ("entity type match", "graph.type_match"),
    ("retractions honoured", "graph.retractions_honoured"),
    ("probe accuracy", "probes.accuracy"),
    ("probe accuracy: single", "probes.by_kind.single"),
    ("probe accuracy: multi", "probes.by_kind.multi"),
    ("probe accuracy: update", "probes.by_kind.update"),
    ("probe accuracy: forget", "probes.by_kind.forget"),
    ("probe accuracy: abstain", "probes.by_kind.abstain"),
    ("\"don't know\" on probes with an answer (lower is better)", "probes.dont_know.answerable"),
    ("\"don't know\" on probes without one", "probes.dont_know.unanswerable"),
    ("tokens per turn", "turns.tokens_per_turn"),
    ("generated tokens per turn", "turns.completion_tokens_per_turn"),
    ("prompt tokens run per turn (not cached)", "turns.prompt_tokens_run_per_turn"),
    ("seconds per turn", "turns.seconds_per_turn"),
)


def format_share(value: Any, with_count: bool = True) -> str:
    """`87.5% (n=16)` for a share, a rounded number for a plain value, `n/a` for nothing."""
    if isinstance(value, dict):
        if value.get("value") is None:
            return f"n/a (n={value.get('count', 0)})" if with_count else "n/a"
        text = f"{100 * value['value']:.1f}%"
        return f"{text} (n={value['count']})" if with_count else text
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.0f}" if value >= 100 else f"{value:.2f}" if value >= 1 else f"{value:.3f}"
    return str(value)


def _f1_cell(summary: dict[str, Any], path: str) -> str:
    value = _get(summary, path)
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _cell(summary: dict[str, Any], path: str, with_count: bool = True) -> str:
    if path.endswith(".f1"):
        return _f1_cell(summary, path)
    return format_share(_get(summary, path), with_count)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(config: dict[str, Any], summary: dict[str, Any], details: Sequence[dict[str, Any]]) -> str:
    who = "oracle (reference calls replayed)" if config.get("oracle") else f"model `{config.get('model')}`"
    if config.get("adapter"):
        who += f", adapter `{config['adapter']}`"
    if config.get("dtype"):
        who += f", {config['dtype']}"
    if config.get("reference_memory"):
        who += ", answering probes on the reference memory"
    lines = [
        f"# Evaluation: {who}",
        "",
        f"- episodes: `{config.get('episodes')}` ({summary['episodes']} episodes, {summary['episodes_failed']} failed)",
        f"- memory server: `{config.get('server') or 'memlora (in process)'}`",
        f"- graph snapshots scored: {summary['graph']['snapshots']}"
        + (f" ({summary['graph']['snapshots_not_scored']} without reference calls to replay)" if summary["graph"]["snapshots_not_scored"] else ""),
        "",
        "Scoring rules: docs/evaluation.md. Shares come with the count they are taken over.",
        "",
        *(["The sessions replayed the reference calls (`--reference-memory`): the graph scores are the "
           "reference's; call validity, writes, tokens and seconds count the model's probe turns alone.", ""]
          if config.get("reference_memory") else []),
        "## Headline",
        "",
    ]
    lines += _table(["score", "value"], [[label, _cell(summary, path)] for label, path in HEADLINE])
    lines += ["", "## Graph by fact kind", ""]
    lines += _table(
        ["fact kind", "recall structural", "recall retrievable", "retractions honoured"],
        [
            [kind, format_share(v["recall_structural"]), format_share(v["recall_retrievable"]), format_share(v["retractions_honoured"])]
            for kind, v in summary["graph"]["by_fact_kind"].items()
        ],
    )
    lines += ["", "Precision by item kind: " + ", ".join(
        f"{kind} {format_share(v)}" for kind, v in summary["graph"]["precision_by_item_kind"].items()
    ), "", "## Graph after each session", ""]
    lines += _table(
        ["after session", "recall structural", "recall retrievable", "precision", "F1", "retractions honoured"],
        [
            [k, format_share(v["recall_structural"]), format_share(v["recall_retrievable"]), format_share(v["precision"]),
             "n/a" if v["f1"] is None else f"{100 * v['f1']:.1f}%", format_share(v["retractions_honoured"])]
            for k, v in summary["graph"]["by_session"].items()
        ],
    )
    lines += ["", "## Probe accuracy by sessions between learning and asking", ""]
    lines += _table(["distance", "accuracy"], [[k, format_share(v)] for k, v in summary["probes"]["by_distance"].items()])
    lines += ["", "## Tool-call validity and unnecessary writes by phase", ""]
    phases = sorted(set(summary["format_validity"]["steps"]) | set(summary["unnecessary_writes"]))
    lines += _table(
        ["phase", "valid steps", "valid calls", "unnecessary writes"],
        [
            [phase, format_share(summary["format_validity"]["steps"].get(phase)),
             format_share(summary["format_validity"]["calls"].get(phase)), format_share(summary["unnecessary_writes"].get(phase))]
            for phase in phases
        ],
    )
    failed = [d for d in details if d["error"]]
    if failed:
        lines += ["", "## Failed episodes", ""] + [f"- `{d['id']}`: {d['error']}" for d in failed]
    wrong = [(d["id"], p) for d in details for p in d["probes"] if not p["correct"]]
    if wrong:
        lines += ["", f"## Wrong probe replies (first {min(len(wrong), 20)} of {len(wrong)})", ""]
        for episode_id, p in wrong[:20]:
            reply = " ".join(p["reply"].split())[:200]
            lines.append(f"- `{episode_id}` #{p['index']} ({p['kind']}) {p['question']!r} -> {reply!r}; answers {p['answers']}, forbidden {p['forbidden']}")
    return "\n".join(lines) + "\n"


def write_plots(summary: dict[str, Any], out_dir: Path) -> list[Path]:
    """Scores by kind (bars) and probe accuracy against session distance (line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    bars: list[tuple[str, float]] = []
    for kind, share in summary["probes"]["by_kind"].items():
        if share["value"] is not None:
            bars.append((f"probe {kind}", share["value"]))
    for kind, v in summary["graph"]["by_fact_kind"].items():
        if v["recall_retrievable"]["value"] is not None:
            bars.append((f"recall {kind}", v["recall_retrievable"]["value"]))
    for label, path in (("precision", "graph.precision"), ("retractions", "graph.retractions_honoured"), ("valid steps", "format_validity.steps.all")):
        share = _get(summary, path)
        if share and share["value"] is not None:
            bars.append((label, share["value"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(bars) + 2), 4))
    # numeric positions with tick labels: string categories make matplotlib log at INFO level
    ax.bar(range(len(bars)), [100 * b[1] for b in bars], color="#4c72b0")
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], rotation=45, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_title("Scores by kind")
    fig.tight_layout()
    fig.savefig(out_dir / PLOT_BY_KIND, dpi=100)
    plt.close(fig)
    written.append(out_dir / PLOT_BY_KIND)

    points = [(k, v) for k, v in summary["probes"]["by_distance"].items() if v["value"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(len(points)), [100 * p[1]["value"] for p in points], marker="o")
    ax.set_xticks(range(len(points)), [p[0] for p in points])
    for x, (_, v) in enumerate(points):
        ax.annotate(f"n={v['count']}", (x, 100 * v["value"]), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_xlabel("sessions between learning and asking")
    ax.set_ylabel("probe accuracy (%)")
    ax.set_title("Persistence")
    fig.tight_layout()
    fig.savefig(out_dir / PLOT_BY_DISTANCE, dpi=100)
    plt.close(fig)
    written.append(out_dir / PLOT_BY_DISTANCE)
    return written


def write_report(out_dir: Path, config: dict[str, Any], summary: dict[str, Any], details: Sequence[dict[str, Any]], plots: bool = True) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"config": config, "summary": summary, "episodes": list(details)}
    (out_dir / REPORT_JSON).write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (out_dir / REPORT_MD).write_text(render_markdown(config, summary, details), encoding="utf-8")
    if plots:
        write_plots(summary, out_dir)


def run_label(config: dict[str, Any], directory: Path) -> str:
    if config.get("oracle"):
        return f"oracle ({directory.name})"
    label = str(config.get("model"))
    if config.get("adapter"):
        label += f" + {Path(str(config['adapter'])).name}"
    if config.get("reference_memory"):
        label += ", reference memory"
    return f"{label} ({directory.name})"


def compare_table(directories: Sequence[Path]) -> str:
    """A markdown table with one column per run (read from each run's report.json)."""
    runs = []
    for directory in directories:
        path = directory / REPORT_JSON
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: is {directory} an eval output folder?")
        report = json.loads(path.read_text(encoding="utf-8"))
        runs.append((run_label(report["config"], directory), report["summary"]))
    header = ["score", *(label for label, _ in runs)]
    rows = [["episodes", *(str(s["episodes"]) for _, s in runs)]]
    rows += [[label, *(_cell(s, path) for _, s in runs)] for label, path in HEADLINE]
    return "\n".join(_table(header, rows)) + "\n"
