"""Rewards for one played turn, computed from what it did to a real memory store.

Every judgement is the evaluator's: facts hold or not by `memlora.evaluation.scoring`, a step's
format is `records.StepRecord.format_valid` (the strict parser and the server's input schemas),
writes are `records.TurnRecord.write_calls`, replies are judged by `scoring.score_probe` and
`scoring.is_abstention`. What is added here is only how much each outcome is worth, and the
guards that make the cheap ways to score (writing nothing, deleting everything, repeating a
call, stuffing facts into one observation, talking at length) lose to doing the turn right.

Each term is a plain function of the turn's task (`memlora.training.turns.TurnTask`) and the
rollout (the turn's record and the graph it left), returning a float, or None where the term
does not apply (TRL then leaves it out of that rollout's sum). `trl_reward_functions` wraps the
terms in TRL's reward-function signature; TRL adds them up with weight 1 each and logs each one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from memlora.evaluation.episodes import EntityFact, ObservationFact, RelationFact
from memlora.evaluation.records import TurnRecord
from memlora.evaluation.scoring import (
    GEntity,
    Graph,
    MemoryState,
    entity_type_matches,
    fact_holds,
    fold_name,
    is_abstention,
    mentions,
    observation_holds,
    retraction_honoured,
    score_probe,
    spurious_items,
)
from memlora.training.turns import TurnTask

# What each outcome is worth. The positive credits are at most 1 per term; a format error, a
# destroyed fact or an unnecessary write costs at least as much as the best turn earns.
FORMAT_ERROR = -1.0  # a step the strict parser or a schema rejects, or a turn that never replied
RELATION_RETRIEVABLE_ONLY = 0.25  # a relation kept as a mention in an observation, not as a relation
ENTITY_WRONG_TYPE = 0.5
DESTROYED_FACT = -1.0  # per fact memory held that the user did not retract
DESTROYED_CAP = -3.0
SPURIOUS_ITEM = -0.25  # per new item no expected fact accounts for
SPURIOUS_CAP = -1.0
BUNDLED_OBSERVATION = -0.5  # per new observation holding two facts or more
BUNDLED_CAP = -1.5
UNNEEDED_WRITE = -1.0  # any write attempted on a turn that needs none
WRONG_ANSWER = -0.5  # an answer that is wrong (worse than an honest "don't know")
REPEATED_CALL = -0.5  # per call identical to an earlier call of the same turn
REPEATED_CAP = -1.5
FREE_REPLY_CHARACTERS = 200  # above the longest gold reply of generated data
LONG_REPLY_SPAN = 400  # characters past the free length over which the cost grows to -1


@dataclass
class Rollout:
    """What one played turn left: its record (the evaluator's form) and the graph after it."""

    turn: TurnRecord
    graph: dict[str, Any]


def strictly_formatted(rollout: Rollout) -> bool:
    """Every step parsed strictly with schema-valid calls (the evaluator's per-step rule), and
    the turn ended with a reply rather than at the step limit."""
    return rollout.turn.stop == "reply" and all(step.format_valid for step in rollout.turn.steps)


# ----------------------------------------------------------------------------- terms


def format_reward(task: TurnTask, rollout: Rollout) -> float:
    """0 for a well-formed turn, FORMAT_ERROR otherwise; format errors also zero every credit."""
    return 0.0 if strictly_formatted(rollout) else FORMAT_ERROR


def memory_reward(task: TurnTask, rollout: Rollout) -> float | None:
    """The share of the turn's adds that now hold and of its retracts that no longer do.

    A relation earns full credit only as a relation of a listed type; kept as a mention in an
    observation it holds retrievably for the evaluator but earns RELATION_RETRIEVABLE_ONLY
    (otherwise one observation naming everything would score as well as the right calls). An
    entity of an unlisted type earns ENTITY_WRONG_TYPE. Nothing for a badly formatted turn.
    None on turns that change nothing.
    """
    targets = len(task.adds) + len(task.retracts)
    if not targets:
        return None
    if not strictly_formatted(rollout):
        return 0.0
    graph, names = Graph.from_any(rollout.graph), task.names
    credit = 0.0
    for fact in task.adds:
        if isinstance(fact, RelationFact):
            if fact_holds(fact, graph, names, retrievable=False):
                credit += 1.0
            elif fact_holds(fact, graph, names, retrievable=True):
                credit += RELATION_RETRIEVABLE_ONLY
        elif fact_holds(fact, graph, names):
            typed = entity_type_matches(fact, graph, names) if isinstance(fact, EntityFact) else None
            credit += ENTITY_WRONG_TYPE if typed is False else 1.0
    for fact in task.retracts:
        credit += retraction_honoured(fact, graph, names, task.state.expected)
    return credit / targets


def destroyed_reward(task: TurnTask, rollout: Rollout) -> float:
    """DESTROYED_FACT for each fact memory held before the turn, that the user did not retract,
    and that no longer holds (retrievably) after it; down to DESTROYED_CAP."""
    graph = Graph.from_any(rollout.graph)
    lost = sum(not fact_holds(fact, graph, task.names) for fact in task.keeps)
    return max(DESTROYED_CAP, DESTROYED_FACT * lost)


def new_items(graph: Graph, before: Graph, names: Any, state: MemoryState) -> list[str]:
    """Spurious items of `graph` (no expected fact accounts for them) that were not in `before`.

    An empty memory state accounts for nothing, so `spurious_items` on it describes every item
    of a graph in the same words: the difference is what the turn itself wrote.
    """
    existing = set(spurious_items(before, MemoryState((), ()), names))
    return [item for item in spurious_items(graph, state, names) if item not in existing]


def spurious_reward(task: TurnTask, rollout: Rollout) -> float:
    """SPURIOUS_ITEM for each new graph item that no expected fact accounts for; down to SPURIOUS_CAP."""
    graph, before = Graph.from_any(rollout.graph), Graph.from_any(task.before)
    return max(SPURIOUS_CAP, SPURIOUS_ITEM * len(new_items(graph, before, task.names, task.state)))


def facts_in_observation(entity: GEntity, observation: str, task: TurnTask) -> int:
    """How many expected facts one observation holds: observation facts of its entity it
    satisfies, and relation facts of its entity whose other end it names."""
    alone = Graph(entities=(GEntity(entity.name, entity.entity_type, (observation,)),))
    here = fold_name(entity.name)
    count = 0
    for fact in task.state.expected:
        if isinstance(fact, ObservationFact):
            count += observation_holds(fact, alone, task.names)
        elif isinstance(fact, RelationFact):
            ends = (task.names.keys(fact.source), task.names.keys(fact.target))
            for near, far in (ends, ends[::-1]):
                if here in near and mentions(observation, far):
                    count += 1
                    break
    return count


def bundling_reward(task: TurnTask, rollout: Rollout) -> float:
    """BUNDLED_OBSERVATION for each new observation that holds two expected facts or more.

    The reference stores one fact per observation ("Allergic to peanuts"); one observation
    stuffed with every fact would keep most of them retrievable in a single write."""
    old = {(fold_name(e.name), o) for e in Graph.from_any(task.before).entities for o in e.observations}
    bundled = sum(
        facts_in_observation(entity, observation, task) >= 2
        for entity in Graph.from_any(rollout.graph).entities
        for observation in entity.observations
        if (fold_name(entity.name), observation) not in old
    )
    return max(BUNDLED_CAP, BUNDLED_OBSERVATION * bundled)


def unneeded_write_reward(task: TurnTask, rollout: Rollout) -> float | None:
    """UNNEEDED_WRITE when a turn that needs no memory write attempts one (valid or not, as the
    evaluator counts unnecessary writes); None on turns that need writes."""
    if task.needs_write:
        return None
    return UNNEEDED_WRITE if rollout.turn.write_calls else 0.0


def answer_reward(task: TurnTask, rollout: Rollout) -> float | None:
    """On question turns: 1 when the reply is right by the probe matcher (every probe of the
    turn), WRONG_ANSWER when it is wrong without saying it does not know, 0 for an honest
    "don't know" that was not the right reply. On a question memory cannot answer, only
    "don't know" is right. The 1 needs a well-formed turn. None on other turns."""
    if not task.probes:
        return None
    reply = rollout.turn.reply
    if all(score_probe(probe, reply).correct for probe in task.probes):
        return 1.0 if strictly_formatted(rollout) else 0.0
    return 0.0 if is_abstention(reply) else WRONG_ANSWER


def repeated_call_reward(task: TurnTask, rollout: Rollout) -> float:
    """REPEATED_CALL for each call identical (name and arguments) to an earlier one of the turn."""
    seen: set[str] = set()
    repeats = 0
    for step in rollout.turn.steps:
        for call in step.calls:
            key = json.dumps([call.name, call.arguments], sort_keys=True, ensure_ascii=False)
            repeats += key in seen
            seen.add(key)
    return max(REPEATED_CAP, REPEATED_CALL * repeats)


def long_reply_reward(task: TurnTask, rollout: Rollout) -> float:
    """Nothing up to FREE_REPLY_CHARACTERS, then a cost growing to -1 over LONG_REPLY_SPAN more."""
    over = max(0, len(rollout.turn.reply) - FREE_REPLY_CHARACTERS)
    return -min(1.0, over / LONG_REPLY_SPAN)


RewardTerm = Callable[[TurnTask, Rollout], "float | None"]

REWARD_TERMS: tuple[RewardTerm, ...] = (
    format_reward, memory_reward, destroyed_reward, spurious_reward, bundling_reward,
    unneeded_write_reward, answer_reward, repeated_call_reward, long_reply_reward,
)


def total_reward(task: TurnTask, rollout: Rollout) -> float:
    """The sum of every term that applies: what GRPO compares within a group."""
    return sum(value for term in REWARD_TERMS if (value := term(task, rollout)) is not None)


def reference_rollout(task: TurnTask) -> Rollout:
    """The turn as the reference plays it (its gold calls on the rebuilt store, its gold reply),
    like the evaluator's oracle. It must earn every credit and no cost: the check that the
    targets derived for a turn and the rewards agree."""
    from memlora.agent.prompt import OPENING_CALL
    from memlora.data.execute import execute
    from memlora.evaluation.records import CallRecord, StepRecord
    from memlora.store import open_store

    store = open_store("sqlite::memory:")
    try:
        for call in task.setup_calls:
            execute(store, call)
        calls = [CallRecord(name=call["name"], arguments=call["arguments"],
                            result=json.dumps(execute(store, call), ensure_ascii=False)) for call in task.gold_calls]
        graph = execute(store, OPENING_CALL)
    finally:
        store.close()
    steps = [StepRecord(raw=json.dumps(list(task.gold_calls)), mode="strict", calls=calls)] if calls else []
    steps.append(StepRecord(raw=task.gold_reply, mode="none"))
    return Rollout(TurnRecord(user=task.user, steps=steps, reply=task.gold_reply), graph)


def trl_reward_functions(tasks: Mapping[str, TurnTask]) -> list[Callable[..., list[float | None]]]:
    """The terms as TRL reward functions: `prompts` are turn keys, `rollout` comes from the
    rollout function (an extra field TRL passes on to every reward function)."""

    def wrap(term: RewardTerm) -> Callable[..., list[float | None]]:
        def reward(prompts: list[str], completions: list[Any], rollout: list[Rollout], **_: Any) -> list[float | None]:
            return [term(tasks[key], played) for key, played in zip(prompts, rollout, strict=True)]

        reward.__name__ = term.__name__.removesuffix("_reward")
        return reward

    return [wrap(term) for term in REWARD_TERMS]
