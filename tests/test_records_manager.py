"""MemoryManager: writing (model, retry, rules), recalling with citations and budgets, missions, traces, skip."""

from __future__ import annotations

import json
import logging

import pytest

from memlora.records.answer import NOT_FOUND
from memlora.records.backends import choose_backend, default_trace_path, open_manager
from memlora.records.chat import LocalChatModel
from memlora.records.errors import RecordsError
from memlora.records.manager import MEMORY_OFF, MemoryManager, SkipManager
from memlora.records.schema import RecordValidationError
from memlora.records.store import RecordStore
from memlora.records.traces import read_traces, summarise
from records_helpers import ScriptedModel


@pytest.fixture
def manager(minilm, tmp_path):
    store = RecordStore(tmp_path / "records.db", minilm)
    with MemoryManager(store, None, trace=tmp_path / "trace.jsonl", mission="m-1", clock=lambda: 1_760_000_000.0) as made:
        yield made


def _lines(manager) -> list[dict]:
    return list(read_traces(manager.trace.path))


def test_rules_turn_an_observation_into_a_record(manager) -> None:
    result = manager.write("saw a red ball on the table at x=1.2, y=3.5, yaw 1.57 during mission m-2025-10-15-1")
    record = result.record
    assert result.stored and result.method == "rules" and record.source == "rules"
    assert record.event == "object_seen" and record.text == "Saw a red ball on the table."
    assert (record.pose.x, record.pose.y, record.pose.yaw) == (1.2, 3.5, 1.57)
    assert record.mission_id == "m-2025-10-15-1"  # spelled out in the text: wins over the current mission
    assert {"object:red_ball", "place:table"} <= set(record.tags)
    assert record.timestamp == 1_760_000_000.0


def test_the_callers_context_wins_and_extra_tags_and_event_apply(manager) -> None:
    record = manager.write("noticed a crack in the wall", pose=(1, 2, 0.5), mission="m-9", tags=["room:hall"],
                           timestamp=5.0, event="x_damage_found").record
    assert record.mission_id == "m-9" and record.pose.x == 1.0 and record.timestamp == 5.0
    assert record.event == "x_damage_found" and "room:hall" in record.tags


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"pose": (1, 2, 7)}, "pose.yaw"), ({"pose": "1,2"}, "pose"), ({"pose": "a,b,c"}, "pose"),
     ({"tags": ["Bad Tag"]}, "tags"), ({"event": "seen"}, "event"), ({"mission": "two words"}, "mission_id")],
)
def test_bad_context_is_named_and_nothing_is_stored(manager, kwargs, field) -> None:
    with pytest.raises(RecordValidationError) as caught:
        manager.write("saw a cup", **kwargs)
    assert field in [f for f, _ in caught.value.problems]
    assert manager.store.count() == 0


def test_a_model_reply_is_retried_with_the_validators_message_then_used(minilm, tmp_path) -> None:
    model = ScriptedModel([
        "Sure! Here is the record: {event: object_seen}",  # not JSON
        '{"event": "object_seen", "text": "Saw a red ball.", "tags": ["object:red_ball"]}',
    ])
    manager = MemoryManager(RecordStore(":memory:", minilm), model, trace=tmp_path / "t.jsonl")
    result = manager.write("saw a red ball")
    assert result.method == "model" and result.record.source == "model:scripted"
    assert [(a.json_valid, a.record_valid) for a in result.attempts] == [(False, False), (True, True)]
    retry = model.seen[1]
    assert retry[-1]["role"] == "user" and "no JSON object" in retry[-1]["content"]
    line = _lines(manager)[0]
    assert [a["json_valid"] for a in line["attempts"]] == [False, True]


def test_a_reply_that_stays_invalid_falls_back_to_rules(minilm, tmp_path) -> None:
    model = ScriptedModel(['{"event": "seen", "text": "x", "tags": []}', '{"event": "object_seen", "text": ""}'])
    manager = MemoryManager(RecordStore(":memory:", minilm), model, trace=tmp_path / "t.jsonl")
    result = manager.write("saw a blue mug in the kitchen")
    assert result.method == "rules" and result.record.source == "rules"
    assert [(a.json_valid, a.record_valid) for a in result.attempts] == [(True, False), (True, False)]
    assert "event" in result.attempts[0].problems[0]
    stats = summarise(read_traces(tmp_path / "t.jsonl"))["writes"]
    assert stats["json_valid_per_attempt"]["rate"] == 1.0 and stats["record_valid_per_attempt"]["rate"] == 0.0
    assert stats["fell_back_to_rules"]["rate"] == 1.0


def test_a_real_random_model_through_the_engine_falls_back_cleanly(minilm, tmp_path) -> None:
    from memlora.testing import tiny_model

    model = LocalChatModel("tiny", adapter="none", loaded=tiny_model("qwen", seed=1))
    manager = MemoryManager(RecordStore(":memory:", minilm), model, trace=tmp_path / "t.jsonl", write_attempts=1)
    manager.write_max_tokens = 24  # a random model never closes its JSON: keep the test short
    results = manager.write_many([{"text": "saw a red ball"}, {"text": "met Bob in the lab"}])
    assert [r.stored for r in results] == [True, True]
    assert all(len(r.attempts) >= 1 for r in results)
    assert {r.record.event for r in results} <= {"object_seen", "person_met"}


