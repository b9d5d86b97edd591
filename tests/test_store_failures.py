"""Disk full, read-only file systems and permission denied: a clear error naming the store, nothing lost.

These use real file systems: a tmpfs of 256 KiB for a full disk, the same remounted read-only,
and for permission denied a process without the root capabilities that bypass file modes. Each
test skips, saying why, where the machine refuses to set that up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import mount, store_url
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from wire import run_unprivileged

from memlora.store import open_store
from memlora.store.graph import Entity, StorageError, StoreError

# About 400 KB of observations: more than the whole 256 KiB file system.
TOO_BIG = [Entity(f"Big{i}", "blob", [f"{i}.{j} " + "x" * 4000 for j in range(10)]) for i in range(10)]


def seed(url: str) -> None:
    with open_store(url) as store:
        store.create_entities([Entity("Ana", "person", ["likes jazz"])])


def names(url: str) -> set[str]:
    with open_store(url) as store:
        return {e.name for e in store.read_graph().entities}


def path_of(url: str) -> str:
    return url.split(":", 1)[1]


def assert_names_only_the_store(message: str, url: str) -> None:
    assert path_of(url) in message
    assert ".tmp" not in message and ".lock" not in message and "Traceback" not in message


def test_disk_full_names_the_store_and_enospc_and_loses_nothing(backend: str, tiny_fs: Path) -> None:
    url = store_url(backend, tiny_fs)
    seed(url)
    with open_store(url) as store, pytest.raises(StorageError) as caught:
        store.create_entities(TOO_BIG)
    assert str(caught.value) == f"cannot write {path_of(url)}: no space left on device (ENOSPC); nothing was changed"
    assert_names_only_the_store(str(caught.value), url)
    assert names(url) == {"Ana"}
    assert not [p.name for p in tiny_fs.iterdir() if p.name.endswith(".tmp")]


def test_disk_full_reaches_an_mcp_client_as_a_tool_error(backend: str, tiny_fs: Path) -> None:
    url = store_url(backend, tiny_fs)
    seed(url)
    params = StdioServerParameters(command=sys.executable, args=["-m", "memlora.cli", "serve", "--store", url], env=dict(os.environ))

    async def run() -> Any:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            big = [{"name": e.name, "entityType": e.entity_type, "observations": e.observations} for e in TOO_BIG]
            return await session.call_tool("create_entities", {"entities": big})

    result = anyio.run(run)
    assert result.is_error
    assert result.content[0].text == f"cannot write {path_of(url)}: no space left on device (ENOSPC); nothing was changed"
    assert names(url) == {"Ana"}


def test_read_only_file_system_is_erofs(backend: str, tiny_fs: Path) -> None:
    url = store_url(backend, tiny_fs)
    seed(url)
    mount(["-o", "remount,ro", str(tiny_fs)])
    with pytest.raises(StoreError) as caught:
        with open_store(url) as store:
            store.create_entities([Entity("Bo", "city", [])])
    assert "read-only file system (EROFS)" in str(caught.value)
    assert_names_only_the_store(str(caught.value), url)


# -- permission denied: root ignores file modes, so drop the capabilities that let it ----------

WRITE_SCRIPT = """
import sys
from memlora.store import open_store
from memlora.store.graph import Entity
with open_store(sys.argv[1]) as store:
    store.create_entities([Entity("Bo", "city", [])])
"""


def test_permission_denied_is_eacces(backend: str, tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    url = store_url(backend, folder)
    seed(url)
    for path in folder.iterdir():
        path.chmod(0o444)
    folder.chmod(0o555)
    try:
        message = run_unprivileged(WRITE_SCRIPT, url)
    finally:
        folder.chmod(0o755)
    assert "permission denied (EACCES)" in message, message
    assert_names_only_the_store(message, url)
    assert names(url) == {"Ana"}


def test_an_untranslated_failure_still_says_why_and_names_no_file() -> None:
    import errno

    from memlora.store.failures import unexpected_failure

    message = str(unexpected_failure(OSError(errno.ENOSPC, "No space left on device", "/home/me/secret/tmp123")))
    assert message == "cannot use the store: no space left on device (ENOSPC)"
