"""Updates, corrections and forgets delete exactly what went stale, and nothing else."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Any

from memlora.agent.prompt import DEFAULT_USER_ENTITY
from memlora.data.execute import execute
from memlora.data.generator import GeneratedEpisode, GenTurn, generate_episode
from memlora.data.handwritten import _check_no_restated_relations
from memlora.data.policy import USER, Fact, Policy
from memlora.store import open_store


@lru_cache(maxsize=1)
def episodes() -> tuple[GeneratedEpisode, ...]:
    return tuple(generate_episode(21, split, index) for split in ("train", "test") for index in range(120))


def turn_graphs(generated: GeneratedEpisode) -> list[tuple[GenTurn, dict[str, Any], dict[str, Any]]]:
    """Every turn with the graph before and after it (its accepted calls replayed on a fresh store)."""
    return _turn_graphs(episodes().index(generated))


@lru_cache(maxsize=None)
def _turn_graphs(index: int) -> list[tuple[GenTurn, dict[str, Any], dict[str, Any]]]:
    generated = episodes()[index]
    store = open_store("sqlite::memory:")
    out = []
    for session in generated.sessions:
        for turn in session.turns:
            before = store.read_graph().to_dict()
            for call in turn.calls:
                execute(store, call)
            out.append((turn, before, store.read_graph().to_dict()))
    return out


def _matches(text: str, keywords: list[Any]) -> bool:
    groups = [[k] if isinstance(k, str) else k for k in keywords]
    return all(any(alt.lower() in text.lower() for alt in group) for group in groups)


def test_each_change_deletes_exactly_what_its_retract_facts_name() -> None:
    """Per update, correction and forget turn: the relations, observations and entities that
    left the graph are those the turn retracts (or hang off a retracted entity), each retract
    removed something, and the delete calls hold one item per retract fact."""
    audited = Counter()
    for generated in episodes():
        user = generated.episode["user"]["name"] or DEFAULT_USER_ENTITY

        def name(n: str) -> str:
            return user if n == USER else n

        for turn, before, after in turn_graphs(generated):
            action = turn.provenance["action"]
            deletes = [c for c in turn.calls if c["name"].startswith("delete_")]
            if action not in ("update", "correct", "forget"):
                assert not deletes, (turn.user, deletes)
                continue
            audited[action] += 1
            relations = [(name(f["from"]), name(f["to"])) for f in turn.retract if f["kind"] == "relation"]
            observations = [(name(f["entity"]), f["keywords"]) for f in turn.retract if f["kind"] == "observation"]
            entities = {name(f["name"]) for f in turn.retract if f["kind"] == "entity"}
            rel_before = {(r["from"], r["to"], r["relationType"]) for r in before["relations"]}
            rel_after = {(r["from"], r["to"], r["relationType"]) for r in after["relations"]}
            obs_before = {(e["name"], o) for e in before["entities"] for o in e["observations"]}
            obs_after = {(e["name"], o) for e in after["entities"] for o in e["observations"]}
            names_after = {e["name"] for e in after["entities"]}
            gone_entities = {e["name"] for e in before["entities"]} - names_after
            assert gone_entities == entities, (turn.user, gone_entities, entities)
            for a, b, _ in rel_before - rel_after:
                assert (a, b) in relations or a in entities or b in entities, (turn.user, a, b)
            for entity, text in obs_before - obs_after:
                assert entity in entities or any(e == entity and _matches(text, k) for e, k in observations), (turn.user, text)
            for a, b in relations:
                assert any((x, y) == (a, b) for x, y, _ in rel_before - rel_after), (turn.user, a, b)
            for entity, keywords in observations:
                assert any(e == entity and _matches(o, keywords) for e, o in obs_before - obs_after), (turn.user, keywords)
            count = Counter()
            for call in deletes:
                args = call["arguments"]
                count[call["name"]] += len(args.get("relations") or args.get("entityNames") or
                                           [o for d in args.get("deletions", []) for o in d["observations"]])
            assert count["delete_relations"] == len(relations)
            assert count["delete_observations"] == len(observations)
            assert count["delete_entities"] == len(entities)
            if action == "update":
                assert not entities  # the old city or employer stays; only its link goes
            if turn.provenance.get("job_change"):
                assert len(relations) == 1 and len(observations) == 1
                assert observations[0][1][0][0] in turn.user  # the old title, as said
    assert audited["update"] > 100 and audited["correct"] > 60 and audited["forget"] > 60


def test_a_job_change_keeps_where_the_user_lives() -> None:
    """The shipped adapter deleted lives_in on a job change and kept the old "Works as" note:
    here every other relation stays, and the one title left is the new one."""
    changes = 0
    for generated in episodes():
        user = generated.episode["user"]["name"] or DEFAULT_USER_ENTITY
        for turn, before, after in turn_graphs(generated):
            if not turn.provenance.get("job_change"):
                continue
            changes += 1
            kept = {(r["from"], r["to"], r["relationType"]) for r in before["relations"] if r["relationType"] != "works_at"}
            assert kept <= {(r["from"], r["to"], r["relationType"]) for r in after["relations"]}
            (relation,) = [f for f in turn.retract if f["kind"] == "relation"]
            subject = user if relation["from"] == USER else relation["from"]
            (entity,) = [e for e in after["entities"] if e["name"] == subject]
            (title,) = [o for o in entity["observations"] if o.startswith("Works as")]
            assert title.split(" ", 3)[3] in turn.user
    assert changes > 10


def test_forgetting_an_old_employer_deletes_that_entity_only() -> None:
    seen = 0
    for generated in episodes():
        for turn, before, after in turn_graphs(generated):
            if not turn.provenance.get("old_entity"):
                continue
            seen += 1
            assert [c["name"] for c in turn.calls] == ["delete_entities"]
            (gone,) = turn.calls[0]["arguments"]["entityNames"]
            assert gone in turn.user
            assert before["relations"] == after["relations"]  # nothing linked it
            assert [e for e in before["entities"] if e["name"] != gone] == after["entities"]
    assert seen > 5


def test_no_observation_restates_a_relation() -> None:
    for generated in episodes():
        store = open_store("sqlite::memory:")
        for session in generated.sessions:
            for turn in session.turns:
                for call in turn.calls:
                    execute(store, call)
            _check_no_restated_relations(store.read_graph().to_dict(), generated.episode["id"])


def test_a_break_up_swaps_partner_of_for_ex_partner_of() -> None:
    store = open_store("sqlite::memory:")
    policy = Policy(store, None)
    mia = Fact("person", USER, "Mia", "girlfriend")
    for call in policy.plan([mia]).calls:
        execute(store, call)
    plan = policy.plan([Fact("person", USER, "Lea", "girlfriend"), Fact("person", USER, "Mia", "ex")], [(mia, "update")])
    for call in plan.calls:
        execute(store, call)
    relations = [(r.source, r.relation_type, r.target) for r in store.read_graph().relations]
    assert relations == [("default_user", "partner_of", "Lea"), ("default_user", "ex_partner_of", "Mia")]
    assert [c["name"] for c in plan.calls] == ["delete_relations", "create_entities", "create_relations"]
