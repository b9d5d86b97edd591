"""Errors the records layer raises on purpose; the CLI and the MCP tools show their text as is."""

from __future__ import annotations


class RecordsError(Exception):
    """Base class: a problem the caller can fix, explained in the message."""


class MissingDependencyError(RecordsError):
    """A package of the `records` extra is not installed."""

    def __init__(self, package: str, why: str) -> None:
        super().__init__(f"{why} needs the package {package}: pip install 'memlora[records]'")


class StoreMismatchError(RecordsError):
    """The store's vectors were made by another embedding model than the one asked for."""


class BackendUnavailableError(RecordsError):
    """The backend's endpoint or model cannot be reached or loaded."""
