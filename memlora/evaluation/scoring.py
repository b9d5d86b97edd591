"""The matching rules of shared/spec/episodes.md as pure functions.

Nothing here runs a model or a server: a graph is the plain dict `read_graph` returns (or a
`KnowledgeGraph`), facts and probes come from `episodes.py`. Where the spec leaves a choice
open, the choice is made here once and written down in docs/evaluation.md.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memlora.evaluation.episodes import (
    Episode,
    EntityFact,
    Fact,
    ObservationFact,
    Probe,
    RelationFact,
    UserInfo,
    fact_to_dict,
)
from memlora.store.graph import KnowledgeGraph

USER_PLACEHOLDER = "@user"
# Names that stand for the user whatever the episode says (the reference server's convention).
GENERIC_USER_NAMES = ("default_user", "user", "me")

# ----------------------------------------------------------------------------- normalisation


def fold_name(name: str) -> str:
    """Case-insensitive form of a name: case folded, white space runs folded to one space, trimmed."""
    return " ".join(name.split()).casefold()


def fold_text(text: str) -> str:
    """Observation and keyword text: case folded, white space runs folded to one space. Not
    trimmed: a keyword is a plain substring, so " ski " must not match "Likes skiing"."""
    return re.sub(r"\s+", " ", text).casefold()


def normalize_relation_type(relation_type: str) -> str:
    """`Works at`, `works-at` and `works_at` are one relation type."""
    return re.sub(r"[\s\-]", "_", relation_type.lower())


def _strip_punctuation(text: str, replacement: str = "") -> str:
    return "".join(replacement if unicodedata.category(ch).startswith("P") else ch for ch in text)


def normalize_reply(text: str) -> str:
    """Reply and answer text for probe matching: case folded, punctuation removed, spaces folded."""
    return " ".join(_strip_punctuation(text.casefold()).split())


def reply_forms(text: str) -> set[str]:
    """The ways to ignore punctuation: removed ("Jean-Luc" -> "jeanluc") or read as a space
    ("jean luc"); a value matches a reply when any of its forms occurs in any of the reply's."""
    folded = text.casefold()
    return {" ".join(_strip_punctuation(folded, joiner).split()) for joiner in ("", " ")}


# ----------------------------------------------------------------------------- graphs


@dataclass(frozen=True)
class GEntity:
    name: str
    entity_type: str
    observations: tuple[str, ...]


@dataclass(frozen=True)
class GRelation:
    source: str
    target: str
    relation_type: str


@dataclass(frozen=True)
class Graph:
    """A read-only snapshot, tolerant of whatever a server sends (missing keys become empty)."""

    entities: tuple[GEntity, ...] = ()
    relations: tuple[GRelation, ...] = ()

    @classmethod
    def from_any(cls, graph: Graph | KnowledgeGraph | dict[str, Any] | None) -> Graph:
        if graph is None:
            return cls()
        if isinstance(graph, Graph):
            return graph
        if isinstance(graph, KnowledgeGraph):
            graph = graph.to_dict()
        entities = tuple(
            GEntity(
                name=str(e.get("name", "")),
                entity_type=str(e.get("entityType", "")),
                observations=tuple(str(o) for o in e.get("observations") or ()),
            )
            for e in graph.get("entities") or ()
            if isinstance(e, dict)
        )
        relations = tuple(
            GRelation(str(r.get("from", "")), str(r.get("to", "")), str(r.get("relationType", "")))
            for r in graph.get("relations") or ()
            if isinstance(r, dict)
        )
        return cls(entities, relations)

    def item_count(self) -> int:
        return len(self.entities) + len(self.relations) + sum(len(e.observations) for e in self.entities)


# ----------------------------------------------------------------------------- names


