"""GRPO rewards on hand-built graphs and turns: each term, and the guards against reward hacking.

The turn: Alice Chen, who works at Acme, lives in Porto and plays the cello, says "I moved to
Lisbon, and I'm allergic to peanuts." The right calls delete `lives_in Porto`, create Lisbon,
relate her to it and add the allergy.
"""

from __future__ import annotations

from typing import Any

import pytest

from memlora.evaluation.episodes import EntityFact, ObservationFact, Probe, RelationFact, UserInfo
from memlora.evaluation.records import CallRecord, StepRecord, TurnRecord
from memlora.evaluation.scoring import MemoryState, Names
from memlora.training import rewards
from memlora.training.rewards import Rollout, total_reward, trl_reward_functions
from memlora.training.turns import TurnTask

NAMES = Names.for_user(UserInfo("Alice Chen", ("Alice",)))
USER = EntityFact("@user", ("person",))
ACME, PORTO, LISBON = EntityFact("Acme", ("organization",)), EntityFact("Porto", ("city",)), EntityFact("Lisbon", ("city",))
WORKS = RelationFact("@user", ("works_at",), "Acme")
LIVED = RelationFact("@user", ("lives_in",), "Porto")
LIVES = RelationFact("@user", ("lives_in",), "Lisbon")
CELLO = ObservationFact("@user", (("cello",),))
PEANUTS = ObservationFact("@user", (("allerg",), ("peanut",)))
KEEPS = (USER, ACME, WORKS, PORTO, CELLO)


def graph(entities: dict[str, tuple[str, list[str]]], relations: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "entities": [{"name": n, "entityType": t, "observations": list(o)} for n, (t, o) in entities.items()],
        "relations": [{"from": a, "relationType": r, "to": b} for a, r, b in relations],
    }


def alice(*observations: str) -> tuple[str, list[str]]:
    return ("person", ["Plays the cello", *observations])


BEFORE = graph({"Alice Chen": alice(), "Acme": ("organization", []), "Porto": ("city", [])},
               [("Alice Chen", "works_at", "Acme"), ("Alice Chen", "lives_in", "Porto")])
GOLD = graph({"Alice Chen": alice("Allergic to peanuts"), "Acme": ("organization", []), "Porto": ("city", []),
              "Lisbon": ("city", [])},
             [("Alice Chen", "works_at", "Acme"), ("Alice Chen", "lives_in", "Lisbon")])
GOLD_CALLS = [
    ("delete_relations", {"relations": [{"from": "Alice Chen", "to": "Porto", "relationType": "lives_in"}]}),
    ("create_entities", {"entities": [{"name": "Lisbon", "entityType": "city", "observations": []}]}),
    ("create_relations", {"relations": [{"from": "Alice Chen", "to": "Lisbon", "relationType": "lives_in"}]}),
    ("add_observations", {"observations": [{"entityName": "Alice Chen", "contents": ["Allergic to peanuts"]}]}),
]


def task(**changes: Any) -> TurnTask:
    made = TurnTask(
        key="ep#1.0", kind="update", user="I moved to Lisbon, and I'm allergic to peanuts.", history=[],
        setup_calls=(), before=BEFORE, gold_after=GOLD, names=NAMES, adds=(LISBON, LIVES, PEANUTS),
        retracts=(LIVED,), keeps=KEEPS, state=MemoryState(KEEPS + (LISBON, LIVES, PEANUTS), (LIVED,)),
        needs_write=True,
    )
    for key, value in changes.items():
        setattr(made, key, value)
    return made


def rollout(after: dict[str, Any], calls: list[tuple[str, dict[str, Any]]] = (), reply: str = "Got it.",
            mode: str = "strict", invalid: str | None = None, stop: str = "reply") -> Rollout:
    records = [CallRecord(name, args, mode=mode, invalid=invalid) for name, args in calls]
    steps = [StepRecord(raw="<tool_call>...</tool_call>", mode=mode, calls=records)] if records else []
    steps.append(StepRecord(raw=reply, mode="none"))
    return Rollout(TurnRecord(user="", steps=steps, reply=reply, stop=stop), after)


GOLD_ROLLOUT = rollout(GOLD, GOLD_CALLS)
NOTHING = rollout(BEFORE)


# ----------------------------------------------------------------------------- each term


def test_memory_credits_each_add_and_retract_by_the_evaluators_rules() -> None:
    assert rewards.memory_reward(task(), GOLD_ROLLOUT) == 1.0
    assert rewards.memory_reward(task(), NOTHING) == 0.0
    only_allergy = graph({"Alice Chen": alice("Allergic to peanuts"), "Acme": ("organization", []),
                          "Porto": ("city", [])}, [("Alice Chen", "works_at", "Acme"), ("Alice Chen", "lives_in", "Porto")])
    assert rewards.memory_reward(task(), rollout(only_allergy)) == 0.25
    as_mention = graph({"Alice Chen": alice("Allergic to peanuts", "Lives in Lisbon"), "Acme": ("organization", []),
                        "Porto": ("city", []), "Lisbon": ("city", [])}, [("Alice Chen", "works_at", "Acme")])
    assert rewards.memory_reward(task(), rollout(as_mention)) == (1 + rewards.RELATION_RETRIEVABLE_ONLY + 1 + 1) / 4
    wrong_type = graph({"Alice Chen": alice("Allergic to peanuts"), "Acme": ("organization", []),
                        "Porto": ("city", []), "Lisbon": ("person", [])},
                       [("Alice Chen", "works_at", "Acme"), ("Alice Chen", "lives_in", "Lisbon")])
    assert rewards.memory_reward(task(), rollout(wrong_type)) == (rewards.ENTITY_WRONG_TYPE + 3) / 4
    assert rewards.memory_reward(task(adds=(), retracts=()), GOLD_ROLLOUT) is None  # nothing to change


