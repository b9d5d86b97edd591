"""The hand-written corpus: checking its episodes, splitting it, and turning it into training rows.

Generated episodes teach the conventions through templates; people do not talk in templates. The
corpus in `corpus/handwritten/` holds episodes written by hand in the voice of varied users, with
gold calls by the conventions of docs/memory-conventions.md. An episode is kept only if it passes
the same gate as generated data: every call runs on a real store without an error, and after each
session the graph is exactly what the learn/retract facts describe (the strict gate and the
evaluator's own matching rules). A few convention checks and probe checks come on top, because a
person makes mistakes a generator does not (a typo in an entity name, a probe whose answer was
never stored).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memlora.agent.prompt import DEFAULT_USER_ENTITY
from memlora.data.execute import GoldCallError, execute, scratch_store
from memlora.data.gate import FastGate, GateError, check_episode
from memlora.data.generator import GenSession, GenTurn
from memlora.evaluation.episodes import READ_TOOLS, validate_episode

CORPUS_DIR = Path(__file__).resolve().parents[2] / "corpus" / "handwritten"
TEST_SHARE = 5  # one episode in five is held out as the natural test split

# the order of one turn's calls (docs/memory-conventions.md, "Writing"); reads may come anywhere
CALL_ORDER = {"delete_observations": 0, "delete_relations": 0, "delete_entities": 0,
              "create_entities": 1, "create_relations": 2, "add_observations": 3}
ENTITY_TYPE = re.compile(r"^[a-z][a-z_]*$")
RELATION_TYPE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def corpus_split(episode_id: str) -> str:
    """"test" for one episode in five, chosen by a hash of its id, else "train": stable when
    episodes are added or files reordered."""
    digest = hashlib.sha256(episode_id.encode("utf-8")).digest()
    return "test" if digest[0] % TEST_SHARE == 0 else "train"


@dataclass
class CheckedEpisode:
    episode: dict[str, Any]
    sessions: list[GenSession]  # the gold replayed on a real store: results and opening graphs


def user_entity(episode: dict[str, Any]) -> str:
    return episode["user"]["name"] or DEFAULT_USER_ENTITY


def replay(episode: dict[str, Any]) -> CheckedEpisode:
    """Runs the gold calls session by session on a fresh store and gates every session.

    Raises GateError (or GoldCallError) naming the episode, session and turn of the first problem.
    """
    problems = validate_episode(episode)
    if problems:
        raise GateError(f"episode {episode.get('id')!r}: not a valid episode: " + "; ".join(problems[:5]))
    store = scratch_store()
    gate = FastGate(user_entity(episode))
    sessions: list[GenSession] = []
    graphs: list[dict[str, Any]] = []
    for number, raw in enumerate(episode["sessions"], start=1):
        where = f"episode {episode['id']} session {raw['id']}"
        session = GenSession(raw["id"], raw.get("date", ""), store.read_graph().to_dict(),
                             learn=list(raw.get("learn", [])), retract=list(raw.get("retract", [])))
        for index, turn in enumerate(raw["turns"], start=1):
            here = f"{where} turn {index}"
            if "calls" not in turn or not isinstance(turn.get("reply"), str) or not turn["reply"].strip():
                raise GateError(f"{here}: a corpus turn needs `calls` (possibly []) and a non-empty `reply`")
            _check_call_conventions(turn["calls"], here)
            results = []
            for call in turn["calls"]:
                try:
                    results.append(execute(store, call))
                except GoldCallError as error:
                    raise GateError(f"{here}: {error}") from None
            retrieval = any(call["name"] in READ_TOOLS for call in turn["calls"])
            session.turns.append(GenTurn(turn["user"], turn["calls"], results, turn["reply"],
                                         {"action": "handwritten"}, retrieval))
        graph = store.read_graph().to_dict()
        gate.apply(session.learn, session.retract)
        gate.check(episode["id"], number - 1, graph)
        _check_no_restated_relations(graph, where)
        sessions.append(session)
        graphs.append(graph)
    check_episode(episode, graphs)
    _check_probes(episode, graphs)
    return CheckedEpisode(episode, sessions)


def _check_call_conventions(calls: list[dict[str, Any]], where: str) -> None:
    ranks = [CALL_ORDER[c["name"]] for c in calls if c["name"] in CALL_ORDER]
    if ranks != sorted(ranks):
        raise GateError(f"{where}: calls out of order {[c['name'] for c in calls]}; the order is deletions, "
                        "create_entities, create_relations, add_observations")
    for call in calls:
        args = call["arguments"]
        if call["name"] == "create_entities":
            for entity in args.get("entities", []):
                if not ENTITY_TYPE.match(str(entity.get("entityType", ""))):
                    raise GateError(f"{where}: entityType {entity.get('entityType')!r} of {entity.get('name')!r} "
                                    "must be one lower-case word (person, city, dog, ...)")
        if call["name"] in ("create_relations", "delete_relations"):
            for relation in args.get("relations", []):
                if not RELATION_TYPE.match(str(relation.get("relationType", ""))):
                    raise GateError(f"{where}: relationType {relation.get('relationType')!r} must be snake_case")


def _check_no_restated_relations(graph: dict[str, Any], where: str) -> None:
    """An observation that names an entity its subject is related to restates the relation."""
    linked: dict[str, set[str]] = {}
    for relation in graph["relations"]:
        linked.setdefault(relation["from"], set()).add(relation["to"])
        linked.setdefault(relation["to"], set()).add(relation["from"])
    for entity in graph["entities"]:
        for observation in entity["observations"]:
            for other in linked.get(entity["name"], ()):
                if re.search(rf"\b{re.escape(other.lower())}\b", observation.lower()):
                    raise GateError(f"{where}: observation {observation!r} on {entity['name']!r} restates its "
                                    f"relation with {other!r}; keep the relation only")


def _check_probes(episode: dict[str, Any], graphs: list[dict[str, Any]]) -> None:
    """Answers must be in memory when asked, and not-knowing probes have none.

    Forbidden values are not looked for in the graph: an old city or employer rightly stays as an
    entity after a move, and only the reply is judged by them."""
    index = {s["id"]: i for i, s in enumerate(episode["sessions"])}
    for number, probe in enumerate(episode["probes"], start=1):
        where = f"episode {episode['id']} probe {number} ({probe['question']!r})"
        if probe["after"] not in index:
            raise GateError(f"{where}: `after` names no session")
        text = json.dumps(graphs[index[probe["after"]]], ensure_ascii=False).lower()
        answers, forbidden = probe["answers"], probe.get("forbidden", [])
        if probe["kind"] in ("abstain", "forget"):
            if answers:
                raise GateError(f"{where}: a {probe['kind']} probe has no answers (the right reply is not knowing)")
        elif not answers:
            raise GateError(f"{where}: a {probe['kind']} probe needs answers")
        elif not any(answer.lower() in text for answer in answers):
            raise GateError(f"{where}: none of the answers {answers} is in memory after {probe['after']}")
        if any(value.lower() in answer.lower() for value in forbidden for answer in answers):
            raise GateError(f"{where}: an answer contains a forbidden value, so no reply can be right")


def read_corpus_file(path: Path) -> list[dict[str, Any]]:
    """The episodes of one JSON Lines file; a line that is not JSON is reported with its number."""
    episodes = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            episodes.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise GateError(f"{path}:{number}: bad JSON: {error.msg} (column {error.colno})") from None
    return episodes


def corpus_files(folder: Path = CORPUS_DIR) -> list[Path]:
    return sorted(folder.glob("*.jsonl"))


def check_corpus(paths: list[Path]) -> tuple[list[CheckedEpisode], list[str]]:
    """Every episode of the files, checked; (the good ones, one line per problem)."""
    good: list[CheckedEpisode] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            episodes = read_corpus_file(path)
        except (GateError, OSError) as error:
            problems.append(str(error))
            continue
        for number, episode in enumerate(episodes, start=1):
            label = f"{path.name}:{number}"
            episode_id = episode.get("id") if isinstance(episode, dict) else None
            if episode_id in seen:
                problems.append(f"{label}: episode id {episode_id!r} is also used at {seen[episode_id]}")
                continue
            seen[str(episode_id)] = label
            if not isinstance(episode, dict) or not isinstance(episode.get("provenance"), dict):
                problems.append(f"{label}: a corpus episode needs a `provenance` object (who wrote it, when, how)")
                continue
            try:
                good.append(replay(episode))
            except (GateError, GoldCallError) as error:
                problems.append(f"{label}: {str(error).splitlines()[0]}")
    return good, problems


def corpus_stats(checked: list[CheckedEpisode]) -> dict[str, Any]:
    """What the corpus holds: counts per split, unnamed users, turn kinds, probe kinds."""
    stats: dict[str, Any] = {"episodes": {"train": 0, "test": 0}, "sessions": 0, "turns": 0,
                             "unnamed_users": 0, "turns_without_calls": 0, "retrieval_turns": 0,
                             "turns_with_deletions": 0, "probes": {}}
    for item in checked:
        episode = item.episode
        stats["episodes"][corpus_split(episode["id"])] += 1
        stats["unnamed_users"] += episode["user"]["name"] is None
        for session in item.sessions:
            stats["sessions"] += 1
            for turn in session.turns:
                stats["turns"] += 1
                names = {c["name"] for c in turn.calls}
                stats["turns_without_calls"] += not names
                stats["retrieval_turns"] += bool(names & READ_TOOLS)
                stats["turns_with_deletions"] += any(n.startswith("delete_") for n in names)
        for probe in episode["probes"]:
            stats["probes"][probe["kind"]] = stats["probes"].get(probe["kind"], 0) + 1
    return stats
