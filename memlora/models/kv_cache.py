"""The name transformers gives a forward call's KV cache, on both sides of its rename.

Recent transformers releases renamed the `past_key_values` argument and output field to `cache`;
there the old name still works but warns (a FutureWarning for the argument, a logged line for
the field) in every command that decodes. memlora accepts transformers from 5.0 (pyproject), so
it asks the installed version which name its model outputs carry and uses that one, rather than
filtering the warning.
"""

from __future__ import annotations

from typing import Any

from transformers.modeling_outputs import CausalLMOutputWithPast

CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def with_cache(cache: Any) -> dict[str, Any]:
    """The keyword argument that hands `cache` to a model's forward: `model(ids, **with_cache(c))`."""
    return {CACHE_FIELD: cache}


def cache_of(output: Any) -> Any:
    """The KV cache a forward with `use_cache=True` returned."""
    return getattr(output, CACHE_FIELD)