@dataclass(frozen=True)
class Names:
    """Resolves the names facts use, `@user` included, to sets of folded graph names."""

    user_names: frozenset[str]

    @classmethod
    def for_user(cls, user: UserInfo) -> Names:
        candidates = [user.name or "", *user.aliases, *GENERIC_USER_NAMES]
        return cls(frozenset(f for f in (fold_name(c) for c in candidates) if f))

    def keys(self, name: str) -> frozenset[str]:
        """The folded graph names that count as `name`.

        A fact may name the user as `@user` or by one of the user's names; either way every
        name of the user counts.
        """
        folded = fold_name(name)
        if folded == USER_PLACEHOLDER or folded in self.user_names:
            return self.user_names
        return frozenset({folded})

    def is_user(self, name: str) -> bool:
        return self.keys(name) == self.user_names

    def same(self, a: str, b: str) -> bool:
        return bool(self.keys(a) & self.keys(b))


def mentions(text: str, keys: Iterable[str]) -> bool:
    """Whether text names one of the (folded) names as a whole word or phrase.

    Word boundaries keep short names honest: the user alias `me` is not mentioned by "member".
    """
    folded = fold_text(text)
    return any(re.search(r"(?<!\w)" + re.escape(key) + r"(?!\w)", folded) for key in keys if key)


def _entities_named(graph: Graph, keys: frozenset[str]) -> list[GEntity]:
    return [e for e in graph.entities if fold_name(e.name) in keys]


def _contains_keywords(observation: str, keywords: Sequence[Sequence[str]]) -> bool:
    text = fold_text(observation)
    return all(any(fold_text(alt) in text for alt in alternatives) for alternatives in keywords)


# ----------------------------------------------------------------------------- fact matching


def entity_holds(fact: EntityFact, graph: Graph, names: Names) -> bool:
    return bool(_entities_named(graph, names.keys(fact.name)))


def entity_type_matches(fact: EntityFact, graph: Graph, names: Names) -> bool | None:
    """Whether an entity of that name has one of the listed types; None when none is listed."""
    if not fact.types:
        return None
    wanted = {fold_name(t) for t in fact.types}
    return any(fold_name(e.entity_type) in wanted for e in _entities_named(graph, names.keys(fact.name)))


def relation_holds_structurally(fact: RelationFact, graph: Graph, names: Names) -> bool:
    sources, targets = names.keys(fact.source), names.keys(fact.target)
    wanted = {normalize_relation_type(t) for t in fact.types}
    return any(
        fold_name(r.source) in sources
        and fold_name(r.target) in targets
        and normalize_relation_type(r.relation_type) in wanted
        for r in graph.relations
    )


def _linked_by_relation(graph: Graph, a: frozenset[str], b: frozenset[str]) -> bool:
    for r in graph.relations:
        source, target = fold_name(r.source), fold_name(r.target)
        if (source in a and target in b) or (source in b and target in a):
            return True
    return False


def _linked_by_observation(graph: Graph, a: frozenset[str], b: frozenset[str]) -> bool:
    for entity in graph.entities:
        name = fold_name(entity.name)
        other = b if name in a else a if name in b else None
        if other is not None and any(mentions(o, other) for o in entity.observations):
            return True
    return False


def relation_holds_retrievably(fact: RelationFact, graph: Graph, names: Names) -> bool:
    """Structurally, or any relation links the endpoints, or an observation of one mentions the other."""
    if relation_holds_structurally(fact, graph, names):
        return True
    a, b = names.keys(fact.source), names.keys(fact.target)
    return _linked_by_relation(graph, a, b) or _linked_by_observation(graph, a, b)


def observation_holds(fact: ObservationFact, graph: Graph, names: Names) -> bool:
    """A single observation of the entity holds every keyword (any one alternative of each)."""
    return any(
        _contains_keywords(o, fact.keywords)
        for e in _entities_named(graph, names.keys(fact.entity))
        for o in e.observations
    )


def fact_holds(fact: Fact, graph: Graph, names: Names, *, retrievable: bool = True) -> bool:
    if isinstance(fact, EntityFact):
        return entity_holds(fact, graph, names)
    if isinstance(fact, ObservationFact):
        return observation_holds(fact, graph, names)
    if retrievable:
        return relation_holds_retrievably(fact, graph, names)
    return relation_holds_structurally(fact, graph, names)


