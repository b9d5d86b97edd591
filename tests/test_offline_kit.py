"""scripts/offline_kit.py: weights split into checked pieces join back only when every piece is right."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "offline_kit.py"


@pytest.fixture(scope="module")
def kit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("offline_kit", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_kit(kit: ModuleType, folder: Path, size: int = 2_500_000, piece: int = 1_000_000) -> tuple[Path, bytes]:
    """A kit of a random 'model file' in pieces, as `pack` writes one (without the download)."""
    data = os.urandom(size)
    whole = folder / "model.gguf"
    whole.write_bytes(data)
    pieces = kit.split_into_pieces(whole, folder, piece)
    whole.unlink()
    manifest = {"model": "some-model", "file": "model.gguf", "bytes": size,
                "sha256": hashlib.sha256(data).hexdigest(), "pieces": pieces}
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path, data


def test_pieces_from_several_folders_join_into_the_checked_file(kit: ModuleType, tmp_path: Path) -> None:
    manifest, data = make_kit(kit, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("gguf.*")) == ["gguf.00", "gguf.01", "gguf.02"]
    elsewhere = tmp_path / "received"
    elsewhere.mkdir()
    (tmp_path / "gguf.01").rename(elsewhere / "gguf.01")  # arrived in another load
    kit.unpack(manifest, [tmp_path, elsewhere], tmp_path / "cache")
    assert (tmp_path / "cache" / "gguf" / "model.gguf").read_bytes() == data


def test_a_missing_or_damaged_piece_is_named_and_nothing_is_written(kit: ModuleType, tmp_path: Path) -> None:
    manifest, _ = make_kit(kit, tmp_path)
    (tmp_path / "gguf.02").unlink()
    damaged = bytearray((tmp_path / "gguf.00").read_bytes())
    damaged[10] ^= 0xFF
    (tmp_path / "gguf.00").write_bytes(bytes(damaged))
    with pytest.raises(SystemExit, match=r"missing \['gguf.02'\], corrupt \['gguf.00'\]"):
        kit.unpack(manifest, [tmp_path], tmp_path / "cache")
    assert not (tmp_path / "cache" / "gguf").exists()


def test_pieces_of_another_file_are_refused_after_joining(kit: ModuleType, tmp_path: Path) -> None:
    manifest_path, _ = make_kit(kit, tmp_path)
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = "0" * 64  # pieces that check out one by one but belong to another file
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(SystemExit, match="does not match its sha256"):
        kit.unpack(manifest_path, [tmp_path], tmp_path / "cache")
    assert list((tmp_path / "cache" / "gguf").iterdir()) == []  # the partial file is gone too