def test_recall_answers_extractively_and_cites_record_ids(manager) -> None:
    ball = manager.write("saw a red ball on the table in the living room").record
    manager.write("met Alice in the lobby")
    result = manager.recall("where did we see the red ball?")
    assert result.answer.endswith("[1].") and "red ball" in result.answer
    assert result.citations == [ball.id] and result.numbers == [1]
    assert result.evidence[0].id == ball.id


def test_an_unrelated_question_is_not_in_memory(manager) -> None:
    manager.write("saw a red ball on the table")
    assert manager.recall("what is the capital of Peru?").answer == NOT_FOUND


def test_model_answers_keep_valid_citations_and_flag_invalid_ones(minilm, tmp_path) -> None:
    model = ScriptedModel(['{"event": "object_seen", "text": "Saw a red ball.", "tags": []}',
                           "On the table [1], not [7]."])
    manager = MemoryManager(RecordStore(":memory:", minilm), model, trace=tmp_path / "t.jsonl")
    record = manager.write("saw a red ball").record
    result = manager.recall("where is the ball?")
    assert result.citations == [record.id] and result.trace["invalid_citations"] == [7]
    assert "[1]" in model.seen[-1][-1]["content"] and "Saw a red ball." in model.seen[-1][-1]["content"]
    assert result.trace["answered_by"] == "model:scripted" and result.trace["prompt_tokens"] > 0


def test_the_token_budget_limits_the_evidence(manager) -> None:
    for i in range(8):
        manager.write(f"saw a red ball number {i} on the table")
    full = manager.recall("red ball", k=8, token_budget=10_000)
    tight = manager.recall("red ball", k=8, token_budget=150)
    none = manager.recall("red ball", k=8, token_budget=3)
    assert len(full.evidence) == 8 and 0 < len(tight.evidence) < 8
    assert tight.trace["evidence_tokens"] <= 150 and tight.trace["within_budget"]
    assert len(tight.trace["dropped_for_budget"]) == 8 - len(tight.evidence)
    assert none.evidence == [] and none.answer == NOT_FOUND


def test_recall_stays_in_the_mission_unless_asked(manager) -> None:
    manager.write("saw a red ball on the table", mission="m-1")
    other = manager.write("saw a red ball under the sofa", mission="m-2").record
    inside = manager.recall("where is the red ball?", k=5)
    assert {r.mission_id for r in inside.evidence} == {"m-1"}
    assert manager.recall("where is the red ball?", mission="m-2").evidence == [other]
    across = manager.recall("where is the red ball?", across_missions=True)
    assert {r.mission_id for r in across.evidence} == {"m-1", "m-2"}
    assert across.trace["scope_missions"] is None and inside.trace["scope_missions"] == ["m-1"]


def test_every_recall_writes_one_trace_line_with_everything(manager) -> None:
    ball = manager.write("saw a red ball on the table").record
    manager.recall("where is the red ball?", k=3, token_budget=200, expected_ids=[ball.id])
    manager.recall("what about the chair?", expected_ids=["r-nope"])
    lines = [line for line in _lines(manager) if line["op"] == "recall"]
    assert len(lines) == 2
    first = lines[0]
    for key in ("request", "retrieved", "evidence_ids", "evidence_tokens", "token_budget", "within_budget",
                "answer", "citations", "latency_ms", "adapter", "answered_by", "trace_version"):
        assert key in first, key
    assert first["request"]["question"] == "where is the red ball?" and first["request"]["k"] == 3
    assert first["retrieved"][0]["id"] == ball.id and "score" in first["retrieved"][0]
    assert first["latency_ms"]["total"] >= first["latency_ms"]["retrieve"] >= 0
    stats = summarise(_lines(manager))["recalls"]
    assert stats["success@1"]["n"] == 2 and stats["success@1"]["hits"] == 1
    assert stats["within_budget"]["rate"] == 1.0


def test_recall_arguments_are_checked(manager) -> None:
    for kwargs, words in (({"k": 0}, "k: must be between"), ({"token_budget": 0}, "token_budget"),
                          ({"since": 5.0, "until": 1.0}, "since")):
        with pytest.raises(RecordsError, match=words):
            manager.recall("ball", **kwargs)
    with pytest.raises(RecordsError, match="question"):
        manager.recall("   ")


def test_recall_counts_feed_least_recalled_quotas(manager) -> None:
    kept = manager.write("saw a red ball", timestamp=1.0).record
    gone = manager.write("saw a green box", timestamp=2.0).record
    manager.recall("red ball", k=1)
    report = manager.purge(max_total=1, order="least_recalled")
    assert report.deleted == [gone.id] and manager.store.get([kept.id]) == [kept]


