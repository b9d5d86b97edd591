"""llama.cpp as a second runtime (the prebuilt `xllamacpp` wheel, extra `llamacpp`): greedy
completions of token prompts, with an exported LoRA GGUF or without.

It runs on one thread by default: on two shared cores llama.cpp's per-operation thread barriers
cost more than the work (docs/benchmarks.md). memlora.evaluation.llamacpp uses it to check an
exported adapter against memlora's engine.
"""

from __future__ import annotations

import json
from pathlib import Path


class LlamaCpp:
    """One llama.cpp model (and optional LoRA GGUF) in process, decoding one prompt at a time."""

    def __init__(self, gguf: str | Path, adapter: str | Path | None = None, threads: int = 1,
                 context: int = 8192) -> None:
        try:
            import xllamacpp
        except ImportError as error:
            raise RuntimeError("llama.cpp checks need the llamacpp extra: pip install 'memlora[llamacpp]'") from error
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

    def greedy(self, prompt: list[int], max_new_tokens: int) -> list[int]:
        """The greedy output token ids (end of turn excluded) for a prompt given as token ids."""
        result = self.server.handle_completions({"prompt": prompt, "n_predict": max_new_tokens, "temperature": 0.0,
                                                 "top_k": 1, "logprobs": 1, "cache_prompt": True})
        if "choices" not in result:
            raise RuntimeError(f"llama.cpp refused the prompt: {json.dumps(result)[:500]}")
        content = (result["choices"][0].get("logprobs") or {}).get("content") or []
        return [int(item["id"]) for item in content]
