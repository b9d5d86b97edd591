"""Make a transformers decoder fast at small-batch decoding on a CPU.

Profiling the bundled 0.5B model on 2 cores (docs/benchmarks.md, "Generation") showed three
costs that have nothing to do with memory bandwidth, each fixed here without changing what the
model computes:

- `scaled_dot_product_attention` on CPU is many times slower, for one query token against a
  long cache, than two small matmuls and a softmax. Queries of up to `SMALL_QUERY` tokens use
  that direct path; longer ones (prefill) keep SDPA.
- oneDNN multiplies a bf16 vector by a plain row-major weight far below the memory bandwidth;
  the same weight reordered once into oneDNN's blocked layout runs much faster.
- `DynamicCache` concatenates every layer's keys and values at every step, copying the whole
  cache; `GrowingKVLayer` writes into spare capacity instead.

Only inference uses this: the packed weights are copies taken at load time, so training code
must not call `prepare_for_cpu_inference`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import DynamicCache, DynamicLayer

logger = logging.getLogger(__name__)

ATTENTION_NAME = "memlora_cpu"
SMALL_QUERY = 16
BUFFER = "memlora_buffer"  # a GrowingKVLayer view's attribute: the whole buffer it was cut from


def small_query_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          attention_mask: torch.Tensor | None, scaling: float | None = None,
                          dropout: float = 0.0, softcap: float | None = None, **kwargs: Any
                          ) -> tuple[torch.Tensor, None]:
    """Attention as plain matmuls for a few query tokens; SDPA for anything longer.

    Query heads are grouped under their key/value head instead of repeating the keys, so a
    decode step reads each cached key once. Shapes in: (batch, heads, tokens, dim); out:
    (batch, tokens, heads, dim), like every transformers attention function.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, q_len, dim = query.shape
    # without a mask, several queries mean "causal" (transformers drops an all-ones causal mask
    # when queries and keys line up and lets SDPA apply is_causal): leave those to SDPA too
    implicit_causal = attention_mask is None and q_len > 1
    if (q_len > SMALL_QUERY or implicit_causal or softcap is not None or dropout > 0
            or kwargs.get("output_attentions")):
        if softcap is None:
            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                          scaling=scaling, **kwargs)
        from transformers.models.gemma3.modeling_gemma3 import eager_attention_forward
        return eager_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                       scaling=scaling, softcap=softcap, **kwargs)
    kv_heads = key.shape[1]
    group = heads // kv_heads
    scale = scaling if scaling is not None else dim ** -0.5
    keys = key.shape[-2]
    grouped = query.reshape(batch, kv_heads, group * q_len, dim)  # row g * q_len + i: head g, query i
    # a sliding-window layer's mask hides every slot before `start` (the window counts cache
    # slots), so only the window is multiplied
    window = kwargs.get("sliding_window")
    start = max(0, keys - q_len - window) if window else 0
    # bmm copies a strided view of the cache (a copy per layer and step), so when the keys and
    # values are views of a GrowingKVLayer buffer, run over the whole zero-filled buffer instead
    key_buffer, value_buffer = whole_buffer(key), whole_buffer(value)
    if start or key_buffer is None or value_buffer is None:
        key_buffer, value_buffer = key[:, :, start:].contiguous(), value[:, :, start:].contiguous()
    keys -= start
    scores = torch.matmul(grouped, key_buffer.transpose(-1, -2))[..., :keys].float() * scale
    if attention_mask is not None:
        mask = attention_mask[..., start : start + keys]  # (b or 1, 1, q, keys)
        if q_len > 1:
            mask = mask.unsqueeze(2).expand(mask.shape[0], 1, group, q_len, keys).reshape(
                mask.shape[0], 1, group * q_len, keys)
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = torch.softmax(scores, dim=-1).to(value.dtype)
    if value_buffer.shape[-2] > keys:  # zero weight on the buffer's unused slots
        weights = torch.nn.functional.pad(weights, (0, value_buffer.shape[-2] - keys))
    output = torch.matmul(weights, value_buffer)  # (b, kv, group*q, dim)
    output = output.view(batch, heads, q_len, dim).transpose(1, 2).contiguous()
    return output, None


def whole_buffer(view: torch.Tensor) -> torch.Tensor | None:
    """The contiguous buffer a GrowingKVLayer cut `view` from, or None for any other tensor.

    Slots past the view are zeros or keys/values dropped by `crop`: finite either way, and the
    attention above gives them zero weight."""
    base = getattr(view, BUFFER, None)
    if (base is None or base.dim() != 4 or base.shape[:2] != view.shape[:2] or base.shape[3] != view.shape[3]
            or base.data_ptr() != view.data_ptr() or not base.is_contiguous()):
        return None
    return base


