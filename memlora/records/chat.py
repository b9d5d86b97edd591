"""The language models that write and answer: memlora's bundled model, or an OpenAI-compatible endpoint.

Both take chat messages and return text, decode greedily, and count tokens for the recall
budget. The local one runs through memlora's `GenerationEngine` (one engine per system prompt,
so each prompt's prefix is computed once). The records adapters shipped under
`adapters/<model>-records-writing/` and `-records-recall/` are attached and each call runs the
adapter of its role (memlora.routing); a role without one is the base model prompted strictly.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from memlora.records.embedding import CachedEmbedder
from memlora.records.errors import BackendUnavailableError, MissingDependencyError

Message = dict[str, str]


class ChatModel(Protocol):
    name: str  # e.g. model:qwen2.5-coder-0.5b or openai:gpt-4o-mini, written into records' source and traces
    token_counter: str  # what count_tokens counts with, for the trace

    def complete(self, conversations: Sequence[list[Message]], max_tokens: int, role: str | None = None) -> list[str]:
        """One greedy reply per conversation (batched where the model can), by the adapter of
        `role` (memlora.routing: writing, recall; None: the base model)."""
        ...

    def adapter_for(self, role: str | None) -> str | None:
        """The adapter that answers for `role` (None: the base model)."""
        ...

    def count_tokens(self, text: str) -> int: ...


def records_adapters(model: str) -> dict[str, str]:
    """The records adapters memlora ships for a bundled model: {role: folder} for writing and
    recall (adapters/<model>-records-writing/, adapters/<model>-records-recall/), where present."""
    from memlora.routing import shipped_adapters

    return shipped_adapters(model, ("writing", "recall"))


class LocalChatModel:
    """memlora's bundled model (or any model memlora can load), with a records adapter per role.

    `adapter`: None or "auto" loads the shipped records adapters (one per role, those present);
    "none" none; a folder serves both roles with that one adapter. `adapters` ({role: folder})
    names them one by one instead. `serving`: dynamic (every adapter on one base, switched per
    batch) or merged (each adapter merged into its own copy of the base), memlora.routing.
    `device` and `dtype` are load_model's.
    """

    def __init__(self, model: str | None = None, adapter: str | None = None, loaded: Any = None,
                 adapters: dict[str, str] | None = None, serving: str = "dynamic", device: str | None = None,
                 dtype: str | None = None) -> None:
        from memlora.models.loading import DEFAULT_MODEL
        from memlora.models.routed import RoutedModel

        model = model or DEFAULT_MODEL
        if adapters is None:
            if adapter in (None, "auto"):
                adapters = records_adapters(model)
            elif adapter == "none":
                adapters = {}
            else:
                adapters = {"writing": adapter, "recall": adapter}
        self.model = model
        # loaded on first use: purge or a skipped write never pays for it
        chosen = {key: value for key, value in (("device", device), ("dtype", dtype)) if value is not None}
        self.routed = RoutedModel(model, dict(adapters), serving, preloaded=loaded,  # type: ignore[arg-type]
                                  options=chosen)
        self.name = f"model:{Path(model).name}"
        self.token_counter = f"{Path(model).name} tokenizer"
        self._engines: dict[tuple[int, str], Any] = {}

    @property
    def adapters(self) -> dict[str, str]:
        return self.routed.adapters

    @property
    def adapter(self) -> str | None:
        """The adapter of the writing role, for callers that knew one adapter per model."""
        return self.adapter_for("writing")

    def adapter_for(self, role: str | None) -> str | None:
        return self.routed.adapter_name(role)

    @property
    def loaded(self) -> Any:
        """The LoadedModel of the base model (dynamic serving: with every adapter attached)."""
        return self.routed.target(None)[0]

    def _engine(self, loaded: Any, system: str) -> Any:
        from memlora.agent.engine import GenerationEngine
        from memlora.models.chat_format import render_prompt

        key = (id(loaded), system)
        if key not in self._engines:
            prefix = render_prompt(loaded.tokenizer, [{"role": "system", "content": system}], None,
                                   add_generation_prompt=False)
            self._engines[key] = GenerationEngine(loaded, prefix=prefix, max_batch=16)
        return self._engines[key]

    def complete(self, conversations: Sequence[list[Message]], max_tokens: int, role: str | None = None) -> list[str]:
        from memlora.agent.engine import SamplingParams
        from memlora.models.chat_format import render_prompt

        loaded, adapter = self.routed.target(role)
        replies: list[str] = [""] * len(conversations)
        by_system: dict[str, list[int]] = {}
        for index, messages in enumerate(conversations):
            system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
            by_system.setdefault(system, []).append(index)
        for system, indexes in by_system.items():
            engine = self._engine(loaded, system)
            prompts = [render_prompt(loaded.tokenizer, conversations[i], None) for i in indexes]
            done = engine.generate_many(prompts, SamplingParams(max_new_tokens=max_tokens), adapter=adapter)
            for i, completion in zip(indexes, done):
                replies[i] = completion.text
        return replies

    def count_tokens(self, text: str) -> int:
        return len(self.routed.tokenizer(text, add_special_tokens=False)["input_ids"])


class OpenAIChatModel:
    """Chat completions from any OpenAI-compatible endpoint (base URL and key from the environment)."""

    def __init__(self, client: Any, model: str) -> None:
        self.client = client
        self.model = model
        self.name = f"openai:{model}"
        self.adapter = None
        self.token_counter = "all-MiniLM-L6-v2 wordpiece (estimate)"

    def adapter_for(self, role: str | None) -> str | None:
        return None  # the endpoint picks its weights (memlora api: the `+auto` model id routes by task)

    def complete(self, conversations: Sequence[list[Message]], max_tokens: int, role: str | None = None) -> list[str]:
        replies = []
        for messages in conversations:
            response = call_endpoint(
                self.client,
                lambda m=messages: self.client.chat.completions.create(
                    model=self.model, messages=m, max_tokens=max_tokens, temperature=0
                ),
            )
            replies.append(response.choices[0].message.content or "")
        return replies

    def count_tokens(self, text: str) -> int:
        from memlora.records.embedding import bundled_token_count

        return bundled_token_count(text)


# -- the OpenAI-compatible client ---------------------------------------------------------------

BASE_URL_ENV = "OPENAI_BASE_URL"
KEY_ENV = "OPENAI_API_KEY"
CHAT_MODEL_ENV = "MEMLORA_OPENAI_CHAT_MODEL"
EMBED_MODEL_ENV = "MEMLORA_OPENAI_EMBED_MODEL"
DEFAULT_CHAT_MODEL = "gpt-4o-mini"
DEFAULT_EMBED_MODEL = "text-embedding-3-small"


def openai_client(base_url: str | None = None, api_key: str | None = None, timeout: float = 30.0,
                  max_retries: int = 2) -> Any:
    """An `openai.OpenAI` client; timeouts and retries (with backoff) are the library's own."""
    try:
        import openai
    except ImportError:
        raise MissingDependencyError("openai", "the openai backend") from None
    base_url = base_url or os.environ.get(BASE_URL_ENV)
    api_key = api_key or os.environ.get(KEY_ENV)
    if not api_key:
        # Local servers (llama.cpp, vLLM, Ollama) ignore the key, but the client insists on one.
        if base_url is None:
            raise BackendUnavailableError(
                f"the openai backend needs {KEY_ENV} (and {BASE_URL_ENV} for a server other than OpenAI's)"
            )
        api_key = "unused"
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)


