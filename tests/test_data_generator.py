"""The episode generator: quality gate, disjoint splits, schema validity, determinism."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from memlora.agent.prompt import DEFAULT_USER_ENTITY, SYSTEM_PROMPT
from memlora.data import vocab
from memlora.data.commands import run_datagen, split_counts
from memlora.data.gate import GateError, check_episode
from memlora.data.generator import UNKNOWN_ROLES, generate_episode
from memlora.data.policy import USER, Fact, Policy
from memlora.store import open_store

SHARED_SCHEMA = Path(__file__).resolve().parents[1].parent / "shared" / "spec" / "episodes.schema.json"
VENDORED_SCHEMA = Path(__file__).resolve().parents[1] / "memlora" / "evaluation" / "episodes.schema.json"


def schema() -> dict:
    path = SHARED_SCHEMA if SHARED_SCHEMA.is_file() else VENDORED_SCHEMA
    return json.loads(path.read_text(encoding="utf-8"))


def test_gate_holds_under_the_evaluators_rules_on_thousands_of_episodes() -> None:
    """Every session of 1,200 episodes: the gold graph meets the episode's facts by scoring.py."""
    count = 0
    for split in vocab.SPLITS:
        for index in range(400):
            generate_episode(7, split, index, strict=True)  # raises GateError on any mismatch
            count += 1
    assert count == 1200


def test_gate_catches_a_fact_the_calls_do_not_back() -> None:
    generated = generate_episode(3, "train", 1)
    graphs = []
    store = open_store("sqlite::memory:")
    from memlora.data.execute import execute

    for session in generated.sessions:
        for turn in session.turns:
            for call in turn.calls:
                execute(store, call)
        graphs.append(store.read_graph().to_dict())
    check_episode(generated.episode, graphs)  # untouched: passes
    broken = copy.deepcopy(generated.episode)
    broken["sessions"][0]["learn"].append({"kind": "relation", "from": "@user", "type": ["works_at"], "to": "Nowhere Inc"})
    with pytest.raises(GateError):
        check_episode(broken, graphs)


def test_same_seed_same_episode_other_seed_other_episode() -> None:
    a = generate_episode(11, "train", 5).episode
    b = generate_episode(11, "train", 5).episode
    c = generate_episode(12, "train", 5).episode
    assert json.dumps(a) == json.dumps(b)
    assert json.dumps(a) != json.dumps(c)


def _names(split: vocab.Split, episodes: int) -> set[str]:
    names: set[str] = set()
    for index in range(episodes):
        episode = generate_episode(5, split, index).episode
        if episode["user"]["name"]:
            names.update(episode["user"]["name"].split())
        for session in episode["sessions"]:
            for fact in session["learn"]:
                if fact["kind"] == "entity" and fact["name"] != USER:
                    names.update(w for w in fact["name"].split() if w[:1].isupper())
    return names


def test_splits_share_no_names_or_places() -> None:
    generic = {w for text in [*vocab.ORG_SUFFIXES, *vocab.UNIVERSITY_FORMS, *(f for f, _ in vocab.EVENT_KINDS)]
               for w in text.replace("{city}", "").split()} | {"Project"}
    seen = {split: _names(split, 150) - generic for split in vocab.SPLITS}
    assert seen["train"] and seen["validation"] and seen["test"]
    assert not seen["train"] & seen["validation"]
    assert not seen["train"] & seen["test"]
    assert not seen["validation"] & seen["test"]


def test_pools_and_phrasings_are_disjoint() -> None:
    from memlora.data import phrasing as ph

    pools = {s: vocab.pools_for(s) for s in vocab.SPLITS}
    for a, b in [("train", "validation"), ("train", "test"), ("validation", "test")]:
        assert not set(pools[a].cities) & set(pools[b].cities)
        assert not set(pools[a].org_prefixes) & set(pools[b].org_prefixes)
        firsts = {s: {n for names in pools[s].first_names.values() for n, _ in names} for s in (a, b)}
        assert not firsts[a] & firsts[b]
        for bank in [*ph.STATE.values(), *ph.COMBO.values(), *ph.UPDATE.values(), *ph.CORRECT.values()]:
            if len(bank) >= 3:
                assert not set(ph.bank_for(bank, a)) & set(ph.bank_for(bank, b))


