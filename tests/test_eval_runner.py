"""The runner end to end without a model: the oracle, resume, the agent path on a scripted engine, the CLI."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from memlora.evaluation.commands import compare, eval_command
from memlora.evaluation.episodes import Episode, load_episodes, parse_episodes
from memlora.evaluation.metrics import score_run
from memlora.evaluation.runner import (
    RESULTS_FILE,
    AgentPlayer,
    OraclePlayer,
    ReferenceMemoryPlayer,
    ResumeMismatchError,
    RunConfig,
    prepare_out_dir,
    run_episodes,
)

_CANDIDATES = [Path(__file__).resolve().parents[n] / "shared" / "spec" / "example.jsonl" for n in (1, 2)]
EXAMPLE = next((p for p in _CANDIDATES if p.exists()), _CANDIDATES[-1])
needs_example = pytest.mark.skipif(not EXAMPLE.exists(), reason="no shared spec checkout")


def config(oracle: bool = True, model: str | None = None, sha: str = "sha") -> RunConfig:
    return RunConfig(episodes="e.jsonl", episodes_sha256=sha, model=model, adapter=None, server=None, oracle=oracle)


def oracle_run(episodes: list[Episode], out: Path) -> dict[str, Any]:
    records = asyncio.run(run_episodes(episodes, OraclePlayer(), out, config(), progress=False))
    return score_run(episodes, {r.id: r for r in records}, oracle=True)[1]


def assert_perfect(summary: dict[str, Any]) -> None:
    assert summary["episodes_failed"] == 0
    graph = summary["graph"]
    for key in ("recall_structural", "recall_retrievable", "precision", "type_match"):
        assert graph[key]["value"] == 1.0, key
    assert graph["f1"] == 1.0
    assert graph["retractions_honoured"]["value"] in (1.0, None)
    assert summary["probes"]["accuracy"]["value"] == 1.0
    assert summary["format_validity"]["steps"]["all"]["value"] == 1.0
    assert summary["unnecessary_writes"]["all"]["value"] in (0.0, None)


@needs_example
def test_oracle_scores_100_percent_on_the_example(tmp_path: Path) -> None:
    summary = oracle_run(load_episodes(EXAMPLE), tmp_path)
    assert_perfect(summary)
    # example-1 carries reference calls for its three sessions; example-2 has none to replay
    assert summary["graph"]["snapshots"] == 3 and summary["graph"]["snapshots_not_scored"] == 2
    assert summary["graph"]["retractions_honoured"] == {"value": 1.0, "count": 3}
    assert summary["probes"]["accuracy"]["count"] == 8


def test_oracle_scores_100_percent_on_generated_episodes(tmp_path: Path) -> None:
    generator = pytest.importorskip("memlora.data.generator")
    text = "\n".join(json.dumps(generator.generate_episode(7, "test", i).episode) for i in range(3))
    episodes = parse_episodes(text)
    summary = oracle_run(episodes, tmp_path)
    assert_perfect(summary)
    assert summary["graph"]["snapshots_not_scored"] == 0 and summary["graph"]["snapshots"] > 0


@needs_example
def test_resume_skips_finished_episodes(tmp_path: Path) -> None:
    episodes = load_episodes(EXAMPLE)
    oracle_run(episodes, tmp_path)
    results = tmp_path / RESULTS_FILE
    first, second = results.read_text().splitlines()
    results.write_text(first + "\n" + second[: len(second) // 2])  # killed while writing the second
    oracle_run(episodes, tmp_path)
    ids = [json.loads(line)["id"] for line in results.read_text().splitlines() if line.endswith("}")]
    assert sorted(ids) == ["example-1", "example-2"]
    with pytest.raises(ResumeMismatchError):
        asyncio.run(run_episodes(episodes, OraclePlayer(), tmp_path, config(sha="other"), progress=False))


def test_resume_checks_the_token_budget_where_the_run_recorded_it(tmp_path: Path) -> None:
    budget = RunConfig(episodes="e.jsonl", episodes_sha256="sha", model="m", adapter=None, server=None,
                       oracle=False, max_steps=3, max_new_tokens=160)
    prepare_out_dir(tmp_path, budget)
    prepare_out_dir(tmp_path, budget)  # the same run goes on
    with pytest.raises(ResumeMismatchError):
        prepare_out_dir(tmp_path, dataclasses.replace(budget, max_new_tokens=512))
    # a folder from before the budget was recorded resumes under any budget
    run_file = tmp_path / "run.json"
    recorded = json.loads(run_file.read_text())
    run_file.write_text(json.dumps({k: v for k, v in recorded.items() if k not in ("max_steps", "max_new_tokens")}))
    prepare_out_dir(tmp_path, dataclasses.replace(budget, max_new_tokens=512))


def test_results_with_line_separators_inside_strings_load_back(tmp_path: Path) -> None:
    from memlora.evaluation.runner import load_results

    episodes = load_episodes(EXAMPLE)
    oracle_run(episodes, tmp_path)
    results = tmp_path / RESULTS_FILE
    lines = results.read_text(encoding="utf-8").split("\n")
    record = json.loads(lines[0])
    record["error"] = "reply\u2028with\u2029separators\u0085"  # written raw, as ensure_ascii=False does
    results.write_text(json.dumps(record, ensure_ascii=False) + "\n" + "\n".join(lines[1:]), encoding="utf-8")
    loaded = load_results(tmp_path)
    assert sorted(loaded) == ["example-1", "example-2"]
    assert loaded[record["id"]].error == record["error"]


# ----------------------------------------------------------------------------- agent path


class ScriptedTokenizer:
    def apply_chat_template(self, messages: list[dict[str, Any]], **_: Any) -> str:
        return json.dumps(messages)


class ScriptedEngine:
    """Stands in for the generation engine: answers from a script and keeps every prompt."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.prompts: list[str] = []
        self.tokenizer = ScriptedTokenizer()

    async def generate(self, prompt: str, params: Any = None, adapter: str | None = None) -> Any:
        from memlora.agent.engine import Completion

        self.prompts.append(prompt)
        text = self.script.pop(0)
        return Completion(text, [], len(prompt), 0, 3, "stop", 0.0, 1)


