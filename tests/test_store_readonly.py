"""A read-only JSONL store can be read (as the reference reads it); writes fail saying why."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import mount
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from wire import run_unprivileged

from memlora.store import open_store
from memlora.store.graph import Entity, StorageError

FILE = '{"type":"entity","name":"Ana","entityType":"person","observations":["likes jazz"]}'

READ_THEN_WRITE = """
import sys
from memlora.store import open_store
from memlora.store.graph import Entity
with open_store(sys.argv[1]) as store:
    print(sorted(e.name for e in store.read_graph().entities), [e.name for e in store.search_nodes("JAZZ").entities],
          [e.name for e in store.open_nodes(["Ana"]).entities])
    store.create_entities([Entity("Bo", "city", [])])
"""


def test_reads_create_no_lock_file(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    path.write_text(FILE, encoding="utf-8")
    with open_store(f"jsonl:{path}") as store:
        store.read_graph()
        store.search_nodes("jazz")
        store.open_nodes(["Ana"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.jsonl"]


def test_opening_a_store_in_a_missing_folder_creates_nothing_until_the_first_write(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "memory.jsonl"
    with open_store(f"jsonl:{path}") as store:
        assert store.read_graph().entities == []
        assert not (tmp_path / "not").exists()
        store.create_entities([Entity("Ana", "person", [])])
    assert path.exists()


def test_read_only_file_system_reads_work_and_writes_say_erofs(tmp_path: Path, tiny_fs: Path) -> None:
    path = tiny_fs / "memory.jsonl"
    path.write_text(FILE, encoding="utf-8")
    mount(["-o", "remount,ro", str(tiny_fs)])
    with open_store(f"jsonl:{path}") as store:
        assert [e.name for e in store.read_graph().entities] == ["Ana"]
        assert [e.name for e in store.search_nodes("JAZZ").entities] == ["Ana"]
        with pytest.raises(StorageError) as caught:
            store.create_entities([Entity("Bo", "city", [])])
    assert str(caught.value) == f"cannot write {path}: read-only file system (EROFS); nothing was changed"
    assert path.read_text(encoding="utf-8") == FILE


def test_read_only_folder_reads_work_and_writes_say_eacces(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "memory.jsonl"
    path.write_text(FILE, encoding="utf-8")
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        output = run_unprivileged(READ_THEN_WRITE, f"jsonl:{path}")
    finally:
        folder.chmod(0o755)
    assert output.splitlines() == [
        "['Ana'] ['Ana'] ['Ana']",
        f"cannot write {path}: permission denied (EACCES); nothing was changed",
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["memory.jsonl"]


def test_read_only_file_in_a_writable_folder_is_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    path.write_text(FILE, encoding="utf-8")
    path.chmod(0o444)
    output = run_unprivileged(READ_THEN_WRITE, f"jsonl:{path}")
    assert output.splitlines()[-1] == f"cannot write {path}: permission denied (EACCES); nothing was changed"
    assert path.read_text(encoding="utf-8") == FILE
    assert path.stat().st_mode & 0o777 == 0o444


def test_mcp_server_on_a_read_only_file_system_answers_reads(tiny_fs: Path) -> None:
    path = tiny_fs / "memory.jsonl"
    path.write_text(FILE, encoding="utf-8")
    mount(["-o", "remount,ro", str(tiny_fs)])
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "memlora.cli", "serve", "--store", f"jsonl:{path}"], env=dict(os.environ)
    )

    async def run() -> tuple[Any, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            graph = await session.call_tool("read_graph", {})
            created = await session.call_tool("create_entities", {"entities": [{"name": "Bo", "entityType": "city", "observations": []}]})
            return graph, created

    graph, created = anyio.run(run)
    assert not graph.is_error and [e["name"] for e in graph.structured_content["entities"]] == ["Ana"]
    assert created.is_error
    assert created.content[0].text == f"cannot write {path}: read-only file system (EROFS); nothing was changed"