# ----------------------------------------------------------------------------- expected memory


def _keyword_groups_match(a: ObservationFact, b: ObservationFact) -> bool:
    def covered(x: ObservationFact, y: ObservationFact) -> bool:
        return all(any({fold_text(t) for t in gx} & {fold_text(t) for t in gy} for gy in y.keywords) for gx in x.keywords)

    return covered(a, b) and covered(b, a)


def same_fact(a: Fact, b: Fact, names: Names) -> bool:
    """Whether a retract (or a repeated learn) is about the same fact as an earlier learn.

    Relations: same endpoints in the same direction and at least one relation type in common,
    so a retract need not repeat the learn's list of types word for word. Observations: same
    entity and every keyword of each shares an alternative with a keyword of the other.
    """
    if isinstance(a, EntityFact) and isinstance(b, EntityFact):
        return names.same(a.name, b.name)
    if isinstance(a, RelationFact) and isinstance(b, RelationFact):
        return (
            names.same(a.source, b.source)
            and names.same(a.target, b.target)
            and bool({normalize_relation_type(t) for t in a.types} & {normalize_relation_type(t) for t in b.types})
        )
    if isinstance(a, ObservationFact) and isinstance(b, ObservationFact):
        return names.same(a.entity, b.entity) and _keyword_groups_match(a, b)
    return False


def fact_names(fact: Fact) -> tuple[str, ...]:
    """The entity names a fact speaks about."""
    if isinstance(fact, EntityFact):
        return (fact.name,)
    if isinstance(fact, RelationFact):
        return (fact.source, fact.target)
    return (fact.entity,)


def _depends_on_entity(fact: Fact, entity: EntityFact, names: Names) -> bool:
    return any(names.same(n, entity.name) for n in fact_names(fact))


@dataclass(frozen=True)
class MemoryState:
    """What memory must and must not hold after one session."""

    expected: tuple[Fact, ...]
    retracted: tuple[Fact, ...]  # retracted so far and not learnt again since


def memory_timeline(episode: Episode) -> list[MemoryState]:
    """The memory state after each session, in order.

    Within one session learns apply before retracts, so a fact both learnt and retracted in the
    same session ends retracted. Learning a fact again after its retraction brings it back.
    Retracting an entity also withdraws the expected facts about it (its relations and
    observations): they cannot hold without it.
    """
    names = Names.for_user(episode.user)
    expected: list[Fact] = []
    retracted: list[Fact] = []
    states = []
    for session in episode.sessions:
        for fact in session.learn:
            expected = [e for e in expected if not same_fact(e, fact, names)] + [fact]
            retracted = [r for r in retracted if not same_fact(r, fact, names)]
        for fact in session.retract:
            expected = [
                e
                for e in expected
                if not same_fact(e, fact, names)
                and not (isinstance(fact, EntityFact) and _depends_on_entity(e, fact, names))
            ]
            retracted = [r for r in retracted if not same_fact(r, fact, names)] + [fact]
        states.append(MemoryState(tuple(expected), tuple(retracted)))
    return states


def expected_memory(episode: Episode, session_index: int) -> MemoryState:
    """The memory state after session `session_index` (0-based)."""
    return memory_timeline(episode)[session_index]


# ----------------------------------------------------------------------------- retractions


def _required_link(fact: RelationFact, expected: Sequence[Fact], names: Names) -> bool:
    """Whether expected memory itself links the endpoints of a retracted relation.

    Then the retraction cannot be checked retrievably without contradicting recall (e.g.
    "used to work at X" learnt while "works at X" is retracted), so it is checked structurally.
    """
    a, b = names.keys(fact.source), names.keys(fact.target)
    for other in expected:
        if isinstance(other, RelationFact):
            x, y = names.keys(other.source), names.keys(other.target)
            if (x & a and y & b) or (x & b and y & a):
                return True
        elif isinstance(other, ObservationFact):
            ends = names.keys(other.entity)
            far = b if ends & a else a if ends & b else None
            alternatives = {fold_text(t) for group in other.keywords for t in group}
            if far is not None and any(mentions(alt, far) for alt in alternatives):
                return True
    return False


