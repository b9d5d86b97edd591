"""Every matching rule of shared/spec/episodes.md, on hand-built graphs."""

from __future__ import annotations

from typing import Any

import pytest

from memlora.evaluation.episodes import (
    EntityFact,
    Episode,
    ObservationFact,
    Probe,
    RelationFact,
    Session,
    Turn,
    UserInfo,
)
from memlora.evaluation.scoring import (
    Graph,
    MemoryState,
    Names,
    entity_holds,
    entity_type_matches,
    fold_name,
    is_abstention,
    learning_session,
    memory_timeline,
    normalize_relation_type,
    observation_holds,
    probe_distance,
    relation_holds_retrievably,
    relation_holds_structurally,
    retraction_honoured,
    score_graph,
    score_probe,
    spurious_items,
)

ALICE = Names.for_user(UserInfo(name="Alice Chen", aliases=("Ali",)))
NAMELESS = Names.for_user(UserInfo(name=None))


def graph(entities: list[tuple[str, str, list[str]]], relations: list[tuple[str, str, str]] = ()) -> Graph:  # type: ignore[assignment]
    return Graph.from_any(
        {
            "entities": [{"name": n, "entityType": t, "observations": obs} for n, t, obs in entities],
            "relations": [{"from": a, "relationType": r, "to": b} for a, r, b in relations],
        }
    )


def probe(answers: tuple[str, ...] = (), forbidden: tuple[str, ...] = (), after: str = "s1", kind: str = "single") -> Probe:
    return Probe(index=0, after=after, question="?", answers=answers, forbidden=forbidden, kind=kind)


# ----------------------------------------------------------------------------- names


def test_names_fold_case_and_white_space() -> None:
    assert fold_name("  Alice \t  CHEN ") == "alice chen"
    g = graph([("alice   chen", "Person", []), ("LISBON", "city", [])])
    assert entity_holds(EntityFact("Lisbon"), g, NAMELESS)
    assert entity_holds(EntityFact("@user"), g, ALICE)
    assert not entity_holds(EntityFact("Lisbo"), g, NAMELESS)


@pytest.mark.parametrize("stored", ["Alice Chen", "ali", "default_user", "User", "me"])
def test_user_placeholder_matches_every_user_name(stored: str) -> None:
    assert entity_holds(EntityFact("@user"), graph([(stored, "person", [])]), ALICE)


def test_user_placeholder_without_name_uses_generic_names_only() -> None:
    assert entity_holds(EntityFact("@user"), graph([("default_user", "person", [])]), NAMELESS)
    assert not entity_holds(EntityFact("@user"), graph([("Alice Chen", "person", [])]), NAMELESS)


def test_fact_naming_the_user_directly_counts_as_user() -> None:
    assert entity_holds(EntityFact("Alice Chen"), graph([("default_user", "person", [])]), ALICE)
    assert entity_holds(EntityFact(" @User "), graph([("default_user", "person", [])]), ALICE)


def test_entity_type_is_scored_separately() -> None:
    g = graph([("Biscuit", "Dog", [])])
    assert entity_type_matches(EntityFact("Biscuit", ("dog", "pet")), g, NAMELESS) is True
    assert entity_type_matches(EntityFact("Biscuit", ("cat",)), g, NAMELESS) is False
    assert entity_holds(EntityFact("Biscuit", ("cat",)), g, NAMELESS)
    assert entity_type_matches(EntityFact("Biscuit"), g, NAMELESS) is None


# ----------------------------------------------------------------------------- relations


def test_relation_type_normalisation() -> None:
    assert normalize_relation_type("Works at") == "works_at"
    assert normalize_relation_type("works-at") == "works_at"
    assert normalize_relation_type(" works at") == "_works_at"  # lower-cased and mapped, nothing trimmed
    fact = RelationFact("@user", ("works_at", "employed_by"), "Anthropic")
    for stored in ["Works At", "works-at", "WORKS_AT", "employed by"]:
        g = graph([("Alice Chen", "person", []), ("Anthropic", "org", [])], [("alice chen", stored, "ANTHROPIC")])
        assert relation_holds_structurally(fact, g, ALICE), stored


def test_relation_other_type_or_reversed_is_retrievable_not_structural() -> None:
    fact = RelationFact("@user", ("works_at",), "Anthropic")
    for relations in ([("Alice Chen", "founded", "Anthropic")], [("Anthropic", "works_at", "Alice Chen")]):
        g = graph([("Alice Chen", "person", []), ("Anthropic", "org", [])], relations)
        assert not relation_holds_structurally(fact, g, ALICE)
        assert relation_holds_retrievably(fact, g, ALICE)


