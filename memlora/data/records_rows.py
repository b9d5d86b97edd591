"""Training rows and test items for the two records adapters, made from the scene generator.

- **writing**: the records writer's own prompt (`writer.write_messages` of the text
  `writer.prepare_observation` makes of an observation, exactly what the MemoryManager sends)
  and, as the reply to learn, the gold record's event, text and tags as compact JSON. The
  observations are the scenes' phrasings rewritten in many ways: case, word order, typos,
  chatter the record must drop, emojis, and the pose and mission spelled out in the text (with
  m, cm, mm, rad, deg or °), which the manager takes out before the model reads it.
- **recall**: the answer module's own prompt (`answer.answer_messages`) for a scene question and
  the records a search would show: the supporting records among distractors from the same
  robot's memory, ranked by word overlap with the question plus noise, or, for a share of the
  questions, without any supporting record (then the honest reply is `Not in memory.`). The gold
  answer cites exactly what `scenes.support_groups` (the evaluator's rule) asks of it.

The retrieval is simulated, not the store's hybrid search: it controls how often the support is
missing and keeps rows a pure function of (split, seed) without embeddings. Splits follow the
scene generator's: every object and person belongs to one split by a fixed hash, so no test item
names a thing the training rows contain.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memlora.records import answer as answering
from memlora.records.items import RecallItem, WriteItem
from memlora.records.scenes import Question, Scene, SceneObservation, make_scene, support_groups
from memlora.records.schema import MemoryRecord

TASKS = ("writing", "recall")
ROW_SPLITS = ("train", "validation")
STYLES = ("lower", "upper", "order", "typo", "chatter", "emoji", "context")
HIDE_SUPPORT = 0.2  # share of answerable questions shown without any supporting record
KS = (3, 4, 5, 5, 5, 6)  # records shown per question (the manager's default is 5)

CHATTER_BEFORE = ("ok so", "Hey!", "Quick update:", "Note to self:", "So, um,", "FYI", "Status report:", "Alright.",
                  "Hmm, interesting.", "Heads up:", "Logging this:")
CHATTER_AFTER = ("lol", "Nothing else to report.", "Battery at {n}%.", "Moving on to the next room.",
                 "Will check again later!", "Not sure if that matters.", "It looked a bit dusty.", "Took {n} photos.",
                 "Wheels are a bit noisy today.", "Over and out.", "Back to patrolling.")
EMOJIS = ("🤖", "👀", "✅", "📦", "🙂", "🚪", "🔋", "🔍")
_ARTICLE = re.compile(r"^(?:a|an)\s+", re.IGNORECASE)
_SEEN = re.compile(r"^Saw a (?P<obj>.+?) (?P<prep>on|near|under|next to) the (?P<place>.+?) in the (?P<room>.+?)\.$")
_MET = re.compile(r"^Met (?P<name>.+?) in the (?P<room>.+?)\.$")
_TASK = re.compile(r"^Finished (?P<phrase>.+?) in the (?P<room>.+?)\.$")
_VISIT = re.compile(r"^Entered the (?P<room>.+?)\.$")
_QUESTION_WORDS = {"where", "when", "what", "which", "did", "we", "the", "a", "an", "in", "during", "see", "last",
                   "first", "meet", "mission", "finish", "is", "was", "of", "for", "time"}


# -- writing -------------------------------------------------------------------------------------


def _parts(record: dict[str, Any]) -> dict[str, str]:
    for pattern in (_SEEN, _MET, _TASK, _VISIT):
        found = pattern.match(record["text"])
        if found:
            return found.groupdict()
    return {}


def _reorder(record: dict[str, Any], rng: random.Random) -> str | None:
    """The observation in another word order, from the gold record's parts."""
    p = _parts(record)
    event = record["event"]
    if event == "object_seen" and p:
        a = "an" if p["obj"][0] in "aeiou" else "a"
        forms = [f"{p['prep']} the {p['place']} in the {p['room']}: {a} {p['obj']}",
                 f"in the {p['room']}, {a} {p['obj']} {p['prep']} the {p['place']}",
                 f"{p['room']} - {p['obj']} {p['prep']} {p['place']}",
                 f"{p['obj']} spotted, {p['prep']} the {p['place']} ({p['room']})",
                 f"the {p['obj']} is {p['prep']} the {p['place']} in the {p['room']}"]
    elif event == "person_met" and p:
        forms = [f"in the {p['room']}, met {p['name']}", f"{p['name']} was in the {p['room']}, said hello",
                 f"{p['room']}: ran into {p['name']}"]
    elif event == "task_done" and p:
        forms = [f"{p['phrase']} in the {p['room']}: done", f"in the {p['room']}, {p['phrase']} finished",
                 f"{p['room']} - completed {p['phrase']}"]
    elif event == "place_visited" and p:
        forms = [f"{p['room']} entered", f"now entering the {p['room']}", f"just got to the {p['room']}"]
    else:
        return None
    return rng.choice(forms)