def register_attention() -> None:
    """Makes `ATTENTION_NAME` a valid attn_implementation whose masks are built like SDPA's."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, small_query_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)


class PackedLinear:
    """Stands in for `nn.Linear.forward` with oneDNN's blocked-weight kernel; the original weight
    stays in place (PEFT adapters read it), the packed copy is what the matmul uses. A plain
    object, not a Module, so that assigning it to `forward` shadows the class method."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 1)
        self.bias = bias.detach() if bias is not None else None

    @classmethod
    def of(cls, linear: nn.Linear) -> "PackedLinear":
        return cls(linear.weight, linear.bias)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


class PlainLinear:
    """A fixed weight through the ordinary matmul: for fp32, where oneDNN's packed kernel was
    slower than the plain one on a matrix-vector product (docs/benchmarks.md, bf16 against fp32)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        self.weight = weight.detach()
        self.bias = bias.detach() if bias is not None else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.weight, self.bias)


def pack_linear_weights(model: nn.Module) -> int:
    """Routes every bf16 `nn.Linear` of the model through a packed copy of its weight."""
    count = 0
    for module in model.modules():
        if type(module) is nn.Linear and module.weight.dtype == torch.bfloat16 and module.weight.device.type == "cpu":
            module.forward = PackedLinear.of(module)  # type: ignore[method-assign]
            count += 1
    return count


class MergedLoraLinear:
    """Stands in for a PEFT LoRA Linear's forward: one packed matmul per adapter, LoRA merged in.

    PEFT computes a LoRA layer as base matmul + dropout + cast + two small matmuls + scale + add:
    at batch 1 those extra operators cost more than the weight reads they add (96 adapted
    layers in the 0.5B model). Here each adapter gets its own copy of W + scaling * B @ A
    (packed for bf16; for attention-only LoRA on the 0.5B: 88 MB per adapter in bf16, twice
    that in fp32), and the base model keeps its own, so switching adapters per call still
    works. The merged weight is rounded to the model's dtype once, so logits differ from
    PEFT's in the last bits. Anything unusual (several adapters active at
    once, DoRA and other variants, per-sequence adapter names) goes to PEFT's own forward.
    """

    def __init__(self, layer: nn.Module, kernel: type[PackedLinear] | type[PlainLinear]):
        self.layer = layer
        self.peft_forward = type(layer).forward.__get__(layer)
        self.base = layer.base_layer  # packed itself by pack_linear_weights
        weight = self.base.weight.detach().float()
        self.merged: dict[str, PackedLinear | PlainLinear] = {}
        for name in layer.lora_A.keys():
            if (name in getattr(layer, "lora_variant", {}) or getattr(layer, "use_dora", {}).get(name)
                    or getattr(layer, "lora_bias", {}).get(name)):
                continue  # merged like plain LoRA would be wrong: PEFT's forward handles these
            merged = (weight + layer.get_delta_weight(name).float()).to(self.base.weight.dtype)
            self.merged[name] = kernel(merged, self.base.bias)

    def __call__(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        layer = self.layer
        if args or kwargs or layer.merged:
            return self.peft_forward(x, *args, **kwargs)
        if layer.disable_adapters:
            return self.base(x)
        active = [name for name in layer.active_adapters if name in layer.lora_A]
        if not active:
            return self.base(x)
        if len(active) == 1 and active[0] in self.merged:
            return self.merged[active[0]](x)
        return self.peft_forward(x)


def merge_lora_layers(model: nn.Module, kernels: dict[torch.dtype, type[PackedLinear] | type[PlainLinear]]) -> int:
    """Routes every PEFT LoRA Linear whose weight dtype has a kernel in `kernels` through
    MergedLoraLinear; returns how many."""
    try:
        from peft.tuners.lora.layer import Linear as LoraLinear
    except ImportError:
        return 0
    count = 0
    for module in model.modules():
        if isinstance(module, LoraLinear) and type(module.base_layer) is nn.Linear:
            kernel = kernels.get(module.base_layer.weight.dtype)
            if kernel is not None:
                module.forward = MergedLoraLinear(module, kernel)  # type: ignore[method-assign]
                count += 1
    return count


@functools.cache
def mkldnn_bf16_available() -> bool:
    """Whether oneDNN's packed bf16 linear runs, and runs right, in this PyTorch build on this CPU.

    The kernels are private operators (`torch.ops.mkldnn.*`): a build may lack them, change their
    signature, or the CPU may lack the instructions. Any failure means plain matmuls, said once."""
    try:
        layer = nn.Linear(32, 32, dtype=torch.bfloat16)
        x = torch.ones(1, 32, dtype=torch.bfloat16)
        if bool(torch.allclose(PackedLinear.of(layer)(x), layer(x))):
            return True
        problem = "wrong results"
    except Exception as error:  # noqa: BLE001 - private operators fail in build-specific ways
        problem = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    logger.warning("memlora: oneDNN packed bf16 kernels unavailable here (%s); bf16 layers use plain matmuls",
                   problem)
    return False


def prepare_for_cpu_inference(model: Any) -> dict[str, Any]:
    """Applies the speedups above to a model loaded for inference on the CPU; returns what it did."""
    done: dict[str, Any] = {"attention": None, "packed_linear": 0}
    if next(model.parameters()).device.type != "cpu":
        return done
    register_attention()
    model.set_attn_implementation(ATTENTION_NAME)
    done["attention"] = ATTENTION_NAME
    kernels: dict[torch.dtype, type[PackedLinear] | type[PlainLinear]] = {torch.float32: PlainLinear}
    has_bf16 = any(p.dtype == torch.bfloat16 for p in model.parameters())
    if has_bf16 and mkldnn_bf16_available():  # needs AVX-512 or AVX-NE-CONVERT; plain bf16 matmuls otherwise
        done["packed_linear"] = pack_linear_weights(model)
        kernels[torch.bfloat16] = PackedLinear
    done["merged_lora"] = merge_lora_layers(model, kernels)
    return done


class GrowingKVLayer(DynamicLayer):
    """A full-attention cache layer that appends into spare capacity instead of concatenating.

    `keys` / `values` are views of the filled part of a larger zero-filled buffer, which grows
    by a quarter (at least `reserve` slots) when full.
    """

    reserve = 256

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self.length = 0  # filled slots; the buffers hold at least this many
        self.key_buffer = key_states.new_empty((0,))
        self.value_buffer = value_states.new_empty((0,))

    def _make_room(self, needed: int, like: torch.Tensor) -> None:
        capacity = self.key_buffer.shape[-2] if self.key_buffer.dim() == 4 else 0
        if needed <= capacity:
            return
        shape = (like.shape[0], like.shape[1], needed + max(self.reserve, needed // 4), like.shape[3])
        keys, values = like.new_zeros(shape), like.new_zeros(shape)
        if self.length:
            keys[:, :, : self.length] = self.keys
            values[:, :, : self.length] = self.values
        self.key_buffer, self.value_buffer = keys, values

    def _refresh_views(self) -> None:
        self.keys = self.key_buffer[:, :, : self.length]
        self.values = self.value_buffer[:, :, : self.length]
        setattr(self.keys, BUFFER, self.key_buffer)  # for small_query_attention
        setattr(self.values, BUFFER, self.value_buffer)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, end = self.length, self.length + key_states.shape[-2]
        self._make_room(end, key_states)
        self.key_buffer[:, :, start:end] = key_states
        self.value_buffer[:, :, start:end] = value_states
        self.length = end
        self._refresh_views()
        return self.keys, self.values

    def load(self, keys: torch.Tensor, values: torch.Tensor, length: int | None = None) -> None:
        """Starts the layer from buffers (batch, kv_heads, slots, head_dim) whose first `length`
        slots (all by default) hold keys and values; the rest must be zeros."""
        self.lazy_initialization(keys, values)
        self.key_buffer, self.value_buffer = keys, values
        self.length = keys.shape[-2] if length is None else length
        self._refresh_views()

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove < 0 and self.is_initialized:
            self.length = max(0, self.length + tokens_to_remove)
            self._refresh_views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.get_seq_length() > 0:
            self.key_buffer = self.keys.repeat_interleave(repeats, dim=0)
            self.value_buffer = self.values.repeat_interleave(repeats, dim=0)
            self._refresh_views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            self.key_buffer = self.key_buffer[indices]
            self.value_buffer = self.value_buffer[indices]
            self._refresh_views()


def growing_cache(model: Any) -> DynamicCache:
    """A `DynamicCache` for `model` made of `GrowingKVLayer`s.

    Sliding-window layers (Gemma 3) keep every token too: the attention mask applies the
    window, so results are unchanged; the cache is only larger than a ring buffer would be.
    """
    cache = DynamicCache(config=model.config)
    cache.layers = [GrowingKVLayer() for _ in cache.layers]
    return cache
