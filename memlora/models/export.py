"""Adapters for other runtimes: a llama.cpp LoRA GGUF, a merged model, an Ollama Modelfile.

A memlora adapter is a PEFT LoRA on the attention projections plus its own token vectors for
the tool-call tags and end-of-turn token ("trainable tokens", memlora.models.token_rows): rows
of the embedding and output-head matrices. llama.cpp has no notion of replaced vectors, but
replacing k rows of a matrix is itself a low-rank update: W' = W + P D with P the k one-hot
columns of those tokens and D the new vectors minus the old ones. The export writes exactly
that as a LoRA pair for `token_embd` and `output`, with D taken against the vectors of the GGUF
the adapter will run on (dequantised), and with a rank chosen so that llama.cpp's scale
alpha/rank is a power of two: the one-hot entries are then 1/scale and the product restores D
without rounding.

The GGUF layout follows llama.cpp's own converter (convert_lora_to_gguf.py): `general.type =
adapter`, `adapter.type = lora`, `adapter.lora.alpha`, tensors `<base name>.lora_a` (rank x in)
and `.lora_b` (out x rank); for `token_embd` A is stored transposed (vocab x rank) and B is
(hidden x rank), since llama.cpp gathers A's rows by token id.

Adapters trained on a base-model prefix cache (card `frozen_prefix: true`, memlora.models.
loading.adapter_prefix_cache) expect the system prompt to run without the LoRA. llama.cpp can do
that with an activated LoRA ("aLoRA"): the export then names invocation tokens, the tokens that
open every session right after the system prompt, and llama.cpp applies the adapter from there
on (it activates one token before the sequence it finds, so the sequence starts at the second
token after the system prompt). llama.cpp looks for the last occurrence of that sequence, so a
conversation in which the model itself calls read_graph with no arguments moves the start
there; Ollama and vLLM have no such switch and apply every LoRA to every token.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight")
TOKEN_VECTORS_SUFFIX = ".token_adapter.trainable_tokens_delta"


class ExportError(ValueError):
    """An adapter or base model that cannot be exported as asked; the message says why."""


@dataclass
class AdapterWeights:
    """A PEFT adapter folder read into numpy: LoRA pairs and replaced token vectors, by HF module name."""

    folder: Path
    config: dict[str, Any]
    lora: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # module -> (A r x in, B out x r)
    # module -> (token ids, one vector per token)
    token_vectors: dict[str, tuple[list[int], np.ndarray]] = field(default_factory=dict)

    def _pattern(self, key: str, module: str) -> Any:
        for pattern, value in (self.config.get(key) or {}).items():
            if re.match(rf"(.*\.)?{pattern}$", module):
                return value
        return None

    def scale(self, module: str) -> float:
        """PEFT's scaling of B @ A for one module: alpha / r, or alpha / sqrt(r) with rsLoRA."""
        rank = self._pattern("rank_pattern", module) or self.config["r"]
        alpha = self._pattern("alpha_pattern", module) or self.config["lora_alpha"]
        return alpha / math.sqrt(rank) if self.config.get("use_rslora") else alpha / rank