def test_relation_as_observation_is_retrievable_not_structural() -> None:
    fact = RelationFact("Mia", ("lives_in",), "Lisbon")
    forward = graph([("Mia", "person", ["Lives in lisbon."])])
    backward = graph([("Lisbon", "city", ["Home of MIA"])])
    for g in (forward, backward):
        assert relation_holds_retrievably(fact, g, ALICE)
        assert not relation_holds_structurally(fact, g, ALICE)
    # the user's side is mentioned by any of the user's names
    sister = RelationFact("@user", ("sister_of",), "Mia")
    assert relation_holds_retrievably(sister, graph([("Mia", "person", ["Alice Chen's sister"])]), ALICE)


def test_mention_needs_a_whole_word() -> None:
    fact = RelationFact("@user", ("knows",), "Mia")
    assert not relation_holds_retrievably(fact, graph([("Mia", "person", ["Team member"])]), ALICE)
    assert not relation_holds_retrievably(fact, graph([("Alice Chen", "person", ["Lives in Miami"])]), ALICE)


def test_unrelated_relation_does_not_hold() -> None:
    fact = RelationFact("Mia", ("lives_in",), "Lisbon")
    g = graph([("Mia", "person", []), ("Porto", "city", []), ("Lisbon", "city", [])], [("Mia", "lives_in", "Porto")])
    assert not relation_holds_retrievably(fact, g, ALICE)


# ----------------------------------------------------------------------------- observations


def test_observation_needs_every_keyword_in_one_observation() -> None:
    fact = ObservationFact("@user", (("vegetarian",), ("cilantro", "coriander")))
    assert observation_holds(fact, graph([("me", "person", ["Vegetarian; hates CORIANDER"])]), ALICE)
    assert observation_holds(fact, graph([("me", "person", ["vegetarian, no cilantro"])]), ALICE)
    split = graph([("me", "person", ["Vegetarian", "Dislikes cilantro"])])
    assert not observation_holds(fact, split, ALICE)


def test_keyword_alternatives() -> None:
    fact = ObservationFact("@user", (("research engineer", "research engineering"),))
    assert observation_holds(fact, graph([("Alice Chen", "p", ["Works in Research  Engineering"])]), ALICE)
    assert not observation_holds(fact, graph([("Alice Chen", "p", ["Research scientist"])]), ALICE)


def test_a_keyword_is_a_plain_substring_spaces_included() -> None:
    fact = ObservationFact("@user", ((" ski ",),))
    assert not observation_holds(fact, graph([("Alice Chen", "p", ["Likes skiing"])]), ALICE)
    assert observation_holds(fact, graph([("Alice Chen", "p", ["Likes to  ski in winter"])]), ALICE)


def test_observation_of_another_entity_does_not_count() -> None:
    fact = ObservationFact("Biscuit", (("beagle",),))
    assert not observation_holds(fact, graph([("default_user", "person", ["Owns Biscuit, a beagle"])]), NAMELESS)


# ----------------------------------------------------------------------------- expected memory


def episode(sessions: list[Session], user: UserInfo | None = None, probes: tuple[Probe, ...] = ()) -> Episode:
    return Episode(id="e", user=user or UserInfo("Alice Chen", ("Ali",)), sessions=tuple(sessions), probes=probes)


def session(sid: str, learn: tuple[Any, ...] = (), retract: tuple[Any, ...] = ()) -> Session:
    return Session(id=sid, turns=(Turn("hi"),), learn=learn, retract=retract)


WORKS_A = RelationFact("@user", ("works_at", "works_for"), "Anthropic")
WORKS_O = RelationFact("@user", ("works_at",), "OpenAI")


def test_expected_memory_learns_minus_later_retracts() -> None:
    ep = episode(
        [
            session("s1", learn=(EntityFact("Anthropic"), WORKS_A)),
            session("s2", learn=(WORKS_O,), retract=(RelationFact("Alice Chen", ("works_for",), "anthropic"),)),
            session("s3", learn=(WORKS_A,)),
        ]
    )
    s1, s2, s3 = memory_timeline(ep)
    assert s1.expected == (EntityFact("Anthropic"), WORKS_A) and s1.retracted == ()
    assert s2.expected == (EntityFact("Anthropic"), WORKS_O)
    assert len(s2.retracted) == 1
    assert WORKS_A in s3.expected and s3.retracted == ()  # learnt again after the retraction


