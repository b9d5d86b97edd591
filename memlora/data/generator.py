"""The episode generator: one simulated user, their world, and 3 to 10 sessions with them.

Each episode is built from its own random stream (seed, split, index), so episodes can be made
in any order or in parallel and the output stays byte-identical for a seed. Every turn's gold
calls run against an empty in-memory SQLite store (a fresh one, or the thread's reused
`scratch_store`); the results recorded are the store's own, and after each session the quality
gate (gate.py) checks the stored graph against the episode.

Users talk the way people do (corpus/README.md sets the target): several facts in one message
with chatter around them, facts buried in a request for help, details that fit no slot, kin
words and nicknames, pronouns for the person the previous message was about, slang, emojis and
typos. Some writing turns show the model recovering from a tool error: a first call the server
rejects, its error text, then the corrected calls (see `EpisodeBuilder.turn`).
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Any

from memlora.agent.prompt import DEFAULT_USER_ENTITY
from memlora.data import phrasing as ph
from memlora.data import vocab
from memlora.data.execute import GoldCallError, execute, scratch_store
from memlora.data.gate import FastGate, GateError, check_episode, check_retrieval, check_unknown
from memlora.data.policy import (
    OBSERVATION_KINDS,
    PARTNER_ROLES,
    PERSON_ROLES,
    RECOVERABLE,
    USER,
    Fact,
    Plan,
    Policy,
    RemoveMode,
    calls_left,
    created_names,
    is_relation,
    observation_keywords,
    observation_text,
    relation_spec,
    renamed,
    required_names,
    with_article,
    without_creating,
)
from memlora.data.render import POSSESSIVES, PRONOUNS, Piece, add_typo, fill, finish
from memlora.store import MemoryStore, open_store

# user kinds a person can tell about themselves, with how often each is picked
USER_KINDS: dict[str, int] = {
    "works_at": 6, "lives_in": 6, "born_in": 2, "studied_at": 2, "pet": 4, "works_on": 2, "registered_for": 2,
    "language": 2, "instrument": 2, "hobby": 3, "likes_food": 2, "dislikes_food": 2, "diet": 2, "music": 2,
    "allergy": 3, "condition": 1, "birthday": 2, "color": 1, "role": 3, "person": 7, "detail": 9,
}
# what the user tells about a third person: where they live and work, their own pets and
# events, free-form details
PERSON_KINDS: dict[str, int] = {"lives_in": 4, "works_at": 3, "role": 3, "hobby": 2, "allergy": 1, "language": 1,
                                "diet": 1, "birthday": 1, "pet": 1, "studied_at": 1, "registered_for": 1, "detail": 5}
# follow-up facts about an entity the user owns / works on / attends
CHILD_KIND = {"pet": "breed", "works_on": "topic", "registered_for": "month"}
SUBJECT_OF_CHILD = {"breed": "pet", "topic": "project", "month": "event"}
# the things of the user's that free-form details can be about, by the user kind that makes them
THING_OF_KIND = {"pet": "pet", "works_on": "project"}
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

GENERIC_WORDS = {w.lower() for text in [*vocab.ORG_SUFFIXES, *vocab.UNIVERSITY_FORMS, *(f for f, _ in vocab.EVENT_KINDS),
                                       "Project"] for w in text.split()}


def words(text: str) -> set[str]:
    """The lower-case words of a value, as name collisions are judged."""
    return set(text.lower().split())

# relatives and contacts that questions about someone never mentioned ask for
UNKNOWN_ROLES = ("brother", "sister", "cousin", "neighbor", "roommate", "mentor")

# Recovery turns (their share of writing turns is in the datagen report): the chance that a
# writing turn shows a rejected first call. The turn that creates the user's entity gets it most
# often, because forgetting that entity (default_user above all) is the failure seen in evaluation.
RECOVERY_FIRST = 0.25
RECOVERY_LATER = 0.06
MISSPELT_SHARE = 0.3  # of the later recovery turns that could go either way


class PoolExhausted(RuntimeError):
    """A small (held-out) pool has no unused value left for this episode."""


@dataclass
class Person:
    name: str  # entity name: first name, or full name
    first: str
    gender: str
    role: str


@dataclass
class Attempt:
    """The first assistant message of a recovery turn: calls the server partly rejected.

    `results` hold the server's error text for each rejected call; the first `kept` of the
    turn's calls are this message's accepted calls, the rest are the corrected second message.
    Training gives the message no loss: the model learns the correction, not the mistake."""

    calls: list[dict[str, Any]]
    results: list[Any]
    kept: int


@dataclass
class GenTurn:
    user: str
    calls: list[dict[str, Any]]  # the calls the server accepted, in order: what a replay runs
    results: list[Any]
    reply: str
    provenance: dict[str, Any]
    retrieval: bool = False
    attempt: Attempt | None = None
    learn: list[dict[str, Any]] = field(default_factory=list)  # this turn's share of the session's facts
    retract: list[dict[str, Any]] = field(default_factory=list)


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
    if fact.kind == "detail":
        return (fact.subject, "detail:" + ph.DETAIL_BY_KEY[fact.extra].group)
    return (fact.subject, fact.kind)


def details_for(split: vocab.Split, subject: str) -> list[ph.Detail]:
    """The free-form details a split may use: split by a hash of the key, so held-out episodes
    meet details (and phrasings) the model never trained on."""
    return [d for d in ph.DETAILS if d.subject == subject and vocab.bucket(d.key) == split]


def _matches(text: str, groups: list[list[str]]) -> bool:
    text = text.lower()
    return all(any(alt.lower() in text for alt in group) for group in groups)


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
        self.used: set[str] = set()  # lower-case words of every name so far
        self.said: set[str] = set()  # lower-case words of observation values (a pet named Sushi next
        # to "Loves sushi" would read as restating a relation)
        culture = self.rng.choice(sorted(self.pools.first_names))
        first, gender = self.rng.choice(self.pools.first_names[culture])
        self.user_first = first
        surname = self.rng.choice(self.pools.surnames[culture])
        # two users in five never give their name (by index, so every split gets its share)
        self.user_name: str | None = None if index % 5 in (1, 3) else f"{first} {surname}"
        self.used.update(words(first))
        if self.user_name:
            self.used.update(words(self.user_name))
        self.owns_store = store is None
        self.store = open_store("sqlite::memory:") if store is None else store
        self.policy = Policy(self.store, self.user_name)
        self.gate = FastGate(self.policy.user_entity)
        self.active: dict[tuple[str, str], Fact] = {}
        self.history: dict[tuple[str, str], list[str]] = {}  # values replaced by updates or corrections
        self.forgotten: dict[tuple[str, str], Fact] = {}
        self.people: dict[str, Person] = {}
        self.things: dict[str, str] = {}  # pet, project and event names -> "pet" / "project" / "event"
        self.observed: dict[str, list[tuple[str, list[list[str]]]]] = {}  # subject -> observations ever stored
        self.dropped: set[str] = set()  # old entities the user asked to forget
        self.snapshots: list[tuple[dict, dict, dict, dict]] = []
        self.sessions: list[GenSession] = []
        self.last_named: list[str] = []  # the people the previous turn of this session named
        self.marks: dict[str, Any] = {}  # what the turn being built shows, for its provenance

    # --- values -------------------------------------------------------------------------------

    def _fresh(self, draw) -> str:  # type: ignore[no-untyped-def]
        """A value whose distinctive words no other value of this episode uses (so a search for
        one never finds another)."""
        for _ in range(300):
            value = draw()
            distinctive = words(value) - GENERIC_WORDS
            if value.lower() not in self.used and not (distinctive & (self.used | self.said)):
                self.used.add(value.lower())
                self.used.update(distinctive)
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
        choices = [v for v in pools[kind] if (current is None or v != current.value) and not words(v) & self.used]
        value = r.choice(choices)
        self.said.update(words(value))
        return value, ""

    def detail_fact(self, subject: str) -> Fact | None:
        """A new free-form detail about `subject` (the user, a person, a pet or a project), or
        None when none fits: one per detail group and subject, never one whose words another
        observation of that subject holds (the gate matches observations by their words)."""
        r = self.rng
        kind = self.subject_type_of(subject)
        species = self.pet_species(subject) if kind == "pet" else ""
        options = [d for d in details_for(self.split, kind)
                   if (subject, "detail:" + d.group) not in self.active and (subject, "detail:" + d.group) not in self.forgotten
                   and (not d.species or species in d.species)]
        r.shuffle(options)
        for detail in options[:4]:
            params = {"x": r.choice(detail.fills) if detail.fills else "", "month": r.choice(vocab.MONTHS),
                      "day": str(r.randint(1, 28)), "weekday": r.choice(vocab.WEEKDAYS)}
            texts = " ".join([*detail.says, detail.observation, detail.reply, detail.question, detail.forget])
            used = {k: v for k, v in params.items() if "{" + k + "}" in texts}
            keywords = tuple(tuple(alt.format(**params) for alt in group) for group in detail.keywords)
            fact = Fact("detail", subject, detail.observation.format(**params), detail.key, keywords,
                        tuple(sorted(used.items())))
            if not self.clashes(fact) and not words(fact.value) & self.used:
                self.said.update(words(fact.value))
                return fact
        return None

    def clashes(self, fact: Fact, pending: list[Fact] = ()) -> bool:  # type: ignore[assignment]
        """Whether an observation fact shares its words with another observation of its subject
        (stored now or before, or `pending` in the same message): one observation would then
        match the other's keywords, and a retraction of one would seem not honoured."""
        if is_relation(fact):
            return False
        text, groups = observation_text(fact), observation_keywords(fact)
        others = [*self.observed.get(fact.subject, []),
                  *((observation_text(f), observation_keywords(f)) for f in pending
                    if f.subject == fact.subject and not is_relation(f) and f != fact)]
        return any(_matches(text, other_groups) or _matches(other_text, groups) for other_text, other_groups in others)

    def remember(self, facts: list[Fact]) -> None:
        """Makes facts the active value of their slots."""
        for fact in facts:
            self.active[slot_key(fact)] = fact
            if not is_relation(fact):
                self.observed.setdefault(fact.subject, []).append((observation_text(fact), observation_keywords(fact)))
            kind = THING_OF_KIND.get(fact.kind) or ("event" if fact.kind == "registered_for" else None)
            if kind is not None:
                self.things[fact.value] = kind

    def new_person(self, role: str | None = None) -> Person:
        r = self.rng
        if role is None:
            taken = {p.role for p in self.people.values()}
            has_partner = any(k[1] == "partner" for k in self.active)
            roles = [x for x in PERSON_ROLES
                     if x not in taken and x != "ex" and not (has_partner and x in PARTNER_ROLES)]
            role = r.choice(roles)
        genders = PERSON_ROLES[role][2]
        for _ in range(50):
            culture = r.choice(sorted(self.pools.first_names))
            options = [(n, g) for n, g in self.pools.first_names[culture] if g in genders]
            if not options:
                continue
            first, gender = r.choice(options)
            if words(first) & (self.used | self.said):
                continue
            name = first if r.random() < 0.65 else f"{first} {r.choice(self.pools.surnames[culture])}"
            if words(name) & (self.used | self.said):
                continue
            self.used.update(words(name))
            self.used.add(name.lower())
            return Person(name, first, gender, role)
        raise PoolExhausted("no person name left")

    # --- who a fact is about -------------------------------------------------------------------

    def subject_type_of(self, name: str) -> str:
        if name == USER:
            return "user"
        return self.things.get(name, "person")

    def subject_type(self, fact: Fact) -> str:
        """"user", "person", "pet", "project" or "event": what the fact's subject is."""
        if fact.kind in SUBJECT_OF_CHILD:
            return SUBJECT_OF_CHILD[fact.kind]
        return self.subject_type_of(fact.subject)

    def pet_species(self, pet: str) -> str:
        return next((f.extra for f in self.active.values() if f.kind == "pet" and f.value == pet), "dog")

    # --- rendering ----------------------------------------------------------------------------

    def _pick(self, bank_name: str, key: tuple[str, ...], templates: list[str]) -> tuple[str, str]:
        bank = ph.bank_for(templates, self.split)  # type: ignore[arg-type]
        template = self.rng.choice(bank)
        return template, f"{bank_name}/{'.'.join(key)}#{templates.index(template)}"

    def role_word(self, role: str) -> str:
        """How the user names a relative or contact this time: mostly the role word, sometimes a
        family word, nickname or word from another language ("my abuela", "my sis")."""
        if role in vocab.KIN_WORDS and self.rng.random() < 0.3:
            self.marks["kin_word"] = True
            return self.rng.choice(vocab.KIN_WORDS[role])
        return role

    def slots(self, fact: Fact) -> dict[str, str | list[Piece]]:
        slots: dict[str, str | list[Piece]] = {}
        if fact.kind == "detail":
            slots.update(dict(fact.params))
        else:
            slots[SLOT[fact.kind]] = fact.value
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
        subject = self.subject_type(fact)
        if fact.kind == "detail" and subject in ("pet", "project"):
            slots[subject] = fact.subject
        return slots

    def person_ref(self, person: Person, mentioned: set[str]) -> tuple[list[Piece], list[Piece], bool]:
        """How a clause names a known third person, its possessive ("my sister's", "Ana's",
        "her") and whether it is a plural "they"; a pronoun once already named in this message."""
        if person.name in mentioned:
            return [Piece(PRONOUNS[person.gender])], [Piece(POSSESSIVES[person.gender])], person.gender == "n"
        mentioned.add(person.name)
        form = self.rng.random() if self.unique_role(person) else 0.5  # "my ex" when there were two: by name
        if form < 0.45:
            ref = [Piece(f"my {self.role_word(person.role)} "), Piece(person.name, True)]
        elif form < 0.8:
            ref = [Piece(person.name, True)]
        else:
            ref = [Piece(f"my {self.role_word(person.role)}")]
        return ref, [*ref, Piece("'s")], False

    def unique_role(self, person: Person) -> bool:
        """Whether "my <role>" names this person alone (two exes after two break-ups do not)."""
        return sum(p.role == person.role for p in self.people.values()) == 1

    def fill_about(self, template: str, fact: Fact, mentioned: set[str]) -> list[Piece]:
        """A template about a fact, with {ref}/{refs} for its subject when that is a person."""
        slots = self.slots(fact)
        gender, plural = "n", False
        person = self.people.get(fact.subject)
        if person is not None and "{ref" in template:
            slots["ref"], slots["refs"], plural = self.person_ref(person, mentioned)
            gender = person.gender
        return fill(template, slots, gender, plural)

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
                slots["rw"] = self.role_word(person.role)
            provenance.append(tid)
            return fill(template, slots, person.gender if person else "n")
        fact = unit[0]
        if fact.kind == "detail":
            detail = ph.DETAIL_BY_KEY[fact.extra]
            index = self.rng.randrange(len(detail.says))
            provenance.append(f"detail/{detail.key}#{index}")
            self.marks["free_form"] = True
            return self.fill_about(detail.says[index], fact, mentioned)
        subject = self.subject_type(fact)
        template, tid = self._pick("state", (fact.kind, subject), ph.STATE[(fact.kind, subject)])
        provenance.append(tid)
        if fact.kind == "person":
            mentioned.add(fact.value)
            slots["rw"] = self.role_word(fact.extra)
            return fill(template, slots)
        if subject != "person":
            return fill(template, slots)
        return self.fill_about(template, fact, mentioned)

    def message(self, clauses: list[list[Piece]], provenance: dict[str, Any], chatter: bool = False,
                closers: list[str] = ph.CLOSERS) -> str:
        """The user's message: an opener (or a bit of chatter), the clauses joined (with chatter
        between them in a long message), a closer; sometimes lower case, slang, an emoji or a
        typo."""
        r = self.rng
        opener = r.choice(ph.SLANG_OPENERS) if r.random() < 0.1 else r.choice(ph.OPENERS)
        asides = r.sample(ph.CHATTER, len(clauses) + 1) if chatter else []
        if asides and r.random() < 0.5:
            opener = asides.pop() + ". "
        pieces: list[Piece] = [Piece(opener)]
        for i, clause in enumerate(clauses):
            if i and asides and r.random() < 0.35:
                pieces.extend([Piece(". "), Piece(asides.pop() + ". ")])
            elif i:
                pieces.append(Piece(r.choice(ph.CONNECTORS)))
            pieces.extend(clause)
        last = next((p.text for p in reversed(pieces) if p.text.strip()), "")
        if last.rstrip().endswith("?"):
            closers = ph.REQUEST_CLOSERS  # no ", remember that." after a question
        closer = r.choice(closers)
        if closer.strip(" .!,").lower() in opener.lower():
            closer = ""  # "just so you know, ... Just so you know."
        pieces.append(Piece(closer))
        if r.random() < 0.1:
            pieces.append(Piece(r.choice(ph.EMOJIS)))
        casual = r.random() < 0.3
        typo = False
        if r.random() < 0.15:
            pieces, typo = add_typo(pieces, r)
        provenance["casual"] = casual
        provenance["typo"] = typo
        return finish(pieces, casual=casual)

    def say(self, fact: Fact, by_role: bool = False) -> str:
        """The fact as a reply clause; `by_role` names a person as "your sister Mia", for a
        question that asked by role, so the reply shows the link the answer went through."""
        subject = self.subject_type(fact)
        slots = {k: v for k, v in self.slots(fact).items() if isinstance(v, str)}
        if subject == "person":
            slots["name"] = fact.subject
            if by_role and fact.subject in self.people:
                slots["name"] = f"your {self.people[fact.subject].role} {fact.subject}"
        template = ph.DETAIL_BY_KEY[fact.extra].reply if fact.kind == "detail" else ph.SAY[(fact.kind, subject)]
        return with_article(template.format(**slots))

    def acknowledge(self, facts: list[Fact]) -> str:
        """A short acknowledgement restating at most two of the facts."""
        said = [self.say(f) for f in facts[:2]]
        reply = self.rng.choice(ph.ACKS) + (": " + " and ".join(said) + "." if said else ".")
        if len(facts) > 2:
            reply += " " + self.rng.choice(["I've noted the rest too.", "The rest is saved as well.",
                                            "And the other details too."])
        return reply

    # --- turns --------------------------------------------------------------------------------

    def turn(self, session: GenSession, user: str, plan: Plan, reply: str, provenance: dict[str, Any]) -> None:
        """Runs a turn's gold calls on the store and records the turn; sometimes as a recovery
        turn, whose first message the server partly rejects."""
        provenance.update(self.marks)
        attempt = self.rejected_attempt(plan, provenance)
        if attempt is None:
            calls, results = plan.calls, [execute(self.store, call) for call in plan.calls]
        else:
            calls, results = self.recover(plan, attempt)
        session.learn.extend(plan.learn)
        session.retract.extend(plan.retract)
        session.turns.append(GenTurn(user, calls, results, reply, provenance, attempt=attempt,
                                     learn=plan.learn, retract=plan.retract))

    def rejected_attempt(self, plan: Plan, provenance: dict[str, Any]) -> Attempt | None:
        """Maybe the first message of a recovery turn (results not run yet): the gold calls
        with the new entities left uncreated ("missing_entity", most often the user's own
        entity: "I'm allergic to peanuts" as add_observations on a default_user that does not
        exist yet) or an existing entity's name misspelt ("misspelt")."""
        r = self.rng
        created = created_names(plan.calls)
        existing = sorted({n for c in plan.calls if c["name"] in RECOVERABLE for n in required_names(c)} - set(created))
        if not created and not existing:
            return None
        first = self.policy.user_entity in created
        if r.random() >= (RECOVERY_FIRST if first else RECOVERY_LATER):
            return None
        skipped = set(created)
        if first and len(created) > 1 and r.random() < 0.4:
            skipped = {self.policy.user_entity}  # the new people or pets created, the user forgotten
        uncreated = without_creating(plan.calls, skipped)
        missing_ok = any(set(required_names(c)) & skipped for c in uncreated)
        if missing_ok and (first or not existing or r.random() >= MISSPELT_SHARE):
            calls, kind = uncreated, "missing_entity"
        elif existing:
            name = r.choice(existing)
            wrong = self.misspell(name)
            if wrong is None:
                return None
            calls, kind = renamed(plan.calls, name, wrong), "misspelt"
        else:
            return None
        provenance["recovery"] = kind
        return Attempt(calls, [], 0)

    def misspell(self, name: str) -> str | None:
        """A name as a model gets it wrong: "user" for default_user, the first name alone, no
        accents, a letter dropped, wrong case."""
        r = self.rng
        if name == DEFAULT_USER_ENTITY:
            options = ["user", "default user", "Default_User", "defaultuser", "default_usr"]
        else:
            plain = "".join(c for c in unicodedata.normalize("NFD", name) if unicodedata.category(c) != "Mn")
            if plain != name and r.random() < 0.6:
                options = [plain]
            else:
                parts = name.split()
                longest = max(parts, key=len)
                options = [name.lower()]
                if len(parts) > 1:
                    options.append(parts[0])
                if len(longest) >= 4:
                    k = r.randrange(1, len(longest) - 1)
                    options.append(name.replace(longest, longest[:k] + longest[k + 1:], 1))
        options = [o for o in options if o != name and o not in self.policy.mirror_entities]
        return r.choice(options) if options else None

    def recover(self, plan: Plan, attempt: Attempt) -> tuple[list[dict[str, Any]], list[Any]]:
        """Runs a recovery turn: the attempt's calls (each rejected one checked to fail with the
        server's error and to leave the store unchanged), then what is left of the gold calls.
        Returns the accepted calls and their results; fills in the attempt's results."""
        created = created_names(plan.calls)
        deleted = [n for c in plan.calls if c["name"] == "delete_entities" for n in c["arguments"]["entityNames"]]
        alive = (set(self.policy.mirror_entities) - set(created)) | set(deleted)
        done: list[dict[str, Any]] = []
        done_results: list[Any] = []
        for call in attempt.calls:
            missing = [n for n in required_names(call) if n not in alive] if call["name"] in RECOVERABLE else []
            if not missing:
                result = execute(self.store, call)
                attempt.results.append(result)
                done.append(call)
                done_results.append(result)
                if call["name"] == "create_entities":
                    alive.update(created_names([call]))
                elif call["name"] == "delete_entities":
                    alive.difference_update(call["arguments"]["entityNames"])
                continue
            before = self.store.read_graph().to_dict()
            try:
                execute(self.store, call)
            except GoldCallError as error:
                text = str(error.__cause__)
            else:
                raise GateError(f"{self.id}: a call meant to be rejected was accepted: {call}")
            if text != f"Entity with name {missing[0]} not found" or self.store.read_graph().to_dict() != before:
                raise GateError(f"{self.id}: rejected call {call} gave {text!r} or changed the store")
            attempt.results.append(text)
        if len(done) == len(attempt.calls):
            raise GateError(f"{self.id}: a recovery attempt with no rejected call")
        attempt.kept = len(done)
        rest = calls_left(plan.calls, done)
        return done + rest, done_results + [execute(self.store, call) for call in rest]

    def tell(self, session: GenSession, units: list[list[Fact]], action: str, intro: bool = False,
             mentioned: set[str] | None = None) -> None:
        """A turn that states new facts. `mentioned`: people a pronoun may already refer to."""
        provenance: dict[str, Any] = {"action": action, "templates": []}
        mentioned = set() if mentioned is None else mentioned
        carried = set(mentioned)
        clauses = []
        if intro and self.user_name:
            template, tid = self._pick("state", ("name", "user"), ph.STATE[("name", "user")])
            provenance["templates"].append(tid)
            clauses.append(fill(template, {"name": self.user_name}))
        for unit in units:
            clauses.append(self.clause(unit, mentioned, provenance["templates"]))
        facts = [f for unit in units for f in unit]
        self.remember(facts)
        plan = self.policy.plan(facts, introduce=intro)
        if carried:
            provenance["pronoun"] = True
        provenance["facts"] = len(facts)
        if intro and self.user_name:
            said = [self.say(f) for f in facts[:2]]
            reply = self.rng.choice(ph.GREETING_REPLIES).format(first=self.user_first)
            if said:
                reply += " " + _sentence("I'll remember that " + " and ".join(said))
        else:
            reply = self.acknowledge(facts)
        text = self.message(clauses, provenance, chatter=len(facts) >= 3)
        self.turn(session, text, plan, reply, provenance)
        self.last_named = [n for n in mentioned if n in self.people]

    def buried(self, session: GenSession) -> None:
        """A request for help with a fact in it ("can you help me plan dinner, my sister Ana is
        vegan now"): the reply helps, and the fact is stored all the same."""
        r = self.rng
        units = self.new_units(1)
        if not units:
            self.small_talk(session)
            return
        provenance: dict[str, Any] = {"action": "buried", "templates": [], "buried": True}
        mentioned: set[str] = set()
        facts = units[0]
        fact = facts[0]
        key = (fact.kind, self.subject_type(fact))
        bank = ph.BURIED.get(key, []) if len(facts) == 1 else []
        if fact.kind == "allergy" and fact.value not in vocab.FOOD_ALLERGIES:
            bank = []
        # these state facts, so each split has its own (by a hash, as details are split)
        specific = [i for i, (template, _) in enumerate(bank) if vocab.bucket(template) == self.split]
        if specific and r.random() < 0.6:
            index = r.choice(specific)
            template, help_reply = bank[index]
            provenance["templates"].append(f"buried/{'.'.join(key)}#{index}")
            if fact.kind == "person":
                person = self.people[fact.value]
                slots = {**self.slots(fact), "rw": self.role_word(fact.extra)}
                pieces = fill(template, slots, person.gender)
            else:
                pieces = self.fill_about(template, fact, mentioned)
        else:
            clause = self.clause(facts, mentioned, provenance["templates"])
            index = r.randrange(len(ph.REQUESTS))
            request, help_reply = ph.REQUESTS[index]
            form = r.choice(ph.BURY_FORMS)
            provenance["templates"].append(f"request#{index}")
            before, _, after = form.partition("{clause}")
            pieces = [*_literal(before, request), *clause, *_literal(after, request)]
        self.remember(facts)
        plan = self.policy.plan(facts)
        provenance["facts"] = len(facts)
        said = " and ".join(self.say(f) for f in facts[:2])
        reply = f"{help_reply} {r.choice(ph.BURIED_ACKS).format(said=said)}"
        self.turn(session, self.message([pieces], provenance, closers=ph.REQUEST_CLOSERS), plan, reply, provenance)
        self.last_named = [n for n in mentioned if n in self.people]

    def change(self, session: GenSession, old: Fact, new_value: str, mode: RemoveMode) -> None:
        """An update (the world changed) or a correction (the old value was never right)."""
        key = slot_key(old)
        subject = self.subject_type(old)
        kind = "partner" if key[1] == "partner" else old.kind
        bank = (ph.UPDATE if mode == "update" else ph.CORRECT)[(kind, subject)]
        template, tid = self._pick(mode, (kind, subject), bank)
        provenance: dict[str, Any] = {"action": mode, "templates": [tid]}
        slots: dict[str, str | list[Piece]] = {"old": old.value, "new": new_value}
        gender, plural = "n", False
        if subject == "person":
            person = self.people[old.subject]
            slots["ref"], slots["refs"], plural = self.person_ref(person, set())
            gender = person.gender
        if subject == "pet":
            slots["pet"] = old.subject
        new = Fact(old.kind, old.subject, new_value, old.extra)
        adds = [new]
        if kind == "partner":  # a break-up: partner_of goes, ex_partner_of comes
            person = self.new_person(old.extra if old.extra in ("partner", "girlfriend", "boyfriend") else "partner")
            self.people[person.name] = person
            new = Fact("person", USER, person.name, person.role)
            slots["new"] = person.name
            adds = [new, Fact("person", USER, old.value, "ex")]
            self.people[old.value] = replace(self.people[old.value], role="ex")  # snapshots keep the old one
        text = self.message([fill(template, slots, gender, plural)], provenance)
        plan = self.policy.plan(adds, [(old, mode)])
        self.history.setdefault(key, []).append(old.value)
        self.remember(adds)
        reply_head = self.rng.choice(["Updated", "Thanks, updated", "Got it, I've updated that", "Noted"]) if mode == "update" \
            else self.rng.choice(["Thanks for the correction", "Fixed", "Corrected", "Got it, fixed"])
        self.turn(session, text, plan, f"{reply_head}: {self.say(new)}.", provenance)

    def job_change(self, session: GenSession, org: Fact, role: Fact) -> None:
        """A new job with a new title: the works_at relation and the "Works as" observation both
        went stale, so both are deleted (and nothing else: where the person lives stays)."""
        new_role = self.new_value(role)
        if new_role is None:
            self.change(session, org, self._org(), "update")
            return
        subject = self.subject_type(org)
        template, tid = self._pick("update", ("job", subject), ph.UPDATE[("job", subject)])
        provenance: dict[str, Any] = {"action": "update", "templates": [tid], "job_change": True}
        new_org = Fact("works_at", org.subject, self._org())
        new_title = Fact("role", role.subject, new_role)
        slots: dict[str, str | list[Piece]] = {"old": org.value, "new": new_org.value, "old_role": role.value,
                                               "new_role": new_role}
        gender, plural = "n", False
        if subject == "person":
            person = self.people[org.subject]
            slots["ref"], slots["refs"], plural = self.person_ref(person, set())
            gender = person.gender
        text = self.message([fill(template, slots, gender, plural)], provenance)
        plan = self.policy.plan([new_title, new_org], [(org, "update"), (role, "update")])
        for old, new in ((org, new_org), (role, new_title)):
            self.history.setdefault(slot_key(old), []).append(old.value)
        self.remember([new_title, new_org])
        head = self.rng.choice(["Updated", "Congratulations, updated", "Got it, I've updated that", "Noted"])
        self.turn(session, text, plan, f"{head}: {self.say(new_title)} at {new_org.value}.", provenance)

    def new_value(self, old: Fact) -> str | None:
        """A value for an update or correction of `old`: never one the slot had before (within
        one session the evaluator applies learns before retracts, so A -> B -> A would read as
        "A retracted"), nor one containing an old one ("teacher" -> "high school teacher": the
        retracted keyword would still match), nor one sharing words with another observation."""
        past = [v.lower() for v in [*self.history.get(slot_key(old), []), old.value]]
        for _ in range(20):
            value, _ = self.value_for(old.kind, old.subject)
            if all(p not in value.lower() and value.lower() not in p for p in past) and \
                    not self.clashes(Fact(old.kind, old.subject, value, old.extra)):
                return value
        return None

    def forget(self, session: GenSession, fact: Fact) -> None:
        """A request to forget a fact; a person or pet goes with everything only it linked to."""
        key = slot_key(fact)
        subject = self.subject_type(fact)
        provenance: dict[str, Any] = {"action": "forget", "templates": []}
        if fact.kind == "detail":
            detail = ph.DETAIL_BY_KEY[fact.extra]
            index = self.rng.randrange(len(ph.FORGET_DETAIL))
            template = ph.FORGET_DETAIL[index].replace("{f}", detail.forget)
            provenance["templates"].append(f"forget/detail#{index}")
        else:
            kind = "person" if fact.kind == "person" else fact.kind
            template, tid = self._pick("forget", (kind, subject), ph.FORGET[(kind, subject)])
            provenance["templates"].append(tid)
        slots = {**self.slots(fact), "value": fact.value,
                 "rw": self.role_word(fact.extra) if fact.kind == "person" and "{rw}" in template else fact.extra}
        if fact.kind == "pet":
            slots["species"] = fact.extra
        gender, plural = "n", False
        person = self.people.get(fact.subject)
        if person is not None:
            slots["ref"], slots["refs"], plural = self.person_ref(person, set())
            gender = person.gender
        text = self.message([fill(template, slots, gender, plural)], provenance, closers=ph.REQUEST_CLOSERS)
        plan = self.policy.plan([], [(fact, "forget")])
        self.forgotten[key] = fact
        del self.active[key]
        gone = {f["name"] for f in plan.retract if f["kind"] == "entity"}
        for other in [k for k, f in self.active.items() if f.subject in gone or f.value in gone]:
            self.forgotten[other] = self.active.pop(other)  # facts about what went go with it
        for name in gone:
            self.people.pop(name, None)
        self.turn(session, text, plan, self.rng.choice(ph.FORGET_REPLIES), provenance)

    def old_entities(self) -> list[tuple[str, str]]:
        """(kind, name) of the user's old employers and cities that updates left in memory,
        linked to nothing now."""
        linked = {n for r in self.policy.mirror_relations for n in (r[0], r[2])}
        return [(kind, value) for kind in ("works_at", "lives_in") for value in self.history.get((USER, kind), [])
                if value in self.policy.mirror_entities and value not in linked and value not in self.dropped]

    def forget_old(self, session: GenSession, kind: str, name: str) -> None:
        """"Forget my old employer": that entity goes, and nothing else."""
        index = self.rng.randrange(len(ph.FORGET_OLD[kind]))
        provenance: dict[str, Any] = {"action": "forget", "templates": [f"forget_old/{kind}#{index}"], "old_entity": True}
        text = self.message([fill(ph.FORGET_OLD[kind][index], {"value": name})], provenance, closers=ph.REQUEST_CLOSERS)
        plan = self.policy.plan([], drop=(name,))
        self.dropped.add(name)
        self.turn(session, text, plan, self.rng.choice(ph.FORGET_REPLIES), provenance)

    def small_talk(self, session: GenSession) -> None:
        index = self.rng.randrange(len(ph.SMALL_TALK))
        user, reply = ph.SMALL_TALK[index]
        session.turns.append(GenTurn(user, [], [], reply, {"action": "small_talk", "templates": [f"small_talk#{index}"]}))

    def askable(self, fact: Fact) -> bool:
        if fact.kind == "detail":
            return bool(ph.DETAIL_BY_KEY[fact.extra].question)
        return fact.kind != "name" and not (fact.kind == "person" and fact.extra == "ex")

    def answers(self, fact: Fact) -> list[str]:
        """What a reply about the fact must contain: the value, or a detail's main words."""
        return list(fact.keywords[0]) if fact.kind == "detail" else [fact.value]

    def ask(self, session: GenSession) -> None:
        """An in-session question: a retrieval call, then a reply grounded in its result.

        Two in five questions have no answer in memory: a detail never told, a relative who was
        never mentioned, or something the user asked to forget. Evaluated models tend to
        invent an answer there, so the data must show the retrieval coming back empty-handed."""
        r = self.rng
        known = [f for f in self.active.values() if self.askable(f)]
        if known and r.random() < 0.6:
            fact = r.choice(known)
            # drawn here rather than in question() because the reply depends on it too
            person = self.people.get(fact.subject)
            address = (r.choice(["name", "role"]) if self.unique_role(person) else "name") if person else None
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
            if kind in ("person", "detail") or (USER, kind) in self.active:
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
        subject = self.subject_type(fact)
        if subject == "user":
            address = "-"
        elif address is None:
            address = self.rng.choice(["name", "role"])
        slots = {k: v for k, v in self.slots(fact).items() if isinstance(v, str)}
        if subject == "person":
            person = self.people[fact.subject]
            slots.update(name=person.name, rw=person.role)
            slots["who"] = person.name if address == "name" else f"my {person.role}"
            slots["whos"] = slots["who"] + "'s"
        if fact.kind == "detail":
            text, tid = ph.DETAIL_BY_KEY[fact.extra].question.format(**slots), f"ask/detail/{fact.extra}"
        else:
            template, tid = self._pick("ask", (fact.kind, subject, address), ph.ASK[(fact.kind, subject, address)])
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
            if kind in ("person", "detail"):
                kinds.append(kind)
            elif (USER, kind) not in self.active and (USER, kind) not in self.forgotten:
                kinds.append(kind)
        return kinds

    def person_fact(self, person: Person, taken: set) -> list[Fact] | None:
        """A new fact about a known third person, or None when nothing is left to tell."""
        r = self.rng
        kinds = [k for k in PERSON_KINDS if k == "detail" or ((person.name, k) not in self.active
                 and (person.name, k) not in self.forgotten and (person.name, k) not in taken)]
        while kinds:
            kind = r.choices(kinds, [PERSON_KINDS[k] for k in kinds])[0]
            kinds.remove(kind)
            if kind == "detail":
                fact = self.detail_fact(person.name)
                if fact is None or slot_key(fact) in taken:
                    continue
            else:
                value, extra = self.value_for(kind, person.name)
                fact = Fact(kind, person.name, value, extra)
                if self.clashes(fact):
                    continue
            taken.add(slot_key(fact))
            return [fact]
        return None

    def new_units(self, count: int, focus: Person | None = None, max_facts: int = 5) -> list[list[Fact]]:
        """`count` clauses' worth of new facts, `max_facts` at most; the first about `focus`
        when given. No two observations of one message share their words (see `clashes`)."""
        units: list[list[Fact]] = []
        taken: set = set()
        for number in range(count):
            unit = self.new_unit(taken, focus if number == 0 else None)
            if unit is None:
                break
            said = [f for u in units for f in u]
            if not unit or len(said) + len(unit) > max_facts or any(self.clashes(f, said) for f in unit):
                if unit and unit[0].kind == "person":
                    self.people.pop(unit[0].value, None)
                continue
            units.append(unit)
        return units

    def new_unit(self, taken: set, focus: Person | None) -> list[Fact] | None:
        """One clause's worth of new facts: about `focus`, a known person, a pet or project, a
        child fact, or the user. [] when this draw found nothing, None when nothing is left."""
        r = self.rng
        choice = r.random()
        if focus is not None:
            unit = self.person_fact(focus, taken)
            if unit:
                return unit
        if choice < 0.25 and self.people:
            unit = self.person_fact(self.people[r.choice(sorted(self.people))], taken)
            if unit:
                return unit
        things = sorted(f.value for f in self.active.values() if f.kind in THING_OF_KIND
                        and f.value in self.policy.mirror_entities)
        if 0.25 <= choice < 0.35 and things:
            fact = self.detail_fact(r.choice(things))
            if fact is not None and slot_key(fact) not in taken:
                taken.add(slot_key(fact))
                return [fact]
        children = [(k, f) for k, f in CHILD_KIND.items() if (USER, k) in self.active
                    and (self.active[(USER, k)].value, f) not in self.active
                    and (self.active[(USER, k)].value, f) not in self.forgotten]
        if choice > 0.85 and children:
            parent_kind, kind = r.choice(children)
            parent = self.active[(USER, parent_kind)]
            if (parent.value, kind) not in taken:
                value, _ = self.value_for(kind, parent.value)
                taken.add((parent.value, kind))
                return [Fact(kind, parent.value, value)]
        kinds = [k for k in self.untold_user_kinds() if k not in taken]
        if not kinds:
            return None
        kind = r.choices(kinds, [USER_KINDS[k] for k in kinds])[0]
        taken.add(kind)
        if kind == "detail":
            fact = self.detail_fact(USER)
            if fact is None or slot_key(fact) in taken:
                return []
            taken.add(slot_key(fact))
            return [fact]
        if kind == "person":
            person = self.new_person()
            fact = Fact("person", USER, person.name, person.role)
            follow = r.choice(["lives_in", "works_at", "role", None, None])
            unit = [fact]
            if follow is not None:
                value, _ = self.value_for(follow, person.name)
                unit.append(Fact(follow, person.name, value))
                taken.add((person.name, follow))
            self.people[person.name] = person  # only once every value was found
            return unit
        value, extra = self.value_for(kind, USER)
        fact = Fact(kind, USER, value, extra)
        if kind == "works_at" and (USER, "role") not in self.active and "role" not in taken and r.random() < 0.6:
            role, _ = self.value_for("role", USER)
            taken.add("role")
            return [Fact("role", USER, role), fact]
        if kind in CHILD_KIND and r.random() < 0.5:
            child_kind = CHILD_KIND[kind]
            self.active[(USER, kind)] = fact  # so the child's value knows the species
            child_value, _ = self.value_for(child_kind, value)
            del self.active[(USER, kind)]
            return [fact, Fact(child_kind, value, child_value)]
        return [fact]

    def session_actions(self, number: int) -> list[str]:
        r = self.rng
        if number == 0:
            actions = ["intro"] + r.choices(["tell", "tell", "small_talk", "person", "long", "buried"], k=r.randint(1, 3))
        else:
            pool = ["tell"] * 4 + ["person"] * 2 + ["small_talk"] * 3 + ["ask"] * 4 + ["update"] * 3 + \
                   ["correct"] * 2 + ["forget"] * 2 + ["long"] + ["buried"] * 2
            actions = r.choices(pool, k=r.randint(2, 5))
        return actions

    def run_action(self, session: GenSession, action: str) -> None:
        """One scripted turn; when a held-out pool runs dry the turn becomes small talk."""
        store_before = len(session.turns)
        self.marks = {}
        try:
            self._run_action(session, action)
        except PoolExhausted:
            if len(session.turns) != store_before:
                raise
            self.small_talk(session)
        if action not in ("tell", "person", "long", "buried", "intro"):
            self.last_named = []

    def _run_action(self, session: GenSession, action: str) -> None:
        r = self.rng
        if action == "intro":
            self.tell(session, self.new_units(r.choice([0, 1, 1, 2])) if self.user_name else self.new_units(r.randint(1, 2)),
                      "intro", intro=bool(self.user_name))
        elif action == "person":
            self.introduce_person(session)
        elif action in ("tell", "long"):
            # the person the previous message was about, now only "she" or "he"
            focus = self.people.get(self.last_named[0]) if len(self.last_named) == 1 else None
            if focus is not None and r.random() < 0.6:
                units = self.new_units(r.choices([1, 2], [3, 1])[0], focus=focus)
                if units and units[0][0].subject == focus.name:
                    self.tell(session, units, "tell", mentioned={focus.name})
                    return
            count = r.choice([3, 4, 4, 5]) if action == "long" else r.choices([1, 2, 3], [5, 4, 2])[0]
            units = self.new_units(count)
            if units:
                self.tell(session, units, "tell")
            else:
                self.small_talk(session)
        elif action == "buried":
            self.buried(session)
        elif action == "small_talk":
            self.small_talk(session)
        elif action == "ask":
            self.ask(session)
        elif action in ("update", "correct"):
            self.update_or_correct(session, action)
        elif action == "forget":
            options = [f for f in self.active.values() if self.forgettable(f)]
            old = self.old_entities()
            if old and (not options or r.random() < 0.2):
                self.forget_old(session, *r.choice(old))
            elif options:
                self.forget(session, r.choice(options))
            else:
                self.run_action(session, "tell")

    def introduce_person(self, session: GenSession) -> None:
        """A new person, often with where they live or work, sometimes with their own pet
        ("my sister Ana has a cat called Miso") or a free-form detail."""
        r = self.rng
        person = self.new_person()
        fact = Fact("person", USER, person.name, person.role)
        units = [[fact]]
        if r.random() < 0.7:
            kind = r.choice(["lives_in", "works_at", "role"])
            value, _ = self.value_for(kind, person.name)
            units = [[fact, Fact(kind, person.name, value)]]
        self.people[person.name] = person
        if r.random() < 0.4:
            extra = self.person_fact(person, {slot_key(f) for u in units for f in u})
            if extra:
                units.append(extra)
        self.tell(session, units, "person")

    def update_or_correct(self, session: GenSession, action: RemoveMode) -> None:
        r = self.rng
        bank = ph.UPDATE if action == "update" else ph.CORRECT
        options = [f for key, f in self.active.items()
                   if ("partner" if key[1] == "partner" else f.kind, self.subject_type(f)) in bank
                   and (action == "update" or key[1] != "partner")]
        if not options:
            self.run_action(session, "tell")
            return
        old = r.choice(options)
        if slot_key(old)[1] == "partner":
            self.change(session, old, "", action)
            return
        role = self.active.get((old.subject, "role"))
        if action == "update" and old.kind == "works_at" and role is not None and r.random() < 0.5:
            self.job_change(session, old, role)
            return
        new_value = self.new_value(old)
        if new_value is None:
            self.run_action(session, "tell")
            return
        self.change(session, old, new_value, action)

    def forgettable(self, fact: Fact) -> bool:
        if fact.kind == "detail":
            return bool(ph.DETAIL_BY_KEY[fact.extra].forget)
        kind = "person" if fact.kind == "person" else fact.kind
        return bool(ph.FORGET.get((kind, self.subject_type(fact))))

    def build(self) -> GeneratedEpisode:
        r = self.rng
        count = r.randint(3, 10)
        date = dt.date(2025, 1, 1) + dt.timedelta(days=r.randrange(365))
        for number in range(count):
            opening = self.graphs[-1] if self.graphs else {"entities": [], "relations": []}
            session = GenSession(f"s{number + 1}", date.isoformat(), opening)
            self.last_named = []
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
        self.people = {**saved, **people}  # as the people were then
        try:
            question, _, _ = self.question(fact, address)
        finally:
            self.people = saved
        return _capital(question)

    def probe(self, kind: str, active: dict, history: dict, forgotten: dict, people: dict) -> dict[str, Any] | None:
        r = self.rng
        facts = [f for f in active.values() if self.askable(f)]
        if kind in ("single", "multi"):
            if kind == "multi":
                facts = [f for f in facts if f.subject != USER and (f.kind in SUBJECT_OF_CHILD or (
                    f.subject in people and sum(p.role == people[f.subject].role for p in people.values()) == 1))]
                address = "role"
            else:
                address = "name"
            if not facts:
                return None
            fact = r.choice(facts)
            return {"question": self._probe_question(fact, address, people), "answers": self.answers(fact),
                    "forbidden": [], "kind": kind}
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
            facts = [f for f in forgotten.values() if self.askable(f)]
            if not facts:
                return None
            fact = r.choice(facts)
            if fact.kind == "person" and fact.extra in PARTNER_ROLES:
                return None  # "who is my partner?" may well have a newer answer
            if fact.subject != USER and fact.subject not in people and fact.kind not in SUBJECT_OF_CHILD:
                return None
            if fact.kind in SUBJECT_OF_CHILD and (fact.subject not in {f.value for f in active.values()}):
                return None  # its parent is gone too: the question would not make sense
            question = self._probe_question(fact, "name", people)
            return {"question": question, "answers": [], "forbidden": self.answers(fact), "kind": "forget"}
        # abstain: a slot never filled
        kinds = [k for k in USER_KINDS if k not in ("person", "role", "detail") and (USER, k) not in active
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


def _literal(text: str, request: str) -> list[Piece]:
    """The literal pieces of a BURY_FORMS part, with the request put in."""
    text = text.replace("{request}", request)
    return [Piece(text)] if text else []


def generate_episode(seed: int, split: vocab.Split, index: int, strict: bool = False) -> GeneratedEpisode:
    """The episode number `index` of `split` for `seed`; the same arguments give the same episode.

    `strict` also checks every session with the evaluator's matching rules. The gold calls run
    on this thread's reused in-memory store (`scratch_store`), emptied first."""
    return EpisodeBuilder(seed, split, index, strict, store=scratch_store()).build()
