"""memlora's JSONL lock excludes memlora processes only; the docs say so and say what to do.

The reference server never takes `<file>.lock`: while a memlora process holds it (as it does
through every write), the reference still reads and rewrites the file, which is how a file
shared with a running reference can lose writes. Shown with the real reference server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from wire import LockHolder

from memlora.store import open_store
from memlora.store.graph import Entity, StoreBusyError

DOCS = Path(__file__).resolve().parent.parent / "docs"
ANA = '{"type":"entity","name":"Ana","entityType":"person","observations":[]}'


@pytest.mark.node
def test_the_reference_server_writes_through_memloras_lock(tmp_path: Path) -> None:
    from test_conformance import reference_entry_point

    script = reference_entry_point()
    path = tmp_path / "memory.jsonl"
    path.write_text(ANA, encoding="utf-8")
    params = StdioServerParameters(command="node", args=[str(script)], env={**os.environ, "MEMORY_FILE_PATH": str(path)})

    async def reference_creates_bo() -> Any:
        async with stdio_client(params, errlog=open(os.devnull, "w")) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            with anyio.fail_after(60):
                return await session.call_tool("create_entities", {"entities": [{"name": "Bo", "entityType": "city", "observations": []}]})

    with open_store(f"jsonl:{path}", lock_timeout=0.5) as store, LockHolder("jsonl", path):
        with pytest.raises(StoreBusyError):  # another memlora process would wait ...
            store.create_entities([Entity("Cy", "person", [])])
        result = anyio.run(reference_creates_bo)  # ... the reference does not
        assert not result.is_error
        assert '"name":"Bo"' in path.read_text(encoding="utf-8")


def test_docs_state_the_lock_scope_and_the_remedy() -> None:
    server = " ".join((DOCS / "server.md").read_text(encoding="utf-8").split())
    compatibility = " ".join((DOCS / "compatibility.md").read_text(encoding="utf-8").split())
    assert "only excludes other **memlora** processes" in server
    assert "Stop the reference server before pointing memlora at its file" in server
    assert "shared with a running reference server can lose writes, so stop the reference first" in compatibility
    for guarantee in ("A process crash", "A power cut or OS crash", "synchronous=NORMAL", "Lock scope"):
        assert guarantee in server
