"""Model loading: bundled GGUF names, local folders and hub ids, bf16, LoRA adapters.

How long idle OpenMP threads spin before sleeping matters on a 2-core machine (measured in
docs/benchmarks.md, "Generation"): sleeping at once costs a wake-up per matrix product,
spinning long collapses two jobs sharing the cores, and a short spin of 20,000 iterations is
nearly as fast alone as a long one. memlora sets that short spin unless the user chose a policy; run two heavy memlora jobs on the same cores with
`OMP_WAIT_POLICY=PASSIVE`. It must be set before torch is imported.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")

__all__ = [
    "BASE_ADAPTER",
    "BUNDLED",
    "DEFAULT_MODEL",
    "LoadedModel",
    "convert_bundled",
    "load_model",
    "resolve_model",
]


def __getattr__(name: str) -> object:
    """The loader's public names, imported on first use: the chat format alone needs no torch."""
    if name in __all__:
        from memlora.models import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'memlora.models' has no attribute {name!r}")
