"""Choosing the backend: MEMORY_BACKEND=local|openai|skip (or the same option on the command line).

- `local` (default): records in SQLite in the user data folder (beside the knowledge graph),
  embeddings from the bundled all-MiniLM-L6-v2, writing and answering by memlora's bundled model
  (its records writing and recall adapters where shipped, else the base model with a strict
  prompt; ADAPTER_MODE routes them), or by rules and extraction with `model="none"`.
- `openai`: the same SQLite store, with embeddings and chat from an OpenAI-compatible endpoint
  (OPENAI_BASE_URL, OPENAI_API_KEY; models from MEMLORA_OPENAI_EMBED_MODEL and
  MEMLORA_OPENAI_CHAT_MODEL).
- `skip`: memory off.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from memlora.records.errors import RecordsError

BACKEND_ENV = "MEMORY_BACKEND"
BACKENDS = ("local", "openai", "skip")
Backend = Literal["local", "openai", "skip"]
TRACE_ENV = "MEMLORA_RECORDS_TRACE"
NO_MODEL = "none"


def choose_backend(name: str | None = None) -> Backend:
    """The backend asked for, else $MEMORY_BACKEND, else local."""
    chosen = (name or os.environ.get(BACKEND_ENV) or "local").strip().lower()
    if chosen not in BACKENDS:
        where = "--backend" if name else BACKEND_ENV
        raise RecordsError(f"{where}={chosen!r}: the memory backend must be one of {', '.join(BACKENDS)}")
    return chosen  # type: ignore[return-value]


def default_records_url() -> str:
    """sqlite:<user data folder>/records.db, next to the knowledge graph's memory.db."""
    import platformdirs

    return f"sqlite:{Path(platformdirs.user_data_dir('memlora')) / 'records.db'}"


def store_path(url: str) -> str:
    """The file (or :memory:) of a records store URL; only SQLite stores hold records."""
    scheme, sep, location = url.partition(":")
    if scheme != "sqlite" or not sep or not location:
        raise RecordsError(f"records store URL {url!r} must look like sqlite:PATH or sqlite::memory:")
    return location


def default_trace_path(url: str) -> Path | None:
    """$MEMLORA_RECORDS_TRACE, else <store>.traces.jsonl beside a file store; none for :memory:."""
    if os.environ.get(TRACE_ENV):
        return Path(os.environ[TRACE_ENV])
    location = store_path(url)
    if location == ":memory:":
        return None
    path = Path(location)
    return path.with_name(path.stem + ".traces.jsonl")


def open_manager(
    backend: str | None = None,
    store_url: str | None = None,
    *,
    model: str | None = None,
    adapter: str | None = None,
    trace: str | Path | None | Literal[False] = None,
    mission: str | None = None,
    quota: Any = None,
    openai_client: Any = None,
    adapter_mode: str | None = None,
    serving: str = "dynamic",
    device: str | None = None,
    dtype: str | None = None,
) -> Any:
    """A `MemoryManager` (or `SkipManager`) for the chosen backend.

    `model`: for local, a model memlora can load or "none" for rules and extraction; for openai,
    the chat model name (or "none" for rules and extraction with the endpoint's embeddings).
    `trace=False` turns tracing off; None uses the default file. `adapter_mode` (none, writing,
    recall, auto; default $ADAPTER_MODE, else auto) and `serving` (dynamic, merged): which records
    adapter writes and which answers, and how they are loaded (memlora.routing). `device` and
    `dtype` are the local model's (memlora.models.loading.load_model).
    """
    from memlora.records.manager import MemoryManager, SkipManager

    chosen = choose_backend(backend)
    if chosen == "skip":
        return SkipManager()
    url = store_url or default_records_url()
    location = store_path(url)
    trace_path = None if trace is False else (Path(trace) if trace else default_trace_path(url))
    from memlora.records.store import RecordStore

    if chosen == "local":
        from memlora.records.embedding import MiniLMEmbedder

        embedder: Any = MiniLMEmbedder()
        chat = None
        if model != NO_MODEL:
            from memlora.records.chat import shared_local_model

            chat = shared_local_model(model, adapter, serving, device, dtype)
    else:
        from memlora.records import chat as chatmod

        client = openai_client or chatmod.openai_client()
        embedder = chatmod.OpenAIEmbedder(client, os.environ.get(chatmod.EMBED_MODEL_ENV, chatmod.DEFAULT_EMBED_MODEL))
        chat = None
        if model != NO_MODEL:
            chat = chatmod.OpenAIChatModel(client, model or os.environ.get(chatmod.CHAT_MODEL_ENV, chatmod.DEFAULT_CHAT_MODEL))
    store = RecordStore(location, embedder)
    return MemoryManager(store, chat, trace=trace_path, mission=mission, quota=quota, backend=chosen,
                         adapter_mode=adapter_mode)
