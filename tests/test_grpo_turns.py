"""Training turns for GRPO: the state before a turn, its prompt, and what it must do to the memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from memlora.evaluation.episodes import EntityFact, RelationFact, load_episodes
from memlora.evaluation.scoring import score_probe
from memlora.training.rewards import REWARD_TERMS, reference_rollout
from memlora.training.turns import TurnTask, build_tasks, episode_tasks, turn_refs

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "spec" / "example.jsonl"


@pytest.fixture(scope="module")
def tasks(generated_data: Path) -> list[TurnTask]:
    found = []
    for split in ("train", "validation"):
        for episode in load_episodes(generated_data / f"{split}.episodes.jsonl"):
            found += episode_tasks(episode)
    return found


def test_every_turn_and_probe_becomes_a_task_with_its_kind(generated_data: Path) -> None:
    episodes = load_episodes(generated_data / "train.episodes.jsonl")
    refs = turn_refs(episodes)
    turns = sum(len(s.turns) for e in episodes for s in e.sessions)
    assert len(refs) == turns + sum(len(e.probes) for e in episodes)
    kinds = {ref.kind for ref in refs}
    assert {"tell", "update", "forget", "ask", "small_talk", "probe:single"} <= kinds
    built = build_tasks(episodes, refs[:5] + refs[-3:])  # only the episodes asked for are replayed
    assert sorted(built) == sorted(ref.key for ref in refs[:5] + refs[-3:])
    assert all(built[ref.key].kind == ref.kind for ref in refs[:5])


def test_sessions_without_gold_calls_are_left_out() -> None:
    episodes = load_episodes(EXAMPLE)  # example-2 gives no calls, example-1 gives them all
    refs = turn_refs(episodes)
    assert {ref.key.split("#")[0] for ref in refs} == {"example-1"}
    assert {ref.kind for ref in refs} >= {"write", "probe:single"}  # no provenance: kinds from the calls


def test_the_prompt_opens_as_the_agent_opens_a_session_on_the_rebuilt_store(tasks: list[TurnTask]) -> None:
    """Replaying the setup calls gives the graph the task says it starts from, and the history
    opens with exactly what the agent's runtime shows for that store (through MCP)."""
    from mcp import Client

    from memlora.agent.loop import MemoryAgent, MemoryClient
    from memlora.agent.protocol import server_tools
    from memlora.data.execute import execute
    from memlora.server.app import build_server
    from memlora.store import open_store

    tools = server_tools()

    async def opening(task: TurnTask) -> tuple[list[dict], dict]:
        store = open_store("sqlite::memory:")
        for call in task.setup_calls:
            execute(store, call)
        async with Client(build_server(store)) as client:
            memory = MemoryClient(client)
            memory.tools = tools
            agent = MemoryAgent(engine=None, client=memory)  # type: ignore[arg-type]  # no generation here
            await agent.start_session()
            return agent.messages, await memory.read_graph()

    firsts = [t for t in tasks if t.key.endswith(".0") or "#probe" in t.key]
    assert len(firsts) > 20
    for task in firsts:
        messages, graph = asyncio.run(opening(task))
        assert messages == task.history[:3] and len(task.history) == 3, task.key
        assert graph == task.before


def test_a_correction_adds_the_right_value_and_retracts_the_wrong_one(tasks: list[TurnTask]) -> None:
    corrections = [t for t in tasks if t.kind == "correct"]
    assert corrections
    # a correction of a relation (a city, an employer); those of an observation (a pet's breed, a
    # job title) add and retract observations instead
    relational = [t for t in corrections if any(isinstance(f, RelationFact) for f in t.retracts)]
    assert relational
    for task in corrections:
        assert task.adds and task.retracts, task.user
        assert not set(task.retracts) & set(task.keeps)
    for task in relational:
        assert any(isinstance(f, RelationFact) for f in task.adds), task.user
        right = [f for f in task.adds if isinstance(f, RelationFact)][0]
        wrong = [f for f in task.retracts if isinstance(f, RelationFact)][0]
        assert right.target in task.user  # "actually it's X (not Y)": X is in the user's words
        assert wrong.source == right.source and wrong.target != right.target


def test_questions_in_a_session_are_answered_with_what_the_gold_reply_names(tasks: list[TurnTask]) -> None:
    asked = [t for t in tasks if t.kind == "ask"]
    unknown = [t for t in tasks if t.kind == "ask_unknown"]
    assert asked and unknown
    for task in asked:
        assert task.probes and all(p.answers for p in task.probes)
        assert all(score_probe(p, task.gold_reply).correct for p in task.probes)
        assert not any(score_probe(p, task.user).correct for p in task.probes)  # the question gives nothing away
    for task in unknown:
        assert [p.answers for p in task.probes] == [()]  # the right reply is to not know
    assert not any(t.probes for t in tasks if t.needs_write or t.kind == "small_talk")


def test_small_talk_needs_no_write_and_changes_nothing(tasks: list[TurnTask]) -> None:
    talk = [t for t in tasks if t.kind == "small_talk"]
    assert talk and all(not t.needs_write and not t.adds and not t.retracts for t in talk)
    assert all(t.before == t.gold_after for t in talk)


def test_an_intro_adds_the_user_and_what_they_said(tasks: list[TurnTask]) -> None:
    intro = next(t for t in tasks if t.kind == "intro")
    assert any(isinstance(f, EntityFact) and f.name == "@user" for f in intro.adds)
    assert not intro.keeps and intro.before == {"entities": [], "relations": []}


def test_the_reference_turn_earns_every_credit_and_no_cost_on_every_turn(tasks: list[TurnTask]) -> None:
    """The derived targets and the rewards agree with the gold calls, on every turn of real data."""
    assert len(tasks) > 100
    for task in tasks:
        rollout = reference_rollout(task)
        assert rollout.graph == task.gold_after, task.key
        values = {term.__name__: term(task, rollout) for term in REWARD_TERMS}
        expected_memory = 1.0 if (task.adds or task.retracts) else None
        assert values["memory_reward"] == expected_memory, (task.key, task.user)
        assert values["answer_reward"] == (1.0 if task.probes else None), (task.key, task.user, rollout.turn.reply)
        costs = {name: v for name, v in values.items() if name not in ("memory_reward", "answer_reward")}
        assert all(v in (0.0, None) for v in costs.values()), (task.key, task.user, costs)
