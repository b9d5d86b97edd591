"""One long `memlora train sft` run, trained in sittings on whatever machine a session has.

No single session has the compute for thousands of session rows on 2 CPU cores, so the run is
cut into sittings and its state lives in the repository, in one folder that each sitting
overwrites (`RUN/checkpoint/`: adapter, optimizer, scheduler and random states, trainer state).
A sitting on a fresh machine:

1. regenerates the run's data at the commit the run started from (a later change to the
   generator or the corpus cannot change it) and checks the rows' sha256 against `run.json`;
2. restores the committed checkpoint into the work folder (gitignored `runs/`);
3. trains under `nice` for a time budget (`--max-minutes`), resuming with the same data order
   and learning-rate schedule;
4. writes the newest checkpoint back into `RUN/checkpoint/`, with the loss history, the plot,
   and a record of the machine (CPU model, bf16 instructions), dtype, steps, tokens and seconds.

    python scripts/long_run.py start --run training-runs/qwen-long --episodes 640 --seed 17 -- --eval-every 20
    python scripts/long_run.py sit --run training-runs/qwen-long --minutes 120
    python scripts/long_run.py status --run training-runs/qwen-long

Commit RUN after a sitting; the next one, anywhere, goes on from there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT_FILES = ("adapter_model.safetensors", "adapter_config.json", "optimizer.pt", "scheduler.pt",
                    "rng_state.pth", "trainer_state.json", "training_args.bin")
ROW_FILES = ("train.rows.jsonl", "validation.rows.jsonl")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout.strip()


def load(run: Path) -> dict[str, Any]:
    path = run / "run.json"
    if not path.exists():
        sys.exit(f"{path} not found: start the run first (python scripts/long_run.py start --run {run} ...)")
    return json.loads(path.read_text())


def save(run: Path, record: dict[str, Any]) -> None:
    (run / "run.json").write_text(json.dumps(record, indent=2) + "\n")


def work_folder(run: Path) -> Path:
    return REPO / "runs" / run.name


def ensure_data(record: dict[str, Any], data: Path) -> None:
    """The run's rows, byte for byte: regenerated at the run's commit unless already here."""
    wanted = record["data_sha256"]
    if all((data / name).exists() and sha256(data / name) == wanted[name] for name in wanted):
        return
    commit = record["code_commit"]
    print(f"regenerating the run's data at commit {commit[:12]} into {data}", flush=True)
    with tempfile.TemporaryDirectory(prefix="memlora-data-") as scratch:
        tree = Path(scratch) / "tree"
        git("worktree", "add", "--detach", str(tree), commit)
        try:
            shutil.rmtree(data, ignore_errors=True)
            # python -m from the worktree imports that commit's memlora (the cwd comes first)
            subprocess.run([sys.executable, "-m", "memlora.cli", "datagen", *record["datagen"], "--out", str(data),
                            "--quiet"], cwd=tree, check=True)
        finally:
            git("worktree", "remove", "--force", str(tree))
    found = {name: sha256(data / name) for name in wanted}
    if found != wanted:
        sys.exit(f"the regenerated rows differ from the run's: {found} != {wanted}. The generator is not "
                 "deterministic on this machine; do not resume this run with other data.")


def checkpoint_step(folder: Path) -> int:
    return int(json.loads((folder / "trainer_state.json").read_text())["global_step"])


def newest_checkpoint(adapter: Path) -> Path | None:
    found = [p for p in (adapter / "checkpoints").glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(found, key=checkpoint_step) if found else None


def restore(run: Path, adapter: Path) -> None:
    """Copies the committed checkpoint into the trainer's checkpoint folder when it is newer."""
    committed = run / "checkpoint"
    if not (committed / "trainer_state.json").exists():
        return
    step = checkpoint_step(committed)
    local = newest_checkpoint(adapter)
    if local is not None and checkpoint_step(local) >= step:
        return
    target = adapter / "checkpoints" / f"checkpoint-{step}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(committed, target)
    print(f"restored checkpoint {step} from {committed}", flush=True)


def keep(run: Path, adapter: Path) -> dict[str, Any]:
    """The newest checkpoint into RUN/checkpoint (overwritten), with the loss history and plot."""
    newest = newest_checkpoint(adapter)
    if newest is None:
        return {}
    committed = run / "checkpoint"
    staging = run / "checkpoint.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in CHECKPOINT_FILES:
        if (newest / name).exists():
            shutil.copy2(newest / name, staging / name)
    shutil.rmtree(committed, ignore_errors=True)
    staging.rename(committed)
    state = json.loads((committed / "trainer_state.json").read_text())
    (run / "training_log.json").write_text(json.dumps(state["log_history"], indent=1) + "\n")
    if (adapter / "loss.png").exists():
        shutil.copy2(adapter / "loss.png", run / "loss.png")
    return state


def progress(state: dict[str, Any]) -> tuple[int, int, float]:
    """(optimizer step, tokens trained, training seconds) of a trainer state, 0 when empty."""
    tokens, seconds = 0, 0.0
    for entry in reversed(state.get("log_history", [])):
        if "tokens_processed" in entry:
            tokens, seconds = int(entry["tokens_processed"]), float(entry.get("train_seconds", 0.0))
            break
    return int(state.get("global_step", 0)), tokens, seconds


