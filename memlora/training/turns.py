"""Training turns for reinforcement learning: one assistant turn, in the state it was played in.

A turn's state is rebuilt from the episode's gold calls on a fresh memlora store: every call of
the earlier sessions and of the earlier turns of its session, replayed with
`memlora.data.execute.execute`. Its prompt is the session so far, as the agent holds it (the
opening `read_graph`, then each earlier turn with its gold calls, their real results and the
gold reply), followed by the user's message. Probes are turns too: a fresh session, right after
the session their `after` names.

What the turn must do to the memory is not stored in episodes per turn (`learn` / `retract` are
per session), so it is derived here: the gold graph before and after the turn's own gold calls
(run on the real store) are compared under the evaluator's matching rules
(`memlora.evaluation.scoring`). A fact of the session's `learn` that holds after and not before
is one the turn adds; a fact of its `retract` that held before and holds no more is one it
retracts; a fact learnt so far that holds on both sides must survive the turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memlora.evaluation.episodes import WRITE_TOOLS, Episode, Fact, Probe
from memlora.evaluation.scoring import (
    EntityFact,
    Graph,
    MemoryState,
    Names,
    ObservationFact,
    RelationFact,
    contains_value,
    fact_holds,
    is_abstention,
    normalize_reply,
)

PROBE_KIND_PREFIX = "probe:"


@dataclass(frozen=True)
class TurnRef:
    """Where a turn is and what kind it is, known without replaying anything (for sampling)."""

    key: str
    kind: str
    episode: int  # index into the episode list
    session: int  # the session the turn belongs to, or the one a probe follows
    turn: int | None  # index of the turn in its session; None for a probe
    probe: int | None = None  # the probe's index in the episode


@dataclass
class TurnTask:
    """One assistant turn to play: its state, its prompt, and what it should do to the memory."""

    key: str
    kind: str
    user: str  # the user's message the assistant answers
    history: list[dict[str, Any]]  # the session so far, opening included (messages)
    setup_calls: tuple[dict[str, Any], ...]  # gold calls that rebuild the memory before the turn
    before: dict[str, Any]  # the gold graph before the turn (read_graph)
    gold_after: dict[str, Any]  # the gold graph after the turn's own gold calls
    names: Names
    adds: tuple[Fact, ...] = ()  # facts the turn makes hold
    retracts: tuple[Fact, ...] = ()  # facts the turn makes stop holding
    keeps: tuple[Fact, ...] = ()  # facts that hold before and must still hold after
    state: MemoryState = field(default_factory=lambda: MemoryState((), ()))  # the memory expected after the turn
    needs_write: bool = False  # the gold calls write (else any write is unnecessary)
    # a question turn: the reply is right when every probe is (`scoring.score_probe`); empty otherwise
    probes: tuple[Probe, ...] = ()
    gold_calls: tuple[dict[str, Any], ...] = ()
    gold_reply: str = ""


# ----------------------------------------------------------------------------- kinds


def turn_kind(episode: Episode, session: int, turn: int) -> str:
    """The generator's action for the turn (tell, update, forget, ask, ...) when the file keeps
    it (`provenance.action`); else what the gold calls do: `write`, `read` or `none`."""
    raw_turn = episode.raw.get("sessions", [])[session]["turns"][turn] if episode.raw else {}
    action = (raw_turn.get("provenance") or {}).get("action")
    if action:
        return str(action)
    calls = episode.sessions[session].turns[turn].calls or ()
    if any(call.is_write for call in calls):
        return "write"
    return "read" if calls else "none"


def turn_refs(episodes: Sequence[Episode]) -> list[TurnRef]:
    """Every turn a training run can sample: session turns of sessions whose turns all carry
    gold calls (the state after them can be rebuilt), and probes after such sessions."""
    refs = []
    for e, episode in enumerate(episodes):
        for s, session in enumerate(episode.sessions):
            if any(turn.calls is None for turn in session.turns):
                break  # nothing from here on can be rebuilt
            for t in range(len(session.turns)):
                refs.append(TurnRef(f"{episode.id}#{s}.{t}", turn_kind(episode, s, t), e, s, t))
            for probe in episode.probes:
                if episode.session_index(probe.after) == s:
                    refs.append(TurnRef(f"{episode.id}#probe{probe.index}", PROBE_KIND_PREFIX + probe.kind, e, s,
                                        None, probe.index))
    return refs


# ----------------------------------------------------------------------------- building


def build_tasks(episodes: Sequence[Episode], refs: Iterable[TurnRef]) -> dict[str, TurnTask]:
    """The tasks of the given turns, each episode replayed once on a fresh store."""
    wanted: dict[int, list[TurnRef]] = {}
    for ref in refs:
        wanted.setdefault(ref.episode, []).append(ref)
    tasks: dict[str, TurnTask] = {}
    for index, chosen in wanted.items():
        keys = {ref.key for ref in chosen}
        for task in episode_tasks(episodes[index], until=max(ref.session for ref in chosen)):
            if task.key in keys:
                tasks[task.key] = task
    return tasks


def episode_tasks(episode: Episode, until: int | None = None) -> list[TurnTask]:
    """Every turn task of an episode in order (sessions up to `until`, probes included).

    Replays the gold calls once on a fresh in-memory SQLite store, reading the graph before
    and after every turn. Stops at the first session with a turn without gold calls.
    """
    from memlora.agent.prompt import OPENING_CALL, session_opening, tool_call_message, tool_result_message
    from memlora.data.execute import execute
    from memlora.store import open_store

    names = Names.for_user(episode.user)
    store = open_store("sqlite::memory:")
    played: list[dict[str, Any]] = []
    learnt: list[Fact] = []
    retracted: list[Fact] = []
    tasks: list[TurnTask] = []
    try:
        for s, session in enumerate(episode.sessions):
            if (until is not None and s > until) or any(turn.calls is None for turn in session.turns):
                break
            _add_new(learnt, session.learn)
            _add_new(retracted, session.retract)
            messages = session_opening(execute(store, OPENING_CALL))
            for t, turn in enumerate(session.turns):
                calls = tuple(call.to_dict() for call in turn.calls or ())
                before = execute(store, OPENING_CALL)
                results = [execute(store, call) for call in calls]
                after = execute(store, OPENING_CALL)
                task = TurnTask(
                    key=f"{episode.id}#{s}.{t}", kind=turn_kind(episode, s, t), user=turn.user,
                    history=list(messages), setup_calls=tuple(played), before=before, gold_after=after,
                    names=names, needs_write=any(call["name"] in WRITE_TOOLS for call in calls),
                    gold_calls=calls, gold_reply=turn.reply or "",
                )
                _derive_targets(task, session.learn, session.retract, learnt, retracted)
                if calls and not task.needs_write:  # a question answered from memory
                    task.probes = in_session_probes(task, learnt)
                tasks.append(task)
                played.extend(calls)
                messages.append({"role": "user", "content": turn.user})
                if calls:
                    messages.append(tool_call_message(list(calls)))
                    messages += [tool_result_message(call["name"], result) for call, result in zip(calls, results)]
                messages.append({"role": "assistant", "content": turn.reply or ""})
            graph = execute(store, OPENING_CALL)
            for probe in episode.probes:
                if episode.session_index(probe.after) != s:
                    continue
                task = TurnTask(
                    key=f"{episode.id}#probe{probe.index}", kind=PROBE_KIND_PREFIX + probe.kind, user=probe.question,
                    history=session_opening(graph), setup_calls=tuple(played), before=graph, gold_after=graph,
                    names=names, probes=(probe,),
                    gold_reply=probe.answers[0] if probe.answers else "I don't know.",
                )
                _derive_targets(task, (), (), learnt, retracted)
                tasks.append(task)
    finally:
        store.close()
    return tasks


def _add_new(facts: list[Fact], more: Iterable[Fact]) -> None:
    for fact in more:
        if fact not in facts:
            facts.append(fact)


def _derive_targets(task: TurnTask, learn: Sequence[Fact], retract: Sequence[Fact],
                    learnt: Sequence[Fact], retracted: Sequence[Fact]) -> None:
    """Adds, retracts, keeps and the expected state of a turn, from its gold graphs.

    "Holds" is the evaluator's `fact_holds`: structurally for what the turn must write (the
    gold calls write relations as such), retrievably for what must survive and what must go.
    """
    before, after, names = Graph.from_any(task.before), Graph.from_any(task.gold_after), task.names

    def holds(fact: Fact, graph: Graph, retrievable: bool = True) -> bool:
        return fact_holds(fact, graph, names, retrievable=retrievable)

    task.adds = tuple(f for f in learn if holds(f, after, False) and not holds(f, before, False))
    task.retracts = tuple(f for f in retract if holds(f, before) and not holds(f, after))
    task.keeps = tuple(f for f in learnt if holds(f, before) and holds(f, after))
    task.state = MemoryState(
        expected=tuple(f for f in learnt if holds(f, after, False)),
        retracted=tuple(f for f in retracted if not holds(f, after)),
    )


# ----------------------------------------------------------------------------- questions


def in_session_probes(task: TurnTask, learnt: Sequence[Fact]) -> tuple[Probe, ...]:
    """What a question asked inside a session must be answered with, as probes.

    Episodes give no answers for these turns, only the gold reply, so the answers are what
    memory holds that the gold reply names and the question does not: the names in facts that
    hold before the turn, and the keyword groups of observation facts (any alternative of a
    group will do). The reply must name each of them, one probe per name or group ("Your mentor
    Giovanni lives in Toulouse" needs both the link and the answer). A gold reply that says it
    does not know gives one probe with no answer: the right reply is to not know. Empty when
    the gold reply names nothing memory holds.
    """
    reply = task.gold_reply
    if is_abstention(reply):
        return (Probe(index=-1, after="", question=task.user, answers=(), forbidden=(), kind="abstain"),)
    before = Graph.from_any(task.before)
    groups: list[tuple[str, ...]] = []
    seen: set[frozenset[str]] = set()
    for fact in learnt:
        if not fact_holds(fact, before, task.names):
            continue
        for group in answer_groups(fact, task.names):
            named = [value for value in group if contains_value(reply, value)]
            asked = any(contains_value(task.user, value) for value in group)
            folded = frozenset(normalize_reply(value) for value in group)
            if named and not asked and folded not in seen:
                seen.add(folded)
                groups.append(group)
    return tuple(Probe(index=-1, after="", question=task.user, answers=group, forbidden=(), kind="single")
                 for group in groups)


def answer_groups(fact: Fact, names: Names) -> list[tuple[str, ...]]:
    """The ways a reply can name a fact: each entity name it speaks of (not the user's own) and
    each keyword group of an observation (a tuple of alternatives)."""
    if isinstance(fact, EntityFact):
        return [] if names.is_user(fact.name) else [(fact.name,)]
    if isinstance(fact, RelationFact):
        return [(n,) for n in (fact.source, fact.target) if not names.is_user(n)]
    assert isinstance(fact, ObservationFact)
    return [tuple(group) for group in fact.keywords]
