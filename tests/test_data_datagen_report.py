"""`memlora datagen`: the shares report, and the hand-written corpus mixed into the rows."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from memlora.data.commands import TURN_KINDS, CorpusError, datagen, run_datagen
from memlora.data.handwritten import corpus_split

EXAMPLE = Path(__file__).resolve().parents[1] / "corpus" / "handwritten" / "00-example.jsonl"


def test_stats_report_the_share_of_each_kind_of_turn(tmp_path: Path) -> None:
    stats = run_datagen(40, 3, tmp_path, workers=1, progress=False)
    assert json.loads((tmp_path / "stats.json").read_text()) == stats
    shares = stats["shares"]
    assert 1 / 3 <= shares["unnamed_users"] <= 0.5
    assert 0.02 < shares["recovery_of_writing_turns"] < 0.15
    for of in ("of_turns", "of_rows"):
        assert set(shares[of]) == set(TURN_KINDS)
        assert all(0 <= v <= 1 for v in shares[of].values())
    assert all(shares["of_turns"][k] > 0 for k in ("recovery", "multi_fact", "buried", "free_form", "no_memory",
                                                   "retrieval", "update", "correct", "forget"))
    assert shares["of_turns"]["recovery"] == round(stats["turn_kinds"]["recovery"] / stats["turns"], 4)
    assert stats["handwritten"] is None


def _corpus(folder: Path, broken: bool = False) -> dict[str, list[str]]:
    """A corpus folder holding the example episode under ids of both splits."""
    example = json.loads(EXAMPLE.read_text(encoding="utf-8").splitlines()[0])
    ids: dict[str, list[str]] = {"train": [], "test": []}
    number = 0
    while len(ids["train"]) < 2 or len(ids["test"]) < 1:
        number += 1
        episode_id = f"hw-test-{number:03d}"
        split = corpus_split(episode_id)
        if len(ids[split]) < (2 if split == "train" else 1):
            ids[split].append(episode_id)
    lines = []
    for episode_id in [*ids["train"], *ids["test"]]:
        episode = copy.deepcopy(example)
        episode["id"] = episode_id
        lines.append(json.dumps(episode, ensure_ascii=False))
    if broken:
        episode = copy.deepcopy(example)
        episode["id"] = "hw-test-broken"
        episode["sessions"][0]["turns"][0]["calls"][1]["arguments"]["relations"][0]["from"] = "nobody"
        lines.append(json.dumps(episode, ensure_ascii=False))
    folder.mkdir()
    (folder / "01-test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ids


def test_handwritten_train_episodes_become_rows_and_test_episodes_a_file(tmp_path: Path) -> None:
    ids = _corpus(tmp_path / "corpus")
    plain = run_datagen(12, 5, tmp_path / "plain", workers=1, progress=False)
    stats = run_datagen(12, 5, tmp_path / "mixed", workers=1, progress=False, handwritten=tmp_path / "corpus")
    sessions = len(json.loads(EXAMPLE.read_text().splitlines()[0])["sessions"])
    assert stats["handwritten"]["episodes"] == {"train": 2, "test": 1}
    assert stats["handwritten"]["train_rows"] == 2 * sessions
    assert stats["rows"]["train"] == plain["rows"]["train"] + 2 * sessions
    generated = (tmp_path / "plain" / "train.rows.jsonl").read_bytes()
    mixed = (tmp_path / "mixed" / "train.rows.jsonl").read_bytes()
    assert mixed.startswith(generated)  # the generated rows first, unchanged
    extra = [json.loads(line) for line in mixed[len(generated):].decode("utf-8").splitlines()]
    assert len(extra) == 2 * sessions
    assert "granddaughter" in extra[0]["messages"][3]["content"]
    test_file = [json.loads(line) for line in (tmp_path / "mixed" / "handwritten-test.episodes.jsonl").read_text().splitlines()]
    assert [e["id"] for e in test_file] == ids["test"]
    # same corpus, same bytes
    run_datagen(12, 5, tmp_path / "again", workers=2, progress=False, handwritten=tmp_path / "corpus")
    assert (tmp_path / "again" / "train.rows.jsonl").read_bytes() == mixed


def test_a_broken_handwritten_episode_stops_datagen_with_its_problem(tmp_path: Path) -> None:
    _corpus(tmp_path / "corpus", broken=True)
    with pytest.raises(CorpusError, match="hw-test-broken|nobody"):
        run_datagen(12, 5, tmp_path / "out", workers=1, progress=False, handwritten=tmp_path / "corpus")
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(datagen, ["-n", "12", "--out", str(tmp_path / "cli"), "--quiet", "-j", "1",
                                          "--handwritten", str(tmp_path / "corpus")])
    assert result.exit_code != 0 and "nobody" in result.output