def read_adapter(folder: str | Path) -> AdapterWeights:
    from safetensors.numpy import load_file

    folder = Path(folder)
    config_file = folder / "adapter_config.json"
    if not config_file.exists():
        raise ExportError(f"{folder}: no adapter_config.json there")
    config = json.loads(config_file.read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise ExportError(f"{folder}: a {config.get('peft_type')} adapter; only LoRA adapters can be exported")
    for key in ("use_dora", "lora_bias"):
        if config.get(key):
            raise ExportError(f"{folder}: adapter_config.json sets {key}; llama.cpp LoRA has no such part")
    if config.get("modules_to_save"):
        raise ExportError(f"{folder}: modules_to_save {config['modules_to_save']} are whole trained layers, "
                          "not a LoRA; export --format merged")
    tensors = {name: value.astype(np.float32) for name, value in load_file(str(folder / "adapter_model.safetensors")).items()}
    adapter = AdapterWeights(folder, config)
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for name, value in tensors.items():
        name = name.removeprefix("base_model.model.")
        if name.endswith(TOKEN_VECTORS_SUFFIX):
            module = name.removesuffix(TOKEN_VECTORS_SUFFIX)
            targets = config.get("trainable_token_indices") or {}
            ids = next((ids for key, ids in targets.items() if module == key or module.endswith("." + key)), None)
            if ids is None or len(ids) != value.shape[0]:
                raise ExportError(f"{folder}: token vectors for {module} do not match trainable_token_indices")
            adapter.token_vectors[module] = (list(ids), value)
            continue
        suffix = next((s for s in LORA_SUFFIXES if name.endswith(s)), None)
        if suffix is None:
            raise ExportError(f"{folder}: unexpected tensor {name!r} (not a LoRA pair or token vectors)")
        pairs.setdefault(name.removesuffix(suffix), {})[suffix] = value
    for module, pair in pairs.items():
        if len(pair) != 2:
            raise ExportError(f"{folder}: {module} has only one of lora_A / lora_B")
        adapter.lora[module] = (pair[".lora_A.weight"], pair[".lora_B.weight"])
    return adapter


def exact_rank(alpha: float, tokens: int) -> tuple[int, float]:
    """(rank, one-hot value) for replacing `tokens` vectors: the smallest rank >= tokens whose
    llama.cpp scale alpha / rank is a power of two, so that scale * (1 / scale) is exactly 1."""
    for rank in range(tokens, tokens + 256):
        mantissa, _ = math.frexp(alpha / rank)
        if mantissa == 0.5:
            return rank, rank / alpha
    return tokens, tokens / alpha  # no such rank: one rounding in the product


class BaseGguf:
    """The GGUF the adapter will run on: its architecture, tensor names and (dequantised) token vectors."""

    def __init__(self, path: str | Path) -> None:
        import gguf

        self.path = Path(path)
        self.reader = gguf.GGUFReader(str(path))
        self.arch = str(self.reader.fields["general.architecture"].contents())
        blocks = int(self.reader.fields[f"{self.arch}.block_count"].contents())
        arch_id = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == self.arch)
        self.names = gguf.get_tensor_name_map(arch_id, blocks)
        self.tensors = {tensor.name: tensor for tensor in self.reader.tensors}

    def name(self, module: str) -> str:
        """`model.layers.3.self_attn.q_proj` -> `blk.3.attn_q.weight` (gguf-py's own name map)."""
        mapped = self.names.get_name(module + ".weight", try_suffixes=(".weight",))
        if mapped is None or mapped not in self.tensors:
            raise ExportError(f"{module}: no tensor for it in {self.path.name} (is this the adapter's base model?)")
        return mapped

    def shape(self, name: str) -> tuple[int, int]:
        """(out, in) of a matrix, as torch orders it (GGUF lists dimensions the other way round)."""
        dims = [int(d) for d in self.tensors[name].shape]
        return dims[1], dims[0]

    def token_vectors(self, name: str, ids: list[int]) -> np.ndarray:
        """Rows `ids` of matrix `name` (the vectors of those tokens), dequantised."""
        from gguf import quants

        tensor = self.tensors[name]
        return quants.dequantize(np.asarray(tensor.data[ids]), tensor.tensor_type).astype(np.float32)


def invocation_tokens(tokenizer: Any, prefix: str, conversation: str) -> list[int]:
    """The aLoRA invocation tokens for an adapter whose system prompt runs without it.

    `prefix` is the system turn alone (system prompt and tool block) and `conversation` a
    session that starts with it: the runtime's opening read_graph call and its result, then a
    user turn. The invocation is that conversation's tokens from the second token after the
    prefix up to the start of the opening call's result (see the module docstring).
    memlora.agent.loop.opening_invocation renders both texts with memlora's own session.
    """

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    prefix_ids, full = encode(prefix), encode(conversation)
    if full[: len(prefix_ids)] != prefix_ids:
        raise ExportError("the system prompt does not tokenize the same alone and in a conversation")
    tail = full[len(prefix_ids) + 1:]
    for end in range(1, len(tail) + 1):
        if "<tool_response>" in tokenizer.decode(tail[:end]):
            return tail[:end]
    raise ExportError("could not find the opening call's result in the rendered session")