def test_retracting_an_entity_withdraws_facts_about_it() -> None:
    biscuit = EntityFact("Biscuit")
    owns = RelationFact("@user", ("owns",), "Biscuit")
    breed = ObservationFact("Biscuit", (("beagle",),))
    ep = episode([session("s1", learn=(biscuit, owns, breed)), session("s2", retract=(biscuit,))])
    assert memory_timeline(ep)[1].expected == ()


def test_retraction_must_not_hold_retrievably() -> None:
    fact = RelationFact("Mia", ("lives_in",), "Lisbon")
    assert retraction_honoured(fact, graph([("Mia", "person", []), ("Lisbon", "city", [])]), ALICE)
    assert not retraction_honoured(fact, graph([("Mia", "person", ["Lives in Lisbon"])]), ALICE)
    assert not retraction_honoured(fact, graph([("Mia", "p", []), ("Lisbon", "c", [])], [("Mia", "visits", "Lisbon")]), ALICE)
    assert not retraction_honoured(ObservationFact("@user", (("cilantro",),)), graph([("me", "p", ["cilantro"])]), ALICE)
    assert not retraction_honoured(EntityFact("Biscuit"), graph([("biscuit", "dog", [])]), ALICE)


def test_retraction_checked_structurally_when_expected_memory_links_the_endpoints() -> None:
    old = RelationFact("@user", ("works_at",), "Anthropic")
    still = RelationFact("@user", ("used_to_work_at",), "Anthropic")
    g = graph([("Alice Chen", "p", []), ("Anthropic", "o", [])], [("Alice Chen", "used_to_work_at", "Anthropic")])
    assert retraction_honoured(old, g, ALICE, expected=(still,))
    g_bad = graph([("Alice Chen", "p", []), ("Anthropic", "o", [])], [("Alice Chen", "works_at", "Anthropic")])
    assert not retraction_honoured(old, g_bad, ALICE, expected=(still,))


def test_score_graph_recall_precision_and_retractions() -> None:
    state = MemoryState(
        expected=(EntityFact("Mia", ("person",)), RelationFact("@user", ("sister_of",), "Mia")),
        retracted=(RelationFact("Mia", ("lives_in",), "Lisbon"),),
    )
    g = graph(
        [("Alice Chen", "person", []), ("Mia", "person", ["Lives in Lisbon"]), ("Lisbon", "city", [])],
        [("Mia", "sister of", "Alice Chen")],
    )
    score = score_graph(g, state, ALICE)
    assert score.recall_retrievable == 1.0
    assert score.recall_structural == 0.5  # reversed relation: retrievable only
    assert score.retractions_honoured == 0.0
    assert score.items == 5 and score.spurious == ["observation 'Mia': 'Lives in Lisbon'"]
    assert score.precision == pytest.approx(4 / 5)
    assert score.f1 == pytest.approx(2 * 0.8 / 1.8)
    assert [f.type_match for f in score.facts] == [True, None]


# ----------------------------------------------------------------------------- spurious items


def test_spurious_items() -> None:
    state = MemoryState(
        expected=(RelationFact("@user", ("sister_of",), "Mia"), ObservationFact("Mia", (("nurse",),))),
        retracted=(RelationFact("Mia", ("lives_in",), "Lisbon"),),
    )
    g = graph(
        [
            ("Alice Chen", "person", ["Likes tea"]),  # observation nobody asked for
            ("Mia", "person", ["Works as a nurse", "Ali's sister"]),  # fact; mentions the other endpoint
            ("Lisbon", "city", []),  # endpoint of a retracted relation: still a known thing
            ("nurse", "job", []),  # named like an expected keyword
            ("Bob", "person", []),  # never mentioned
        ],
        [("Mia", "has_job", "nurse"), ("Alice Chen", "sister_of", "Mia"), ("Mia", "knows", "Bob")],
    )
    assert sorted(spurious_items(g, state, ALICE)) == sorted(
        ["observation 'Alice Chen': 'Likes tea'", "entity 'Bob'", "relation 'Mia' -knows-> 'Bob'"]
    )


def test_entity_of_retracted_entity_fact_is_spurious() -> None:
    state = MemoryState(expected=(), retracted=(EntityFact("Biscuit"),))
    assert spurious_items(graph([("Biscuit", "dog", [])]), state, ALICE) == ["entity 'Biscuit'"]


def test_empty_graph_and_empty_expectations_have_no_score() -> None:
    score = score_graph({"entities": [], "relations": []}, MemoryState((), ()), ALICE)
    assert score.precision is None and score.recall_retrievable is None and score.f1 is None


# ----------------------------------------------------------------------------- probes


