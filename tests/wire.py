"""Test helpers that talk to a real `memlora serve` process in raw bytes, as no SDK client would."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PROTOCOL_VERSION = "2025-06-18"


class StdioServer:
    """`memlora serve` over stdio, fed whatever bytes a test likes; replies are collected by id."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "memlora.cli", "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self.replies: dict[Any, dict[str, Any]] = {}
        self.null_replies: list[dict[str, Any]] = []
        self.stderr = b""
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr += line

    def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data + b"\n")
        self.process.stdin.flush()

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(json.dumps(message).encode())

    def wait_for(self, ident: Any, timeout: float = 60) -> dict[str, Any]:
        """The reply to request `ident`; fails if none comes within `timeout` (a generous bound)."""
        deadline = time.monotonic() + timeout
        while ident not in self.replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no reply to request {ident!r} within {timeout} s; stderr: {self.stderr[-2000:]!r}")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"server closed stdout before answering {ident!r}; stderr: {self.stderr[-2000:]!r}")
            message = json.loads(line)
            if "id" not in message:
                continue  # a notification from the server
            if message["id"] is None:
                self.null_replies.append(message)
            else:
                self.replies[message["id"]] = message
        return self.replies[ident]

    def request(self, ident: Any, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": ident, "method": method}
        if params is not None:
            message["params"] = params
        self.send_json(message)
        return self.wait_for(ident)

    def initialize(self) -> None:
        reply = self.request(
            "init",
            "initialize",
            {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
        )
        assert "result" in reply, reply
        self.send_json({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> StdioServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode() if process.stderr else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port}")


_HOLDERS = {
    # memlora's JSONL lock, as another memlora process would hold it while writing
    "jsonl": "import filelock, sys; lock = filelock.FileLock(sys.argv[1] + '.lock'); lock.acquire()",
    # SQLite's write lock, as any other writer of the database would hold it
    "sqlite": "import sqlite3, sys; db = sqlite3.connect(sys.argv[1], isolation_level=None); db.execute('BEGIN IMMEDIATE')",
}


class LockHolder:
    """Another process holding a store's lock until `release()`: a real lock, in a real process."""

    def __init__(self, backend: str, path: Path) -> None:
        script = _HOLDERS[backend] + "; print('held', flush=True); sys.stdin.readline()"
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == b"held\n", "the lock holder did not start"

    def release(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write(b"go\n")
            self.process.stdin.flush()
        self.process.wait(timeout=30)

    def __enter__(self) -> LockHolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_REPORT_ERRORS = """
import sys
from memlora.store.graph import StoreError
script = sys.argv.pop(1)
try:
    exec(compile(script, "<script>", "exec"), {"__name__": "__main__"})
except StoreError as error:
    print(error)
except Exception as error:  # what a client would have got instead of a clear message
    print(f"unexplained {type(error).__name__}: {error}")
"""


def run_unprivileged(script: str, *args: str) -> str:
    """Runs `script` in a process that file permissions apply to; returns what it printed, or the
    store error it raised. Root ignores file modes, so as root the capabilities that let it are
    dropped with setpriv; the test is skipped, saying why, where that cannot be done."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        import shutil

        setpriv = shutil.which("setpriv")
        if setpriv is None:
            import pytest

            pytest.skip("running as root without setpriv: file permissions cannot be tested")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    result = subprocess.run(
        [*prefix, sys.executable, "-c", _REPORT_ERRORS, script, *args], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        import pytest

        pytest.skip(f"could not run an unprivileged process: {result.stderr.strip()[-300:]}")
    return result.stdout.strip()
