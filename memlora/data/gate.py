"""The quality gate: generated data that contradicts itself is a bug, so it raises.

After every session the graph the gold calls built must hold every expected fact structurally,
honour every retraction, and hold nothing that no fact accounts for, under the evaluator's own
matching rules (memlora.evaluation.scoring), so that a perfect model scores perfectly.
"""

from __future__ import annotations

import json
from typing import Any

from memlora.evaluation.episodes import episode_from_dict
from memlora.evaluation.scoring import Names, memory_timeline, score_graph


class GateError(AssertionError):
    """A generated episode whose gold calls do not produce the memory its facts describe."""


def check_session(episode: dict[str, Any], session_index: int, graph: dict[str, Any]) -> None:
    """Raises GateError unless `graph` is exactly what the episode expects after that session."""
    parsed = episode_from_dict(episode)
    state = memory_timeline(parsed)[session_index]
    score = score_graph(graph, state, Names.for_user(parsed.user))
    problems = [f"missing {f.fact}" for f in score.facts if not f.structural]
    problems += [f"wrong type {f.fact}" for f in score.facts if f.type_match is False]
    problems += [f"not retracted {r.fact}" for r in score.retractions if not r.honoured]
    problems += [f"spurious {item}" for item in score.spurious]
    if problems:
        raise GateError(
            f"episode {episode['id']} session {session_index + 1}: " + "; ".join(problems)
            + f"\ngraph: {json.dumps(graph)}"
        )


def check_retrieval(result: Any, value: str) -> None:
    """A grounded reply needs its value in the retrieved result."""
    text = json.dumps(result, ensure_ascii=False).lower()
    if value.lower() not in text:
        raise GateError(f"retrieval result lacks {value!r}: {text}")


def check_unknown(graph: dict[str, Any], subject: str, relation: str | None, observation_prefix: str | None) -> None:
    """An "I don't know" reply needs memory to hold nothing of that kind about the subject."""
    for entity in graph["entities"]:
        if entity["name"] == subject and observation_prefix is not None:
            if any(o.startswith(observation_prefix) for o in entity["observations"]):
                raise GateError(f"{subject} has a {observation_prefix!r} observation: {entity}")
    for rel in graph["relations"]:
        if rel["from"] == subject and rel["relationType"] == relation:
            raise GateError(f"{subject} has a {relation!r} relation: {rel}")