def _typos(text: str, rng: random.Random) -> str:
    """One or two words with a swapped, dropped or doubled letter."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    for index in rng.sample(candidates, min(len(candidates), rng.choice((1, 1, 2)))):
        word = words[index]
        at = rng.randrange(1, len(word) - 1)
        kind = rng.choice(("swap", "drop", "double"))
        if kind == "swap":
            word = word[:at] + word[at + 1] + word[at] + word[at + 2:]
        elif kind == "drop":
            word = word[:at] + word[at + 1:]
        else:
            word = word[:at] + word[at] + word[at:]
        words[index] = word
    return " ".join(words)


def _pose_text(pose: Sequence[float], rng: random.Random) -> str:
    """The pose spelled out the way the manager's parser reads it, in one of several units."""
    import math

    x, y, yaw = pose
    degrees = math.degrees(yaw)
    return rng.choice((
        f"at x={x}, y={y}, yaw {yaw}",
        f"(x: {x} m, y: {y} m, yaw: {yaw} rad)",
        f"at x={round(x * 100)} cm, y={round(y * 100)} cm, heading {degrees:.1f}°",
        f"pose x={round(x * 1000)}mm y={round(y * 1000)}mm theta={yaw}",
        f"at x {x:.2f}m, y {y:.2f}m, heading {degrees:.1f} deg",
    ))


def _mission_text(mission: str, rng: random.Random) -> str:
    return rng.choice((f"during mission {mission}", f"(mission: {mission})", f"mission id {mission}",
                       f"for mission {mission}"))


def write_item(obs: SceneObservation, item_id: str, rng: random.Random, plain: bool = False) -> WriteItem:
    """The observation rewritten in a random mix of styles (`plain`: the scene's own phrasing)."""
    styles: list[str] = []
    if not plain and rng.random() >= 0.2:
        pool = [s for s in STYLES]
        styles = rng.sample(pool, rng.choice((1, 1, 2, 2, 3)))
        if "lower" in styles and "upper" in styles:
            styles.remove("upper")
    text = obs.text
    chatter: list[str] = []
    if "order" in styles:
        text = _reorder(obs.record, rng) or text
    if "typo" in styles:
        text = _typos(text, rng)
    if "lower" in styles:
        text = text.lower()
    if "upper" in styles:
        text = text.upper()
    pose: list[float] | None = list(obs.pose)
    mission: str | None = obs.mission
    if "context" in styles:
        pose_text, mission_text = _pose_text(obs.pose, rng), _mission_text(obs.mission, rng)
        text = f"{text} {pose_text} {mission_text}" if rng.random() < 0.5 else f"{mission_text}, {text} {pose_text}"
        if rng.random() < 0.5:
            pose = None
        if rng.random() < 0.5:
            mission = None
    if "chatter" in styles:
        if rng.random() < 0.6:
            before = rng.choice(CHATTER_BEFORE)
            chatter.append(before)
            text = f"{before} {text}"
        if not chatter or rng.random() < 0.5:
            after = rng.choice(CHATTER_AFTER).format(n=rng.randint(2, 99))
            chatter.append(after)
            text = f"{text}. {after}" if rng.random() < 0.5 else f"{text}, {after[0].lower()}{after[1:]}"
    if "emoji" in styles:
        emoji = rng.choice(EMOJIS)
        text = f"{emoji} {text}" if rng.random() < 0.5 else f"{text} {emoji}"
    return WriteItem(item_id, text, pose, mission, obs.timestamp, styles, chatter, obs.record)


