"""Robot-mission scenes with gold records and questions, for tests, benchmarks and training data.

A scene is one robot at one site over several missions: it enters rooms, sees objects on
furniture (with its pose), meets people and finishes tasks. Objects are seen again in later
missions, at the same place or moved elsewhere. Each event comes as the raw observation the
robot would say ("spotted the red ball on the table"), with its pose, mission and time, plus the
gold record a perfect writer makes of it. Questions ask where, when, what, in which mission, or
about an object never seen, with the gold record ids and what a correct answer must contain.

Everything is a pure function of the seed. Splits are disjoint: every object (colour + noun)
and every person belongs to exactly one of train / validation / test by a fixed hash, so no
test question names a thing that training data has seen.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memlora.records.schema import MemoryRecord, Pose, build_record, validate_draft

SPLITS = ("train", "validation", "test")
ROOMS = ("kitchen", "living room", "bedroom", "bathroom", "hallway", "office", "garage", "lobby", "lab", "workshop",
         "dining room", "storage room", "laundry room", "library", "meeting room", "balcony")
PLACES = ("table", "desk", "shelf", "sofa", "counter", "chair", "cabinet", "bed", "windowsill", "floor", "bench",
          "dresser", "stool", "crate", "cart", "rack")
PREPOSITIONS = ("on", "near", "under", "next to")
COLORS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple", "pink", "brown", "grey", "silver")
NOUNS = ("ball", "mug", "book", "backpack", "umbrella", "laptop", "bottle", "toolbox", "lamp", "helmet", "box", "cup",
         "jacket", "phone", "remote", "plant", "basket", "bucket", "scarf", "notebook", "drill", "kettle", "vase", "towel",
         "shoe", "wrench", "tablet", "camera", "pillow", "folder")
PEOPLE = ("Alice", "Bob", "Carmen", "Dmitri", "Esther", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal", "Lena",
          "Marta", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Samir", "Tomas", "Uma", "Viktor", "Wen", "Xavier",
          "Yara", "Zoltan", "Amara", "Bruno", "Chloe", "Dario", "Elif", "Femi")
TASKS = (("charge_battery", "charging the battery"), ("deliver_package", "delivering the package"),
         ("inspect_door", "inspecting the door"), ("clean_floor", "cleaning the floor"),
         ("water_plants", "watering the plants"), ("check_window", "checking the window"),
         ("fetch_tools", "fetching the tools"), ("scan_shelves", "scanning the shelves"),
         ("empty_bin", "emptying the bin"), ("map_room", "mapping the room"))
FIRST_DAY = 1759276800  # 2025-10-01T00:00:00Z

SEEN_PHRASES = ("saw a {o} {p} the {pl} in the {r}", "spotted the {o} {p} the {pl} in the {r}",
                "{o} detected {p} the {pl} in the {r}", "noticed a {o} {p} the {pl} in the {r}",
                "there is a {o} {p} the {pl} in the {r}")
MET_PHRASES = ("met {n} in the {r}", "talked with {n} in the {r}", "greeted {n} in the {r}")
VISIT_PHRASES = ("entered the {r}", "arrived in the {r}", "now in the {r}")
TASK_PHRASES = ("finished {t} in the {r}", "done {t} in the {r}", "completed {t} in the {r}")


def split_of(name: str) -> str:
    """The split a thing belongs to, fixed for ever: 70% train, 15% validation, 15% test."""
    bucket = int(hashlib.sha256(f"memlora-scenes:{name}".encode()).hexdigest(), 16) % 100
    return "train" if bucket < 70 else "validation" if bucket < 85 else "test"


def vocabulary(split: str) -> tuple[list[str], list[str]]:
    """The objects (colour + noun) and people of one split."""
    objects = [f"{c} {n}" for c in COLORS for n in NOUNS if split_of(f"object:{c} {n}") == split]
    people = [p for p in PEOPLE if split_of(f"person:{p}") == split]
    return objects, people


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


@dataclass
class SceneObservation:
    """One thing the robot said, with the context it knows for sure, and the gold record of it."""

    text: str
    pose: tuple[float, float, float]
    mission: str
    timestamp: float
    record: dict[str, Any]


@dataclass
class Question:
    id: str
    kind: str  # where | when | what | which_mission | not_seen
    question: str
    missions: list[str]  # the scope to search: the scene's missions, or one mission
    expected_ids: list[str]  # gold records that answer it (empty for not_seen)
    answer: str  # a correct answer, for reading
    must_mention: list[list[str]] = field(default_factory=list)  # each group: at least one of these words


@dataclass
class Scene:
    id: str
    split: str
    missions: list[str]
    observations: list[SceneObservation]
    questions: list[Question]

    def records(self) -> list[MemoryRecord]:
        return [MemoryRecord.model_validate(o.record) for o in self.observations]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))


def _date(timestamp: float) -> str:
    import time

    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def _month_day(timestamp: float) -> str:
    import time

    day = time.gmtime(timestamp)
    return f"{time.strftime('%B', day)} {day.tm_mday}"


def make_scene(split: str, index: int, seed: int, missions: int = 4) -> Scene:
    """One robot's missions at one site; a pure function of (split, index, seed)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = random.Random(f"{seed}:{split}:{index}")
    objects, people = vocabulary(split)
    scene_id = f"{split[0]}{seed}-{index}"
    rooms = rng.sample(ROOMS, rng.randint(4, 6))
    layout: dict[str, tuple[float, float, dict[str, tuple[float, float]]]] = {}
    for n, room in enumerate(rooms):
        cx, cy = (n % 3) * 6.0 + 3.0, (n // 3) * 6.0 + 3.0
        places = {pl: (cx + rng.uniform(-2, 2), cy + rng.uniform(-2, 2)) for pl in rng.sample(PLACES, 3)}
        layout[room] = (cx, cy, places)
    present = rng.sample(objects, min(len(objects), rng.randint(6, 9)))
    # where each object is; some move between missions
    location = {obj: (rng.choice(rooms), None) for obj in present}
    location = {obj: (room, rng.choice(list(layout[room][2]))) for obj, (room, _) in location.items()}
    cast = rng.sample(people, min(len(people), 3))
    first_day = FIRST_DAY + rng.randrange(0, 365) * 86400
    observations: list[SceneObservation] = []
    mission_ids: list[str] = []
    sightings: dict[str, list[tuple[int, str, str, str]]] = {}  # obj -> (obs index, room, place, mission)
    meetings: list[tuple[int, str]] = []
    tasks_by_mission: dict[str, list[tuple[int, str, str]]] = {}
    visits: dict[str, set[str]] = {}

    def add(text: str, event: str, gold: str, tags: list[str], pose: tuple[float, float, float], mission: str,
            when: float) -> int:
        draft = validate_draft({"event": event, "text": gold, "tags": tags})
        record = build_record(draft, mission_id=mission, timestamp=when, source="scene",
                              pose=Pose(x=pose[0], y=pose[1], yaw=pose[2]))
        observations.append(SceneObservation(text, pose, mission, when, record.model_dump()))
        return len(observations) - 1

    for m in range(missions):
        start = first_day + m * 86400 + rng.randint(8, 16) * 3600 + rng.randint(0, 59) * 60
        mission = f"m-{_date(start)}-{scene_id}-{m + 1}"
        mission_ids.append(mission)
        clock = float(start)
        if m > 0:  # one or two objects are moved between missions
            for obj in rng.sample(present, 2 if rng.random() < 0.5 else 1):
                room = rng.choice(rooms)
                location[obj] = (room, rng.choice(list(layout[room][2])))
        route = rng.sample(rooms, rng.randint(3, len(rooms)))
        for room in route:
            cx, cy, places = layout[room]
            clock += rng.randint(40, 300)
            yaw = round(rng.uniform(-math.pi, math.pi), 2)
            visits.setdefault(room, set()).add(mission)
            add(rng.choice(VISIT_PHRASES).format(r=room), "place_visited", f"Entered the {room}.",
                [f"room:{_slug(room)}"], (round(cx, 2), round(cy, 2), yaw), mission, clock)
            for obj in [o for o in present if location[o][0] == room]:
                if rng.random() < 0.25:
                    continue  # not every object is noticed every time
                place = location[obj][1]
                px, py = places[place]
                prep = rng.choice(PREPOSITIONS)
                clock += rng.randint(5, 90)
                pose = (round(px + rng.uniform(-0.6, 0.6), 2), round(py + rng.uniform(-0.6, 0.6), 2),
                        round(rng.uniform(-math.pi, math.pi), 2))
                color, noun = obj.split(" ", 1)
                gold = f"Saw a {obj} {prep} the {place} in the {room}."
                i = add(rng.choice(SEEN_PHRASES).format(o=obj, p=prep, pl=place, r=room), "object_seen", gold,
                        [f"object:{_slug(obj)}", f"color:{color}", f"place:{_slug(place)}", f"room:{_slug(room)}"],
                        pose, mission, clock)
                sightings.setdefault(obj, []).append((i, room, place, mission))
            if rng.random() < 0.3:
                person = rng.choice(cast)
                clock += rng.randint(20, 200)
                i = add(rng.choice(MET_PHRASES).format(n=person, r=room), "person_met", f"Met {person} in the {room}.",
                        [f"person:{_slug(person)}", f"room:{_slug(room)}"], (round(cx, 2), round(cy, 2), yaw),
                        mission, clock)
                meetings.append((i, person))
            if rng.random() < 0.3:
                slug, phrase = rng.choice(TASKS)
                clock += rng.randint(60, 600)
                i = add(rng.choice(TASK_PHRASES).format(t=phrase, r=room), "task_done",
                        f"Finished {phrase} in the {room}.", [f"task:{slug}", f"room:{_slug(room)}"],
                        (round(cx, 2), round(cy, 2), yaw), mission, clock)
                tasks_by_mission.setdefault(mission, []).append((i, slug, phrase))

    def rid(i: int) -> str:
        return str(observations[i].record["id"])

    questions: list[Question] = []

    def ask(kind: str, text: str, scope: list[str], ids: list[str], answer: str, mention: list[list[str]]) -> None:
        questions.append(Question(f"{scene_id}-q{len(questions) + 1}", kind, text, scope, ids, answer, mention))

    seen = [o for o in present if o in sightings]
    for obj in rng.sample(seen, min(2, len(seen))):
        last_i, room, place, mission = sightings[obj][-1]
        moved = len({(r, p) for _, r, p, _ in sightings[obj]}) > 1
        verb = "last see" if moved else "see"
        ask("where", f"Where did we {verb} the {obj}?", mission_ids,
            [rid(last_i)] if moved else [rid(i) for i, *_ in sightings[obj]],
            f"On the {place} in the {room} (mission {mission}).", [[room]])
    if meetings:
        i, person = rng.choice(meetings)
        firsts = [j for j, p in meetings if p == person]
        i = firsts[0]
        when = observations[i].timestamp
        ask("when", f"When did we first meet {person}?", mission_ids, [rid(i)],
            f"On {_date(when)}.", [[_date(when), _month_day(when)]])
    mission = rng.choice(mission_ids)
    in_mission = [(i, r, obj) for obj, items in sightings.items() for i, r, _, m in items if m == mission]
    if in_mission:
        room = rng.choice(sorted({r for _, r, _ in in_mission}))
        hits = [(i, obj) for i, r, obj in in_mission if r == room]
        ask("what", f"What did we see in the {room} during mission {mission}?", [mission], [rid(i) for i, _ in hits],
            "; ".join(sorted({obj for _, obj in hits})), [sorted({obj for _, obj in hits})])
    unique_tasks = [(i, slug, phrase, m) for m, items in tasks_by_mission.items() for i, slug, phrase in items
                    if sum(s == slug for its in tasks_by_mission.values() for _, s, _ in its) == 1]
    if unique_tasks:
        i, slug, phrase, m = rng.choice(unique_tasks)
        ask("which_mission", f"In which mission did we finish {phrase}?", mission_ids, [rid(i)], m, [[m]])
    absent = [o for o in objects if o not in present]
    # hard negatives first: an unseen colour of a noun that was seen
    nouns_seen = {o.split(" ", 1)[1] for o in seen}
    hard = [o for o in absent if o.split(" ", 1)[1] in nouns_seen]
    for obj in (rng.sample(hard, 1) if hard else []) + rng.sample(absent, 1):
        ask("not_seen", f"Where did we see the {obj}?", mission_ids, [], "Not in memory.", [])
    return Scene(scene_id, split, mission_ids, observations, questions)


NEGATIVE = re.compile(r"not in memory|no record|not (?:been )?seen|never|did not see|didn't see|no information|"
                      r"not found|cannot find|can't find|don't know|do not know|unknown", re.IGNORECASE)


def grade(question: Question | dict[str, Any], answer: str, citations: list[str]) -> dict[str, bool]:
    """Is the answer right (it mentions a term of every group, or says not in memory for not_seen),
    and does it cite a gold record (for not_seen: cites nothing)?"""
    q = question if isinstance(question, Question) else Question(**question)
    text = answer.lower()
    if q.kind == "not_seen":
        correct = bool(NEGATIVE.search(answer))
        return {"correct": correct, "cited": not citations, "correct_and_cited": correct and not citations}
    correct = bool(q.must_mention) and all(any(term.lower() in text for term in group) for group in q.must_mention)
    correct = correct and not NEGATIVE.search(answer)
    cited = bool(set(citations) & set(q.expected_ids))
    return {"correct": correct, "cited": cited, "correct_and_cited": correct and cited}


def says_not_in_memory(answer: str) -> bool:
    """Does the answer say that memory holds nothing on the question (the rule `grade` uses)?"""
    return bool(NEGATIVE.search(answer))


def support_groups(question: Question | dict[str, Any], evidence: Sequence[MemoryRecord]) -> list[set[str]]:
    """What an answer from `evidence` must cite, as groups of record ids: one citation from each
    group covers the question. Only gold records shown in the evidence count; none shown (or a
    *not seen* question) means the honest answer is that memory holds nothing on it.

    A *what* question needs one record per object it names; the others need one gold record (any
    sighting of an object that never moved says where it is)."""
    q = question if isinstance(question, Question) else Question(**question)
    expected = set(q.expected_ids)
    shown = [r for r in evidence if r.id in expected]
    if not shown:
        return []
    if q.kind != "what":
        return [{r.id for r in shown}]
    by_object: dict[str, set[str]] = {}
    for record in shown:
        key = next((t for t in record.tags if t.startswith("object:")), record.id)
        by_object.setdefault(key, set()).add(record.id)
    return list(by_object.values())


def score_citations(question: Question | dict[str, Any], citations: Sequence[str],
                    evidence: Sequence[MemoryRecord]) -> dict[str, int]:
    """Counts for citation precision and recall: `cited` records, of them `supporting` (gold
    records of the question), `groups` the answer had to cover (`support_groups`) and `covered`."""
    q = question if isinstance(question, Question) else Question(**question)
    groups = support_groups(q, evidence)
    cited = list(dict.fromkeys(citations))
    return {"cited": len(cited), "supporting": sum(c in set(q.expected_ids) for c in cited),
            "groups": len(groups), "covered": sum(bool(group & set(cited)) for group in groups)}


def generate(split: str, scenes: int, seed: int, missions: int = 4) -> list[Scene]:
    return [make_scene(split, i, seed, missions) for i in range(scenes)]


def write_splits(out_dir: Path, missions_per_split: dict[str, int], seed: int, missions_per_scene: int = 4) -> dict[str, Any]:
    """Writes <split>.jsonl (one scene per line) for each split; returns counts per split."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {}
    for split, total in missions_per_split.items():
        count = math.ceil(total / missions_per_scene) if total else 0
        scenes = generate(split, count, seed, missions_per_scene)
        with (out_dir / f"{split}.jsonl").open("w", encoding="utf-8") as handle:
            for scene in scenes:
                handle.write(scene.to_json() + "\n")
        summary[split] = {"missions": sum(len(s.missions) for s in scenes),
                          "records": sum(len(s.observations) for s in scenes),
                          "questions": sum(len(s.questions) for s in scenes)}
    return summary


def load_scenes(path: str | Path) -> list[Scene]:
    scenes = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            data["observations"] = [SceneObservation(**o) for o in data["observations"]]
            data["questions"] = [Question(**q) for q in data["questions"]]
            scenes.append(Scene(**data))
    return scenes
