"""The reference policy: the deterministic gold tool calls for what a user says, and the
`learn` / `retract` facts those calls account for.

What the model learns to do is exactly what this module writes; docs/memory-conventions.md
describes the same rules in prose. The policy reads the real store to decide what is new, so
its calls are minimal: nothing is created twice and nothing is written that no fact covers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from memlora.agent.prompt import DEFAULT_USER_ENTITY
from memlora.store.base import MemoryStore
from memlora.store.graph import Entity

USER = "@user"  # how facts name the user's entity, whatever its stored name


@dataclass(frozen=True)
class Fact:
    """One atomic truth about the user's world: `subject` has `value` for `kind`.

    `extra` carries what the kind needs beside the value: the species of a pet, the role word
    of a third person ("sister"), the prose noun of an event.
    """

    kind: str
    subject: str
    value: str
    extra: str = ""


@dataclass(frozen=True)
class RelationKind:
    relation: str
    alternatives: tuple[str, ...]
    object_type: str  # "" means: the fact's `extra` (a pet's species)
    type_alternatives: tuple[str, ...]


@dataclass(frozen=True)
class ObservationKind:
    template: str  # observation text, {v} = value
    keywords: tuple[str, ...] = ()  # empty: the value itself is the keyword


ORG_TYPES = ("organization", "company", "organisation", "employer", "business")
PLACE_TYPES = ("city", "place", "location", "town")

RELATION_KINDS: dict[str, RelationKind] = {
    "works_at": RelationKind("works_at", ("works_at", "works_for", "employed_by", "employed_at", "works_in"),
                             "organization", ORG_TYPES),
    "lives_in": RelationKind("lives_in", ("lives_in", "resides_in", "based_in", "living_in", "located_in"),
                             "city", PLACE_TYPES),
    "born_in": RelationKind("born_in", ("born_in", "from", "comes_from", "grew_up_in", "originally_from",
                                        "hometown", "has_hometown", "raised_in"), "city", PLACE_TYPES),
    "studied_at": RelationKind("studied_at", ("studied_at", "graduated_from", "attended", "alumnus_of", "went_to",
                                              "studies_at", "educated_at"),
                               "university", ("university", "school", "organization", "college", "institution")),
    "pet": RelationKind("owns", ("owns", "has_pet", "has", "pet_owner_of", "has_dog", "has_cat", "owner_of",
                                 "adopted", "has_rabbit", "has_parrot", "has_hamster", "has_tortoise"),
                        "", ("pet", "animal")),
    "works_on": RelationKind("works_on", ("works_on", "leads", "part_of", "member_of", "assigned_to",
                                          "working_on", "contributes_to", "involved_in"), "project", ("project",)),
    "registered_for": RelationKind("registered_for", ("registered_for", "attends", "attending", "signed_up_for",
                                                      "participates_in", "going_to", "entered", "will_attend",
                                                      "has_ticket_for", "registered_in"), "event", ("event",)),
}

# Third persons: role word -> (relation type, accepted alternatives, pronoun sets allowed).
PERSON_ROLES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "sister": ("has_sister", ("has_sister", "sister_of", "sibling_of", "has_sibling", "sister"), "f"),
    "brother": ("has_brother", ("has_brother", "brother_of", "sibling_of", "has_sibling", "brother"), "m"),
    "mother": ("has_mother", ("has_mother", "mother_of", "child_of", "has_parent", "son_of", "daughter_of", "mother"), "f"),
    "father": ("has_father", ("has_father", "father_of", "child_of", "has_parent", "son_of", "daughter_of", "father"), "m"),
    "daughter": ("has_daughter", ("has_daughter", "daughter_of", "parent_of", "has_child", "mother_of", "father_of"), "f"),
    "son": ("has_son", ("has_son", "son_of", "parent_of", "has_child", "mother_of", "father_of"), "m"),
    "cousin": ("has_cousin", ("has_cousin", "cousin_of", "cousin"), "fmn"),
    "grandmother": ("has_grandmother", ("has_grandmother", "grandmother_of", "grandchild_of", "has_grandparent"), "f"),
    "grandfather": ("has_grandfather", ("has_grandfather", "grandfather_of", "grandchild_of", "has_grandparent"), "m"),
    "aunt": ("has_aunt", ("has_aunt", "aunt_of", "niece_of", "nephew_of"), "f"),
    "uncle": ("has_uncle", ("has_uncle", "uncle_of", "niece_of", "nephew_of"), "m"),
    "friend": ("friend_of", ("friend_of", "has_friend", "friends_with", "friend"), "fmn"),
    "best friend": ("best_friend_of", ("best_friend_of", "has_best_friend", "friend_of", "friends_with",
                                       "best_friends_with", "has_friend"), "fmn"),
    "coworker": ("colleague_of", ("colleague_of", "coworker_of", "works_with", "has_colleague", "has_coworker",
                                  "co_worker_of"), "fmn"),
    "boss": ("reports_to", ("reports_to", "has_boss", "works_for", "managed_by", "boss_of", "has_manager",
                            "employee_of"), "fmn"),
    "neighbor": ("neighbor_of", ("neighbor_of", "neighbour_of", "has_neighbor", "lives_next_to"), "fmn"),
    "roommate": ("roommate_of", ("roommate_of", "has_roommate", "lives_with", "flatmate_of", "shares_flat_with"), "fmn"),
    "mentor": ("has_mentor", ("has_mentor", "mentored_by", "mentee_of", "mentor_of", "learns_from"), "fmn"),
    "partner": ("partner_of", ("partner_of", "has_partner", "dating", "in_relationship_with", "married_to",
                               "together_with", "with"), "fmn"),
    "wife": ("married_to", ("married_to", "has_wife", "wife_of", "spouse_of", "husband_of", "partner_of"), "f"),
    "husband": ("married_to", ("married_to", "has_husband", "husband_of", "spouse_of", "wife_of", "partner_of"), "m"),
    "girlfriend": ("partner_of", ("partner_of", "has_girlfriend", "dating", "girlfriend_of", "boyfriend_of",
                                  "in_relationship_with", "has_partner"), "f"),
    "boyfriend": ("partner_of", ("partner_of", "has_boyfriend", "dating", "boyfriend_of", "girlfriend_of",
                                 "in_relationship_with", "has_partner"), "m"),
}
PARTNER_ROLES = ("partner", "wife", "husband", "girlfriend", "boyfriend")

OBSERVATION_KINDS: dict[str, ObservationKind] = {
    "role": ObservationKind("Works as a {v}"),
    "language": ObservationKind("Speaks {v}"),
    "instrument": ObservationKind("Plays the {v}"),
    "hobby": ObservationKind("Enjoys {v}"),
    "likes_food": ObservationKind("Loves {v}"),
    "dislikes_food": ObservationKind("Dislikes {v}"),
    "diet": ObservationKind("Follows a {v} diet"),
    "music": ObservationKind("Likes {v}"),
    "allergy": ObservationKind("Allergic to {v}"),
    "condition": ObservationKind("Has {v}"),
    "birthday": ObservationKind("Birthday on {v}"),
    "color": ObservationKind("Favorite color is {v}"),
    "breed": ObservationKind("Is a {v}"),
    "topic": ObservationKind("Builds {v}"),
    "month": ObservationKind("Takes place in {v}"),
}


def with_article(text: str) -> str:
    """Fixes "a" before a vowel sound ("a optometrist" -> "an optometrist")."""
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def observation_text(fact: Fact) -> str:
    return with_article(OBSERVATION_KINDS[fact.kind].template.format(v=fact.value))


def _strip_article(value: str) -> str:
    for article in ("a ", "an ", "the "):
        if value.lower().startswith(article):
            return value[len(article):]
    return value


def observation_keywords(fact: Fact) -> list[list[str]]:
    """What a stored observation must contain to count: the value, with lenient alternatives."""
    if fact.kind == "birthday":
        month, day = fact.value.split()
        return [[month], [day]]
    if fact.kind == "topic":
        return [[_strip_article(fact.value)]]
    if fact.kind == "allergy":  # "allerg" keeps "gluten" the allergy apart from a gluten-free diet
        return [["allerg"], [fact.value]]
    if fact.kind == "color":
        return [[fact.value, fact.value.replace(" ", "-")]]
    return [[fact.value]]


def relation_spec(fact: Fact) -> RelationKind | None:
    """The relation a fact is stored as, or None for facts stored as an observation."""
    if fact.kind == "person":
        relation, alternatives, _ = PERSON_ROLES[fact.extra]
        return RelationKind(relation, alternatives, "person", ("person", "human", "people"))
    kind = RELATION_KINDS.get(fact.kind)
    if kind is not None and not kind.object_type:
        species = fact.extra
        return RelationKind(kind.relation, kind.alternatives, species, (species, *kind.type_alternatives))
    return kind


def is_relation(fact: Fact) -> bool:
    return relation_spec(fact) is not None


# --- learn / retract facts in the episode format --------------------------------------------


def entity_learn(name: str, entity_type: str, alternatives: tuple[str, ...]) -> dict[str, Any]:
    return {"kind": "entity", "name": name, "type": list(dict.fromkeys((entity_type, *alternatives)))}


def user_entity_learn() -> dict[str, Any]:
    return entity_learn(USER, "person", ("human", "user"))


def fact_learn(fact: Fact) -> dict[str, Any]:
    spec = relation_spec(fact)
    if spec is not None:
        return {"kind": "relation", "from": fact.subject, "type": list(spec.alternatives), "to": fact.value}
    return {"kind": "observation", "entity": fact.subject, "keywords": observation_keywords(fact)}


# --- turning facts into calls ------------------------------------------------------------------

RemoveMode = Literal["update", "correct", "forget"]


@dataclass
class Plan:
    """The gold calls of one turn and what they teach the episode."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    learn: list[dict[str, Any]] = field(default_factory=list)
    retract: list[dict[str, Any]] = field(default_factory=list)