# -- recall --------------------------------------------------------------------------------------


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower())) - _QUESTION_WORDS


def _record_words(record: MemoryRecord) -> set[str]:
    values = " ".join(tag.split(":", 1)[1].replace("_", " ") for tag in record.tags)
    return _words(f"{record.text} {values}")


def simulated_evidence(question: Question, pool: Sequence[MemoryRecord], rng: random.Random, k: int,
                       hide: bool) -> list[MemoryRecord]:
    """The k records a search might show: ranked by words shared with the question plus noise,
    within the question's missions; `hide` leaves every gold record out."""
    scope = [r for r in pool if r.mission_id in set(question.missions)]
    if hide:
        scope = [r for r in scope if r.id not in set(question.expected_ids)]
    wanted = _words(question.question)
    scored = [(len(wanted & _record_words(r)) + rng.random() * 1.5, r.id, r) for r in scope]
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [r for _, _, r in scored[:k]]


def _object_name(record: MemoryRecord) -> str:
    tag = next((t for t in record.tags if t.startswith("object:")), "object:thing")
    return tag.split(":", 1)[1].replace("_", " ")


def gold_answer(question: Question, evidence: Sequence[MemoryRecord]) -> tuple[str, list[int]]:
    """A short answer from `evidence` that cites what supports it, or NOT_FOUND when nothing does."""
    groups = support_groups(question, evidence)
    if not groups:
        return answering.NOT_FOUND, []
    number = {r.id: n for n, r in enumerate(evidence, 1)}
    by_id = {r.id: r for r in evidence}
    if question.kind == "what":
        picks = sorted((min(group, key=lambda i: number[i]) for group in groups), key=lambda i: number[i])
        first = by_id[picks[0]]
        parts = _SEEN.match(first.text)
        room = parts["room"] if parts else "room"
        seen = ", ".join(f"{'an' if _object_name(by_id[i])[0] in 'aeiou' else 'a'} {_object_name(by_id[i])} [{number[i]}]"
                         for i in picks)
        return f"In the {room} during mission {first.mission_id} we saw {seen}.", [number[i] for i in picks]
    group = groups[0]
    if question.kind == "when":
        record = min((by_id[i] for i in group), key=lambda r: r.timestamp)
        parts = _MET.match(record.text)
        who = parts["name"] if parts else "them"
        room = f" in the {parts['room']}" if parts else ""
        return (f"We first met {who} on {answering.when(record.timestamp)}{room} [{number[record.id]}].",
                [number[record.id]])
    record = max((by_id[i] for i in group), key=lambda r: r.timestamp)
    n = number[record.id]
    if question.kind == "which_mission":
        sentence = record.text.rstrip(".")
        return f"We {sentence[0].lower()}{sentence[1:]} during mission {record.mission_id} [{n}].", [n]
    parts = _SEEN.match(record.text)
    where = f"{parts['prep'].capitalize()} the {parts['place']} in the {parts['room']}" if parts else record.text.rstrip(".")
    day = answering.when(record.timestamp)[:10]
    return f"{where}, on {day} during mission {record.mission_id} [{n}].", [n]


_REPHRASE: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (re.compile(r"^Where did we last see the (.+)\?$"),
     ("Where did we last see the {0}?", "Where was the {0} last seen?", "where's the {0} now?")),
    (re.compile(r"^Where did we see the (.+)\?$"),
     ("Where did we see the {0}?", "Where was the {0}?", "where did you spot the {0}", "Where is the {0}?")),
    (re.compile(r"^When did we first meet (.+)\?$"),
     ("When did we first meet {0}?", "When did we meet {0} for the first time?", "when did we first run into {0}")),
    (re.compile(r"^What did we see in the (.+) during mission (\S+)\?$"),
     ("What did we see in the {0} during mission {1}?", "Which objects were in the {0} during mission {1}?",
      "what was in the {0} in mission {1}")),
    (re.compile(r"^In which mission did we finish (.+)\?$"),
     ("In which mission did we finish {0}?", "Which mission did we finish {0} in?",
      "during which mission did we finish {0}")),
]