def test_probe_answer_case_and_punctuation() -> None:
    assert score_probe(probe(("O'Brien & Co.",)), "You work at o'brien & co").correct
    assert score_probe(probe(("Lisbon",)), "She lives in LISBON!").correct
    assert not score_probe(probe(("Lisbon",)), "She lives in Porto.").correct
    # punctuation ignored either way: deleted, or read as a space
    assert score_probe(probe(("New York",)), "You moved to New-York.").correct
    assert score_probe(probe(("Jean-Luc",)), "Your boss is Jean Luc.").correct
    assert score_probe(probe(("Jean-Luc",)), "Your boss is JeanLuc.").correct
    assert not score_probe(probe(("New York",)), "You moved to Newark.").correct
    assert not score_probe(probe(("Lisbon",), ("New York",)), "Lisbon, not New-York.").correct


def test_probe_forbidden_wins() -> None:
    assert not score_probe(probe(("OpenAI",), ("Anthropic",)), "OpenAI now; before that Anthropic.").correct
    assert score_probe(probe(("OpenAI",), ("Anthropic",)), "You work at OpenAI.").correct


@pytest.mark.parametrize(
    "reply",
    [
        "I don't know.",
        "I don\u2019t have that in memory.",
        "Sorry, I have no record of your dog's name.",
        "You haven't told me that yet.",
        "I'm not sure; my memory doesn't hold it.",
        "I can't find that in my memory.",
        "You didn't mention your dog's name.",
        "I haven't been told where she lives.",
        "I wasn't told.",
        "I don't see a dog in my memory.",
        "I have no knowledge of a dog.",
        "That's not something you've shared with me.",
        "There's no dog stored in memory.",
        "I'm not certain.",
        "Your favorite color is not specified in the memory.",
        "Your birthday is not yet known.",
        "Your cousin's name is unknown.",
        "Unknown.",
        "Where he works remains unknown to me.",
    ],
)
def test_abstention_detected(reply: str) -> None:
    assert is_abstention(reply)
    assert score_probe(probe(kind="abstain"), reply).correct


@pytest.mark.parametrize("reply", ["Your dog is called Rex.", "She lives in Lisbon.", "Known for his kindness",
                                   "You told me she lives in Lisbon.", "Your sister Mia mentioned it: Rex.",
                                   "It is certainly Rex.", "She is well known in Lisbon.",
                                   "The cat is called Mochi (breed not specified).",
                                   "Your brother is Tom, not listed with a city.",
                                   "Your cousin is Ana; where she lives is not specified here, but she is Ana.",
                                   "You have not known him long: his name is Sam.",
                                   "Your cousin is Dalia Qureshi, occupation unknown.",
                                   "Your dog is Rex, an unknown breed."])
def test_non_abstention(reply: str) -> None:
    assert not is_abstention(reply)
    assert not score_probe(probe(kind="abstain"), reply).correct


def test_forget_probe_abstains_without_the_forbidden_value() -> None:
    p = probe(forbidden=("Lisbon",), kind="forget")
    assert score_probe(p, "I don't know where she lives.").correct
    assert not score_probe(p, "I don't know, it used to be Lisbon.").correct


def test_probe_distance_from_the_learning_session() -> None:
    ep = episode(
        [
            session("s1", learn=(RelationFact("Mia", ("lives_in",), "Lisbon"),)),
            session("s2", learn=(ObservationFact("@user", (("tea",),)),)),
            session("s3"),
        ]
    )
    assert learning_session(ep, probe(("lisbon",), after="s3")) == 0
    assert probe_distance(ep, probe(("Lisbon",), after="s3")) == 3
    assert probe_distance(ep, probe(("Lisbon",), after="s1")) == 1
    assert probe_distance(ep, probe(("Tea",), after="s2")) == 1
    assert probe_distance(ep, probe(kind="abstain", after="s3")) == 1  # nothing learnt: the after session


def test_probe_distance_counts_relation_types_and_answers_that_hold_a_name() -> None:
    ep = episode(
        [
            session("s1", learn=(RelationFact("@user", ("has_sister", "sister_of"), "Mia"),
                                 RelationFact("@user", ("works_at",), "Anthropic"))),
            session("s2", learn=(ObservationFact("@user", (("tea",),)),)),
            session("s3"),
        ]
    )
    assert probe_distance(ep, probe(("sister",), after="s3")) == 3  # "Who is Mia to me?"
    assert probe_distance(ep, probe(("at Anthropic",), after="s3")) == 3
    assert probe_distance(ep, probe(("Anthropics",), after="s3")) == 1  # whole words only: no fact named
