"""Users as people are: unnamed, long messages, facts buried in requests, free-form details,
pronouns across turns, kin words, other people's pets, turns that touch no memory."""

from __future__ import annotations

import json
import re
from functools import lru_cache

from memlora.agent.prompt import DEFAULT_USER_ENTITY
from memlora.data import phrasing as ph
from memlora.data import vocab
from memlora.data.generator import GeneratedEpisode, details_for, generate_episode
from memlora.data.policy import OBSERVATION_KINDS, PERSON_ROLES
from memlora.data.render import fill, finish

SAMPLE = {"x": "pharmacy", "month": "March", "day": "14", "weekday": "Tuesday", "pet": "Biscuit", "project": "Project Atlas",
          "name": "Ana", "who": "Ana", "whos": "Ana's"}


@lru_cache(maxsize=1)
def episodes() -> tuple[GeneratedEpisode, ...]:
    return tuple(generate_episode(17, split, index) for split in vocab.SPLITS for index in range(100))


def turns() -> list:
    return [t for g in episodes() for s in g.sessions for t in s.turns]


def test_two_users_in_five_never_give_their_name_and_live_under_default_user() -> None:
    for split in vocab.SPLITS:
        ours = [g for g in episodes() if g.split == split]
        unnamed = [g for g in ours if g.episode["user"]["name"] is None]
        assert len(unnamed) / len(ours) >= 1 / 3
    for generated in episodes():
        if generated.episode["user"]["name"] is not None:
            continue
        text = json.dumps([t.calls for s in generated.sessions for t in s.turns])
        first = next(t for s in generated.sessions for t in s.turns if t.learn)
        assert any(c["name"] == "create_entities" and c["arguments"]["entities"][0]["name"] == DEFAULT_USER_ENTITY
                   for c in first.calls)  # from the very first fact
        assert '"@user"' not in text and "user_entity" not in text


def _render(template: str) -> str:
    pieces = fill(template, {**SAMPLE, "ref": [], "refs": []})
    return finish(pieces, casual=False).lower()


def test_every_detail_is_well_formed() -> None:
    """Keywords are in the observation and in every phrasing (the model can copy them); the
    observation never looks like a fixed kind's ("Has asthma" is a condition, so no detail
    starts with "Has "); every placeholder can be filled."""
    prefixes = [k.template.split("{")[0] for name, k in OBSERVATION_KINDS.items() if name != "detail"]
    assert len(ph.DETAILS) >= 80 and len({d.key for d in ph.DETAILS}) == len(ph.DETAILS)
    for detail in ph.DETAILS:
        fills = detail.fills or ("pharmacy",)
        assert len(detail.says) >= 3, detail.key
        assert not detail.observation.startswith(tuple(prefixes)), detail.key
        for x in fills:
            values = {**SAMPLE, "x": x}
            observation = detail.observation.format(**values).lower()
            for group in detail.keywords:
                alternatives = [a.format(**values).lower() for a in group]
                assert any(a in observation for a in alternatives), (detail.key, group)
                for say in detail.says:
                    text = _render(say.replace("{x}", x))
                    assert any(a in text for a in alternatives), (detail.key, say, group)
            detail.reply.format(**values)
            detail.question.format(**values)


def test_details_are_split_and_reach_every_kind_of_subject() -> None:
    for subject in ("user", "person", "pet", "project"):
        keys = {s: {d.key for d in details_for(s, subject)} for s in vocab.SPLITS}
        assert keys["train"] and not keys["train"] & keys["test"] and not keys["validation"] & keys["test"]
    stored = [t for t in turns() if t.provenance.get("free_form")]
    assert len(stored) > 0.08 * len(turns())
    subjects = {f.get("entity") for t in stored for f in t.learn if f["kind"] == "observation"}
    assert "@user" in subjects and len(subjects) > 50  # people, pets and projects too


def test_plans_are_not_jobs() -> None:
    """"Plans to study pharmacy" is a plan, never "Works as a pharmacy"."""
    for generated in episodes():
        for session in generated.sessions:
            for turn in session.turns:
                for call in turn.calls:
                    if call["name"] in ("add_observations", "create_entities"):
                        text = json.dumps(call["arguments"])
                        assert "Works as a pharmacy" not in text and "Works as a nursing" not in text


