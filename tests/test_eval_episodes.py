"""Episode files: the vendored schema, typed loading, and rejection with line numbers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from memlora.evaluation.episodes import (
    SCHEMA_PATH,
    EntityFact,
    EpisodeFileError,
    ObservationFact,
    RelationFact,
    load_episodes,
    parse_episodes,
)

# the shared spec sits beside the checkout (../shared) or inside it (shared/)
_CANDIDATES = [Path(__file__).resolve().parents[n] / "shared" / "spec" for n in (1, 2)]
SHARED_SPEC = next((p for p in _CANDIDATES if p.exists()), _CANDIDATES[-1])

MINIMAL: dict[str, Any] = {
    "id": "e1",
    "user": {"name": None},
    "sessions": [
        {
            "id": "s1",
            "turns": [{"user": "I have a beagle called Biscuit."}],
            "learn": [
                {"kind": "entity", "name": "Biscuit"},
                {"kind": "relation", "from": "@user", "type": ["owns"], "to": "Biscuit"},
                {"kind": "observation", "entity": "Biscuit", "keywords": ["beagle", ["dog", "hound"]]},
            ],
        }
    ],
    "probes": [{"after": "s1", "question": "What is my dog called?", "answers": ["Biscuit"], "kind": "single"}],
}


def lines(*episodes: Any) -> str:
    return "\n".join(e if isinstance(e, str) else json.dumps(e) for e in episodes) + "\n"


def variant(**changes: Any) -> dict[str, Any]:
    episode = copy.deepcopy(MINIMAL)
    episode.update(changes)
    return episode


def problems_of(text: str) -> list[str]:
    with pytest.raises(EpisodeFileError) as caught:
        parse_episodes(text, "f.jsonl")
    assert "f.jsonl" in str(caught.value)
    return [str(p) for p in caught.value.problems]


@pytest.mark.skipif(not (SHARED_SPEC / "episodes.schema.json").exists(), reason="no shared spec checkout")
def test_vendored_schema_equals_shared_spec() -> None:
    shared = json.loads((SHARED_SPEC / "episodes.schema.json").read_text(encoding="utf-8"))
    assert json.loads(SCHEMA_PATH.read_text(encoding="utf-8")) == shared


@pytest.mark.skipif(not (SHARED_SPEC / "example.jsonl").exists(), reason="no shared spec checkout")
def test_example_file_loads() -> None:
    episodes = load_episodes(SHARED_SPEC / "example.jsonl")
    assert [e.id for e in episodes] == ["example-1", "example-2"]
    assert episodes[1].user.name is None and episodes[1].sessions[0].turns[0].calls is None


def test_minimal_episode_is_typed() -> None:
    (episode,) = parse_episodes(lines(MINIMAL))
    session = episode.sessions[0]
    assert session.learn == (
        EntityFact("Biscuit"),
        RelationFact("@user", ("owns",), "Biscuit"),
        ObservationFact("Biscuit", (("beagle",), ("dog", "hound"))),
    )
    assert session.retract == () and session.turns[0].calls is None
    assert episode.probes[0].forbidden == () and episode.line == 1


def test_blank_lines_are_skipped_but_counted() -> None:
    second = variant(id="e2")
    episodes = parse_episodes("\n" + lines(MINIMAL) + "\n   \n" + lines(second))
    assert [(e.id, e.line) for e in episodes] == [("e1", 2), ("e2", 5)]


def test_bad_json_names_its_line() -> None:
    (problem,) = problems_of(lines(MINIMAL, '{"id": "e2",'))
    assert problem.startswith("line 2: bad JSON")


def test_schema_violation_names_line_and_json_path() -> None:
    broken = variant(id="e2")
    broken["sessions"][0]["learn"][1] = {"kind": "relation", "from": "@user", "to": "Biscuit"}
    broken["probes"][0]["kind"] = "trivia"
    found = problems_of(lines(MINIMAL, broken))
    assert any(p.startswith("line 2:") and "$.sessions[0].learn[1]" in p and "'type'" in p for p in found)
    assert any(p.startswith("line 2:") and "$.probes[0].kind" in p for p in found)


def test_keyword_alternatives_must_be_strings() -> None:
    broken = variant()
    broken["sessions"][0]["learn"][2]["keywords"] = [[]]
    (problem,) = problems_of(lines(broken))
    assert "$.sessions[0].learn[2].keywords[0]" in problem and "non-empty" in problem


def test_unknown_fact_kind() -> None:
    broken = variant()
    broken["sessions"][0]["learn"].append({"kind": "feeling", "name": "x"})
    (problem,) = problems_of(lines(broken))
    assert "unknown fact kind 'feeling'" in problem


def test_line_that_is_not_an_object() -> None:
    (problem,) = problems_of(lines(MINIMAL, "[1, 2]"))
    assert problem.startswith("line 2: schema violation at $")


def test_duplicate_session_ids_are_accepted_and_probes_follow_the_first() -> None:
    repeated = variant()
    repeated["sessions"].append(copy.deepcopy(repeated["sessions"][0]))
    (episode,) = parse_episodes(lines(repeated))  # schema-valid: the spec says accept it
    assert [s.id for s in episode.sessions] == ["s1", "s1"] and len(episode.probes) == 1
    assert episode.session_index("s1") == 0
    assert episode.notes == ("line 1: duplicate session id 's1' at $.sessions[1].id: "
                             "probes naming it are asked after its first session",)


def test_a_probe_after_an_unknown_session_is_set_aside_not_the_file() -> None:
    broken = variant()
    broken["probes"].insert(0, {"after": "s9", "question": "Where?", "answers": ["Lisbon"], "kind": "single"})
    episodes = parse_episodes(lines(MINIMAL, variant(id="e2"), broken | {"id": "e3"}))
    assert [e.id for e in episodes] == ["e1", "e2", "e3"]
    third = episodes[2]
    assert [(p.index, p.after) for p in third.probes] == [(1, "s1")]  # the index stays the file's
    assert third.notes == ("line 3: probe $.probes[0].after names no session ('s9'): it is neither asked nor scored",)


def test_duplicate_episode_ids_are_kept_apart() -> None:
    episodes = parse_episodes(lines(MINIMAL, variant(), variant(id="e2")))
    assert [e.id for e in episodes] == ["e1", "e1 (line 2)", "e2"]
    assert episodes[1].raw["id"] == "e1" and episodes[1].line == 2
    assert episodes[1].notes == ("line 2: episode id 'e1' is also on line 1: this one is reported as e1 (line 2)",)
    assert episodes[0].notes == episodes[2].notes == ()


def test_line_separators_inside_strings_do_not_split_lines(tmp_path: Path) -> None:
    # JSON allows U+2028, U+2029 and U+0085 unescaped in strings; str.splitlines splits at them
    odd = variant()
    odd["sessions"][0]["turns"][0]["user"] = "first\u2028second\u2029third\u0085fourth\r"
    text = "\r\n".join(json.dumps(e, ensure_ascii=False) for e in (odd, variant(id="e2"))) + "\r\n"
    episodes = parse_episodes(text)
    assert [e.id for e in episodes] == ["e1", "e2"]
    assert episodes[0].sessions[0].turns[0].user == "first\u2028second\u2029third\u0085fourth\r"
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # a byte-order mark, as some editors write
    assert [e.id for e in load_episodes(path)] == ["e1", "e2"]


def test_text_that_is_not_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    text = "\n".join(json.dumps(e, ensure_ascii=False) for e in (MINIMAL, variant(id="caf\u00e9")))
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(EpisodeFileError) as caught:
        load_episodes(path)
    (problem,) = [str(p) for p in caught.value.problems]
    assert problem.startswith("line 2: not UTF-8 text: invalid continuation byte")


def test_empty_file() -> None:
    assert problems_of("\n\n") == ["line 0: the file holds no episodes"]


def test_every_problem_is_reported() -> None:
    found = problems_of(lines("nope", MINIMAL, "{}"))
    assert [p.split(":")[0] for p in found] == ["line 1", "line 3", "line 3", "line 3", "line 3"]


def test_extra_fields_are_accepted() -> None:
    extra = variant(split="test", notes={"any": "thing"})
    extra["sessions"][0]["mood"] = "happy"
    assert parse_episodes(lines(extra))[0].id == "e1"
