"""Recovery turns: a first call the server rejects, its exact error text, then the corrected calls."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import anyio
from mcp.client import Client

from memlora.agent.prompt import DEFAULT_USER_ENTITY
from memlora.data.execute import GoldCallError, execute
from memlora.data.generator import GeneratedEpisode, GenTurn, generate_episode
from memlora.data.rows import session_messages
from memlora.server.app import build_server
from memlora.store import open_store

WRITES = {"create_entities", "create_relations", "add_observations", "delete_entities", "delete_observations",
          "delete_relations"}


@lru_cache(maxsize=1)
def episodes() -> tuple[GeneratedEpisode, ...]:
    return tuple(generate_episode(13, "train", index) for index in range(150))


def recovery_turns() -> list[tuple[GeneratedEpisode, int, int]]:
    """(episode, session index, turn index) of every recovery turn."""
    return [(g, s, t) for g in episodes() for s, session in enumerate(g.sessions)
            for t, turn in enumerate(session.turns) if turn.attempt is not None]


def replay_until(generated: GeneratedEpisode, session: int, turn: int) -> Any:
    """A fresh store holding what the accepted calls wrote before the given turn."""
    store = open_store("sqlite::memory:")
    for s, gen_session in enumerate(generated.sessions):
        for t, gen_turn in enumerate(gen_session.turns):
            if (s, t) == (session, turn):
                return store
            for call in gen_turn.calls:
                execute(store, call)
    raise AssertionError("no such turn")


def test_about_six_percent_of_writing_turns_recover_mostly_from_a_missing_entity() -> None:
    writing = [t for g in episodes() for s in g.sessions for t in s.turns
               if any(c["name"] in WRITES for c in t.calls)]
    recovering = [t for t in writing if t.attempt is not None]
    assert 0.04 < len(recovering) / len(writing) < 0.09
    kinds = [t.provenance["recovery"] for t in recovering]
    assert kinds.count("missing_entity") > kinds.count("misspelt") > 0.15 * len(kinds)
    errors = [r for t in recovering for r in t.attempt.results if isinstance(r, str) and r.startswith("Entity")]
    assert any(r == f"Entity with name {DEFAULT_USER_ENTITY} not found" for r in errors)


def test_the_rejected_calls_fail_on_the_store_with_the_recorded_text_and_change_nothing() -> None:
    checked = 0
    for generated, s, t in recovery_turns():
        turn: GenTurn = generated.sessions[s].turns[t]
        store = replay_until(generated, s, t)
        accepted = []
        for call, result in zip(turn.attempt.calls, turn.attempt.results, strict=True):
            before = store.read_graph().to_dict()
            if isinstance(result, str) and result.startswith("Entity with name"):
                try:
                    execute(store, call)
                except GoldCallError as error:
                    assert str(error.__cause__) == result
                else:
                    raise AssertionError(f"accepted: {call}")
                assert store.read_graph().to_dict() == before
                checked += 1
            else:
                assert execute(store, call) == result
                accepted.append(call)
        assert accepted == turn.calls[:turn.attempt.kept]
        assert len(accepted) < len(turn.attempt.calls)  # something was rejected
        for call, result in zip(turn.calls[turn.attempt.kept:], turn.results[turn.attempt.kept:], strict=True):
            assert execute(store, call) == result
        # the turn's calls alone (what the evaluator replays) build the same graph
        plain = replay_until(generated, s, t)
        for call in turn.calls:
            execute(plain, call)
        assert plain.read_graph().to_dict() == store.read_graph().to_dict()
    assert checked > 20


def test_the_error_text_is_what_the_mcp_server_returns() -> None:
    """Through the real server and SDK client: the rejected call is an error result whose text
    is the one the row shows the model."""
    cases = recovery_turns()[:8]

    async def run() -> list[tuple[str, str]]:
        seen = []
        for generated, s, t in cases:
            turn = generated.sessions[s].turns[t]
            store = replay_until(generated, s, t)
            async with Client(build_server(store)) as client:
                for call, result in zip(turn.attempt.calls, turn.attempt.results, strict=True):
                    answer = await client.call_tool(call["name"], call["arguments"])
                    if answer.is_error:
                        seen.append((answer.content[0].text, result))
        return seen

    seen = anyio.run(run)
    assert len(seen) >= 8
    assert all(text == recorded for text, recorded in seen)


def test_rows_show_the_rejected_message_without_loss_then_the_correction() -> None:
    for generated, s, t in recovery_turns()[:40]:
        session = generated.sessions[s]
        turn = session.turns[t]
        messages = session_messages(session)
        flagged = [i for i, m in enumerate(messages) if "loss" in m]
        assert all(messages[i]["loss"] is False for i in flagged)
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        start = users[t]
        attempt = messages[start + 1]
        assert attempt["loss"] is False and [c["function"] for c in attempt["tool_calls"]] == [
            {"name": c["name"], "arguments": c["arguments"]} for c in turn.attempt.calls]
        results = messages[start + 2:start + 2 + len(turn.attempt.calls)]
        assert [m["role"] for m in results] == ["tool"] * len(turn.attempt.calls)
        errors = [m["content"] for m in results if m["content"].startswith("Entity with name")]
        assert errors and all(e.endswith(" not found") for e in errors)
        retry = messages[start + 2 + len(turn.attempt.calls)]
        assert "loss" not in retry
        assert [c["function"]["name"] for c in retry["tool_calls"]] == [c["name"] for c in turn.calls[turn.attempt.kept:]]
    # no other message anywhere carries a loss flag
    for generated in episodes()[:40]:
        for session in generated.sessions:
            rejected = sum(t.attempt is not None for t in session.turns)
            assert sum("loss" in m for m in session_messages(session)) == rejected


def test_the_episode_keeps_only_the_accepted_calls_and_marks_the_turn() -> None:
    for generated, s, t in recovery_turns()[:40]:
        turn = generated.sessions[s].turns[t]
        recorded = generated.episode["sessions"][s]["turns"][t]
        assert recorded["calls"] == turn.calls
        assert recorded["provenance"]["recovery"] in ("missing_entity", "misspelt")
        text = json.dumps(recorded["calls"], ensure_ascii=False)
        for result in turn.attempt.results:
            if isinstance(result, str) and result.startswith("Entity with name"):
                wrong = result[len("Entity with name "):-len(" not found")]
                if recorded["provenance"]["recovery"] == "misspelt":
                    assert f'"{wrong}"' not in text  # the misspelt name is never written