DOG_EPISODE = {
    "id": "dog",
    "user": {"name": None},
    "sessions": [
        {"id": "s1", "turns": [{"user": "I adopted a beagle called Biscuit."}],
         "learn": [{"kind": "entity", "name": "Biscuit", "type": ["dog"]}]},
        {"id": "s2", "turns": [{"user": "Tell me a joke.", "calls": []}]},
    ],
    "probes": [{"after": "s2", "question": "What is my dog called?", "answers": ["Biscuit"], "kind": "single"}],
}
CREATE = '<tool_call>\n{"name": "create_entities", "arguments": {"entities": [{"name": "Biscuit", "entityType": "dog", "observations": []}]}}\n</tool_call>'
UNKNOWN = '<tool_call>\n{"name": "remember", "arguments": {"what": "dog"}}\n</tool_call>'
NOTE = '<tool_call>\n{"name": "add_observations", "arguments": {"observations": [{"entityName": "Biscuit", "contents": ["likes jokes"]}]}}\n</tool_call>'


def test_agent_path_records_and_scores(tmp_path: Path) -> None:
    pytest.importorskip("memlora.agent.loop")
    episodes = parse_episodes(json.dumps(DOG_EPISODE))
    script = [UNKNOWN, CREATE, "Noted!", NOTE, "Why did the dog sit?", "Your dog is called Biscuit."]
    engine = ScriptedEngine(script)
    records = asyncio.run(
        run_episodes(episodes, AgentPlayer(engine), tmp_path, config(oracle=False, model="scripted"), progress=False)
    )
    assert engine.script == [] and records[0].error is None
    # the probe session starts afresh: no chat history, the memory only through the opening read
    assert "adopted a beagle" not in engine.prompts[-1] and "Biscuit" in engine.prompts[-1]
    details, summary = score_run(episodes, {r.id: r for r in records})
    assert summary["format_validity"]["calls"]["all"] == {"value": 2 / 3, "count": 3}
    assert summary["format_validity"]["steps"]["session"] == {"value": 4 / 5, "count": 5}
    # s2's turn needed no write (empty reference calls) but wrote; the probe wrote nothing
    assert summary["unnecessary_writes"]["session"] == {"value": 1.0, "count": 1}
    assert summary["unnecessary_writes"]["probe"] == {"value": 0.0, "count": 1}
    assert summary["graph"]["recall_structural"] == {"value": 1.0, "count": 2}
    assert summary["graph"]["type_match"]["value"] == 1.0
    # the observation about jokes accounts for no fact
    assert details[0]["sessions"][1]["score"]["spurious"] == ["observation 'Biscuit': 'likes jokes'"]
    assert summary["probes"]["accuracy"] == {"value": 1.0, "count": 1}
    invalid = details[0]["sessions"][0]["turns"][0]["steps"][0]["calls"][0]
    assert invalid["name"] == "remember" and "unknown tool" in invalid["invalid"]
    # the invalid step wrote 3 tokens: cut off under a 3-token budget, not under 512
    assert summary["format_validity"]["invalid_steps_at_token_budget"] is None
    at_budget = score_run(episodes, {r.id: r for r in records}, max_new_tokens=3)[1]["format_validity"]
    assert at_budget["invalid_steps_at_token_budget"] == {"value": 1.0, "count": 1}
    roomy = score_run(episodes, {r.id: r for r in records}, max_new_tokens=512)[1]["format_validity"]
    assert roomy["invalid_steps_at_token_budget"] == {"value": 0.0, "count": 1}