def rephrase(question: str, rng: random.Random) -> str:
    """The question in one of a few phrasings (training rows only; test items keep the scene's)."""
    for pattern, forms in _REPHRASE:
        found = pattern.match(question)
        if found:
            return rng.choice(forms).format(*found.groups())
    return question


def recall_items(scene: Scene, rng: random.Random, variants: int = 1, rephrased: bool = True) -> list[RecallItem]:
    """`variants` items per question of the scene: k, noise, hidden support and phrasing drawn anew."""
    pool = scene.records()
    items = []
    for question in scene.questions:
        for variant in range(variants):
            hide = question.kind != "not_seen" and rng.random() < HIDE_SUPPORT
            shown = simulated_evidence(question, pool, rng, rng.choice(KS), hide)
            asked = Question(**{**asdict(question), "question": rephrase(question.question, rng)}) if rephrased \
                else question
            answer, cited = gold_answer(asked, shown)
            items.append(RecallItem(f"{question.id}-v{variant}", asdict(asked), [r.model_dump() for r in shown],
                                    answer, cited, hide))
    return items


# -- splits ----------------------------------------------------------------------------------------


def scenes_of(split: str, seed: int, missions: int = 4, start: int = 0) -> Iterator[Scene]:
    index = start
    while True:
        yield make_scene(split, index, seed, missions)
        index += 1


def writing_items(split: str, seed: int, count: int, missions: int = 4) -> list[WriteItem]:
    """`count` write items from the split's scenes in order (one per observation, styles drawn
    per item; the first of every four keeps the scene's phrasing)."""
    rng = random.Random(f"records-writing:{split}:{seed}")
    items: list[WriteItem] = []
    for scene in scenes_of(split, seed, missions):
        for index, obs in enumerate(scene.observations):
            if len(items) >= count:
                return items
            items.append(write_item(obs, f"{scene.id}-o{index}", rng, plain=index % 4 == 0))
    return items


def recall_rows_items(split: str, seed: int, count: int, missions: int = 4, variants: int = 2) -> list[RecallItem]:
    rng = random.Random(f"records-recall:{split}:{seed}")
    items: list[RecallItem] = []
    for scene in scenes_of(split, seed, missions):
        items += recall_items(scene, rng, variants)
        if len(items) >= count:
            return items[:count]
    return items


def test_sets(seed: int, scenes: int, missions: int) -> tuple[list[Scene], list[WriteItem], list[RecallItem]]:
    """The held-out test scenes, every observation of them as a write item (so that writing them
    all rebuilds each robot's memory for the end-to-end run), and one recall item per question
    with the scene's own phrasing."""
    made = [make_scene("test", i, seed, missions) for i in range(scenes)]
    rng = random.Random(f"records-test:{seed}")
    writes = [write_item(obs, f"{scene.id}-o{i}", rng) for scene in made for i, obs in enumerate(scene.observations)]
    recalls = [item for scene in made for item in recall_items(scene, rng, 1, rephrased=False)]
    return made, writes, recalls


# -- sizes and files -------------------------------------------------------------------------------


