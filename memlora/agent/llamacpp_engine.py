"""`memlora chat --runtime llamacpp`: the engine interface (tokenizer, encode, generate, close)
over llama.cpp, so MemoryAgent plays turns on it unchanged.

Why a second runtime: llama.cpp multiplies the GGUF's own 4-6 bit weights with kernels built
for the CPU, and one conversation is one stream, where memlora's engine (bf16 or fp32 weights,
built for batches) is slower (docs/benchmarks.md, "Single stream in each runtime"). It decodes
one request at a time; evaluation and the API server's concurrent requests stay on memlora's
engine. The adapter is exported to a LoRA GGUF once (memlora.models.export) and kept in
memlora's cache, keyed by the adapter's files.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from memlora.agent.engine import Completion, SamplingParams, TokenListener
from memlora.models.chat_format import install_chat_template, stop_token_ids
from memlora.models.export import ExportError
from memlora.models.llamacpp import LlamaCpp
from memlora.models.loading import BUNDLED, adapter_name, adapter_prefix_cache, bundled_gguf, cache_root, resolve_model


def exported_adapter(model: str, adapter: str | Path, tokenizer: Any) -> tuple[Path, list[int] | None]:
    """The adapter as a llama.cpp LoRA GGUF for the bundled `model` (written on first use) and,
    for an adapter trained on a base-model system prompt, its aLoRA invocation tokens."""
    from memlora.agent.loop import opening_invocation
    from memlora.models.export import BaseGguf, read_adapter, write_lora_gguf

    digest = hashlib.sha256(model.encode())
    for file in sorted(Path(adapter).glob("*")):
        if file.is_file() and file.suffix in (".safetensors", ".json", ".bin"):
            digest.update(file.name.encode() + file.read_bytes())
    invocation = opening_invocation(tokenizer) if adapter_prefix_cache(adapter) == "base" else None
    target = cache_root() / "llamacpp" / f"{adapter_name(adapter)}-{digest.hexdigest()[:16]}.gguf"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f"{target.name}.{os.getpid()}.staging")
        write_lora_gguf(read_adapter(adapter), BaseGguf(bundled_gguf(model)), staging, invocation=invocation)
        staging.replace(target)
    return target, invocation


def default_threads() -> int:
    """Every core this process may run on: a single stream on llama.cpp uses them all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class LlamaCppEngine:
    """One bundled model (and at most one adapter) on llama.cpp, one request at a time."""

    def __init__(self, model: str, adapter: str | Path | None = None, threads: int | None = None,
                 backend: str = "auto", context: int = 16384):
        from transformers import AutoTokenizer

        if model not in BUNDLED:
            raise ValueError(f"--runtime llamacpp runs a bundled model's GGUF ({', '.join(BUNDLED)}), not {model!r}")
        self.family = BUNDLED[model].family
        self.tokenizer = install_chat_template(AutoTokenizer.from_pretrained(str(resolve_model(model))), self.family)
        self.stop_ids = set(stop_token_ids(self.tokenizer, self.family))
        self.adapter = adapter_name(adapter) if adapter else None
        try:
            adapter_gguf, invocation = exported_adapter(model, adapter, self.tokenizer) if adapter else (None, None)
        except ExportError as error:
            raise ValueError(f"llama.cpp cannot apply {adapter} as a LoRA ({error}); "
                             "chat with it on --runtime memlora") from error
        self.threads = threads or default_threads()
        self.runtime = LlamaCpp(bundled_gguf(model), adapter_gguf, threads=self.threads, context=context,
                                backend=backend, invocation=invocation)
        self.backend = self.runtime.backend
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memlora-llamacpp")
        self._lock = threading.Lock()

    def describe(self) -> str:
        return (f"llama.cpp ({self.backend}), {self.threads} threads, "
                f"{'adapter ' + self.adapter if self.adapter else 'no adapter'}")

    def _check_adapter(self, adapter: str | None) -> None:
        if adapter != self.adapter:
            raise ValueError(f"this llama.cpp engine holds {self.adapter or 'no adapter'}, not {adapter or 'none'}")

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _complete(self, ids: list[int], params: SamplingParams) -> Completion:
        with self._lock:
            started = time.perf_counter()
            output = self.runtime.complete(ids, params.max_new_tokens, params.temperature, params.top_p, params.seed,
                                           set() if params.ignore_stop else self.stop_ids)
            seconds = time.perf_counter() - started
        return Completion(text=self.tokenizer.decode(output.tokens, skip_special_tokens=False),
                          token_ids=output.tokens, prompt_tokens=len(ids), cached_prompt_tokens=output.cached_tokens,
                          completion_tokens=len(output.tokens),
                          finish_reason="stop" if output.stop_token is not None else "length", seconds=seconds,
                          batch_size=1, prefill_seconds=output.prefill_seconds, stop_token=output.stop_token)

    async def generate(self, prompt: str | list[int], params: SamplingParams | None = None,
                       adapter: str | None = None, on_tokens: TokenListener | None = None) -> Completion:
        """Decodes one prompt with the engine's adapter (the only one it holds); `on_tokens` hears
        the whole output at the end, as this runtime does not stream."""
        self._check_adapter(adapter)
        ids = self.encode(prompt) if isinstance(prompt, str) else list(prompt)
        completion = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._complete, ids, params or SamplingParams())
        if on_tokens is not None:
            on_tokens(completion.token_ids)
        return completion

    def generate_many(self, prompts: list[list[int]], params: SamplingParams | None = None,
                      adapter: str | None = None) -> list[Completion]:
        """Each prompt in turn (the synchronous entry point of memlora's engine, for checks)."""
        self._check_adapter(adapter)
        return [self._complete(list(ids), params or SamplingParams()) for ids in prompts]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