def retraction_honoured(fact: Fact, graph: Graph, names: Names, expected: Sequence[Fact] = ()) -> bool:
    """A retracted fact must not hold (retrievably) any more."""
    if isinstance(fact, RelationFact) and _required_link(fact, expected, names):
        return not relation_holds_structurally(fact, graph, names)
    return not fact_holds(fact, graph, names, retrievable=True)


# ----------------------------------------------------------------------------- precision


def _accounted_names(state: MemoryState, names: Names) -> frozenset[str]:
    """Folded entity names that a graph may hold without being spurious.

    Every name an expected fact speaks about (relation endpoints included); the names a
    retracted relation or observation spoke about (retracting a link does not make the things
    it linked unknown), except an entity whose own entity fact was retracted; and an entity
    named like a keyword of an expected observation (storing "Lisbon" as an entity is a fair
    way to keep "lives in Lisbon").
    """
    allowed: set[str] = set()
    for fact in state.retracted:
        if not isinstance(fact, EntityFact):
            for n in fact_names(fact):
                allowed |= names.keys(n)
    for fact in state.retracted:
        if isinstance(fact, EntityFact):
            allowed -= names.keys(fact.name)
    for fact in state.expected:
        for n in fact_names(fact):
            allowed |= names.keys(n)
        if isinstance(fact, ObservationFact):
            allowed |= {fold_name(t) for group in fact.keywords for t in group}
    return frozenset(allowed)


def _observation_accounted(entity: GEntity, observation: str, state: MemoryState, names: Names) -> bool:
    here = fold_name(entity.name)
    for fact in state.expected:
        if isinstance(fact, ObservationFact):
            if here in names.keys(fact.entity) and _contains_keywords(observation, fact.keywords):
                return True
        elif isinstance(fact, RelationFact):
            a, b = names.keys(fact.source), names.keys(fact.target)
            other = b if here in a else a if here in b else None
            if other is not None and mentions(observation, other):
                return True
    return False


def _relation_accounted(relation: GRelation, state: MemoryState, names: Names) -> bool:
    ends = (fold_name(relation.source), fold_name(relation.target))
    for fact in state.expected:
        if isinstance(fact, RelationFact):
            a, b = names.keys(fact.source), names.keys(fact.target)
            if (ends[0] in a and ends[1] in b) or (ends[0] in b and ends[1] in a):
                return True
        elif isinstance(fact, ObservationFact):
            owner = names.keys(fact.entity)
            alternatives = {fold_name(t) for group in fact.keywords for t in group}
            if (ends[0] in owner and ends[1] in alternatives) or (ends[1] in owner and ends[0] in alternatives):
                return True
    return False


def spurious_items(graph: Graph, state: MemoryState, names: Names) -> list[str]:
    """Descriptions of the graph items that no expected fact accounts for."""
    allowed = _accounted_names(state, names)
    spurious = []
    for entity in graph.entities:
        if fold_name(entity.name) not in allowed:
            spurious.append(f"entity {entity.name!r}")
        for observation in entity.observations:
            if not _observation_accounted(entity, observation, state, names):
                spurious.append(f"observation {entity.name!r}: {observation!r}")
    for relation in graph.relations:
        if not _relation_accounted(relation, state, names):
            spurious.append(f"relation {relation.source!r} -{relation.relation_type}-> {relation.target!r}")
    return spurious


# ----------------------------------------------------------------------------- graph scores


def ratio(numerator: int, denominator: int) -> float | None:
    """A share, or None when nothing was there to count (reports show it as n/a)."""
    return numerator / denominator if denominator else None


def f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass
class FactResult:
    fact: dict[str, Any]
    kind: str
    structural: bool
    retrievable: bool
    type_match: bool | None = None


@dataclass
class RetractionResult:
    fact: dict[str, Any]
    kind: str
    honoured: bool


