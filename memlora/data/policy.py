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
    of a third person ("sister"), the prose noun of an event, a free-form detail's key. A
    free-form detail ("detail") stores its observation text as the value, with its keywords and
    the placeholder values its phrasings need (`params`).
    """

    kind: str
    subject: str
    value: str
    extra: str = ""
    keywords: tuple[tuple[str, ...], ...] = ()
    params: tuple[tuple[str, str], ...] = ()


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
    # after a break-up (never drawn for a new person): no type in common with the partner roles'
    "ex": ("ex_partner_of", ("ex_partner_of", "ex_of", "has_ex", "former_partner_of", "ex_girlfriend_of",
                             "ex_boyfriend_of", "ex_wife_of", "ex_husband_of", "divorced_from", "previously_dated"), "fmn"),
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
    "detail": ObservationKind("{v}"),  # a free-form detail: the value is the observation
}


def vowel_sound(word: str) -> bool:
    """Whether a word starts with a vowel sound ("optometrist", not "UX researcher" or "ukulele")."""
    lower = word.lower()
    return lower[:1] in ("a", "e", "i", "o", "u") and not lower.startswith(("uni", "use", "usu", "ux", "uk", "eu", "one"))


def with_article(text: str) -> str:
    """Fixes "a" before a vowel sound ("a optometrist" -> "an optometrist")."""
    return re.sub(r"\b([Aa]) (?=(\w+))", lambda m: m.group(1) + ("n " if vowel_sound(m.group(2)) else " "), text)


def observation_text(fact: Fact) -> str:
    return with_article(OBSERVATION_KINDS[fact.kind].template.format(v=fact.value))


def _strip_article(value: str) -> str:
    for article in ("a ", "an ", "the "):
        if value.lower().startswith(article):
            return value[len(article):]
    return value


def observation_keywords(fact: Fact) -> list[list[str]]:
    """What a stored observation must contain to count: the value, with lenient alternatives."""
    if fact.keywords:
        return [list(group) for group in fact.keywords]
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

    def plan(self, adds: list[Fact], removes: list[tuple[Fact, RemoveMode]] = (), *, introduce: bool = False,
             drop: tuple[str, ...] = ()) -> Plan:
        """Gold calls for one user turn: removals first, then new entities, relations, observations.

        `drop`: entities to forget that nothing links any more (an old employer an update left)."""
        plan = Plan()
        state = self._existing()
        entities: dict[str, Any] = state["entities"]
        relations: list[tuple[str, str, str]] = state["relations"]

        # Removals.
        deleted_relations: list[dict[str, str]] = []
        deleted_observations: dict[str, list[str]] = {}
        deleted_entities: list[str] = []
        for name in drop:
            deleted_entities.append(name)
            plan.retract.append({"kind": "entity", "name": name, "type": [entities[name].entity_type]})
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
                # a forgotten person's pet goes with what was said about it; a place or an
                # organisation with observations of its own stays
                if not still_linked and (not entity.observations or fact.kind in ("person", "pet")):
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


# --- rejected calls, for turns that recover from a tool error -----------------------------------
# A model that skips create_entities, or misspells a name, gets the server's error for that
# call ("Entity with name Mia not found") and must send the corrected calls. These helpers turn
# the gold calls of a turn into such a first attempt, and say what is left to do after it.

RECOVERABLE = ("create_relations", "add_observations")  # the writes that fail on a missing entity


def created_names(calls: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for c in calls if c["name"] == "create_entities" for e in c["arguments"]["entities"]]


def required_names(call: dict[str, Any]) -> list[str]:
    """The entities a write needs, in the order the store checks them (the first missing one is
    the one its error names)."""
    args = call["arguments"]
    if call["name"] == "create_relations":
        names = [n for r in args["relations"] for n in (r["from"], r["to"])]
    elif call["name"] == "add_observations":
        names = [a["entityName"] for a in args["observations"]]
    else:
        return []
    return list(dict.fromkeys(names))


def without_creating(calls: list[dict[str, Any]], skipped: set[str]) -> list[dict[str, Any]]:
    """The calls as a model writes them when it forgets to create the entities in `skipped`:
    they leave create_entities, and their inline observations go to add_observations."""
    out: list[dict[str, Any]] = []
    moved: dict[str, list[str]] = {}
    for call in calls:
        if call["name"] != "create_entities":
            out.append(call)
            continue
        kept = [e for e in call["arguments"]["entities"] if e["name"] not in skipped]
        for e in call["arguments"]["entities"]:
            if e["name"] in skipped and e["observations"]:
                moved[e["name"]] = list(e["observations"])
        if kept:
            out.append({"name": "create_entities", "arguments": {"entities": kept}})
    if moved:
        additions = [{"entityName": n, "contents": c} for n, c in moved.items()]
        for i, call in enumerate(out):
            if call["name"] == "add_observations":
                out[i] = {"name": "add_observations",
                          "arguments": {"observations": additions + call["arguments"]["observations"]}}
                break
        else:
            out.append({"name": "add_observations", "arguments": {"observations": additions}})
    return out


def renamed(calls: list[dict[str, Any]], right: str, wrong: str) -> list[dict[str, Any]]:
    """The calls with `wrong` written for the entity `right` in every relation and observation
    write (deletions keep the right name: a deletion of a missing name is no error, it silently
    does nothing, which no retry would follow)."""
    def fix(name: str) -> str:
        return wrong if name == right else name

    out = []
    for call in calls:
        args = call["arguments"]
        if call["name"] == "create_relations":
            call = {"name": call["name"], "arguments": {"relations": [
                {"from": fix(r["from"]), "to": fix(r["to"]), "relationType": r["relationType"]} for r in args["relations"]]}}
        elif call["name"] == "add_observations":
            call = {"name": call["name"], "arguments": {"observations": [
                {"entityName": fix(a["entityName"]), "contents": a["contents"]} for a in args["observations"]]}}
        out.append(call)
    return out


def calls_left(gold: list[dict[str, Any]], done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What of the gold calls the accepted calls in `done` did not already write, in gold order."""
    made = set(created_names(done))
    related = {(r["from"], r["relationType"], r["to"]) for c in done if c["name"] == "create_relations"
               for r in c["arguments"]["relations"]}
    added = {(a["entityName"], text) for c in done if c["name"] == "add_observations"
             for a in c["arguments"]["observations"] for text in a["contents"]}
    out = []
    for call in gold:
        args = call["arguments"]
        if call in done:
            continue
        if call["name"] == "create_entities":
            entities = [e for e in args["entities"] if e["name"] not in made]
            call = {"name": call["name"], "arguments": {"entities": entities}} if entities else None
        elif call["name"] == "create_relations":
            relations = [r for r in args["relations"] if (r["from"], r["relationType"], r["to"]) not in related]
            call = {"name": call["name"], "arguments": {"relations": relations}} if relations else None
        elif call["name"] == "add_observations":
            additions = [{"entityName": a["entityName"], "contents": [t for t in a["contents"]
                                                                      if (a["entityName"], t) not in added]}
                         for a in args["observations"]]
            additions = [a for a in additions if a["contents"]]
            call = {"name": call["name"], "arguments": {"observations": additions}} if additions else None
        if call is not None:
            out.append(call)
    return out
