"""The smaller robustness defects: resource errors, `~`, symlinks, empty and lower-case tokens,
temporary files left by a killed writer, SQLite start-up errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from wire import free_port, wait_for_port

from memlora.server.app import build_server
from memlora.store import open_store
from memlora.store.graph import Entity, StoreError

ANA = '{"type":"entity","name":"Ana","entityType":"person","observations":[]}'


def test_resource_on_a_corrupt_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    path.write_text(ANA, encoding="utf-8")
    store = open_store(f"jsonl:{path}")
    path.write_text(ANA + "\n{oops", encoding="utf-8")  # damaged while the server runs

    async def run() -> str:
        async with Client(build_server(store)) as client:
            with pytest.raises(MCPError) as caught:
                await client.read_resource("memory://knowledge-graph")
            return str(caught.value)

    message = anyio.run(run)
    assert f"{path}, line 2: not valid JSON" in message


def test_tilde_in_a_store_url_is_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for url in ("jsonl:~/notes/memory.jsonl", "sqlite:~/notes/memory.db"):
        with open_store(url) as store:
            store.create_entities([Entity("Ana", "person", [])])
    assert sorted(p.name for p in (home / "notes").iterdir() if not p.name.startswith("memory.db-")) == [
        "memory.db", "memory.jsonl", "memory.jsonl.lock",
    ]
    assert not (work / "~").exists()


def test_a_store_reached_through_a_symlink_stays_one_file(tmp_path: Path) -> None:
    real = tmp_path / "data" / "memory.jsonl"
    real.parent.mkdir()
    real.write_text(ANA, encoding="utf-8")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    with open_store(f"jsonl:{link}") as store:
        store.create_entities([Entity("Bo", "city", [])])
    assert link.is_symlink()
    assert '"name":"Bo"' in real.read_text(encoding="utf-8")
    with open_store(f"jsonl:{real}") as store:
        assert [e.name for e in store.read_graph().entities] == ["Ana", "Bo"]


KILLED_WRITER = """
import os, signal, sys
from memlora.store import open_store
from memlora.store.graph import Entity
store = open_store(sys.argv[1])
fsync = os.fsync
def stop_after_the_copy_is_written(fd):
    fsync(fd)
    os.kill(os.getpid(), signal.SIGSTOP)  # frozen between writing its copy and renaming it
os.fsync = stop_after_the_copy_is_written
store.create_entities([Entity("Bo", "city", [])])
"""


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_copy_left_by_a_writer_killed_mid_write_is_removed_at_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    path.write_text(ANA, encoding="utf-8")
    (tmp_path / "memory.jsonl.notes.tmp").write_text("not memlora's", encoding="utf-8")
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, f"jsonl:{path}"])
    try:
        deadline = time.monotonic() + 120
        while len(temp_files(tmp_path)) < 2:
            assert writer.poll() is None and time.monotonic() < deadline, "the writer never wrote its copy"
            time.sleep(0.05)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert len(temp_files(tmp_path)) == 2  # the orphan is there
    with open_store(f"jsonl:{path}") as store:
        assert [e.name for e in store.read_graph().entities] == ["Ana"]
    assert temp_files(tmp_path) == ["memory.jsonl.notes.tmp"]  # only memlora's own copies go
    assert path.read_text(encoding="utf-8") == ANA


@pytest.mark.parametrize("kind", ["folder", "under-a-file"])
def test_sqlite_start_up_errors_name_the_file(tmp_path: Path, kind: str) -> None:
    if kind == "folder":
        path = tmp_path / "memory.db"
        path.mkdir()
    else:
        (tmp_path / "plain").write_text("x", encoding="utf-8")
        path = tmp_path / "plain" / "memory.db"
    with pytest.raises(StoreError) as caught:
        open_store(f"sqlite:{path}")
    assert str(path) in str(caught.value)
    result = subprocess.run(
        [sys.executable, "-m", "memlora.cli", "serve", "--store", f"sqlite:{path}"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0 and str(path) in result.stderr and "Traceback" not in result.stderr


# -- the HTTP bearer token ------------------------------------------------------------------------


def serve_http(tmp_path: Path, token: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "memlora.cli", "serve", "--store", f"sqlite:{tmp_path / 'm.db'}", "--http", str(port)],
        env={**os.environ, "MEMLORA_TOKEN": token},
        stderr=subprocess.PIPE,
    )
    return process, port


def test_an_empty_token_is_refused_not_taken_as_no_auth(tmp_path: Path) -> None:
    process, _ = serve_http(tmp_path, "")
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode != 0
    assert b"MEMLORA_TOKEN is set but empty" in stderr


@pytest.fixture
def http_url(tmp_path: Path) -> Iterator[str]:
    process, port = serve_http(tmp_path, "s3cret")
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(("header", "status"), [("bearer s3cret", 200), ("BEARER s3cret", 200), ("Bearer  s3cret", 200),
                                                 ("Bearer wrong", 401), ("Basic s3cret", 401), ("s3cret", 401)])
def test_the_bearer_scheme_is_case_insensitive(http_url: str, header: str, status: int) -> None:
    initialize: dict[str, Any] = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    response = httpx2.post(
        http_url, json=initialize, timeout=60,
        headers={"Authorization": header, "Accept": "application/json, text/event-stream"},
    )
    assert response.status_code == status