def machine() -> str:
    """The CPU of this sitting, as memlora's benchmarks describe it (model, CPUs, avx2/avx512f, bf16)."""
    out = subprocess.run([sys.executable, "-c", "from memlora.models.loading import cpu_description as d; print(d())"],
                         cwd=REPO, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def start(args: argparse.Namespace) -> None:
    run = Path(args.run)
    if (run / "run.json").exists():
        sys.exit(f"{run}/run.json exists: this run has started; use `sit`")
    dirty = git("status", "--porcelain", "--", "memlora", "corpus")
    if dirty:
        sys.exit("memlora/ or corpus/ has uncommitted changes; the run's data must come from a commit:\n" + dirty)
    record: dict[str, Any] = {
        "code_commit": git("rev-parse", "HEAD"),
        "datagen": ["--episodes", str(args.episodes), "--seed", str(args.seed)],
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "sittings": [],
    }
    data = work_folder(run) / "data"
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "memlora.cli", "datagen", *record["datagen"], "--out", str(data), "--quiet"],
                   cwd=REPO, check=True)
    record["data_sha256"] = {name: sha256(data / name) for name in ROW_FILES}
    rows = sum(1 for line in (data / "train.rows.jsonl").open("rb") if line.strip())
    train = list(args.train_args)
    if "--max-steps" not in train:
        batch = int(train[train.index("--batch-size") + 1]) if "--batch-size" in train else 1
        accum = int(train[train.index("--grad-accum") + 1]) if "--grad-accum" in train else 8
        train += ["--max-steps", str(math.ceil(args.epochs * rows / (batch * accum)))]
    record["train_rows"] = rows
    record["train_args"] = train
    run.mkdir(parents=True, exist_ok=True)
    save(run, record)
    print(json.dumps(record, indent=2))


def sit(args: argparse.Namespace) -> None:
    run = Path(args.run)
    record = load(run)
    work = work_folder(run)
    ensure_data(record, work / "data")
    adapter = work / "adapter"
    restore(run, adapter)
    before = newest_checkpoint(adapter)
    step0, tokens0, seconds0 = progress(json.loads((before / "trainer_state.json").read_text())) if before else (0, 0, 0.0)
    command = ["nice", "-n", str(args.nice), sys.executable, "-m", "memlora.cli", "train", "sft",
               "--data", str(work / "data"), "--out", str(adapter), *record["train_args"],
               "--resume", "--max-minutes", str(args.minutes)]
    if args.threads:  # a machine setting, not part of the run: 1 leaves the other core to other work
        command += ["--threads", str(args.threads)]
    started = dt.datetime.now(dt.timezone.utc)
    commit = git("rev-parse", "HEAD")  # the code this sitting trains with
    print(" ".join(command), flush=True)
    result = subprocess.run(command, cwd=REPO)
    state = keep(run, adapter)
    step1, tokens1, seconds1 = progress(state)
    card = json.loads((adapter / "card.json").read_text()) if (adapter / "card.json").exists() else {}
    if step1 > step0:
        record["sittings"].append({
            "date": started.isoformat(timespec="seconds"),
            "machine": machine(),
            "dtype": card.get("training", {}).get("dtype"),
            "threads": args.threads,
            "code_commit": commit,
            "steps": [step0, step1],
            "tokens": tokens1 - tokens0,
            "train_seconds": round(seconds1 - seconds0, 1),
            "tokens_per_second": round((tokens1 - tokens0) / (seconds1 - seconds0), 1) if seconds1 > seconds0 else None,
            "exit_code": result.returncode,
        })
        save(run, record)
    status(args)
    if result.returncode:
        sys.exit(result.returncode)


def status(args: argparse.Namespace) -> None:
    run = Path(args.run)
    record = load(run)
    steps = int(record["train_args"][record["train_args"].index("--max-steps") + 1])
    committed = run / "checkpoint" / "trainer_state.json"
    step, tokens, seconds = progress(json.loads(committed.read_text())) if committed.exists() else (0, 0, 0.0)
    print(f"{run}: step {step} of {steps} ({100 * step / steps:.1f}%), {record['train_rows']} train rows, "
          f"{tokens} tokens in {seconds / 3600:.2f} h over {len(record['sittings'])} sitting(s)")
    for sitting in record["sittings"]:
        print(f"  {sitting['date']}  {sitting['machine']}  {sitting['dtype']}  steps {sitting['steps']}  "
              f"{sitting['tokens_per_second']} tok/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    begin = commands.add_parser("start", help="generate the data, pin it and the training settings in RUN/run.json")
    begin.add_argument("--run", required=True, help="committed folder of the run, e.g. training-runs/qwen-long")
    begin.add_argument("--episodes", type=int, required=True)
    begin.add_argument("--seed", type=int, required=True)
    begin.add_argument("--epochs", type=float, default=1.0, help="sets --max-steps from the row count")
    begin.add_argument("train_args", nargs="*", help="after --: memlora train sft options (not --data/--out)")
    sitting = commands.add_parser("sit", help="train for a time budget and keep the newest checkpoint in RUN")
    sitting.add_argument("--run", required=True)
    sitting.add_argument("--minutes", type=float, required=True)
    sitting.add_argument("--nice", type=int, default=10)
    sitting.add_argument("--threads", type=int, default=None,
                         help="torch threads of the trainer (default: one per core); 1 keeps a core free for "
                              "other work without stalling the trainer's threads at every barrier")
    show = commands.add_parser("status", help="where the run stands")
    show.add_argument("--run", required=True)
    args = parser.parse_args()
    {"start": start, "sit": sit, "status": status}[args.command](args)


if __name__ == "__main__":
    main()