def test_datagen_files_validate_and_are_byte_identical_for_a_seed(tmp_path: Path) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    first = run_datagen(30, 4, tmp_path / "a", workers=1, progress=False)
    run_datagen(30, 4, tmp_path / "b", workers=2, progress=False)  # parallel: same bytes
    assert first["episodes"] == split_counts(30)
    for name in ["train.episodes.jsonl", "validation.episodes.jsonl", "test.episodes.jsonl",
                 "train.rows.jsonl", "validation.rows.jsonl"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for split in vocab.SPLITS:
        lines = (tmp_path / "a" / f"{split}.episodes.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == first["episodes"][split]
        for line in lines:
            episode = json.loads(line)
            errors = list(validator.iter_errors(episode))
            assert not errors, errors[0].message
            assert 3 <= len(episode["sessions"]) <= 10
            assert episode["split"] == split


def test_rows_open_like_a_live_session_and_carry_real_results(tmp_path: Path) -> None:
    from memlora.agent.protocol import model_tools

    run_datagen(12, 9, tmp_path, workers=1, progress=False)
    tools = model_tools()
    episodes = [json.loads(x) for x in (tmp_path / "train.episodes.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [json.loads(x) for x in (tmp_path / "train.rows.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == sum(len(e["sessions"]) for e in episodes)
    for row in rows:
        messages = row["messages"]
        assert row["tools"] == tools
        assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
        assert messages[1]["tool_calls"][0]["function"]["name"] == "read_graph"
        assert messages[2]["role"] == "tool" and messages[3]["role"] == "user"
        assert messages[-1]["role"] == "assistant" and messages[-1]["content"]
        for i, message in enumerate(messages):
            if message["role"] == "assistant" and message.get("tool_calls") and i > 1:
                results = messages[i + 1:i + 1 + len(message["tool_calls"])]
                assert [r["role"] for r in results] == ["tool"] * len(message["tool_calls"])
                assert [r["name"] for r in results] == [c["function"]["name"] for c in message["tool_calls"]]
    # a later session opens on the graph the earlier sessions built
    first_episode_rows = rows[: len(episodes[0]["sessions"])]
    assert first_episode_rows[0]["messages"][2]["content"] == '{"entities":[],"relations":[]}'
    assert first_episode_rows[-1]["messages"][2]["content"] != '{"entities":[],"relations":[]}'


def test_the_user_entity_is_created_first() -> None:
    """The first create_entities lists the user's entity first; in a recovery turn whose rejected
    first message created the other entities, the corrected message creates it first."""
    for index in range(60):
        generated = generate_episode(2, "train", index)
        expected = generated.episode["user"]["name"] or DEFAULT_USER_ENTITY
        turn = next(t for s in generated.sessions for t in s.turns if any(c["name"] == "create_entities" for c in t.calls))
        calls = turn.calls[turn.attempt.kept:] if turn.attempt is not None else turn.calls
        first_create = next(c for c in calls if c["name"] == "create_entities")
        assert first_create["arguments"]["entities"][0]["name"] == expected
        assert first_create["arguments"]["entities"][0]["entityType"] == "person"


def test_policy_correction_removes_the_wrong_place_but_an_update_keeps_it() -> None:
    store = open_store("sqlite::memory:")
    policy = Policy(store, "Ana Silva")
    from memlora.data.execute import execute

    def run(plan) -> None:  # type: ignore[no-untyped-def]
        for call in plan.calls:
            execute(store, call)

    lisbon = Fact("lives_in", USER, "Lisbon")
    run(policy.plan([lisbon]))
    porto = Fact("lives_in", USER, "Porto")
    correction = policy.plan([porto], [(lisbon, "correct")])
    run(correction)
    names = [e.name for e in store.read_graph().entities]
    assert names == ["Ana Silva", "Porto"]
    assert {"kind": "entity", "name": "Lisbon", "type": ["city"]} in correction.retract
    update = policy.plan([Fact("lives_in", USER, "Madrid")], [(porto, "update")])
    run(update)
    graph = store.read_graph()
    assert [e.name for e in graph.entities] == ["Ana Silva", "Porto", "Madrid"]
    assert [(r.source, r.relation_type, r.target) for r in graph.relations] == [("Ana Silva", "lives_in", "Madrid")]
    assert [c["name"] for c in update.calls] == ["delete_relations", "create_entities", "create_relations"]


def test_the_gate_runs_after_every_session_of_every_episode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from memlora.data.gate import FastGate

    checked: list[tuple[str, int]] = []
    original = FastGate.check

    def counting(self: FastGate, episode_id: str, session: int, graph: dict) -> None:
        checked.append((episode_id, session))
        original(self, episode_id, session, graph)

    monkeypatch.setattr(FastGate, "check", counting)
    stats = run_datagen(20, 6, tmp_path, workers=1, progress=False)
    expected = [(json.loads(line)["id"], i)
                for split in vocab.SPLITS
                for line in (tmp_path / f"{split}.episodes.jsonl").read_text(encoding="utf-8").splitlines()
                for i in range(len(json.loads(line)["sessions"]))]
    assert len(expected) >= 3 * sum(stats["episodes"].values())  # 3 to 10 sessions an episode
    assert checked == expected


def test_a_reused_scratch_store_gives_what_fresh_stores_give() -> None:
    """generate_episode reuses one emptied in-memory store; results must match a fresh store's."""
    from memlora.data.execute import ScratchStore, scratch_store
    from memlora.data.generator import EpisodeBuilder

    store = scratch_store()
    tables = {row[0] for row in store._writer.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    shadow = {t for t in tables for v in ScratchStore.TABLES if t.startswith(v + "_")}
    assert tables - shadow == set(ScratchStore.TABLES)  # reset() empties every table of the schema
    for index in range(40):
        reused = generate_episode(8, "train", index)
        fresh = EpisodeBuilder(8, "train", index).build()
        assert json.dumps(reused.episode) == json.dumps(fresh.episode)
        assert [[(t.calls, t.results) for t in s.turns] for s in reused.sessions] == \
            [[(t.calls, t.results) for t in s.turns] for s in fresh.sessions]
        assert [s.opening_graph for s in reused.sessions] == [s.opening_graph for s in fresh.sessions]


def test_row_lines_are_the_compact_json_of_messages_and_tools() -> None:
    from memlora.data.rows import row_head, row_tail, session_messages

    tools = [{"type": "function", "function": {"name": "read_graph", "description": "Ünïcode \"quoted\"\n"}}]
    for index in range(10):
        for session in generate_episode(4, "train", index).sessions:
            messages = session_messages(session)
            messages.append({"role": "user", "content": "São Paulo, 東京, tab\t, ctrl\x01, emoji \U0001f600"})
            expected = json.dumps({"messages": messages, "tools": tools}, ensure_ascii=False, separators=(",", ":"))
            assert (row_head(messages) + row_tail(tools)).decode("utf-8") == expected + "\n"


def test_token_counting_finds_the_model_cache_without_importing_torch(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    from memlora.data.commands import model_cache_root
    from memlora.models.loading import cache_root

    assert model_cache_root() == cache_root()
    monkeypatch.setenv("MEMLORA_CACHE", str(tmp_path))
    assert model_cache_root() == cache_root() == tmp_path


def test_row_token_counts_with_the_shared_opening_counted_once_are_exact() -> None:
    from memlora.data.commands import ROW_TEXT_PREFIX, TokenCounter, _row_text
    from memlora.data.rows import session_messages

    counter = TokenCounter()
    if counter.tokenizer is None:
        pytest.skip("the Qwen tokenizer is not in memlora's model cache")
    texts = [_row_text(session_messages(s)) for split in ("train", "validation") for index in range(25)
             for s in generate_episode(10, split, index).sessions]  # type: ignore[arg-type]
    assert all(t.startswith(ROW_TEXT_PREFIX) for t in texts)
    assert counter.count_rows(texts) == counter.count(texts)


def test_some_questions_have_no_answer_in_memory_and_get_an_honest_reply() -> None:
    """Untold details, never-mentioned relatives and forgotten facts are asked about, and the
    gold reply admits the gap (the gate checks the memory really lacks the answer)."""
    from memlora.data import phrasing as ph

    turns = forgotten = relatives = 0
    unknown = []
    for index in range(150):
        generated = generate_episode(7, "train", index, strict=True)
        forgets_so_far = 0
        for session in generated.sessions:
            for turn in session.turns:
                turns += 1
                action = turn.provenance["action"]
                forgets_so_far += action == "forget"
                if action != "ask_unknown":
                    continue
                unknown.append(turn)
                assert len(turn.calls) == 1 and turn.calls[0]["name"] in ("open_nodes", "search_nodes")
                if turn.provenance["asks_about"] == "forgotten":
                    forgotten += 1
                    assert forgets_so_far > 0, turn.user
                    assert turn.reply in ph.FORGOTTEN_REPLIES
                else:
                    assert turn.reply in ph.UNKNOWN_REPLIES
                relatives += any(role in turn.user for role in UNKNOWN_ROLES)
    assert len(unknown) > 0.04 * turns
    assert forgotten > 0.05 * len(unknown)  # only possible after a forget, but then asked often
    assert relatives > 0.15 * len(unknown)  # abstain probes ask about a relative about a third of the time
    # the evaluator reads every one of these replies as "does not know"
    from memlora.evaluation.scoring import is_abstention

    assert all(is_abstention(reply) for reply in ph.UNKNOWN_REPLIES + ph.FORGOTTEN_REPLIES)


def test_a_question_by_role_is_answered_through_the_person() -> None:
    """"Where does my mentor live?" opens the mentor and names the link: "Your mentor Ana lives in ..."."""
    checked = 0
    for index in range(100):
        generated = generate_episode(7, "train", index)
        user = generated.episode["user"]["name"] or DEFAULT_USER_ENTITY
        for session in generated.sessions:
            for turn in session.turns:
                if turn.provenance["action"] != "ask" or turn.calls[0]["name"] != "open_nodes":
                    continue
                (opened,) = turn.calls[0]["arguments"]["names"]
                entity = turn.results[0]["entities"][0]
                if opened == user or opened in turn.user or entity["entityType"] != "person":
                    continue
                assert turn.reply.startswith("Your ") and opened in turn.reply, (turn.user, turn.reply)
                checked += 1
    assert checked > 10