def write_lora_gguf(adapter: AdapterWeights, base: BaseGguf, out: str | Path,
                    invocation: list[int] | None = None) -> dict[str, Any]:
    """Writes the adapter as a llama.cpp LoRA GGUF for `base`; returns what went in."""
    import gguf

    alpha = float(adapter.config["lora_alpha"])
    writer = gguf.GGUFWriter(str(out), base.arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    if invocation:
        writer.add_key_value(gguf.Keys.Adapter.ALORA_INVOCATION_TOKENS, [int(t) for t in invocation],
                             gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT32)
    written = 0
    for module, (a, b) in sorted(adapter.lora.items()):
        name = base.name(module)
        out_dim, in_dim = base.shape(name)
        if a.shape[1] != in_dim or b.shape[0] != out_dim:
            raise ExportError(f"{module}: adapter shapes {b.shape[0]}x{a.shape[1]} do not fit {name} "
                              f"({out_dim}x{in_dim})")
        rank = a.shape[0]
        factor = adapter.scale(module) / (alpha / rank)  # 1.0 unless rsLoRA or per-module patterns
        writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(a))
        writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(b * factor) if factor != 1.0 else b)
        written += 1
    tied = "output.weight" not in base.tensors
    for module, (ids, new_vectors) in sorted(adapter.token_vectors.items()):
        if tied:
            raise ExportError(f"{base.path.name} ties its output head to token_embd, and llama.cpp would apply a "
                              f"token_embd LoRA to both with the wrong layout; export --format merged instead")
        name = base.name(module)
        out_dim, in_dim = base.shape(name)  # (vocab, hidden) for both token_embd and output
        deltas = new_vectors - base.token_vectors(name, ids)
        rank, one = exact_rank(alpha, len(ids))
        if name == "token_embd.weight":
            a = np.zeros((out_dim, rank), np.float32)  # gathered by token id: vocab x rank
            b = np.zeros((in_dim, rank), np.float32)
            for i, token in enumerate(ids):
                a[token, i], b[:, i] = one, deltas[i]
        else:
            a = np.zeros((rank, in_dim), np.float32)
            b = np.zeros((out_dim, rank), np.float32)
            for i, token in enumerate(ids):
                a[i], b[token, i] = deltas[i], one
        writer.add_tensor(f"{name}.lora_a", a)
        writer.add_tensor(f"{name}.lora_b", b)
        written += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"tensors": written, "alpha": alpha, "token_vectors": {m: ids for m, (ids, _) in adapter.token_vectors.items()},
            "invocation_tokens": len(invocation or [])}


def write_merged_gguf(adapter: AdapterWeights, base: BaseGguf, out: str | Path) -> dict[str, Any]:
    """The base GGUF with the adapter merged in: LoRA-targeted matrices become F16 (base dequantised
    + scale * B @ A), replaced token vectors are re-quantised in their tensor's own type (or the
    tensor becomes F16 where gguf-py cannot quantise that type); everything else is copied."""
    import gguf
    from gguf import quants

    writer = gguf.GGUFWriter(str(out), base.arch)
    for key, value in base.reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        sub = value.types[-1] if value.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, value.contents(), value.types[0], sub_type=sub)
    merged = {base.name(module): module for module in adapter.lora}
    replaced = {base.name(module): module for module in adapter.token_vectors}
    for tensor in base.reader.tensors:
        data, kind = np.asarray(tensor.data), tensor.tensor_type
        if tensor.name in merged:
            a, b = adapter.lora[merged[tensor.name]]
            weight = quants.dequantize(data, kind).astype(np.float32)
            weight += adapter.scale(merged[tensor.name]) * (b @ a)
            writer.add_tensor(tensor.name, weight.astype(np.float16))
        elif tensor.name in replaced:
            ids, vectors = adapter.token_vectors[replaced[tensor.name]]
            try:
                data = data.copy()
                data[ids] = quants.quantize(vectors, kind)
                writer.add_tensor(tensor.name, data, raw_dtype=kind)
            except NotImplementedError:
                weight = quants.dequantize(data, kind).astype(np.float32)
                weight[ids] = vectors
                writer.add_tensor(tensor.name, weight.astype(np.float16))
        elif kind in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            writer.add_tensor(tensor.name, data)
        else:
            writer.add_tensor(tensor.name, data, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"merged": len(merged), "token_vectors_replaced": len(replaced)}