@dataclass
class GraphScore:
    """How one graph snapshot matches the memory expected at that point."""

    facts: list[FactResult] = field(default_factory=list)
    retractions: list[RetractionResult] = field(default_factory=list)
    items: int = 0
    spurious: list[str] = field(default_factory=list)

    @property
    def recall_structural(self) -> float | None:
        return ratio(sum(f.structural for f in self.facts), len(self.facts))

    @property
    def recall_retrievable(self) -> float | None:
        return ratio(sum(f.retrievable for f in self.facts), len(self.facts))

    @property
    def precision(self) -> float | None:
        return ratio(self.items - len(self.spurious), self.items)

    @property
    def f1(self) -> float | None:
        return f1(self.precision, self.recall_retrievable)

    @property
    def retractions_honoured(self) -> float | None:
        return ratio(sum(r.honoured for r in self.retractions), len(self.retractions))

    def to_dict(self) -> dict[str, Any]:
        return {
            "recall_structural": self.recall_structural,
            "recall_retrievable": self.recall_retrievable,
            "precision": self.precision,
            "f1": self.f1,
            "retractions_honoured": self.retractions_honoured,
            "items": self.items,
            "spurious": list(self.spurious),
            "facts": [vars(f) for f in self.facts],
            "retractions": [vars(r) for r in self.retractions],
        }


def score_graph(graph: Graph | KnowledgeGraph | dict[str, Any] | None, state: MemoryState, names: Names) -> GraphScore:
    """Recall (structural and retrievable), type match, retractions and spurious items of one snapshot."""
    g = Graph.from_any(graph)
    score = GraphScore(items=g.item_count(), spurious=spurious_items(g, state, names))
    for fact in state.expected:
        score.facts.append(
            FactResult(
                fact=fact_to_dict(fact),
                kind=fact.kind,
                structural=fact_holds(fact, g, names, retrievable=False),
                retrievable=fact_holds(fact, g, names, retrievable=True),
                type_match=entity_type_matches(fact, g, names) if isinstance(fact, EntityFact) else None,
            )
        )
    for fact in state.retracted:
        score.retractions.append(
            RetractionResult(fact_to_dict(fact), fact.kind, retraction_honoured(fact, g, names, state.expected))
        )
    return score


# ----------------------------------------------------------------------------- probes

# A reply "does not know" when it says so in one of these ways (matched on the lower-cased reply
# with typographic apostrophes made plain). Deliberately about saying so, not about hedging.
ABSTENTION_PATTERNS: tuple[str, ...] = (
    r"\b(?:do not|don'?t|does not|doesn'?t|did not|didn'?t) (?:know|have|hold|contain|remember|recall|see|seem to have)\b",
    r"\b(?:can ?not|can'?t|could not|couldn'?t|unable to|am not able to) (?:find|recall|remember|tell|say|know|see|answer|determine)\b",
    r"\bnot (?:sure|certain)\b",
    r"\bno (?:idea|knowledge)\b",
    r"\bno (?:record|records|information|info|memory|memories|mention|data|details?|entry|entries)\b",
    r"\bnothing (?:about|on|in|stored|saved|recorded|is stored|i know)\b",
    r"\b(?:never|haven'?t|have not|hasn'?t|has not) (?:told|mentioned|said|shared|stored|saved|recorded|given)\b",
    r"\b(?:did not|didn'?t|never) (?:tell|mention|say|share|give)\b",
    r"\b(?:have not|haven'?t|has not|hasn'?t|was not|wasn'?t|were not|weren'?t) been (?:told|mentioned|given|shared)\b",
    r"\b(?:was not|wasn'?t|were not|weren'?t) (?:told|given)\b",
    r"\bnot something (?:you'?ve|you have|you) (?:told|shared|mentioned|said|given)\b",
    r"\bno \w+ (?:is )?(?:stored|saved|recorded|on record|in (?:my )?memory)\b",
    r"\b(?:isn'?t|is not|wasn'?t|was not|aren'?t|are not|not) (?:stored|recorded|saved|mentioned|in (?:my )?memory)\b",
    r"\bno longer (?:know|have|keep|store|hold|remember)\b",
    r"\b(?:i'?m|i am) not aware\b",
    # only as the whole statement ("Your birthday is not yet known."), not as a side remark in
    # an answer ("Tom, city not specified")
    r"\b(?:is|are|was|were) not (?:yet )?(?:known|specified|listed)(?: (?:in|to) (?:the |my )?(?:memory|me))?\s*(?:[.!]|$)",
    r"\b(?:is|are|was|were|remains?) (?:still )?unknown(?: (?:in|to) (?:the |my )?(?:memory|me))?\s*(?:[.!]|$)",
    r"^unknown\s*[.!]?$",
)
_ABSTENTION = re.compile("|".join(f"(?:{p})" for p in ABSTENTION_PATTERNS))


