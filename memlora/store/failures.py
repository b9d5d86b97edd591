"""Operating-system and database failures, told as what failed, where and why.

A bare `OSError` or `sqlite3.Error` reaches an MCP client as `Error executing tool X`. These
helpers turn one into a `StorageError` naming the store's own path and the errno name (ENOSPC,
EROFS, EACCES, ...), and nothing else: the temporary-file and lock-file names that the original
exceptions carry stay out of the message.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from memlora.store.graph import CorruptStoreError, StorageError, StoreError


def errno_reason(code: int | None) -> str:
    """`no space left on device (ENOSPC)` for errno.ENOSPC; a plain phrase for no code."""
    if not code:
        return "the operating system refused"
    text = os.strerror(code)
    return f"{text[:1].lower()}{text[1:]} ({errno.errorcode.get(code, code)})"


def os_failure(path: Path | str, action: str, error: OSError, *, writing: bool) -> StorageError:
    return StorageError(str(path), action, errno_reason(error.errno), writing=writing)


def diagnose(path: Path | str) -> int | None:
    """Why writing `path` (and SQLite's -wal and -shm files beside it) would fail: EROFS, EACCES
    or ENOSPC, checked in that order; None when none of them applies."""
    path = Path(path)
    folder = path.parent
    try:
        stats = os.statvfs(folder)
    except OSError as error:
        return error.errno
    if stats.f_flag & os.ST_RDONLY:
        return errno.EROFS
    companions = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    if not os.access(folder, os.W_OK | os.X_OK) or any(p.exists() and not os.access(p, os.W_OK) for p in companions):
        return errno.EACCES
    if stats.f_bavail == 0:
        return errno.ENOSPC
    return None


def sqlite_failure(path: str, action: str, error: sqlite3.Error, *, writing: bool) -> StoreError:
    """The `StoreError` for an SQLite failure on the database at `path`."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    name = getattr(error, "sqlite_errorname", "") or type(error).__name__
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return CorruptStoreError(path, None, f"{error} ({name}); nothing was changed")
    if code == sqlite3.SQLITE_FULL:
        return StorageError(path, action, errno_reason(errno.ENOSPC), writing=writing)
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StorageError(path, action, f"locked by another process ({name})", writing=writing)
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_IOERR):
        found = diagnose(path) if path != ":memory:" else None
        if found is not None:
            return StorageError(path, action, f"{errno_reason(found)}, SQLite said: {error} ({name})", writing=writing)
    return StorageError(path, action, f"{error} ({name})", writing=writing)


def unexpected_failure(error: OSError | sqlite3.Error) -> StorageError:
    """Last resort for a failure no store translated: the reason without any file name."""
    if isinstance(error, OSError):
        reason = errno_reason(error.errno)
    else:
        reason = f"{getattr(error, 'sqlite_errorname', '') or type(error).__name__}: {error}"
    return StorageError("the store", "use", reason, writing=False)