def test_reference_memory_asks_the_model_only_the_probes(tmp_path: Path) -> None:
    """The reference calls write the memory; the model sees it in the probe session and answers."""
    pytest.importorskip("memlora.agent.loop")
    episode = copy.deepcopy(DOG_EPISODE)
    episode["sessions"][0]["turns"][0]["calls"] = [
        {"name": "create_entities", "arguments": {"entities": [{"name": "Biscuit", "entityType": "dog", "observations": []}]}}
    ]
    episode["probes"].append({"after": "s1", "question": "What is my cat called?", "answers": [], "kind": "abstain"})
    episode["probes"].append({"after": "s1", "question": "Is Biscuit a dog?", "answers": ["dog"], "kind": "single"})
    episodes = parse_episodes(json.dumps(episode))
    engine = ScriptedEngine(["Your cat is called Biscuit.", "I don't know.", "Your dog is called Biscuit."])
    run = dataclasses.replace(config(oracle=False, model="scripted"), reference_memory=True)
    records = asyncio.run(run_episodes(episodes, ReferenceMemoryPlayer(AgentPlayer(engine)), tmp_path, run,
                                       progress=False))
    assert engine.script == [] and len(engine.prompts) == 3  # no session turn reached the model
    assert "adopted a beagle" not in engine.prompts[0] and "Biscuit" in engine.prompts[0]
    details, summary = score_run(episodes, {r.id: r for r in records}, reference_memory=True)
    assert summary["graph"]["recall_structural"]["value"] == 1.0
    # the invented cat is wrong, and so is "don't know" where memory holds the dog
    assert summary["probes"]["accuracy"] == {"value": 1 / 3, "count": 3}
    assert summary["probes"]["dont_know"] == {"answerable": {"value": 0.5, "count": 2},
                                              "unanswerable": {"value": 0.0, "count": 1}}
    # the reference's session turns count in no model score: only the three probe turns do
    assert summary["turns"]["count"] == 3 and set(summary["format_validity"]["steps"]) == {"all", "probe"}
    assert summary["unnecessary_writes"]["all"] == {"value": 0.0, "count": 3}
    # a folder of a run with the model in every session does not resume as this one, nor the reverse
    with pytest.raises(ResumeMismatchError):
        prepare_out_dir(tmp_path, config(oracle=False, model="scripted"))
    plain = tmp_path / "plain"
    prepare_out_dir(plain, config(oracle=False, model="scripted"))
    with pytest.raises(ResumeMismatchError):
        prepare_out_dir(plain, run)


