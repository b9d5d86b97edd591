"""llama.cpp as a second runtime: completions of token prompts, with an exported LoRA GGUF or without.

Two bindings run the same library. `llama-cpp-python` compiles llama.cpp on install, so with
`CMAKE_ARGS="-DGGML_NATIVE=ON"` it uses every instruction of the host CPU; the prebuilt
`xllamacpp` wheel (extra `llamacpp`) installs in seconds but is an AVX2 build. "auto" takes the
first that is installed, in that order (docs/benchmarks.md, "Single stream in each runtime").

An adapter exported with aLoRA invocation tokens (memlora adapters trained before 2026-12-07
saw the system prompt without their LoRA) must leave the prompt before the invocation to the
base weights. llama.cpp's server does that split itself, so xllamacpp needs nothing; the
`llama-cpp-python` binding only exposes the library, so `_LlamaCppPython` makes the same split
(the adapter on from the token before the invocation). Unlike the server, which runs everything
after the system prompt again at every request of an aLoRA, it keeps the context it computed
with the adapter on as long as the split stays where it was.

memlora.agent.llamacpp_engine puts this behind the engine interface for `memlora chat`, and
memlora.evaluation.llamacpp uses it to check an exported adapter against memlora's engine.
"""

from __future__ import annotations

import ctypes
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BACKENDS = ("auto", "llama-cpp-python", "xllamacpp")


@dataclass
class LlamaCppOutput:
    tokens: list[int]  # the chosen tokens, the stop token excluded
    stop_token: int | None  # the stop or end-of-generation token that ended the turn; None at the length limit
    cached_tokens: int  # prompt tokens whose keys and values were already in the context
    prefill_seconds: float


def installed_backend(requested: str = "auto") -> str:
    """The binding to use: `requested`, or under "auto" the first installed of llama-cpp-python, xllamacpp."""
    import importlib.util

    if requested not in BACKENDS:
        raise ValueError(f"llama.cpp backend {requested!r}: choose one of {', '.join(BACKENDS)}")
    modules = {"llama-cpp-python": "llama_cpp", "xllamacpp": "xllamacpp"}
    for name in ([requested] if requested != "auto" else ["llama-cpp-python", "xllamacpp"]):
        if importlib.util.find_spec(modules[name]) is not None:
            return name
    raise RuntimeError("llama.cpp needs one of its Python bindings: pip install 'memlora[llamacpp]' (prebuilt), or "
                       "CMAKE_ARGS=\"-DGGML_NATIVE=ON\" pip install llama-cpp-python (built for this CPU)"
                       if requested == "auto" else f"llama.cpp backend {requested} is not installed")


def _last_occurrence(tokens: list[int], pattern: list[int]) -> int | None:
    for start in range(len(tokens) - len(pattern), -1, -1):
        if tokens[start: start + len(pattern)] == pattern:
            return start
    return None


class _Xllamacpp:
    """The prebuilt wheel: llama.cpp's server in process, one slot."""

    def __init__(self, gguf: Path, adapter: Path | None, threads: int, context: int) -> None:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.n_ctx = context
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        if adapter is not None:
            params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(adapter), 1.0)]
        self.server = xllamacpp.Server(params)

    def complete(self, prompt: list[int], max_new_tokens: int, temperature: float, top_p: float, seed: int | None,
                 stop_ids: set[int]) -> LlamaCppOutput:
        request: dict[str, Any] = {"prompt": prompt, "n_predict": max_new_tokens, "temperature": temperature,
                                   "top_p": top_p, "logprobs": 1, "cache_prompt": True}
        if temperature == 0:
            request["top_k"] = 1
        if seed is not None:
            request["seed"] = seed
        result = self.server.handle_completions(request)
        if "choices" not in result:
            raise RuntimeError(f"llama.cpp refused the prompt: {json.dumps(result)[:500]}")
        content = (result["choices"][0].get("logprobs") or {}).get("content") or []
        tokens = [int(item["id"]) for item in content]
        ended = result["choices"][0].get("finish_reason") == "stop" or (tokens and tokens[-1] in stop_ids)
        stop = tokens.pop() if tokens and ended else None  # the server lists the end-of-turn token too
        timings = result.get("timings") or {}
        cached = int(timings.get("cache_n", 0))
        return LlamaCppOutput(tokens, stop, cached, float(timings.get("prompt_ms", 0.0)) / 1000)