def call_endpoint(client: Any, call: Any) -> Any:
    """Runs one request; a connection failure or timeout (after the client's retries) becomes a
    `BackendUnavailableError` that names the endpoint, and an API error keeps its status and text."""
    import openai

    try:
        return call()
    except (openai.APIConnectionError, openai.APITimeoutError) as error:
        raise BackendUnavailableError(
            f"OpenAI-compatible endpoint {client.base_url} is unreachable after {client.max_retries} retries "
            f"({type(error).__name__}: {error}); check {BASE_URL_ENV} and that the server is running"
        ) from None
    except openai.APIStatusError as error:
        raise BackendUnavailableError(
            f"OpenAI-compatible endpoint {client.base_url} answered {error.status_code}: {error.message}"
        ) from None


class OpenAIEmbedder(CachedEmbedder):
    """Embeddings from an OpenAI-compatible /v1/embeddings; the dimension is learnt from the first call."""

    def __init__(self, client: Any, model: str, dim: int | None = None, batch_size: int = 256) -> None:
        super().__init__()
        self.client = client
        self.model = model
        self.name = f"openai:{model}"
        self.batch_size = batch_size
        self._dim = dim

    @property
    def dim(self) -> int:  # type: ignore[override]
        if self._dim is None:
            self._dim = int(self._compute(["dimension probe"]).shape[1])
        return self._dim

    def _compute(self, texts: list[str]) -> Any:
        import numpy as np

        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            response = call_endpoint(self.client, lambda c=chunk: self.client.embeddings.create(model=self.model, input=c))
            vectors += [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
        return np.asarray(vectors, dtype=np.float32)


@functools.cache
def shared_local_model(model: str | None, adapter: str | None, serving: str = "dynamic", device: str | None = None,
                       dtype: str | None = None) -> LocalChatModel:
    """One loaded model per process (the CLI and the MCP server write and answer with the same one)."""
    return LocalChatModel(model, adapter, serving=serving, device=device, dtype=dtype)
