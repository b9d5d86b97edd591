"""The episode generator: one simulated user, their world, and 3 to 10 sessions with them.

Each episode is built from its own random stream (seed, split, index), so episodes can be made
in any order or in parallel and the output stays byte-identical for a seed. Every turn's gold
calls run against an empty in-memory SQLite store (a fresh one, or the thread's reused
`scratch_store`); the results recorded are the store's own, and after each session the quality
gate (gate.py) checks the stored graph against the episode.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from memlora.data import phrasing as ph
from memlora.data import vocab
from memlora.data.execute import execute, scratch_store
from memlora.data.gate import FastGate, check_episode, check_retrieval, check_unknown
from memlora.data.policy import (
    OBSERVATION_KINDS,
    PARTNER_ROLES,
    PERSON_ROLES,
    USER,
    Fact,
    Plan,
    Policy,
    RemoveMode,
    relation_spec,
    with_article,
)
from memlora.data.render import POSSESSIVES, PRONOUNS, Piece, add_typo, fill, finish
from memlora.store import MemoryStore, open_store

# user kinds a person can tell about themselves, with how often each is picked
USER_KINDS: dict[str, int] = {
    "works_at": 6, "lives_in": 6, "born_in": 2, "studied_at": 2, "pet": 4, "works_on": 2, "registered_for": 2,
    "language": 2, "instrument": 2, "hobby": 3, "likes_food": 2, "dislikes_food": 2, "diet": 2, "music": 2,
    "allergy": 3, "condition": 1, "birthday": 2, "color": 1, "role": 3, "person": 7,
}
PERSON_KINDS: dict[str, int] = {"lives_in": 4, "works_at": 3, "role": 3, "hobby": 2, "allergy": 1, "language": 1}
# follow-up facts about an entity the user owns / works on / attends
CHILD_KIND = {"pet": "breed", "works_on": "topic", "registered_for": "month"}
SUBJECT_OF_CHILD = {"breed": "pet", "topic": "project", "month": "event"}
# kinds that can change (update) and be corrected or forgotten, by subject
UPDATABLE = {("works_at", "user"), ("lives_in", "user"), ("role", "user"), ("diet", "user"),
             ("works_at", "person"), ("lives_in", "person"), ("partner", "user")}
# slot names the templates use for each kind's value
SLOT = {"works_at": "org", "lives_in": "city", "born_in": "hometown", "studied_at": "uni", "role": "role",
        "pet": "pet", "breed": "breed", "works_on": "project", "topic": "topic", "registered_for": "event",
        "month": "month", "language": "lang", "instrument": "instrument", "hobby": "hobby", "likes_food": "food",
        "dislikes_food": "dislike", "diet": "diet", "music": "music", "allergy": "allergy",
        "condition": "condition", "birthday": "birthday", "color": "color", "person": "name"}
# for in-session questions: the word a search_nodes query uses to find an observation kind
SEARCH_WORD = {"allergy": "allergic", "language": "speaks", "instrument": "plays", "hobby": "enjoys",
               "likes_food": "loves", "dislikes_food": "dislikes", "birthday": "birthday", "color": "favorite color",
               "diet": "diet", "role": "works as"}

GENERIC_WORDS = {w for text in [*vocab.ORG_SUFFIXES, *vocab.UNIVERSITY_FORMS, *(f for f, _ in vocab.EVENT_KINDS), "Project"]
                 for w in text.split()}


# relatives and contacts that questions about someone never mentioned ask for
UNKNOWN_ROLES = ("brother", "sister", "cousin", "neighbor", "roommate", "mentor")


class PoolExhausted(RuntimeError):
    """A small (held-out) pool has no unused value left for this episode."""


@dataclass
class Person:
    name: str  # entity name: first name, or full name
    first: str
    gender: str
    role: str


@dataclass
class GenTurn:
    user: str
    calls: list[dict[str, Any]]
    results: list[Any]
    reply: str
    provenance: dict[str, Any]
    retrieval: bool = False


@dataclass
class GenSession:
    id: str
    date: str
    opening_graph: dict[str, Any]
    turns: list[GenTurn] = field(default_factory=list)
    learn: list[dict[str, Any]] = field(default_factory=list)
    retract: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class GeneratedEpisode:
    """One episode plus what only training needs (tool results, the graph each session opened on)."""

    episode: dict[str, Any]
    sessions: list[GenSession]
    split: str


def slot_key(fact: Fact) -> tuple[str, str]:
    """Which "slot" of the world a fact fills: one value per slot at a time."""
    if fact.kind == "person":
        return (fact.subject, "partner" if fact.extra in PARTNER_ROLES else "person:" + fact.extra)
    return (fact.subject, fact.kind)


class EpisodeBuilder:
    def __init__(self, seed: int, split: vocab.Split, index: int, strict: bool = False,
                 store: MemoryStore | None = None) -> None:
        """`store`: an empty store to run the gold calls on, left open; by default a fresh
        in-memory SQLite store that `build` closes."""
        self.strict = strict  # also run the evaluator's matching rules (slow; tests do)
        self.graphs: list[dict[str, Any]] = []
        self.rng = random.Random(f"memlora-datagen/{seed}/{split}/{index}")
        self.split = split
        self.id = f"{split}-{seed}-{index:06d}"
        self.pools = vocab.pools_for(split)
        self.used: set[str] = set()
        culture = self.rng.choice(sorted(self.pools.first_names))
        first, gender = self.rng.choice(self.pools.first_names[culture])
        self.user_first = first
        self.user_name: str | None = None if self.rng.random() < 0.2 else f"{first} {self.rng.choice(self.pools.surnames[culture])}"
        self.used.update(first.split())
        if self.user_name:
            self.used.update(self.user_name.split())
        self.owns_store = store is None
        self.store = open_store("sqlite::memory:") if store is None else store
        self.policy = Policy(self.store, self.user_name)
        self.gate = FastGate(self.policy.user_entity)
        self.active: dict[tuple[str, str], Fact] = {}
        self.history: dict[tuple[str, str], list[str]] = {}  # values replaced by updates or corrections
        self.forgotten: dict[tuple[str, str], Fact] = {}
        self.people: dict[str, Person] = {}
        self.snapshots: list[tuple[dict, dict, dict, dict]] = []
        self.sessions: list[GenSession] = []
        self.user_known = False  # the user's entity exists in memory

    # --- values -------------------------------------------------------------------------------

    def _fresh(self, draw) -> str:  # type: ignore[no-untyped-def]
        """A value whose distinctive words no other value of this episode uses (so a search for
        one never finds another)."""
        for _ in range(300):
            value = draw()
            words = set(value.split()) - GENERIC_WORDS
            if value not in self.used and not (words & self.used):
                self.used.add(value)
                self.used.update(words)
                return value
        raise PoolExhausted("value pool exhausted")

    def _city(self) -> str:
        return self._fresh(lambda: self.rng.choice(self.pools.cities))

    def _org(self) -> str:
        return self._fresh(lambda: f"{self.rng.choice(self.pools.org_prefixes)} {self.rng.choice(vocab.ORG_SUFFIXES)}")

    def value_for(self, kind: str, subject: str) -> tuple[str, str]:
        """A new (value, extra) for a kind."""
        r = self.rng
        if kind in ("works_at",):
            return self._org(), ""
        if kind in ("lives_in", "born_in"):
            return self._city(), ""
        if kind == "studied_at":
            return self._fresh(lambda: r.choice(vocab.UNIVERSITY_FORMS).format(city=r.choice(self.pools.cities))), ""
        if kind == "pet":
            species = r.choice(sorted(vocab.PET_SPECIES))
            return self._fresh(lambda: r.choice(self.pools.pet_names)), species
        if kind == "breed":
            species = self.active[(USER, "pet")].extra if (USER, "pet") in self.active else "dog"
            current = self.active.get((subject, kind))
            return r.choice([b for b in vocab.PET_SPECIES[species] if current is None or b != current.value]), ""
        if kind == "works_on":
            return self._fresh(lambda: r.choice(self.pools.project_names)), ""
        if kind == "topic":
            return r.choice(vocab.PROJECT_TOPICS), ""
        if kind == "registered_for":
            form, noun = r.choice(vocab.EVENT_KINDS)
            return self._fresh(lambda: form.format(city=r.choice(self.pools.cities))), noun
        if kind == "month":
            return r.choice(vocab.MONTHS), ""
        if kind == "birthday":
            return f"{r.choice(vocab.MONTHS)} {r.randint(1, 28)}", ""
        pools = {"language": vocab.SKILLS, "instrument": vocab.INSTRUMENTS, "hobby": vocab.HOBBIES,
                 "likes_food": vocab.FOODS_LIKED, "dislikes_food": vocab.FOODS_DISLIKED, "diet": vocab.DIETS,
                 "music": vocab.MUSIC, "allergy": vocab.ALLERGIES, "condition": vocab.CONDITIONS,
                 "color": vocab.COLORS, "role": vocab.ROLES}
        current = self.active.get((subject, kind))
        choices = [v for v in pools[kind] if current is None or v != current.value]
        return r.choice(choices), ""

    def new_person(self, role: str | None = None) -> Person:
        r = self.rng
        if role is None:
            taken = {p.role for p in self.people.values()}
            has_partner = any(k[1] == "partner" for k in self.active)
            roles = [x for x in PERSON_ROLES if x not in taken and not (has_partner and x in PARTNER_ROLES)]
            role = r.choice(roles)
        genders = PERSON_ROLES[role][2]
        for _ in range(50):
            culture = r.choice(sorted(self.pools.first_names))
            options = [(n, g) for n, g in self.pools.first_names[culture] if g in genders]
            if not options:
                continue
            first, gender = r.choice(options)
            if first in self.used:
                continue
            name = first if r.random() < 0.65 else f"{first} {r.choice(self.pools.surnames[culture])}"
            if set(name.split()) & self.used:
                continue
            self.used.update(name.split())
            self.used.add(name)
            return Person(name, first, gender, role)
        raise PoolExhausted("no person name left")

    # --- rendering ----------------------------------------------------------------------------

    def _pick(self, bank_name: str, key: tuple[str, ...], templates: list[str]) -> tuple[str, str]:
        bank = ph.bank_for(templates, self.split)  # type: ignore[arg-type]
        template = self.rng.choice(bank)
        return template, f"{bank_name}/{'.'.join(key)}#{templates.index(template)}"

    def slots(self, fact: Fact) -> dict[str, str | list[Piece]]:
        slots: dict[str, str | list[Piece]] = {SLOT[fact.kind]: fact.value}
        if fact.kind == "pet":
            slots["species"] = fact.extra
        if fact.kind == "person":
            slots["rw"] = fact.extra
        if fact.kind == "registered_for":
            slots["event_noun"] = fact.extra
        if fact.kind in SUBJECT_OF_CHILD:
            slots[SUBJECT_OF_CHILD[fact.kind]] = fact.subject
            pet = self.active.get((USER, "pet"))
            if pet is not None:
                slots["species"] = pet.extra
            event = self.active.get((USER, "registered_for"))
            slots["event_noun"] = event.extra if event is not None else "event"
        return slots

    def person_ref(self, person: Person, mentioned: set[str]) -> tuple[list[Piece], bool]:
        """How a clause names a known third person; a pronoun once already named in this message."""
        if person.name in mentioned:
            return [Piece(PRONOUNS[person.gender])], person.gender == "n"
        mentioned.add(person.name)
        form = self.rng.random()
        if form < 0.45:
            return [Piece(f"my {person.role} "), Piece(person.name, True)], False
        if form < 0.8:
            return [Piece(person.name, True)], False
        return [Piece(f"my {person.role}")], False

    def clause(self, unit: list[Fact], mentioned: set[str], provenance: list[str]) -> list[Piece]:
        """One clause stating every fact of a unit (one fact, or a pair with a combo template)."""
        kinds = tuple(f.kind for f in unit)
        slots: dict[str, str | list[Piece]] = {}
        for fact in unit:
            slots.update(self.slots(fact))
        if len(unit) == 2:
            template, tid = self._pick("combo", kinds, ph.COMBO[kinds])
            person = self.people.get(unit[0].value) if unit[0].kind == "person" else None
            if person is not None:
                mentioned.add(person.name)
            provenance.append(tid)
            return fill(template, slots, person.gender if person else "n")
        fact = unit[0]
        if fact.subject == USER or fact.kind in SUBJECT_OF_CHILD:
            subject = "user" if fact.subject == USER else SUBJECT_OF_CHILD[fact.kind]
            template, tid = self._pick("state", (fact.kind, subject), ph.STATE[(fact.kind, subject)])
            provenance.append(tid)
            if fact.kind == "person":
                mentioned.add(fact.value)
            return fill(template, slots)
        person = self.people[fact.subject]
        template, tid = self._pick("state", (fact.kind, "person"), ph.STATE[(fact.kind, "person")])
        provenance.append(tid)
        ref, plural = self.person_ref(person, mentioned)
        slots["ref"] = ref
        return fill(template, slots, person.gender, plural)

    def message(self, clauses: list[list[Piece]], provenance: dict[str, Any]) -> str:
        r = self.rng
        pieces: list[Piece] = [Piece(r.choice(ph.OPENERS))]
        for i, clause in enumerate(clauses):
            if i:
                pieces.append(Piece(r.choice(ph.CONNECTORS)))
            pieces.extend(clause)
        pieces.append(Piece(r.choice(ph.CLOSERS)))
        casual = r.random() < 0.25
        typo = False
        if r.random() < 0.12:
            pieces, typo = add_typo(pieces, r)
        provenance["casual"] = casual
        provenance["typo"] = typo
        return finish(pieces, casual=casual)

    def say(self, fact: Fact, by_role: bool = False) -> str:
        """The fact as a reply clause; `by_role` names a person as "your sister Mia", for a
        question that asked by role, so the reply shows the link the answer went through."""
        subject = "user" if fact.subject == USER else (
            SUBJECT_OF_CHILD[fact.kind] if fact.kind in SUBJECT_OF_CHILD else "person")
        slots = {k: v for k, v in self.slots(fact).items() if isinstance(v, str)}
        if subject == "person":
            slots["name"] = fact.subject
            if by_role and fact.subject in self.people:
                slots["name"] = f"your {self.people[fact.subject].role} {fact.subject}"
        return with_article(ph.SAY[(fact.kind, subject)].format(**slots))

    # --- turns --------------------------------------------------------------------------------

    def run_plan(self, plan: Plan, session: GenSession) -> list[Any]:
        results = [execute(self.store, call) for call in plan.calls]
        session.learn.extend(plan.learn)
        session.retract.extend(plan.retract)
        return results

    def turn(self, session: GenSession, user: str, plan: Plan, reply: str, provenance: dict[str, Any]) -> None:
        results = self.run_plan(plan, session)
        session.turns.append(GenTurn(user, plan.calls, results, reply, provenance))

    def tell(self, session: GenSession, units: list[list[Fact]], action: str, intro: bool = False) -> None:
        """A turn that states new facts."""
        provenance: dict[str, Any] = {"action": action, "templates": []}
        mentioned: set[str] = set()
        clauses = []
        if intro and self.user_name:
            template, tid = self._pick("state", ("name", "user"), ph.STATE[("name", "user")])
            provenance["templates"].append(tid)
            clauses.append(fill(template, {"name": self.user_name}))
        for unit in units:
            clauses.append(self.clause(unit, mentioned, provenance["templates"]))
        facts = [f for unit in units for f in unit]
        for fact in facts:
            self.active[slot_key(fact)] = fact
        plan = self.policy.plan(facts, introduce=intro)
        if facts or intro:
            self.user_known = True
        said = [self.say(f) for f in facts[:2]]
        if intro and self.user_name:
            reply = self.rng.choice(ph.GREETING_REPLIES).format(first=self.user_first)
            if said:
                reply += " " + _sentence("I'll remember that " + " and ".join(said)) 
        else:
            reply = self.rng.choice(ph.ACKS) + (": " + " and ".join(said) + "." if said else ".")
        self.turn(session, self.message(clauses, provenance), plan, reply, provenance)

    def change(self, session: GenSession, old: Fact, new_value: str, mode: RemoveMode) -> None:
        """An update (the world changed) or a correction (the old value was never right)."""
        key = slot_key(old)
        subject = "user" if old.subject == USER else ("pet" if old.kind == "breed" else "person")
        kind = "partner" if key[1] == "partner" else old.kind
        bank = (ph.UPDATE if mode == "update" else ph.CORRECT)[(kind, subject)]
        template, tid = self._pick(mode, (kind, subject), bank)
        provenance: dict[str, Any] = {"action": mode, "templates": [tid]}
        slots: dict[str, str | list[Piece]] = {"old": old.value, "new": new_value}
        gender, plural = "n", False
        if subject == "person":
            person = self.people[old.subject]
            ref, plural = self.person_ref(person, set())
            slots["ref"], gender = ref, person.gender
        if subject == "pet":
            slots["pet"] = old.subject
        extra = old.extra
        new = Fact(old.kind, old.subject, new_value, extra)
        if kind == "partner":
            person = self.new_person(old.extra if old.extra in ("partner", "girlfriend", "boyfriend") else "partner")
            self.people[person.name] = person
            new = Fact("person", USER, person.name, person.role)
            slots["new"] = person.name
        text = self.message([fill(template, slots, gender, plural)], provenance)
        plan = self.policy.plan([new], [(old, mode)])
        self.history.setdefault(key, []).append(old.value)
        self.active[key] = new
        reply_head = self.rng.choice(["Updated", "Thanks, updated", "Got it, I've updated that", "Noted"]) if mode == "update" \
            else self.rng.choice(["Thanks for the correction", "Fixed", "Corrected", "Got it, fixed"])
        self.turn(session, text, plan, f"{reply_head}: {self.say(new)}.", provenance)

    def forget(self, session: GenSession, fact: Fact) -> None:
        key = slot_key(fact)
        subject = "user" if fact.subject == USER else "person"
        kind = "person" if fact.kind == "person" else fact.kind
        template, tid = self._pick("forget", (kind, subject), ph.FORGET[(kind, subject)])
        provenance: dict[str, Any] = {"action": "forget", "templates": [tid]}
        slots: dict[str, str | list[Piece]] = {"value": fact.value, "rw": fact.extra, "species": fact.extra}
        gender, plural = "n", False
        if subject == "person":
            person = self.people[fact.subject]
            ref, plural = self.person_ref(person, set())
            slots["ref"], gender = ref, person.gender
        text = self.message([fill(template, slots, gender, plural)], provenance)
        plan = self.policy.plan([], [(fact, "forget")])
        self.forgotten[key] = fact
        del self.active[key]
        if fact.kind in ("person", "pet"):  # facts about it go with it
            name = fact.value
            for other in [k for k, f in self.active.items() if f.subject == name]:
                self.forgotten[other] = self.active.pop(other)
            self.people.pop(name, None)
        self.turn(session, text, plan, self.rng.choice(ph.FORGET_REPLIES), provenance)

    def small_talk(self, session: GenSession) -> None:
        index = self.rng.randrange(len(ph.SMALL_TALK))
        user, reply = ph.SMALL_TALK[index]
        session.turns.append(GenTurn(user, [], [], reply, {"action": "small_talk", "templates": [f"small_talk#{index}"]}))

    def ask(self, session: GenSession) -> None:
        """An in-session question: a retrieval call, then a reply grounded in its result.

        Two in five questions have no answer in memory: a detail never told, a relative who was
        never mentioned, or something the user asked to forget. Evaluated models tend to
        invent an answer there, so the data must show the retrieval coming back empty-handed."""
        r = self.rng
        known = [f for f in self.active.values() if f.kind != "name"]
        if known and r.random() < 0.6:
            fact = r.choice(known)
            # drawn here rather than in question() because the reply depends on it too
            address = r.choice(["name", "role"]) if fact.subject != USER else None
            question, tid, call = self.question(fact, address)
            results = [execute(self.store, call)]
            reply = _sentence(self.say(fact, by_role=address == "role"))
            check_retrieval(results[0], fact.value)
            action = "ask"
        else:
            # weighted as the probes weigh them: a forgotten fact, a relative never mentioned, a
            # detail never told
            forgotten_facts, roles, kinds = self.unanswerable()
            weights = [3 if forgotten_facts else 0, 3 if roles else 0, 4 if kinds else 0]
            if not any(weights):
                self.small_talk(session)
                return
            group = r.choices(("forgotten", "relative", "detail"), weights)[0]
            forgotten = group == "forgotten"
            if forgotten:
                fact = r.choice(forgotten_facts)
            elif group == "relative":  # the question names no value, only the role
                fact = Fact("person", USER, "", r.choice(roles))
            else:  # nor here, but a pet's species
                kind = r.choice(kinds)
                fact = Fact(kind, USER, "", r.choice(sorted(vocab.PET_SPECIES)) if kind == "pet" else "")
            question, tid, call = self.question(fact)
            results = [execute(self.store, call)]
            reply = r.choice(ph.FORGOTTEN_REPLIES if forgotten else ph.UNKNOWN_REPLIES)
            spec = relation_spec(fact)
            prefix = None if spec else OBSERVATION_KINDS[fact.kind].template.split("{")[0]
            check_unknown(self.store.read_graph().to_dict(), self.policy.user_entity,
                          spec.relation if spec else None, prefix)
            action = "ask_unknown"
        provenance: dict[str, Any] = {"action": action, "templates": [tid]}
        if action == "ask_unknown":
            provenance["asks_about"] = "forgotten" if forgotten else "untold"
        provenance.update(casual=False, typo=False)
        text = _capital(r.choice(ph.QUESTION_OPENERS) + question) if r.random() < 0.3 else _capital(question)
        session.turns.append(GenTurn(text, [call], results, reply, provenance, retrieval=True))

    def unanswerable(self) -> tuple[list[Fact], list[str], list[str]]:
        """What memory holds nothing about now: facts about the user that were forgotten,
        relatives' roles nobody ever held, and kinds of detail the user never told.

        A forgotten relative counts only while nobody else holds the role."""
        held = {p.role for p in self.people.values()}
        forgotten: list[Fact] = []
        kinds: list[str] = []
        for kind in USER_KINDS:
            if kind == "person" or (USER, kind) in self.active:
                continue
            if (USER, kind) in self.forgotten:
                forgotten.append(self.forgotten[(USER, kind)])
            elif (USER, kind) not in self.history and not (kind == "role" and (USER, "works_at") in self.active):
                # "what's my job?" while the employer is known reads as a question about the employer
                kinds.append(kind)
        roles: list[str] = []
        for role in UNKNOWN_ROLES:
            key = (USER, "person:" + role)
            if role in held or key in self.active:
                continue
            if key in self.forgotten:
                forgotten.append(self.forgotten[key])
            else:
                roles.append(role)
        return forgotten, roles, kinds

    def question(self, fact: Fact, address: str | None = None) -> tuple[str, str, dict[str, Any]]:
        """A question about a fact's slot, its template id, and the gold retrieval call."""
        if fact.subject == USER:
            subject, address = "user", "-"
        elif fact.kind in SUBJECT_OF_CHILD:
            subject = SUBJECT_OF_CHILD[fact.kind]
        else:
            subject = "person"
        if address is None:
            address = self.rng.choice(["name", "role"])
        template, tid = self._pick("ask", (fact.kind, subject, address), ph.ASK[(fact.kind, subject, address)])
        slots = {k: v for k, v in self.slots(fact).items() if isinstance(v, str)}
        if subject == "person":
            person = self.people[fact.subject]
            slots.update(name=person.name, rw=person.role)
        if fact.kind == "breed" and "species" not in slots:
            slots["species"] = "pet"
        text = template.format(**slots)
        user_entity = self.policy.user_entity
        if fact.subject == USER and fact.kind in SEARCH_WORD and self.rng.random() < 0.6:
            call = {"name": "search_nodes", "arguments": {"query": SEARCH_WORD[fact.kind]}}
        elif fact.subject == USER:
            call = {"name": "open_nodes", "arguments": {"names": [user_entity]}}
        else:
            call = {"name": "open_nodes", "arguments": {"names": [fact.subject]}}
        return text, tid, call

    # --- sessions -----------------------------------------------------------------------------

    def untold_user_kinds(self) -> list[str]:
        kinds = []
        for kind in USER_KINDS:
            if kind == "person":
                kinds.append(kind)
            elif (USER, kind) not in self.active and (USER, kind) not in self.forgotten:
                kinds.append(kind)
        return kinds

    def new_units(self, count: int) -> list[list[Fact]]:
        """`count` clauses' worth of new facts."""
        r = self.rng
        units: list[list[Fact]] = []
        taken: set[str] = set()
        for _ in range(count):
            choice = r.random()
            children = [(k, f) for k, f in CHILD_KIND.items() if (USER, k) in self.active
                        and (self.active[(USER, k)].value, f) not in self.active and (self.active[(USER, k)].value, f) not in self.forgotten]
            if choice < 0.25 and self.people:
                person = self.people[r.choice(sorted(self.people))]
                kinds = [k for k in PERSON_KINDS if (person.name, k) not in self.active
                         and (person.name, k) not in self.forgotten and (person.name, k) not in taken]
                if kinds:
                    kind = r.choices(kinds, [PERSON_KINDS[k] for k in kinds])[0]
                    value, extra = self.value_for(kind, person.name)
                    units.append([Fact(kind, person.name, value, extra)])
                    taken.add((person.name, kind))  # type: ignore[arg-type]
                    continue
            if choice > 0.85 and children:
                parent_kind, kind = r.choice(children)
                parent = self.active[(USER, parent_kind)]
                if (parent.value, kind) not in taken:
                    value, _ = self.value_for(kind, parent.value)
                    units.append([Fact(kind, parent.value, value)])
                    taken.add((parent.value, kind))  # type: ignore[arg-type]
                    continue
            kinds = [k for k in self.untold_user_kinds() if k not in taken]
            if not kinds:
                break
            kind = r.choices(kinds, [USER_KINDS[k] for k in kinds])[0]
            taken.add(kind)
            if kind == "person":
                person = self.new_person()
                fact = Fact("person", USER, person.name, person.role)
                follow = r.choice(["lives_in", "works_at", "role", None, None])
                if follow is not None:
                    value, _ = self.value_for(follow, person.name)
                    units.append([fact, Fact(follow, person.name, value)])
                    taken.add((person.name, follow))  # type: ignore[arg-type]
                else:
                    units.append([fact])
                self.people[person.name] = person  # only once every value was found
                continue
            value, extra = self.value_for(kind, USER)
            fact = Fact(kind, USER, value, extra)
            if kind == "works_at" and (USER, "role") not in self.active and "role" not in taken and r.random() < 0.6:
                role, _ = self.value_for("role", USER)
                taken.add("role")
                units.append([Fact("role", USER, role), fact])
            elif kind in CHILD_KIND and r.random() < 0.5:
                child_kind = CHILD_KIND[kind]
                self.active[(USER, kind)] = fact  # so the child's value knows the species
                child_value, _ = self.value_for(child_kind, value)
                del self.active[(USER, kind)]
                units.append([fact, Fact(child_kind, value, child_value)])
            else:
                units.append([fact])
        return units

    def session_actions(self, number: int) -> list[str]:
        r = self.rng
        if number == 0:
            actions = ["intro"] + r.choices(["tell", "tell", "small_talk", "person"], k=r.randint(1, 3))
        else:
            pool = ["tell"] * 4 + ["person"] * 2 + ["small_talk"] * 2 + ["ask"] * 4 + ["update"] * 3 + \
                   ["correct"] * 2 + ["forget"] * 2
            actions = r.choices(pool, k=r.randint(2, 5))
        return actions

    def run_action(self, session: GenSession, action: str) -> None:
        """One scripted turn; when a held-out pool runs dry the turn becomes small talk."""
        store_before = len(session.turns)
        try:
            self._run_action(session, action)
        except PoolExhausted:
            if len(session.turns) != store_before:
                raise
            self.small_talk(session)

    def _run_action(self, session: GenSession, action: str) -> None:
        r = self.rng
        if action == "intro":
            self.tell(session, self.new_units(r.choice([0, 1, 1, 2])) if self.user_name else self.new_units(r.randint(1, 2)),
                      "intro", intro=bool(self.user_name))
        elif action in ("tell", "person"):
            if action == "person":
                person = self.new_person()
                fact = Fact("person", USER, person.name, person.role)
                units = [[fact]]
                if r.random() < 0.7:
                    kind = r.choice(["lives_in", "works_at", "role"])
                    value, _ = self.value_for(kind, person.name)
                    units = [[fact, Fact(kind, person.name, value)]]
                    if r.random() < 0.4:
                        kind2 = r.choice([k for k in PERSON_KINDS if k != kind])
                        value2, _ = self.value_for(kind2, person.name)
                        units.append([Fact(kind2, person.name, value2)])
                self.people[person.name] = person
                self.tell(session, units, "person")
            else:
                units = self.new_units(r.choices([1, 2, 3], [5, 4, 2])[0])
                if units:
                    self.tell(session, units, "tell")
                else:
                    self.small_talk(session)
        elif action == "small_talk":
            self.small_talk(session)
        elif action == "ask":
            self.ask(session)
        elif action in ("update", "correct"):
            options = [f for key, f in self.active.items()
                       if (("partner" if key[1] == "partner" else f.kind), "user" if f.subject == USER else "person") in UPDATABLE
                       and (action == "update" or (f.kind, "user" if f.subject == USER else "person") in ph.CORRECT)]
            if action == "correct":
                options += [f for f in self.active.values() if f.kind == "breed"]
            if not options:
                self.run_action(session, "tell")
                return
            old = r.choice(options)
            if slot_key(old)[1] == "partner":
                new_value = ""
            else:
                # never back to a value the slot had before: within one session the evaluator
                # applies learns before retracts, so A -> B -> A would read as "A retracted"
                # nor to one that contains an old one ("teacher" -> "high school teacher"): the
                # retracted keyword would still match
                past = [v.lower() for v in [*self.history.get(slot_key(old), []), old.value]]
                new_value = ""
                for _ in range(20):
                    new_value, _ = self.value_for(old.kind, old.subject)
                    if all(p not in new_value.lower() and new_value.lower() not in p for p in past):
                        break
                else:
                    self.run_action(session, "tell")
                    return
            self.change(session, old, new_value, "update" if action == "update" else "correct")
        elif action == "forget":
            options = [f for key, f in self.active.items()
                       if (("person" if f.kind == "person" else f.kind), "user" if f.subject == USER else "person") in ph.FORGET
                       and ph.FORGET[(("person" if f.kind == "person" else f.kind), "user" if f.subject == USER else "person")]]
            if not options:
                self.run_action(session, "tell")
                return
            self.forget(session, r.choice(options))

    def build(self) -> GeneratedEpisode:
        r = self.rng
        count = r.randint(3, 10)
        date = dt.date(2025, 1, 1) + dt.timedelta(days=r.randrange(365))
        for number in range(count):
            opening = self.graphs[-1] if self.graphs else {"entities": [], "relations": []}
            session = GenSession(f"s{number + 1}", date.isoformat(), opening)
            for action in self.session_actions(number):
                self.run_action(session, action)
            self.sessions.append(session)
            self.snapshots.append((dict(self.active), {k: list(v) for k, v in self.history.items()},
                                   dict(self.forgotten), dict(self.people)))
            graph = self.store.read_graph().to_dict()
            self.graphs.append(graph)
            self.gate.apply(session.learn, session.retract)
            self.gate.check(self.id, number, graph)
            date += dt.timedelta(days=r.randint(1, 40))
        episode = self.episode_dict(probes=self.probes())
        if self.strict:
            check_episode(episode, self.graphs)
        if self.owns_store:
            self.store.close()
        return GeneratedEpisode(episode, self.sessions, self.split)

    # --- probes -------------------------------------------------------------------------------

    def probes(self) -> list[dict[str, Any]]:
        r = self.rng
        probes: list[dict[str, Any]] = []
        seen: set[str] = set()
        last = len(self.sessions) - 1
        for _ in range(r.randint(4, 7)):
            index = last if r.random() < 0.6 else r.randrange(len(self.sessions))
            active, history, forgotten, people = self.snapshots[index]
            kind = r.choice(["single", "single", "multi", "update", "forget", "abstain"])
            probe = self.probe(kind, active, history, forgotten, people)
            if probe is None or probe["question"] in seen:
                continue
            seen.add(probe["question"])
            probe["after"] = self.sessions[index].id
            probes.append(probe)
        if not probes:
            active, history, forgotten, people = self.snapshots[last]
            probe = self.probe("abstain", active, history, forgotten, people)
            assert probe is not None
            probe["after"] = self.sessions[last].id
            probes.append(probe)
        return [{"after": p["after"], "question": p["question"], "answers": p["answers"],
                 "forbidden": p["forbidden"], "kind": p["kind"]} for p in probes]

    def _probe_question(self, fact: Fact, address: str, people: dict[str, Person]) -> str:
        saved = self.people
        self.people = {**people, **saved}
        try:
            question, _, _ = self.question(fact, address)
        finally:
            self.people = saved
        return _capital(question)

    def probe(self, kind: str, active: dict, history: dict, forgotten: dict, people: dict) -> dict[str, Any] | None:
        r = self.rng
        facts = [f for f in active.values()]
        if kind in ("single", "multi"):
            if kind == "multi":
                facts = [f for f in facts if f.subject != USER and (f.kind in SUBJECT_OF_CHILD or f.subject in people)]
                address = "role"
            else:
                address = "name"
            if not facts:
                return None
            fact = r.choice(facts)
            answers = [fact.value] if fact.kind != "birthday" else [fact.value]
            return {"question": self._probe_question(fact, address, people), "answers": answers, "forbidden": [],
                    "kind": kind}
        if kind == "update":
            keys = [k for k in history if k in active]
            if not keys:
                return None
            key = r.choice(keys)
            fact = active[key]
            old = [v for v in history[key] if v.lower() not in fact.value.lower()]
            if fact.kind == "person":
                return {"question": _capital(r.choice(["who is my partner?", "who am I dating now?",
                                                       "what's my partner's name?"])),
                        "answers": [fact.value], "forbidden": old, "kind": "update"}
            return {"question": self._probe_question(fact, "name", people), "answers": [fact.value],
                    "forbidden": old, "kind": "update"}
        if kind == "forget":
            if not forgotten:
                return None
            fact = r.choice(list(forgotten.values()))
            if fact.kind == "person" and fact.extra in PARTNER_ROLES:
                return None  # "who is my partner?" may well have a newer answer
            if fact.subject != USER and fact.subject not in people and fact.kind not in SUBJECT_OF_CHILD:
                return None
            if fact.kind in SUBJECT_OF_CHILD and (fact.subject not in {f.value for f in active.values()}):
                return None  # its parent is gone too: the question would not make sense
            question = self._probe_question(fact, "name", people)
            return {"question": question, "answers": [], "forbidden": [fact.value], "kind": "forget"}
        # abstain: a slot never filled
        kinds = [k for k in USER_KINDS if k not in ("person", "role") and (USER, k) not in active
                 and (USER, k) not in forgotten and (USER, k) not in history]
        roles = [x for x in UNKNOWN_ROLES
                 if all(p.role != x for p in people.values())
                 and all(f.extra != x for f in forgotten.values() if f.kind == "person")]
        if roles and (not kinds or r.random() < 0.3):
            role = r.choice(roles)
            question = r.choice(ph.ASK[("person", "user", "-")]).format(rw=role)
            return {"question": _capital(question), "answers": [], "forbidden": [], "kind": "abstain"}
        if not kinds:
            return None
        kind_name = r.choice(kinds)
        extra = r.choice(sorted(vocab.PET_SPECIES)) if kind_name == "pet" else ""
        template = r.choice(ph.ASK[(kind_name, "user", "-")])
        question = template.format(species=extra or "dog")
        return {"question": _capital(question), "answers": [], "forbidden": [], "kind": "abstain"}

    # --- output -------------------------------------------------------------------------------

    def episode_dict(self, probes: list[dict[str, Any]]) -> dict[str, Any]:
        user = {"name": self.user_name, "aliases": [self.user_first] if self.user_name else []}
        sessions = []
        for s in self.sessions:
            turns = []
            for t in s.turns:
                turn: dict[str, Any] = {"user": t.user, "calls": t.calls, "reply": t.reply, "provenance": t.provenance}
                turns.append(turn)
            sessions.append({"id": s.id, "date": s.date, "turns": turns, "learn": s.learn, "retract": s.retract})
        return {"id": self.id, "user": user, "sessions": sessions, "probes": probes, "split": self.split}


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
    text = _capital(text)
    return text if text.endswith((".", "!", "?")) else text + "."


def generate_episode(seed: int, split: vocab.Split, index: int, strict: bool = False) -> GeneratedEpisode:
    """The episode number `index` of `split` for `seed`; the same arguments give the same episode.

    `strict` also checks every session with the evaluator's matching rules. The gold calls run
    on this thread's reused in-memory store (`scratch_store`), emptied first."""
    return EpisodeBuilder(seed, split, index, strict, store=scratch_store()).build()