class _LlamaCppPython:
    """llama-cpp-python: the library through ctypes, its `Llama` class reusing the cached prefix."""

    def __init__(self, gguf: Path, adapter: Path | None, threads: int, context: int,
                 invocation: list[int] | None) -> None:
        import llama_cpp

        self.lib = llama_cpp
        self.llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=context, n_threads=threads, n_threads_batch=threads,
                                   lora_path=str(adapter) if adapter else None, verbose=False)
        self.invocation = invocation or []
        self.adapter_on = adapter is not None
        self.adapter_from = 0  # where the adapter started in the tokens now in the context

    def _use_adapter(self, on: bool) -> None:
        if not self.llm._lora_adapter or on == self.adapter_on:
            return
        if on:
            adapters = (self.lib.llama_adapter_lora_p_ctypes * 1)(self.llm._lora_adapter)
            scales = (ctypes.c_float * 1)(1.0)
            failed = self.lib.llama_set_adapters_lora(self.llm._ctx.ctx, adapters, 1, scales)
        else:
            failed = self.lib.llama_set_adapters_lora(self.llm._ctx.ctx, None, 0, None)
        if failed:
            raise RuntimeError("llama.cpp could not switch the LoRA adapter")
        self.adapter_on = on

    def _cached(self, prompt: list[int]) -> int:
        cached = 0
        for mine, theirs in zip(self.llm._input_ids[: self.llm.n_tokens], prompt):
            if int(mine) != theirs:
                break
            cached += 1
        return cached

    def complete(self, prompt: list[int], max_new_tokens: int, temperature: float, top_p: float, seed: int | None,
                 stop_ids: set[int]) -> LlamaCppOutput:
        started = time.perf_counter()
        cached = self._cached(prompt)
        if self.invocation:
            found = _last_occurrence(prompt, self.invocation)
            # the server switches the adapter on one token before the invocation (where memlora's
            # engine ends the system prompt), and leaves it off when the prompt has no invocation
            start = len(prompt) if found is None else max(0, found - 1)
            if start != self.adapter_from:  # past the earlier of the two starts, the context is stale
                cached = min(cached, start, self.adapter_from)
            self.llm.n_tokens = cached
            if cached < start:  # the part before the invocation runs on the base weights
                self._use_adapter(False)
                self.llm.eval(prompt[cached:start])
            self.adapter_from = start
            self._use_adapter(found is not None)
        self.llm.set_seed(seed if seed is not None else random.randrange(2**31))
        tokens: list[int] = []
        stop = None
        prefill = 0.0
        for token in self.llm.generate(prompt, top_k=1 if temperature == 0 else 0, top_p=top_p, min_p=0.0,
                                       typical_p=1.0, temp=temperature, repeat_penalty=1.0):
            if not prefill:  # the first token: the prompt has run
                prefill = time.perf_counter() - started
            if int(token) in stop_ids or self.lib.llama_vocab_is_eog(self.llm._model.vocab, int(token)):
                stop = int(token)
                break
            tokens.append(int(token))
            if len(tokens) >= max_new_tokens:
                break
        return LlamaCppOutput(tokens, stop, cached, prefill)


class LlamaCpp:
    """One llama.cpp model (and optional LoRA GGUF) in process, decoding one prompt at a time."""

    def __init__(self, gguf: str | Path, adapter: str | Path | None = None, threads: int = 1,
                 context: int = 8192, backend: str = "auto", invocation: list[int] | None = None) -> None:
        self.backend = installed_backend(backend)
        adapter_path = Path(adapter) if adapter is not None else None
        if self.backend == "xllamacpp":
            self.runtime: _Xllamacpp | _LlamaCppPython = _Xllamacpp(Path(gguf), adapter_path, threads, context)
        else:
            self.runtime = _LlamaCppPython(Path(gguf), adapter_path, threads, context, invocation)

    def complete(self, prompt: list[int], max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int | None = None, stop_ids: set[int] | None = None) -> LlamaCppOutput:
        """Decodes from a prompt given as token ids until a stop token or `max_new_tokens`."""
        return self.runtime.complete(prompt, max_new_tokens, temperature, top_p, seed, stop_ids or set())

    def greedy(self, prompt: list[int], max_new_tokens: int) -> list[int]:
        """The greedy output token ids for a prompt given as token ids (a stop token, when one
        ends the output, is its last id)."""
        output = self.complete(prompt, max_new_tokens)
        return output.tokens + ([output.stop_token] if output.stop_token is not None else [])