def write_merged_safetensors(model: str, adapter_dir: str | Path, out: str | Path) -> Path:
    """The base model with the adapter merged (PEFT merge_and_unload, token vectors included), saved
    as a Hugging Face folder in the base model's dtype, tokenizer and chat template beside it."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memlora.models.chat_format import install_chat_template
    from memlora.models.loading import hide_checkpointing_alias_warning, model_family, resolve_model

    hide_checkpointing_alias_warning()
    source = resolve_model(model)
    base = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)  # merge in fp32
    config = json.loads((Path(str(source)) / "config.json").read_text()) if Path(str(source)).is_dir() else {}
    saved = str(config.get("dtype") or config.get("torch_dtype") or "bfloat16")
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.to(getattr(torch, saved))
    out = Path(out)
    merged.save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    install_chat_template(tokenizer, model_family(merged))
    tokenizer.save_pretrained(out)
    return out


def write_peft_lora(adapter: AdapterWeights, model: str, out: str | Path) -> Path:
    """The adapter as a plain PEFT LoRA: its replaced token vectors become LoRA pairs on
    `embed_tokens` and `lm_head` (one one-hot column per token, scale 1), for runtimes that load
    LoRA weights but not PEFT's trainable tokens (vLLM). The vectors' deltas are taken against the
    Hugging Face base model's own vectors."""
    import torch
    from safetensors.numpy import save_file
    from safetensors import safe_open

    from memlora.models.loading import resolve_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = dict(adapter.config)
    tensors = {f"base_model.model.{module}.lora_A.weight": a for module, (a, _) in adapter.lora.items()}
    tensors |= {f"base_model.model.{module}.lora_B.weight": b for module, (_, b) in adapter.lora.items()}
    source = Path(str(resolve_model(model)))
    base_weights: dict[str, np.ndarray] = {}
    for file in sorted(source.glob("*.safetensors")):
        with safe_open(str(file), "pt") as handle:
            for module in adapter.token_vectors:
                if f"{module}.weight" in handle.keys():
                    base_weights[module] = handle.get_tensor(f"{module}.weight").to(torch.float32).numpy()
    targets, ranks = list(config.get("target_modules") or []), dict(config.get("rank_pattern") or {})
    alphas = dict(config.get("alpha_pattern") or {})
    for module, (ids, new_vectors) in adapter.token_vectors.items():
        if module not in base_weights:
            raise ExportError(f"{module}: no such weight in {source} to take the vectors' deltas against")
        weight = base_weights[module]
        deltas = new_vectors - weight[ids]
        short = module.rsplit(".", 1)[-1]
        rank = len(ids)
        targets.append(short)
        ranks[short], alphas[short] = rank, rank  # scale alpha / r = 1
        if short == "embed_tokens":  # PEFT's embedding LoRA: A is rank x vocab, B hidden x rank
            a = np.zeros((rank, weight.shape[0]), np.float32)
            b = np.zeros((weight.shape[1], rank), np.float32)
            for i, token in enumerate(ids):
                a[i, token], b[:, i] = 1.0, deltas[i]
            tensors[f"base_model.model.{module}.lora_embedding_A"] = a
            tensors[f"base_model.model.{module}.lora_embedding_B"] = b
        else:
            a = np.zeros((rank, weight.shape[1]), np.float32)
            b = np.zeros((weight.shape[0], rank), np.float32)
            for i, token in enumerate(ids):
                a[i], b[token, i] = deltas[i], 1.0
            tensors[f"base_model.model.{module}.lora_A.weight"] = a
            tensors[f"base_model.model.{module}.lora_B.weight"] = b
    config.update(target_modules=targets, rank_pattern=ranks, alpha_pattern=alphas, trainable_token_indices=None)
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file({name: np.ascontiguousarray(value) for name, value in tensors.items()},
              str(out / "adapter_model.safetensors"))
    return out


def ollama_modelfile(base_gguf: str, adapter_gguf: str | None, family: str, system: str) -> str:
    """An Ollama Modelfile: the base GGUF, the LoRA GGUF as ADAPTER, the chat format as a Go
    template (Qwen's native tool calls; results in one user turn of <tool_response> blocks) and
    `system` (memlora.agent.prompt.SYSTEM_PROMPT) as the default system prompt."""
    if family != "qwen":
        raise ExportError("an Ollama template is written for the Qwen format only; Gemma uses memlora's own format")
    lines = [f"FROM {base_gguf}"]
    if adapter_gguf:
        lines.append(f"ADAPTER {adapter_gguf}")
    lines += [f'TEMPLATE """{OLLAMA_QWEN_TEMPLATE}"""', f'SYSTEM """{system}"""',
              'PARAMETER stop "<|im_end|>"', "PARAMETER temperature 0", ""]
    return "\n".join(lines)


# Qwen 2.5's tool-calling format (the Qwen tokenizer's own Jinja template) in Ollama's Go templates:
# consecutive tool results share one user turn, as in the Jinja original.
OLLAMA_QWEN_TEMPLATE = """{{- if or .System .Tools }}<|im_start|>system
{{ if .System }}{{ .System }}{{ else }}You are Qwen, created by Alibaba Cloud. You are a helpful assistant.{{ end }}
{{- if .Tools }}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{{- end }}<|im_end|>
{{ end }}
{{- $prev := "" }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if and (ne .Role "tool") (eq $prev "tool") }}<|im_end|>
{{ end }}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{- if .Content }}
{{ .Content }}{{ end }}
{{- range .ToolCalls }}
<tool_call>
{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}{{ if ne $prev "tool" }}<|im_start|>user{{ end }}
<tool_response>
{{ .Content }}
</tool_response>{{ if $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- $prev = .Role }}
{{- end }}"""