class Policy:
    """Writes gold calls for one episode; `user_name` is the user's full name or None."""

    def __init__(self, store: MemoryStore, user_name: str | None) -> None:
        self.store = store
        self.user_entity = user_name or DEFAULT_USER_ENTITY
        self.mirror_entities: dict[str, tuple[str, list[str]]] = {}
        self.mirror_relations: list[tuple[str, str, str]] = []

    def stored_name(self, name: str) -> str:
        return self.user_entity if name == USER else name

    def _existing(self) -> dict[str, Any]:
        """The memory as the policy's own calls left it (a mirror, so that planning needs no
        read of the store; the gate compares the real store with the facts after each session)."""
        return {"entities": {n: Entity(n, t, list(o)) for n, (t, o) in self.mirror_entities.items()},
                "relations": list(self.mirror_relations)}

    def _apply(self, calls: list[dict[str, Any]]) -> None:
        entities, relations = self.mirror_entities, self.mirror_relations
        for call in calls:
            args = call["arguments"]
            if call["name"] == "create_entities":
                for e in args["entities"]:
                    entities.setdefault(e["name"], (e["entityType"], list(e["observations"])))
            elif call["name"] == "create_relations":
                for r in args["relations"]:
                    triple = (r["from"], r["relationType"], r["to"])
                    if triple not in relations:
                        relations.append(triple)
            elif call["name"] == "add_observations":
                for a in args["observations"]:
                    observations = entities[a["entityName"]][1]
                    observations.extend(c for c in a["contents"] if c not in observations)
            elif call["name"] == "delete_observations":
                for d in args["deletions"]:
                    if d["entityName"] in entities:
                        observations = entities[d["entityName"]][1]
                        observations[:] = [o for o in observations if o not in d["observations"]]
            elif call["name"] == "delete_relations":
                gone = {(r["from"], r["relationType"], r["to"]) for r in args["relations"]}
                relations[:] = [r for r in relations if r not in gone]
            elif call["name"] == "delete_entities":
                names = set(args["entityNames"])
                for name in names:
                    entities.pop(name, None)
                relations[:] = [r for r in relations if r[0] not in names and r[2] not in names]

    def plan(self, adds: list[Fact], removes: list[tuple[Fact, RemoveMode]] = (), *, introduce: bool = False) -> Plan:
        """Gold calls for one user turn: removals first, then new entities, relations, observations."""
        plan = Plan()
        state = self._existing()
        entities: dict[str, Any] = state["entities"]
        relations: list[tuple[str, str, str]] = state["relations"]

        # Removals.
        deleted_relations: list[dict[str, str]] = []
        deleted_observations: dict[str, list[str]] = {}
        deleted_entities: list[str] = []
        for fact, mode in removes:
            subject = self.stored_name(fact.subject)
            if fact.kind in ("person", "pet") and mode == "forget":
                # Forgetting a person or pet removes the entity, its relations, and the things that
                # only it linked to.
                deleted_entities.append(fact.value)
                plan.retract.append({"kind": "entity", "name": fact.value,
                                     "type": list(relation_spec(fact).type_alternatives)})  # type: ignore[union-attr]
                continue
            spec = relation_spec(fact)
            if spec is not None:
                deleted_relations.append({"from": subject, "to": fact.value, "relationType": spec.relation})
            else:
                deleted_observations.setdefault(subject, []).append(observation_text(fact))
            plan.retract.append(fact_learn(fact))
        # Entities left with no relation and no observation after a correction or forget go too.
        gone_relations = {(r["from"], r["relationType"], r["to"]) for r in deleted_relations}
        remaining = [r for r in relations if r not in gone_relations
                     and r[0] not in deleted_entities and r[2] not in deleted_entities]
        orphan_candidates = [(fact, mode) for fact, mode in removes if mode != "update"]
        for fact, _mode in orphan_candidates:
            candidates = [fact.value] if is_relation(fact) and fact.kind not in ("person", "pet") else []
            if fact.kind in ("person", "pet"):
                # things linked only to the forgotten person
                candidates = [r[2] for r in relations if r[0] == fact.value]
            for name in candidates:
                entity = entities.get(name)
                if entity is None or name == self.user_entity or name in deleted_entities:
                    continue
                if entity.entity_type == "person" and fact.kind != "person":
                    continue
                still_linked = any(name in (r[0], r[2]) for r in remaining)
                if not still_linked and not entity.observations:
                    deleted_entities.append(name)
                    plan.retract.append({"kind": "entity", "name": name, "type": [entity.entity_type]})
        if deleted_observations:
            plan.calls.append({"name": "delete_observations", "arguments": {"deletions": [
                {"entityName": name, "observations": texts} for name, texts in deleted_observations.items()]}})
        if deleted_relations:
            plan.calls.append({"name": "delete_relations", "arguments": {"relations": deleted_relations}})
        if deleted_entities:
            plan.calls.append({"name": "delete_entities", "arguments": {"entityNames": deleted_entities}})
        for name in deleted_entities:
            entities.pop(name, None)

        # Additions.
        new_entities: dict[str, dict[str, Any]] = {}
        if (introduce or adds) and self.user_entity not in entities:
            new_entities[self.user_entity] = {"name": self.user_entity, "entityType": "person", "observations": []}
            plan.learn.append(user_entity_learn())
        new_relations: list[dict[str, str]] = []
        additions: dict[str, list[str]] = {}
        for fact in adds:
            subject = self.stored_name(fact.subject)
            spec = relation_spec(fact)
            if spec is not None:
                if fact.value not in entities and fact.value not in new_entities:
                    new_entities[fact.value] = {"name": fact.value, "entityType": spec.object_type, "observations": []}
                    plan.learn.append(entity_learn(fact.value, spec.object_type, spec.type_alternatives))
                triple = (subject, spec.relation, fact.value)
                if triple not in relations:
                    new_relations.append({"from": subject, "to": fact.value, "relationType": spec.relation})
            else:
                text = observation_text(fact)
                if subject in new_entities:
                    new_entities[subject]["observations"].append(text)
                elif text not in entities[subject].observations:
                    additions.setdefault(subject, []).append(text)
            plan.learn.append(fact_learn(fact))
        if new_entities:
            plan.calls.append({"name": "create_entities", "arguments": {"entities": list(new_entities.values())}})
        if new_relations:
            plan.calls.append({"name": "create_relations", "arguments": {"relations": new_relations}})
        if additions:
            plan.calls.append({"name": "add_observations", "arguments": {"observations": [
                {"entityName": name, "contents": texts} for name, texts in additions.items()]}})
        self._apply(plan.calls)
        return plan