@dataclass
class TaskPlan:
    """Rows of one task, and what training on them costs (an estimate printed before training)."""

    task: str
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    prefix_tokens: int  # the system prompt every row shares (the trainer holds it as a KV cache)
    row_tokens: list[int] = field(default_factory=list)  # per train row, beyond the prefix

    def estimate(self, tokens_per_second: float, grad_accum: int = 8) -> dict[str, Any]:
        steps = -(-len(self.train) // grad_accum)
        tokens = sum(self.row_tokens)
        # the prefix runs once per optimizer step, forward only: about a third of a training token
        seconds = (tokens + steps * self.prefix_tokens / 3) / tokens_per_second
        mean = tokens / len(self.row_tokens) if self.row_tokens else 0
        return {"train_rows": len(self.train), "validation_rows": len(self.validation),
                "prefix_tokens": self.prefix_tokens, "mean_row_tokens": round(mean, 1), "train_tokens": tokens,
                "optimizer_steps": steps, "tokens_per_second": tokens_per_second,
                "estimated_hours": round(seconds / 3600, 2)}


def row_tokens(row: dict[str, Any], count: Callable[[list[str]], list[int]], markup: int = 5) -> int:
    """Tokens of a row beyond its system prompt: the other messages' text plus the chat markup."""
    texts = [m["content"] for m in row["messages"][1:]]
    return sum(count(texts)) + markup * len(texts)


def rows_for_hours(make: Callable[[int], list[Any]], hours: float, tokens_per_second: float,
                   count: Callable[[list[str]], list[int]], probe: int = 200, grad_accum: int = 8) -> int:
    """How many rows fill `hours` of training at `tokens_per_second`, from the mean of `probe` rows
    (and the shared prompt's share per row, as `TaskPlan.estimate` counts it)."""
    rows = [item.row() for item in make(probe)]
    sample = [row_tokens(row, count) for row in rows]
    prefix = count([rows[0]["messages"][0]["content"]])[0] if rows else 0
    per_row = sum(sample) / max(1, len(sample)) + prefix / 3 / grad_accum
    return max(8, int(hours * 3600 * tokens_per_second / per_row))


def write_jsonl(path: Path, rows: Sequence[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


def run_records_datagen(out: Path, seed: int, writing_rows: int | None, recall_rows: int | None, hours: float,
                        tokens_per_second: float, test_scenes: int, test_missions: int,
                        count: Callable[[list[str]], list[int]], token_source: str) -> dict[str, Any]:
    """Writes out/writing/*, out/recall/* (train and validation rows, test items, stats.json) and
    out/scenes/test.jsonl; returns the stats. Row counts not given fill `hours` of training each."""
    plans: dict[str, TaskPlan] = {}
    makers: dict[str, Callable[[str, int], list[Any]]] = {
        "writing": lambda split, n: writing_items(split, seed, n),
        "recall": lambda split, n: recall_rows_items(split, seed, n),
    }
    asked = {"writing": writing_rows, "recall": recall_rows}
    for task, make in makers.items():
        n = asked[task] or rows_for_hours(lambda m, make=make: make("train", m), hours, tokens_per_second, count)
        train = [item.row() for item in make("train", n)]
        validation = [item.row() for item in make("validation", max(16, n // 10))]
        prefix = count([train[0]["messages"][0]["content"]])[0] if train else 0
        plans[task] = TaskPlan(task, train, validation, prefix, [row_tokens(r, count) for r in train])
    scenes, writes, recalls = test_sets(seed, test_scenes, test_missions)
    stats: dict[str, Any] = {"seed": seed, "token_counter": token_source, "tasks": {}}
    for task, plan in plans.items():
        folder = out / task
        write_jsonl(folder / "train.rows.jsonl", plan.train)
        write_jsonl(folder / "validation.rows.jsonl", plan.validation)
        items = writes if task == "writing" else recalls
        write_jsonl(folder / "test.items.jsonl", [asdict(item) for item in items])
        task_stats = {"task": f"records-{task}", "seed": seed, **plan.estimate(tokens_per_second),
                      "test_items": len(items)}
        (folder / "stats.json").write_text(json.dumps(task_stats, indent=2) + "\n")
        stats["tasks"][task] = task_stats
    (out / "scenes").mkdir(parents=True, exist_ok=True)
    with (out / "scenes" / "test.jsonl").open("w", encoding="utf-8") as handle:
        for scene in scenes:
            handle.write(scene.to_json() + "\n")
    stats["test"] = {"scenes": len(scenes), "missions_per_scene": test_missions, "write_items": len(writes),
                     "recall_items": len(recalls), "questions_hidden_support": sum(r.hidden for r in recalls),
                     "questions_without_support": sum(not r.citations for r in recalls)}
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats
