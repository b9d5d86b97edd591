"""The adapter table of docs/benchmarks.md, evaluated in sittings and committed as it grows.

Choosing which adapter ships takes hundreds of episodes per adapter, hours of CPU each, so the
evaluation runs in sittings like the training run (scripts/long_run.py): each sitting goes on
with `memlora eval` where the last one stopped (it resumes per finished episode), for a time
budget, and the finished episodes' results stay in `evaluations/<label>/<split>/` to commit.

The test sets are regenerated, never committed: the generated split is `generate_episode(17,
"test", i)` for i < 200 (the long run's own test file is its first 64), the hand-written one is
the corpus's held-out fifth. `evaluations/episodes.json` holds their sha256; a sitting refuses
other bytes, so a later change to the generator or the corpus cannot mix two test sets.

    python scripts/adapter_table.py episodes            # writes runs/eval-sets/, checks the sha256
    python scripts/adapter_table.py sit --label shipped --minutes 60
    python scripts/adapter_table.py sit --label bare --adapter none --minutes 60 --split handwritten
    python scripts/adapter_table.py table               # every label and split, side by side

Commit `evaluations/` after a sitting.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVALUATIONS = REPO / "evaluations"
SETS = REPO / "runs" / "eval-sets"
MANIFEST = EVALUATIONS / "episodes.json"
GENERATED_SEED, GENERATED_EPISODES = 17, 200
SPLITS = {"generated": "generated-test.episodes.jsonl", "handwritten": "handwritten-test.episodes.jsonl"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_sets() -> dict[str, str]:
    """Writes both test files into runs/eval-sets/ and returns their sha256."""
    import orjson

    from memlora.data.commands import load_handwritten
    from memlora.data.generator import generate_episode

    SETS.mkdir(parents=True, exist_ok=True)
    with (SETS / SPLITS["generated"]).open("wb") as handle:
        for index in range(GENERATED_EPISODES):
            episode = generate_episode(GENERATED_SEED, "test", index).episode
            handle.write(orjson.dumps(episode, option=orjson.OPT_APPEND_NEWLINE))
    corpus = load_handwritten(REPO / "corpus" / "handwritten")
    with (SETS / SPLITS["handwritten"]).open("wb") as handle:
        for checked in corpus.test:
            handle.write(orjson.dumps(checked.episode, option=orjson.OPT_APPEND_NEWLINE))
    return {split: sha256(SETS / name) for split, name in SPLITS.items()}


def episodes(args: argparse.Namespace) -> None:
    digests = write_sets()
    if not MANIFEST.exists() or args.record:
        EVALUATIONS.mkdir(exist_ok=True)
        MANIFEST.write_text(json.dumps({
            "generated": {"seed": GENERATED_SEED, "episodes": GENERATED_EPISODES, "split": "test"},
            "handwritten": {"corpus": "corpus/handwritten", "split": "test (memlora.data.handwritten.corpus_split)"},
            "sha256": digests,
        }, indent=1) + "\n")
        print(f"recorded {MANIFEST.relative_to(REPO)}")
    expected = json.loads(MANIFEST.read_text())["sha256"]
    wrong = [split for split in SPLITS if expected.get(split) != digests[split]]
    if wrong:
        sys.exit(f"{', '.join(wrong)}: the regenerated test set differs from {MANIFEST.relative_to(REPO)}; the "
                 "generator or the corpus changed since the table was started. Check out the commit that "
                 "recorded it to go on, or start a new table with --record (and new labels).")
    for split, name in SPLITS.items():
        count = sum(1 for _ in (SETS / name).open())
        print(f"{split}: {count} episodes in {(SETS / name).relative_to(REPO)}  sha256 {digests[split][:16]}…")


def sit(args: argparse.Namespace) -> None:
    episodes(argparse.Namespace(record=False))
    splits = [args.split] if args.split else list(SPLITS)
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    deadline = time.monotonic() + args.minutes * 60
    for split in splits:
        out = EVALUATIONS / args.label / split
        left = int(deadline - time.monotonic())
        if left < 60:
            break
        command = ["nice", "-n", str(args.nice), "timeout", "--signal=INT", "--kill-after=120", str(left),
                   sys.executable, "-m", "memlora.cli", "eval", str(SETS / SPLITS[split]), "--out", str(out),
                   "--model", args.model, "--concurrency", str(args.concurrency), "--quiet"]
        if args.adapter:
            command += ["--adapter", args.adapter]
        print(" ".join(command), flush=True)
        result = subprocess.run(command, cwd=REPO, env=env)
        if result.returncode in (124, 130, -2):  # the budget ran out: score what finished
            subprocess.run([sys.executable, "-m", "memlora.cli", "eval", str(SETS / SPLITS[split]), "--out", str(out),
                            "--rescore"], cwd=REPO, env=env, stdout=subprocess.DEVNULL)
            print(f"{out.relative_to(REPO)}: time budget spent; commit it and sit again to go on")
            break
        if result.returncode:
            sys.exit(result.returncode)


def table(args: argparse.Namespace) -> None:
    for split in SPLITS:
        folders = sorted(p.parent for p in EVALUATIONS.glob(f"*/{split}/report.json"))
        if not folders:
            continue
        print(f"### {split} test split\n")
        subprocess.run([sys.executable, "-m", "memlora.cli", "compare", *map(str, folders)], cwd=REPO, check=True)
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("episodes", help="write the test sets and check them against the manifest")
    make.add_argument("--record", action="store_true", help="record their sha256 (starts a new table)")
    sitting = commands.add_parser("sit", help="go on evaluating one label for a time budget")
    sitting.add_argument("--label", required=True, help="folder name under evaluations/, e.g. shipped, bare")
    sitting.add_argument("--model", default="qwen2.5-coder-0.5b")
    sitting.add_argument("--adapter", default=None, help="adapter folder, or none (default: the shipped one)")
    sitting.add_argument("--split", choices=list(SPLITS), default=None, help="default: both, generated first")
    sitting.add_argument("--minutes", type=float, required=True, help="budget of this sitting, all splits together")
    sitting.add_argument("--concurrency", type=int, default=16)
    sitting.add_argument("--threads", type=int, default=None, help="OpenMP threads (1 leaves a core free)")
    sitting.add_argument("--nice", type=int, default=10)
    commands.add_parser("table", help="print every label's reports side by side, per split")
    args = parser.parse_args()
    {"episodes": episodes, "sit": sit, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
