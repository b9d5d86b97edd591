"""Which turns GRPO trains on: kinds weighted by what a validation report says the adapter gets wrong."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from memlora.evaluation.episodes import Episode, Probe, load_episodes
from memlora.evaluation.metrics import score_run
from memlora.evaluation.records import StepRecord, TurnRecord
from memlora.evaluation.report import write_report
from memlora.evaluation.runner import OraclePlayer, RunConfig, run_episodes
from memlora.files import sha256_file
from memlora.training.sampling import MIN_WEIGHT, ReportError, sample_turns, weights_from_report
from memlora.training.turns import TurnRef, turn_refs


class ForgetfulPlayer(OraclePlayer):
    """The reference (replaying episodes whose updates lost their calls) that never knows a probe's answer."""

    async def ask(self, episode: Episode, probe: Probe, client: Any) -> TurnRecord:
        return TurnRecord(user=probe.question, steps=[StepRecord(raw="I don't know.", mode="none")], reply="I don't know.")


def drop_update_calls(episodes: list[Episode]) -> list[Episode]:
    """The episodes with the gold calls of every update turn removed (what the player replays)."""
    from memlora.evaluation.episodes import episode_from_dict

    changed = []
    for episode in episodes:
        raw = json.loads(json.dumps(episode.raw))
        for session in raw["sessions"]:
            for turn in session["turns"]:
                if turn.get("provenance", {}).get("action") == "update":
                    turn["calls"] = []
        changed.append(episode_from_dict(raw))
    return changed


def write_scripted_report(episodes_path: Path, out: Path, oracle: bool = False) -> Path:
    """A real evaluator report of a player that skips updates and knows no probe's answer."""
    episodes = load_episodes(episodes_path)
    config = RunConfig(episodes=str(episodes_path), episodes_sha256=sha256_file(episodes_path),
                       model=None if oracle else "scripted", adapter=None, server=None, oracle=oracle)
    played = drop_update_calls(episodes) if not oracle else episodes
    player = OraclePlayer() if oracle else ForgetfulPlayer()
    records = asyncio.run(run_episodes(played, player, out, config, progress=False))
    details, summary = score_run(episodes, {r.id: r for r in records}, oracle=oracle)
    write_report(out, config.to_dict(), summary, details, plots=False)
    return out


def test_without_weights_every_kind_is_drawn_about_as_often() -> None:
    refs = [TurnRef(f"t{i}", "tell", 0, 0, i) for i in range(90)] + [TurnRef("c", "correct", 0, 0, 99)]
    counts = Counter(ref.kind for ref in sample_turns(refs, 1000, seed=1))
    assert 400 < counts["correct"] < 600  # 1 turn in 91, drawn half of the time
    assert sample_turns(refs, 50, seed=1) == sample_turns(refs, 50, seed=1)
    assert sample_turns(refs, 80, seed=1)[:50] == sample_turns(refs, 50, seed=1)  # a longer run starts alike


def test_weights_draw_the_heavier_kind_more_often_and_unknown_kinds_get_the_mean() -> None:
    refs = [TurnRef("a", "tell", 0, 0, 0), TurnRef("b", "update", 0, 0, 1), TurnRef("c", "forget", 0, 0, 2)]
    weights = {"tell": MIN_WEIGHT, "update": MIN_WEIGHT + 0.8}  # forget: not in the report
    counts = Counter(ref.kind for ref in sample_turns(refs, 3000, weights, seed=2))
    assert counts["update"] > 3 * counts["tell"]
    assert counts["tell"] < counts["forget"] < counts["update"]  # forget weighs the mean: 0.1 + 0.4


def test_weights_come_from_what_the_report_says_was_wrong(generated_data: Path, tmp_path: Path) -> None:
    validation = generated_data / "validation.episodes.jsonl"
    kinds = Counter(ref.kind for ref in turn_refs(load_episodes(validation)))
    assert kinds["update"] and kinds["tell"] and kinds["probe:single"]
    report = write_scripted_report(validation, tmp_path / "eval")
    weights = weights_from_report(report)
    assert weights["update"] > MIN_WEIGHT  # its facts are missing from the snapshots
    assert weights["tell"] == pytest.approx(MIN_WEIGHT)  # played as the reference plays them
    assert weights["small_talk"] == pytest.approx(MIN_WEIGHT)
    assert weights["probe:single"] == pytest.approx(MIN_WEIGHT + 1.0)  # "I don't know" to every answerable probe
    if "probe:abstain" in weights:
        assert weights["probe:abstain"] == pytest.approx(MIN_WEIGHT)  # which is right where nothing is known
    assert weights_from_report(report / "report.json") == weights


def test_reports_that_say_nothing_about_the_adapter_on_validation_are_refused(generated_data: Path,
                                                                               tmp_path: Path) -> None:
    test_report = write_scripted_report(generated_data / "test.episodes.jsonl", tmp_path / "test")
    with pytest.raises(ReportError, match="test episodes"):
        weights_from_report(test_report)
    oracle = write_scripted_report(generated_data / "validation.episodes.jsonl", tmp_path / "oracle", oracle=True)
    with pytest.raises(ReportError, match="oracle"):
        weights_from_report(oracle)
    with pytest.raises(ReportError, match="no report.json"):
        weights_from_report(tmp_path / "nowhere")
