"""Turns run records into scores: per episode (for digging) and aggregated (for the tables).

Every aggregate is a share with the count it was computed over, so a 100% over 3 items is
not mistaken for a 100% over 3000. Graph scores are micro-averaged over every snapshot.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memlora.evaluation.episodes import FACT_KINDS, PROBE_KINDS, Episode, Session
from memlora.evaluation.records import EpisodeRecord, TurnRecord
from memlora.evaluation.scoring import (
    Graph,
    Names,
    f1,
    memory_timeline,
    probe_distance,
    ratio,
    score_graph,
    score_probe,
)

MAX_DISTANCE = 10  # persistence is reported per distance 1..10, farther probes together as "11+"
ITEM_KINDS = ("entity", "relation", "observation")


@dataclass
class Share:
    hits: int = 0
    count: int = 0

    def add(self, hit: bool, weight: int = 1) -> None:
        self.hits += weight if hit else 0
        self.count += weight

    @property
    def value(self) -> float | None:
        return ratio(self.hits, self.count)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "count": self.count}


def distance_bucket(distance: int) -> str:
    return str(distance) if distance <= MAX_DISTANCE else f"{MAX_DISTANCE + 1}+"


# ----------------------------------------------------------------------------- one episode


def turn_needs_no_write(session: Session, turn_index: int) -> bool | None:
    """Whether a session turn needed no memory write; None when the file cannot tell.

    With reference calls: exactly when they contain no write. Without: when the session
    learns and retracts nothing (then no turn of it needed one); otherwise unknown.
    """
    turn = session.turns[turn_index]
    if turn.calls is not None:
        return not any(call.is_write for call in turn.calls)
    if not session.learn and not session.retract:
        return True
    return None


def oracle_can_score(episode: Episode, session_index: int) -> bool:
    """Whether replaying reference calls can rebuild the memory expected after this session.

    Not when some session so far learns or retracts facts while a turn of it has no
    reference calls: the oracle has nothing to replay there.
    """
    for session in episode.sessions[: session_index + 1]:
        if (session.learn or session.retract) and any(turn.calls is None for turn in session.turns):
            return False
    return True


def _turn_summary(turn: TurnRecord, needs_no_write: bool | None) -> dict[str, Any]:
    return {
        "user": turn.user,
        "reply": turn.reply,
        "error": turn.error,
        "needs_no_write": needs_no_write,
        "writes": len(turn.write_calls),
        "tokens": turn.tokens,
        "completion_tokens": turn.completion_tokens,
        "seconds": turn.seconds,
        "steps": [
            {
                "raw": step.raw,
                "mode": step.mode,
                "format_valid": step.format_valid,
                "prompt_tokens": step.prompt_tokens,
                "cached_prompt_tokens": step.cached_prompt_tokens,
                "completion_tokens": step.completion_tokens,
                "seconds": step.seconds,
                "calls": [vars(call) for call in step.calls],
            }
            for step in turn.steps
        ],
    }


def score_episode(episode: Episode, record: EpisodeRecord | None, oracle: bool = False) -> dict[str, Any]:
    """Every score of one episode, with the evidence (calls, replies, graphs, spurious items).

    Sessions or probes a failed episode never reached are scored as an empty graph and an
    empty reply: a crash costs points instead of silently shrinking the denominator.
    """
    record = record or EpisodeRecord(id=episode.id, error="not run")
    names = Names.for_user(episode.user)
    timeline = memory_timeline(episode)
    played = {s.id: s for s in record.sessions}
    sessions = []
    for index, (session, state) in enumerate(zip(episode.sessions, timeline)):
        session_record = played.get(session.id)
        graph = session_record.graph if session_record else {}
        turns = session_record.turns if session_record else []
        graph_score = score_graph(graph, state, names)
        sessions.append(
            {
                "id": session.id,
                "played": session_record is not None,
                "scored": not oracle or oracle_can_score(episode, index),
                "graph": graph,
                "score": graph_score.to_dict(),
                "items_by_kind": _items_by_kind(Graph.from_any(graph)),
                "turns": [
                    _turn_summary(turn, turn_needs_no_write(session, i) if i < len(session.turns) else None)
                    for i, turn in enumerate(turns)
                ],
            }
        )
    asked = {p.index: p for p in record.probes}
    probes = []
    for probe in episode.probes:
        probe_record = asked.get(probe.index)
        reply = probe_record.turn.reply if probe_record else ""
        result = score_probe(probe, reply)
        probes.append(
            {
                "index": probe.index,
                "after": probe.after,
                "question": probe.question,
                "kind": probe.kind,
                "answers": list(probe.answers),
                "forbidden": list(probe.forbidden),
                "distance": probe_distance(episode, probe),
                "asked": probe_record is not None,
                "reply": reply,
                "correct": result.correct,
                "abstained": result.abstained,
                "answers_found": result.answers_found,
                "forbidden_found": result.forbidden_found,
                "turn": _turn_summary(probe_record.turn, True) if probe_record else None,
            }
        )
    return {"id": episode.id, "error": record.error, "notes": list(episode.notes), "seconds": record.seconds,
            "sessions": sessions, "probes": probes}


def _items_by_kind(graph: Graph) -> dict[str, int]:
    return {
        "entity": len(graph.entities),
        "relation": len(graph.relations),
        "observation": sum(len(e.observations) for e in graph.entities),
    }


# ----------------------------------------------------------------------------- aggregates


@dataclass
class _GraphTally:
    recall_structural: Share = field(default_factory=Share)
    recall_retrievable: Share = field(default_factory=Share)
    precision: Share = field(default_factory=Share)
    type_match: Share = field(default_factory=Share)
    retractions: Share = field(default_factory=Share)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recall_structural": self.recall_structural.to_dict(),
            "recall_retrievable": self.recall_retrievable.to_dict(),
            "precision": self.precision.to_dict(),
            "f1": f1(self.precision.value, self.recall_retrievable.value),
            "type_match": self.type_match.to_dict(),
            "retractions_honoured": self.retractions.to_dict(),
        }


def summarize(scored: Iterable[dict[str, Any]], max_new_tokens: int | None = None,
              model_played_sessions: bool = True) -> dict[str, Any]:
    """Aggregates per-episode scores into the numbers the report shows.

    With the run's `max_new_tokens`, it also counts the invalid steps that stopped at that
    budget: a call cut off mid-way is a format error either way, but one a larger budget fixes.
    Without `model_played_sessions`, call validity, writes, tokens and seconds count the probe
    turns alone: the session turns were the reference's.
    """
    episodes = failed = 0
    step_valid, call_valid = defaultdict(Share), defaultdict(Share)
    invalid_at_budget = Share()  # of the invalid steps, those that used the whole token budget
    unnecessary = defaultdict(Share)
    graph, by_session = _GraphTally(), defaultdict(_GraphTally)
    recall_by_kind = {k: (Share(), Share()) for k in FACT_KINDS}
    precision_by_kind = {k: Share() for k in ITEM_KINDS}
    retractions_by_kind = {k: Share() for k in FACT_KINDS}
    snapshots = skipped = 0
    probes, probes_by_kind = Share(), {k: Share() for k in PROBE_KINDS}
    probes_by_distance: dict[str, Share] = defaultdict(Share)
    # "don't know" on probes memory can answer against those it cannot: a model that abstains
    # more often everywhere raises both, one that reads the memory only the second
    dont_know = {"answerable": Share(), "unanswerable": Share()}
    turns = tokens = completion_tokens = prompt_tokens_run = 0
    seconds = 0.0

    def count_turn(turn: dict[str, Any], phase: str) -> None:
        nonlocal turns, tokens, completion_tokens, seconds, prompt_tokens_run
        turns += 1
        tokens += turn["tokens"]
        completion_tokens += turn["completion_tokens"]
        seconds += turn["seconds"]
        for step in turn["steps"]:
            prompt_tokens_run += step["prompt_tokens"] - step.get("cached_prompt_tokens", 0)
            for key in (phase, "all"):
                step_valid[key].add(step["format_valid"])
            if max_new_tokens and not step["format_valid"]:
                invalid_at_budget.add(step["completion_tokens"] >= max_new_tokens)
            for call in step["calls"]:
                ok = call["invalid"] is None and call["mode"] == "strict"
                for key in (phase, "all"):
                    call_valid[key].add(ok)
        if turn["needs_no_write"]:
            for key in (phase, "all"):
                unnecessary[key].add(turn["writes"] > 0)

    for episode in scored:
        episodes += 1
        failed += episode["error"] is not None
        for position, session in enumerate(episode["sessions"], start=1):
            for turn in session["turns"] if model_played_sessions else ():
                count_turn(turn, "session")
            if not session["scored"]:
                skipped += 1
                continue
            snapshots += 1
            score = session["score"]
            spurious_kinds = [s.split(" ", 1)[0] for s in score["spurious"]]
            for tally in (graph, by_session[str(position)]):
                for fact in score["facts"]:
                    tally.recall_structural.add(fact["structural"])
                    tally.recall_retrievable.add(fact["retrievable"])
                    if fact["type_match"] is not None:
                        tally.type_match.add(fact["type_match"])
                for retraction in score["retractions"]:
                    tally.retractions.add(retraction["honoured"])
                tally.precision.hits += score["items"] - len(score["spurious"])
                tally.precision.count += score["items"]
            for fact in score["facts"]:
                recall_by_kind[fact["kind"]][0].add(fact["structural"])
                recall_by_kind[fact["kind"]][1].add(fact["retrievable"])
            for retraction in score["retractions"]:
                retractions_by_kind[retraction["kind"]].add(retraction["honoured"])
            for kind in ITEM_KINDS:
                items = session["items_by_kind"][kind]
                precision_by_kind[kind].hits += items - spurious_kinds.count(kind)
                precision_by_kind[kind].count += items
        for probe in episode["probes"]:
            probes.add(probe["correct"])
            probes_by_kind.setdefault(probe["kind"], Share()).add(probe["correct"])
            probes_by_distance[distance_bucket(probe["distance"])].add(probe["correct"])
            dont_know["answerable" if probe["answers"] else "unanswerable"].add(probe["abstained"])
            if probe["turn"] is not None:
                count_turn(probe["turn"], "probe")

    graph_summary = graph.to_dict()
    graph_summary["snapshots"] = snapshots
    graph_summary["snapshots_not_scored"] = skipped
    graph_summary["by_fact_kind"] = {
        kind: {"recall_structural": s.to_dict(), "recall_retrievable": r.to_dict(), "retractions_honoured": retractions_by_kind[kind].to_dict()}
        for kind, (s, r) in recall_by_kind.items()
    }
    graph_summary["precision_by_item_kind"] = {k: v.to_dict() for k, v in precision_by_kind.items()}
    graph_summary["by_session"] = {k: v.to_dict() for k, v in sorted(by_session.items(), key=lambda kv: int(kv[0]))}
    return {
        "episodes": episodes,
        "episodes_failed": failed,
        "format_validity": {
            "steps": {k: v.to_dict() for k, v in sorted(step_valid.items())},
            "calls": {k: v.to_dict() for k, v in sorted(call_valid.items())},
            "invalid_steps_at_token_budget": invalid_at_budget.to_dict() if max_new_tokens else None,
        },
        "unnecessary_writes": {k: v.to_dict() for k, v in sorted(unnecessary.items())},
        "graph": graph_summary,
        "probes": {
            "accuracy": probes.to_dict(),
            "by_kind": {k: v.to_dict() for k, v in probes_by_kind.items()},
            "by_distance": {k: v.to_dict() for k, v in sorted(probes_by_distance.items(), key=lambda kv: _bucket_order(kv[0]))},
            "dont_know": {k: v.to_dict() for k, v in dont_know.items()},
        },
        "turns": {
            "count": turns,
            "tokens_per_turn": tokens / turns if turns else None,
            "completion_tokens_per_turn": completion_tokens / turns if turns else None,
            # prompt tokens the model ran (not found in the engine's caches); older runs did not
            # record the cached part, so there it equals the whole prompt
            "prompt_tokens_run_per_turn": prompt_tokens_run / turns if turns else None,
            "seconds_per_turn": seconds / turns if turns else None,
        },
    }


def _bucket_order(bucket: str) -> int:
    return int(bucket.rstrip("+")) + (1 if bucket.endswith("+") else 0)


def score_run(episodes: Sequence[Episode], records: dict[str, EpisodeRecord], oracle: bool = False,
              max_new_tokens: int | None = None, reference_memory: bool = False,
              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-episode details (in file order) and the summary of a run.

    `reference_memory`: the oracle played the sessions and the model only the probes, so the
    sessions are scored as the oracle's and their turns stay out of the model's turn counts."""
    details = [score_episode(e, records.get(e.id), oracle or reference_memory) for e in episodes]
    return details, summarize(details, max_new_tokens, model_played_sessions=not reference_memory)