def test_a_call_the_strict_parser_or_the_schema_rejects_earns_nothing() -> None:
    tolerant = rollout(GOLD, GOLD_CALLS, mode="tolerant")  # the calls ran and wrote the right graph
    invalid = rollout(GOLD, GOLD_CALLS, invalid="entities: 'x' is not of type 'array'")
    unfinished = rollout(GOLD, GOLD_CALLS, reply="", stop="step_limit")
    assert rewards.format_reward(task(), GOLD_ROLLOUT) == 0.0
    for bad in (tolerant, invalid, unfinished):
        assert rewards.format_reward(task(), bad) == rewards.FORMAT_ERROR
        assert rewards.memory_reward(task(), bad) == 0.0
        assert total_reward(task(), bad) < total_reward(task(), NOTHING)


def test_facts_destroyed_that_were_not_retracted_weigh_heavily() -> None:
    assert rewards.destroyed_reward(task(), GOLD_ROLLOUT) == 0.0
    assert rewards.destroyed_reward(task(), NOTHING) == 0.0
    no_acme = graph({"Alice Chen": alice("Allergic to peanuts"), "Porto": ("city", []), "Lisbon": ("city", [])},
                    [("Alice Chen", "lives_in", "Lisbon")])
    assert rewards.destroyed_reward(task(), rollout(no_acme)) == 2 * rewards.DESTROYED_FACT  # Acme and works_at
    empty = graph({}, [])
    assert rewards.destroyed_reward(task(), rollout(empty)) == rewards.DESTROYED_CAP
    # the retracted relation going is no loss
    assert LIVED not in task().keeps


def test_new_items_no_fact_accounts_for_cost_and_old_ones_do_not() -> None:
    with_fruit = graph({"Alice Chen": alice("Allergic to peanuts"), "Acme": ("organization", []),
                        "Porto": ("city", []), "Lisbon": ("city", []), "Banana": ("fruit", ["Is yellow"])},
                       [("Alice Chen", "works_at", "Acme"), ("Alice Chen", "lives_in", "Lisbon")])
    assert rewards.spurious_reward(task(), GOLD_ROLLOUT) == 0.0
    assert rewards.spurious_reward(task(), rollout(with_fruit)) == 2 * rewards.SPURIOUS_ITEM  # the entity, its note
    # already in memory before the turn: not this turn's doing
    assert rewards.spurious_reward(task(before=with_fruit), rollout(with_fruit)) == 0.0


def test_one_observation_stuffed_with_several_facts_costs() -> None:
    stuffed = graph({"Alice Chen": alice("Allergic to peanuts, lives in Lisbon, works at Acme"),
                     "Acme": ("organization", []), "Porto": ("city", []), "Lisbon": ("city", [])},
                    [("Alice Chen", "works_at", "Acme"), ("Alice Chen", "lives_in", "Lisbon")])
    assert rewards.bundling_reward(task(), GOLD_ROLLOUT) == 0.0
    assert rewards.bundling_reward(task(), rollout(stuffed)) == rewards.BUNDLED_OBSERVATION
    # an old observation is not this turn's doing
    assert rewards.bundling_reward(task(before=stuffed), rollout(stuffed)) == 0.0


def test_any_write_on_a_turn_that_needs_none_costs() -> None:
    talk = task(needs_write=False, adds=(), retracts=(), gold_after=BEFORE, user="How do I boil an egg?")
    write = [("create_entities", {"entities": [{"name": "Egg", "entityType": "food", "observations": []}]})]
    assert rewards.unneeded_write_reward(talk, NOTHING) == 0.0
    assert rewards.unneeded_write_reward(talk, rollout(BEFORE, write)) == rewards.UNNEEDED_WRITE
    assert rewards.unneeded_write_reward(talk, rollout(BEFORE, write, invalid="rejected")) == rewards.UNNEEDED_WRITE
    assert rewards.unneeded_write_reward(talk, rollout(BEFORE, [("open_nodes", {"names": ["Alice Chen"]})])) == 0.0
    assert rewards.unneeded_write_reward(task(), GOLD_ROLLOUT) is None


def question(answers: tuple[str, ...], forbidden: tuple[str, ...] = ()) -> TurnTask:
    probe = Probe(index=0, after="s1", question="Where do I live?", answers=answers, forbidden=forbidden,
                  kind="single" if answers else "abstain")
    return task(needs_write=False, adds=(), retracts=(), before=GOLD, gold_after=GOLD, probes=(probe,))