# ----------------------------------------------------------------------------- CLI


def test_cli_rejects_an_invalid_file_before_loading_a_model(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(DOG_EPISODE) + "\n{not json\n")
    result = CliRunner().invoke(eval_command, [str(bad), "--model", "no-such-model", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "line 2: bad JSON" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_scores_a_file_with_repeated_ids_and_warns_of_what_it_set_aside(tmp_path: Path) -> None:
    odd = copy.deepcopy(DOG_EPISODE)
    odd["probes"].append({"after": "no-such-session", "question": "Where?", "answers": ["x"], "kind": "single"})
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps(DOG_EPISODE) + "\n" + json.dumps(odd) + "\n")
    out = tmp_path / "oracle"
    result = CliRunner().invoke(eval_command, [str(path), "--oracle", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"warning: {path}: line 2: episode id {DOG_EPISODE['id']!r} is also on line 1" in result.output
    assert "line 2: probe $.probes[1].after names no session ('no-such-session')" in result.output
    report = json.loads((out / "report.json").read_text())
    first, second = report["episodes"]
    assert second["id"] == f"{DOG_EPISODE['id']} (line 2)" and len(second["notes"]) == 2
    assert len(second["probes"]) == len(first["probes"]) == len(DOG_EPISODE["probes"])  # the bad one is not asked


@needs_example
def test_cli_oracle_report_and_compare(tmp_path: Path) -> None:
    out = tmp_path / "oracle"
    result = CliRunner().invoke(eval_command, [str(EXAMPLE), "--oracle", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    for name in ("report.json", "report.md", "scores_by_kind.png", "probe_accuracy_by_distance.png"):
        assert (out / name).exists(), name
    report = json.loads((out / "report.json").read_text())
    assert report["episodes"][0]["probes"][0]["reply"] == "Anthropic"
    assert report["episodes"][0]["sessions"][0]["turns"][0]["steps"][0]["calls"][0]["name"] == "create_entities"
    table = CliRunner().invoke(compare, [str(out), str(out)])
    assert table.exit_code == 0 and "| probe accuracy | 100.0% (n=8) | 100.0% (n=8) |" in table.output
    # --rescore writes the report again from results.jsonl under the current rules, no model
    (out / "report.json").unlink()
    again = CliRunner().invoke(eval_command, [str(EXAMPLE), "--rescore", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "report.json").read_text())["summary"] == report["summary"]
    other = tmp_path / "other.jsonl"
    other.write_text(EXAMPLE.read_text().splitlines()[0] + "\n")
    refused = CliRunner().invoke(eval_command, [str(other), "--rescore", "--out", str(out)])
    assert refused.exit_code != 0 and "holds a run of another episode file" in refused.output
    both = CliRunner().invoke(eval_command, [str(EXAMPLE), "--oracle", "--reference-memory", "--out", str(out)])
    assert both.exit_code != 0 and "does not go with --oracle" in both.output


@needs_example
def test_progress_hears_of_every_turn_and_probe() -> None:
    from memlora.evaluation.runner import memory_factory, play_episode

    episode = load_episodes(EXAMPLE)[0]
    heard: list[int] = []
    asyncio.run(play_episode(episode, OraclePlayer(), memory_factory(None), heard.append))
    expected = sum(len(s.turns) for s in episode.sessions) + len(episode.probes)
    assert sum(heard) == episode.turn_count() == expected > 0
    assert len(heard) == len(episode.sessions) + len(episode.probes)
