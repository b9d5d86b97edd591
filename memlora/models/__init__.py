"""Model loading: bundled GGUF names, local folders and hub ids, bf16, LoRA adapters.

OpenMP threads that spin while waiting collapse throughput when the 2 cores are shared with
other work (0.5 vs 3.5 tokens/s measured), so memlora asks for passive waiting unless the user
chose otherwise; it must be set before torch is imported.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from memlora.models.loading import (  # noqa: E402
    BASE_ADAPTER,
    BUNDLED,
    DEFAULT_MODEL,
    LoadedModel,
    convert_bundled,
    load_model,
    resolve_model,
    tiny_model,
)

__all__ = [
    "BASE_ADAPTER",
    "BUNDLED",
    "DEFAULT_MODEL",
    "LoadedModel",
    "convert_bundled",
    "load_model",
    "resolve_model",
    "tiny_model",
]
