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
    _raise_on_problems(episode["id"], session_index, score_graph(graph, state, Names.for_user(parsed.user)), graph)


def _raise_on_problems(episode_id: str, session_index: int, score: Any, graph: dict[str, Any]) -> None:
    problems = [f"missing {f.fact}" for f in score.facts if not f.structural]
    problems += [f"wrong type {f.fact}" for f in score.facts if f.type_match is False]
    problems += [f"not retracted {r.fact}" for r in score.retractions if not r.honoured]
    problems += [f"spurious {item}" for item in score.spurious]
    if problems:
        raise GateError(
            f"episode {episode_id} session {session_index + 1}: " + "; ".join(problems)
            + f"\ngraph: {json.dumps(graph)}"
        )


class FastGate:
    """The per-session gate datagen runs: a strict, set-based check that the graph is exactly what
    the learn/retract facts describe (names as written, relation types as the policy writes them).

    It is stricter than the evaluator's matching (exact names, no "retrievable" leniency) and
    about a hundred times cheaper; the tests check on thousands of episodes that graphs passing
    it also pass the evaluator's rules (`check_session`).
    """

    def __init__(self, user_entity: str) -> None:
        self.user_entity = user_entity
        self.entities: dict[str, list[str]] = {}  # name -> accepted types
        # (from, to) -> the accepted types of each expected relation between them (a break-up
        # leaves ex_partner_of where partner_of was: two facts about one pair over time)
        self.relations: dict[tuple[str, str], list[list[str]]] = {}
        self.observations: list[tuple[str, list[list[str]]]] = []
        self.retracted: list[dict[str, Any]] = []

    def _name(self, name: str) -> str:
        return self.user_entity if name == "@user" else name

    @staticmethod
    def _groups(keywords: list[Any]) -> list[list[str]]:
        return [[k.lower()] if isinstance(k, str) else [a.lower() for a in k] for k in keywords]

    def _obs_key(self, fact: dict[str, Any]) -> tuple[str, list[list[str]]]:
        return (self._name(fact["entity"]), self._groups(fact["keywords"]))

    def apply(self, learn: list[dict[str, Any]], retract: list[dict[str, Any]]) -> None:
        for fact in learn:
            if fact["kind"] == "entity":
                self.entities[self._name(fact["name"])] = [t.lower() for t in fact.get("type", [])]
            elif fact["kind"] == "relation":
                pair = (self._name(fact["from"]), self._name(fact["to"]))
                kept = [t for t in self.relations.get(pair, []) if not set(t) & set(fact["type"])]
                self.relations[pair] = [*kept, fact["type"]]
            else:
                key = self._obs_key(fact)
                if key not in self.observations:
                    self.observations.append(key)
            self.retracted = [r for r in self.retracted if r != fact]
        for fact in retract:
            if fact["kind"] == "entity":
                name = self._name(fact["name"])
                self.entities.pop(name, None)
                self.relations = {k: v for k, v in self.relations.items() if name not in k}
                self.observations = [o for o in self.observations if o[0] != name]
            elif fact["kind"] == "relation":
                pair = (self._name(fact["from"]), self._name(fact["to"]))
                kept = [t for t in self.relations.get(pair, []) if not set(t) & set(fact["type"])]
                if kept:
                    self.relations[pair] = kept
                else:
                    self.relations.pop(pair, None)
            else:
                key = self._obs_key(fact)
                self.observations = [o for o in self.observations if o != key]
            self.retracted.append(fact)

    @staticmethod
    def _matches(observation: str, groups: list[list[str]]) -> bool:
        text = observation.lower()
        return all(any(alt in text for alt in group) for group in groups)

    def check(self, episode_id: str, session: int, graph: dict[str, Any]) -> None:
        problems: list[str] = []
        entities = {e["name"]: e for e in graph["entities"]}
        links: dict[tuple[str, str], set[str]] = {}
        for r in graph["relations"]:
            links.setdefault((r["from"], r["to"]), set()).add(r["relationType"])
        for name, types in self.entities.items():
            if name not in entities:
                problems.append(f"missing entity {name}")
            elif types and entities[name]["entityType"].lower() not in types:
                problems.append(f"wrong type of {name}")
        for (a, b), expected in self.relations.items():
            for types in expected:
                if not links.get((a, b), set()) & set(types):
                    problems.append(f"missing relation {a} -[{types[0]}]-> {b}")
        for name, groups in self.observations:
            if not any(self._matches(o, groups) for o in entities.get(name, {}).get("observations", [])):
                problems.append(f"missing observation {name}: {groups}")
        for fact in self.retracted:
            if fact["kind"] == "entity" and self._name(fact["name"]) in entities:
                problems.append(f"not retracted {fact}")
            elif fact["kind"] == "relation":
                a, b = self._name(fact["from"]), self._name(fact["to"])
                linked = (a, b) in links or (b, a) in links
                if links.get((a, b), set()) & set(fact["type"]) or \
                        (linked and (a, b) not in self.relations and (b, a) not in self.relations):
                    problems.append(f"not retracted {fact}")
            elif fact["kind"] == "observation":
                name, groups = self._obs_key(fact)
                if (name, groups) not in self.observations and any(
                        self._matches(o, groups) for o in entities.get(name, {}).get("observations", [])):
                    problems.append(f"not retracted {fact}")
        for name, entity in entities.items():
            if name not in self.entities:
                problems.append(f"spurious entity {name}")
            for o in entity["observations"]:
                if not any(n == name and self._matches(o, g) for n, g in self.observations):
                    problems.append(f"spurious observation {name}: {o}")
        for pair, types in links.items():
            for relation_type in types:
                if not any(relation_type in accepted for accepted in self.relations.get(pair, [])):
                    problems.append(f"spurious relation {pair[0]} -[{relation_type}]-> {pair[1]}")
        if problems:
            raise GateError(f"episode {episode_id} session {session + 1}: " + "; ".join(problems)
                            + f"\ngraph: {json.dumps(graph)}")


def check_episode(episode: dict[str, Any], graphs: list[dict[str, Any]]) -> None:
    """The evaluator's rules on every session of a finished episode (`graphs[i]`: graph after session i)."""
    parsed = episode_from_dict(episode)
    names = Names.for_user(parsed.user)
    for index, (state, graph) in enumerate(zip(memory_timeline(parsed), graphs, strict=True)):
        _raise_on_problems(episode["id"], index, score_graph(graph, state, names), graph)


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