def test_long_messages_carry_up_to_five_facts_with_chatter() -> None:
    long = [t for t in turns() if t.provenance.get("facts", 0) >= 4]
    assert len(long) > 0.03 * len(turns())
    assert max(t.provenance["facts"] for t in long) == 5
    assert any(any(c.lower() in t.user.lower() for c in ph.CHATTER) for t in long)
    for turn in long:
        for fact in turn.learn:
            if fact["kind"] == "relation" and fact["to"] != "@user":
                assert fact["to"] in turn.user  # names and values survive casing and typos


def test_facts_buried_in_requests_are_stored_and_the_request_answered() -> None:
    buried = [t for t in turns() if t.provenance.get("buried")]
    assert len(buried) > 0.04 * len(turns())
    helps = {h for bank in ph.BURIED.values() for _, h in bank} | {h for _, h in ph.REQUESTS}
    for turn in buried:
        assert turn.learn and any(c["name"] != "open_nodes" for c in turn.calls)
        assert any(turn.reply.startswith(h) for h in helps)


def test_a_pronoun_refers_to_the_one_person_the_previous_turn_named() -> None:
    checked = 0
    for generated in episodes():
        for session in generated.sessions:
            for previous, turn in zip(session.turns, session.turns[1:]):
                if not turn.provenance.get("pronoun"):
                    continue
                subject = next(f for f in turn.learn if f["kind"] in ("relation", "observation"))
                person = subject.get("from") or subject.get("entity")
                assert person in previous.user or person in json.dumps(previous.calls, ensure_ascii=False)
                assert re.search(r"\b(she|he|they|her|his|their)\b", turn.user.lower()), turn.user
                checked += 1
    assert checked > 30


def test_kin_words_keep_the_relation_of_the_role() -> None:
    """"my abuela Rosa" is has_grandmother, "my sis Ana" has_sister: the word changes, not the relation."""
    kin = {w: role for role, ws in vocab.KIN_WORDS.items() for w in ws}
    marked = [t for t in turns() if t.provenance.get("kin_word") and not t.provenance.get("typo")]
    assert len(marked) > 0.03 * len(turns())
    introduced = 0
    for turn in marked:
        said = [w for w in kin if re.search(rf"\b{re.escape(w)}\b", turn.user, re.IGNORECASE)]
        assert said, turn.user
        for fact in turn.learn:
            if fact["kind"] != "relation" or fact["from"] != "@user":
                continue
            name = re.escape(fact["to"])
            for word in sorted(said, key=len, reverse=True):  # "best mate" before "mate"
                w = re.escape(word)
                if re.search(rf"\b{w}\W{{1,2}}{name}\b|\b{name}, my {w}\b", turn.user, re.IGNORECASE):
                    assert fact["type"][0] == PERSON_ROLES[kin[word]][0], (turn.user, fact)
                    introduced += 1
                    break
    assert introduced > 20


def test_other_peoples_pets_and_things_are_entities_with_their_own_relations() -> None:
    relations = [f for t in turns() for f in t.learn if f["kind"] == "relation"]
    assert any(f["from"] != "@user" and f["type"][0] == "owns" for f in relations)
    assert any(f["from"] != "@user" and f["type"][0] == "registered_for" for f in relations)
    assert any(f["from"] != "@user" and f["type"][0] == "studied_at" for f in relations)
    assert any(f["type"][0] == "ex_partner_of" for f in relations)


def test_many_turns_touch_no_memory() -> None:
    quiet = [t for t in turns() if not t.calls]
    assert len(quiet) > 0.08 * len(turns())
    assert len({t.user for t in quiet}) > 60


def test_requests_that_state_a_fact_are_split_like_the_details() -> None:
    used = 0
    for generated in episodes():
        for session in generated.sessions:
            for turn in session.turns:
                for tid in turn.provenance.get("templates", []):
                    if tid.startswith("buried/"):
                        kind, subject = tid[len("buried/"):].split("#")[0].split(".")
                        template, _ = ph.BURIED[(kind, subject)][int(tid.split("#")[1])]
                        assert vocab.bucket(template) == generated.split
                        used += 1
    assert used > 20