def test_a_question_is_judged_by_the_probe_matcher_and_an_honest_dont_know_beats_a_guess() -> None:
    lookup = [("open_nodes", {"names": ["Alice Chen"]})]
    answerable = question(("Lisbon",), forbidden=("Porto",))
    assert rewards.answer_reward(answerable, rollout(GOLD, lookup, reply="You live in Lisbon.")) == 1.0
    assert rewards.answer_reward(answerable, rollout(GOLD, lookup, reply="I don't know.")) == 0.0
    assert rewards.answer_reward(answerable, rollout(GOLD, lookup, reply="You live in Porto.")) == rewards.WRONG_ANSWER
    assert rewards.answer_reward(answerable, rollout(GOLD, lookup, reply="Lisbon, or maybe Porto.")) == rewards.WRONG_ANSWER
    assert rewards.answer_reward(answerable, rollout(GOLD, lookup, reply="Lisbon.", mode="tolerant")) == 0.0
    unanswerable = question(())  # memory holds no answer
    assert rewards.answer_reward(unanswerable, rollout(GOLD, lookup, reply="I don't have that in memory.")) == 1.0
    assert rewards.answer_reward(unanswerable, rollout(GOLD, lookup, reply="You live in Tokyo.")) == rewards.WRONG_ANSWER
    assert rewards.answer_reward(task(), GOLD_ROLLOUT) is None


def test_repeating_a_call_costs() -> None:
    assert rewards.repeated_call_reward(task(), GOLD_ROLLOUT) == 0.0
    twice = rollout(GOLD, GOLD_CALLS + GOLD_CALLS[1:2])
    assert rewards.repeated_call_reward(task(), twice) == rewards.REPEATED_CALL
    many = rollout(GOLD, GOLD_CALLS + GOLD_CALLS[1:2] * 9)
    assert rewards.repeated_call_reward(task(), many) == rewards.REPEATED_CAP


def test_long_replies_cost_more_the_longer_they_are() -> None:
    assert rewards.long_reply_reward(task(), rollout(GOLD, reply="x" * rewards.FREE_REPLY_CHARACTERS)) == 0.0
    half = rewards.FREE_REPLY_CHARACTERS + rewards.LONG_REPLY_SPAN // 2
    assert rewards.long_reply_reward(task(), rollout(GOLD, reply="x" * half)) == -0.5
    assert rewards.long_reply_reward(task(), rollout(GOLD, reply="x" * 5000)) == -1.0


# ----------------------------------------------------------------------------- reward hacking


@pytest.mark.parametrize("hack", ["writing nothing", "deleting everything", "repeating the same call",
                                  "stuffing every fact into one observation", "a very long reply"])
def test_every_cheap_way_to_score_loses_to_the_right_turn(hack: str) -> None:
    right = total_reward(task(), GOLD_ROLLOUT)
    if hack == "writing nothing":
        played = NOTHING
    elif hack == "deleting everything":
        wipe = [("delete_entities", {"entityNames": ["Alice Chen", "Acme", "Porto"]})]
        played = rollout(graph({}, []), wipe)
        assert total_reward(task(), played) < total_reward(task(), NOTHING)  # worse than doing nothing
    elif hack == "repeating the same call":
        played = rollout(GOLD, GOLD_CALLS * 3)
    elif hack == "stuffing every fact into one observation":
        one = [("add_observations", {"observations": [{"entityName": "Alice Chen",
                                                       "contents": ["Lives in Lisbon, allergic to peanuts"]}]})]
        played = rollout(graph({"Alice Chen": alice("Lives in Lisbon, allergic to peanuts"),
                                "Acme": ("organization", []), "Porto": ("city", [])},
                               [("Alice Chen", "works_at", "Acme")]), GOLD_CALLS[:1] + one)
    else:
        played = rollout(GOLD, GOLD_CALLS, reply="Got it. " * 200)
    assert total_reward(task(), played) < right - 0.4, hack


def test_trl_reward_functions_score_each_rollout_against_its_own_turn() -> None:
    talk = task(key="ep#1.1", needs_write=False, adds=(), retracts=(), before=GOLD, gold_after=GOLD)
    functions = trl_reward_functions({"ep#1.0": task(), "ep#1.1": talk})
    names = [f.__name__ for f in functions]
    assert names == ["format", "memory", "destroyed", "spurious", "bundling", "unneeded_write", "answer",
                     "repeated_call", "long_reply"]
    memory = functions[names.index("memory")]
    writes = functions[names.index("unneeded_write")]
    keys = ["ep#1.0", "ep#1.0", "ep#1.1"]
    played = [GOLD_ROLLOUT, NOTHING, rollout(GOLD, GOLD_CALLS[1:2])]
    assert memory(prompts=keys, completions=[""] * 3, rollout=played, trainer_state=None) == [1.0, 0.0, None]
    assert writes(prompts=keys, completions=[""] * 3, rollout=played) == [None, None, rewards.UNNEEDED_WRITE]
