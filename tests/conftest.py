"""Shared fixtures: a store of each backend in a temporary folder, and a tiny real file system."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from memlora.store import MemoryStore, open_store

BACKENDS = ["sqlite", "jsonl"]


def store_url(backend: str, folder: Path) -> str:
    return f"sqlite:{folder / 'memory.db'}" if backend == "sqlite" else f"jsonl:{folder / 'memory.jsonl'}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def url(backend: str, tmp_path: Path) -> str:
    """The URL of a fresh store of the parametrized backend."""
    return store_url(backend, tmp_path)


@pytest.fixture
def store(url: str) -> Iterator[MemoryStore]:
    with open_store(url) as opened:
        yield opened


def mount(args: list[str]) -> None:
    """Runs `mount`; skips the test, saying why, where this machine does not allow it."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({' '.join(args)}): {result.stderr.strip() or result.returncode}")


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs (root only; skipped elsewhere), unmounted afterwards."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    mount(["-t", "tmpfs", "-o", "size=256k,mode=0777", "tmpfs", str(folder)])
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="session")
def generated_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small `memlora datagen --episodes 6 --seed 3` folder, made once per test session."""
    from memlora.data.commands import run_datagen

    folder = tmp_path_factory.mktemp("datagen-6-3")
    run_datagen(6, 3, folder, workers=1, progress=False)
    return folder


@pytest.fixture(scope="session")
def minilm():
    """The real bundled all-MiniLM-L6-v2, loaded once per test session."""
    from memlora.records.embedding import MiniLMEmbedder

    return MiniLMEmbedder()