def is_abstention(reply: str) -> bool:
    """Whether the reply says the assistant does not know (see ABSTENTION_PATTERNS)."""
    text = " ".join(reply.replace("\u2019", "'").replace("\u2018", "'").casefold().split())
    return bool(_ABSTENTION.search(text))


def contains_value(reply: str, value: str) -> bool:
    """Case-insensitive containment ignoring punctuation (and white space runs)."""
    texts = reply_forms(reply)
    return any(form in text for form in reply_forms(value) for text in texts)


@dataclass
class ProbeScore:
    correct: bool
    abstained: bool
    answers_found: list[str]
    forbidden_found: list[str]


def score_probe(probe: Probe, reply: str) -> ProbeScore:
    """Right: contains an answer (or, with no answers, abstains) and contains nothing forbidden."""
    found = [a for a in probe.answers if contains_value(reply, a)]
    banned = [f for f in probe.forbidden if contains_value(reply, f)]
    abstained = is_abstention(reply)
    right = bool(found) if probe.answers else abstained
    return ProbeScore(correct=right and not banned, abstained=abstained, answers_found=found, forbidden_found=banned)


def _fact_strings(fact: Fact, names: Names, user: UserInfo) -> list[str]:
    strings: list[str] = []
    for n in fact_names(fact):
        if names.is_user(n):
            strings += [user.name or "", *user.aliases]
        else:
            strings.append(n)
    if isinstance(fact, ObservationFact):
        strings += [t for group in fact.keywords for t in group]
    if isinstance(fact, RelationFact):  # "Who is Mia to me?" -> "my sister": has_sister
        strings += [t.replace("_", " ") for t in fact.types]
    return [s for s in (normalize_reply(x) for x in strings) if s]


def _value_names_fact(value: str, fact_string: str) -> bool:
    """A probe value names a fact when it occurs in one of the fact's strings, or holds one as
    whole words ("at Anthropic" names "anthropic")."""
    return value in fact_string or mentions(value, (fact_string,))


def learning_session(episode: Episode, probe: Probe) -> int:
    """Index of the session a probe's knowledge comes from, for the persistence breakdown.

    The latest session up to the probe's `after` whose learn or retract mentions one of the
    probe's answers or forbidden values (`_value_names_fact`: against the fact's names, keyword
    alternatives and relation types, `@user` standing for the user's names); else the `after`
    session itself (e.g. abstain probes).
    """
    names = Names.for_user(episode.user)
    values = [v for v in (normalize_reply(x) for x in (*probe.answers, *probe.forbidden)) if v]
    last = episode.session_index(probe.after)
    for index in range(last, -1, -1):
        session = episode.sessions[index]
        for fact in (*session.learn, *session.retract):
            strings = _fact_strings(fact, names, episode.user)
            if any(_value_names_fact(v, s) for v in values for s in strings):
                return index
    return last


def probe_distance(episode: Episode, probe: Probe) -> int:
    """Sessions from learning to asking: 1 when the probe session directly follows the learning one."""
    return episode.session_index(probe.after) - learning_session(episode, probe) + 1