def test_skip_drops_writes_with_a_notice_and_says_memory_is_off(tmp_path, caplog, monkeypatch) -> None:
    monkeypatch.setenv("MEMORY_BACKEND", "skip")
    monkeypatch.chdir(tmp_path)
    manager = open_manager(store_url=f"sqlite:{tmp_path / 'never.db'}")
    assert isinstance(manager, SkipManager)
    with caplog.at_level(logging.WARNING, logger="memlora.records"):
        result = manager.write("saw a red ball")
    assert result.stored is False and result.method == "skipped" and "memory is off" in caplog.text
    assert manager.recall("where is the ball?").answer == MEMORY_OFF
    with pytest.raises(RecordsError, match="memory is off"):
        manager.purge(older_than=1)
    assert list(tmp_path.iterdir()) == []


def test_the_backend_comes_from_the_option_or_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("MEMORY_BACKEND", raising=False)
    assert choose_backend() == "local"
    monkeypatch.setenv("MEMORY_BACKEND", "OpenAI")
    assert choose_backend() == "openai" and choose_backend("skip") == "skip"
    monkeypatch.setenv("MEMORY_BACKEND", "cloud")
    with pytest.raises(RecordsError, match="MEMORY_BACKEND='cloud'"):
        choose_backend()
    with pytest.raises(RecordsError, match="--backend='x'"):
        choose_backend("x")


def test_the_trace_file_sits_beside_the_store(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MEMLORA_RECORDS_TRACE", raising=False)
    assert default_trace_path(f"sqlite:{tmp_path / 'records.db'}") == tmp_path / "records.traces.jsonl"
    assert default_trace_path("sqlite::memory:") is None
    with pytest.raises(RecordsError, match="sqlite:PATH"):
        default_trace_path("jsonl:x")


def test_the_local_backend_without_a_model_writes_and_recalls(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MEMORY_BACKEND", raising=False)
    with open_manager(store_url=f"sqlite:{tmp_path / 'records.db'}", model="none", mission="m1") as manager:
        record = manager.write("saw a red ball in the kitchen").record
        result = manager.recall("where is the red ball?")
    assert result.citations == [record.id]
    trace = [json.loads(line) for line in (tmp_path / "records.traces.jsonl").read_text().splitlines()]
    assert [line["op"] for line in trace] == ["write", "recall"] and trace[1]["backend"] == "local"


def test_recall_within_an_explicit_set_of_missions(manager) -> None:
    for mission in ("m-1", "m-2", "m-3"):
        manager.write("saw a red ball on the table", mission=mission)
    result = manager.recall("red ball", missions=["m-2", "m-3"])
    assert {r.mission_id for r in result.evidence} == {"m-2", "m-3"}
    assert result.trace["request"]["missions"] == ["m-2", "m-3"]


@pytest.mark.slow
def test_the_bundled_model_writes_and_answers_with_the_shipped_records_adapters_by_default(minilm, tmp_path) -> None:
    """A MemoryManager on `LocalChatModel()` (nothing named) routes writes to the shipped writing
    adapter and answers to the shipped recall adapter, and the records say so."""
    from memlora.routing import shipped_adapter

    model = LocalChatModel()
    for role in ("writing", "recall"):
        assert shipped_adapter("qwen2.5-coder-0.5b", role), f"adapters/qwen2.5-coder-0.5b-records-{role}/ is shipped"
        assert model.adapter_for(role) and f"records_{role}" in model.adapter_for(role).replace("-", "_")
    manager = MemoryManager(RecordStore(":memory:", minilm), model, trace=tmp_path / "t.jsonl", mission="m-1")
    result = manager.write("um so I just saw a red ball under the kitchen table, lol", pose=(1.0, 2.0, 0.5))
    assert result.stored and result.record.source.startswith("adapter:") and "writing" in result.record.source
    assert "ball" in result.record.text.lower() and result.record.pose.x == 1.0
    answer = manager.recall("where did we see the red ball?")
    assert answer.trace["answered_by"].startswith("adapter:") and "recall" in answer.trace["answered_by"]
    assert "[1]" in answer.answer, answer.answer


@pytest.mark.slow
def test_the_bundled_base_model_writes_and_answers_with_a_strict_prompt(minilm, tmp_path) -> None:
    model = LocalChatModel(adapter="none")  # the real bundled Qwen2.5-Coder-0.5B, no adapter
    manager = MemoryManager(RecordStore(":memory:", minilm), model, trace=tmp_path / "t.jsonl", mission="m-1")
    result = manager.write("saw a red ball on the table in the kitchen", pose=(1.0, 2.0, 0.5))
    assert result.stored and result.attempts and result.record.pose.x == 1.0
    assert result.record.source in ("model:qwen2.5-coder-0.5b", "rules")
    answer = manager.recall("where did we see the red ball?")
    assert answer.trace["answered_by"] == "model:qwen2.5-coder-0.5b" and answer.answer
    lines = list(read_traces(tmp_path / "t.jsonl"))
    assert [line["op"] for line in lines] == ["write", "recall"]
