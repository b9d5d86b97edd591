"""Bounded lock waits that never stall the server's event loop.

The server runs store calls on its event loop, because a call takes microseconds and a hop to
a worker thread costs milliseconds. A call that would have to wait for a lock (another process
writing the same file, or another call of this process already waiting for it) must not wait
there, or every other request, pings included, waits with it. So the server runs each call
inside `no_wait()`: a store that cannot take its lock at once raises `WouldBlock`, before it
has read or changed anything, and the server runs the call again on a worker thread. There
the store waits at most its `lock_timeout` and then fails with `StoreBusyError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# How long a call waits for another process (or another call) to release the store.
DEFAULT_LOCK_TIMEOUT = 15.0

_no_wait: ContextVar[bool] = ContextVar("memlora_store_no_wait", default=False)


class WouldBlock(Exception):  # noqa: N818 - named for what happened, like BlockingIOError
    """A lock was taken and the caller asked not to wait; nothing was read or written."""


@contextmanager
def no_wait() -> Iterator[None]:
    """Store calls in this block raise `WouldBlock` instead of waiting for a lock."""
    token = _no_wait.set(True)
    try:
        yield
    finally:
        _no_wait.reset(token)


def may_wait() -> bool:
    return not _no_wait.get()


class Deadline:
    """The time left of one call's lock budget, shared by every lock the call takes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self._end - time.monotonic())


def take(lock: threading.Lock, deadline: Deadline) -> bool:
    """Takes a thread lock: at once under `no_wait()` (else `WouldBlock`), otherwise within the deadline."""
    if not may_wait():
        if lock.acquire(blocking=False):
            return True
        raise WouldBlock
    return lock.acquire(timeout=deadline.left())
