"""Test doubles: a tiny random model and a tiny tokenizer, no download and no conversion.

Tests and the notebook's smoke run use them to drive the real code paths (chat template, stop
tokens, engine, training) in seconds. The tokenizer is a byte-level BPE trained in milliseconds
on memlora's own prompt text; it carries the special tokens of the real family (Qwen's
<|im_start|>, <|im_end|>, <tool_call>...; Gemma's <start_of_turn>...) and the family's chat
template, so prompt rendering and stop logic behave as with the bundled models. Nothing in the
library imports this module: it sits above every layer (tests/test_layers.py).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import torch

from memlora.agent.prompt import SYSTEM_PROMPT
from memlora.models.chat_format import END_OF_TURN, GEMMA_CHAT_TEMPLATE
from memlora.models.loading import LoadedModel

QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"]
GEMMA_SPECIAL = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]


def _corpus() -> list[str]:
    sample_call = {
        "name": "create_entities",
        "arguments": {"entities": [{"name": "Alice Chen", "entityType": "person", "observations": ["Engineer"]}]},
    }
    return [SYSTEM_PROMPT, json.dumps(sample_call), json.dumps(sample_call, separators=(",", ":"))] * 4 + [
        "entities relations observations entityType relationType entityNames deletions additions contents "
        "query names from to name arguments description parameters properties required type object array "
        "string function tools tool_response",
    ]


@lru_cache(maxsize=4)
def _build_tokenizer_json(family: str, vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    special = GEMMA_SPECIAL if family == "gemma" else QWEN_SPECIAL
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    return tokenizer.to_str()


def build_tiny_tokenizer(family: str = "qwen", vocab_size: int = 1024) -> Any:
    """A PreTrainedTokenizerFast with the family's special tokens and chat template."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(_build_tokenizer_json(family, vocab_size))
    if family == "gemma":
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
        )
    else:
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>"
        )
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE if family == "gemma" else QWEN_CHAT_TEMPLATE
    return tokenizer


def tiny_model(family: str = "qwen", seed: int = 0, tokenizer: Any = None, tie_embeddings: bool = True) -> LoadedModel:
    """A randomly initialised 2-layer model: real architecture, untrained weights.

    The tokenizer is `build_tiny_tokenizer(family)`, so the chat template and tool-call tokens
    behave like the real thing.
    """
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = tokenizer or build_tiny_tokenizer(family)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=tie_embeddings,  # the converted bundled Qwen is untied
        initializer_range=0.2,  # large enough that a random model's greedy output varies
        eos_token_id=tokenizer.convert_tokens_to_ids(END_OF_TURN[family]),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config).to(torch.float32).eval()
    return LoadedModel(model, tokenizer, f"tiny-{family}", family, torch.device("cpu"))


# Qwen 2.5's tool-calling template, written out for the tiny tokenizer (which has none of its
# own). memlora itself renders Qwen with the template in the Qwen tokenizer; a slow test checks
# that this copy renders a conversation identically to the bundled model's.
QWEN_CHAT_TEMPLATE = """\
{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0].role == 'system' %}{{- messages[0].content }}\
{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}{%- endif %}
{{- '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n\
You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}
{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}
{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and \
arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{"name": <function-name>, \
"arguments": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- else %}
{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'system' and not loop.first) \
or (message.role == 'assistant' and not message.tool_calls) %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- elif message.role == 'assistant' %}
{{- '<|im_start|>' + message.role }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls %}
{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '\\n<tool_call>\\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}\
{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == 'tool' %}
{%- if loop.index0 == 0 or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""


def save_tiny_model_with_adapters(root: Any, seed: int, adapter_folders: dict[str, str],
                                  adapter_seed: int) -> dict[str, Any]:
    """A tiny untied base model saved in root/tiny and one LoRA adapter per name, each saved in
    root/<folder> with large random weights (so each adapter visibly changes the output).

    Returns {"base": path, name: path, ...}. Adapter i's weights are seeded with adapter_seed + i.
    """
    from pathlib import Path

    from peft import LoraConfig, get_peft_model

    root = Path(root)
    tiny = tiny_model("qwen", seed=seed, tie_embeddings=False)
    tiny.model.save_pretrained(root / "tiny")
    tiny.tokenizer.save_pretrained(root / "tiny")
    paths: dict[str, Any] = {"base": root / "tiny"}
    for index, (name, folder) in enumerate(adapter_folders.items()):
        config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                            task_type="CAUSAL_LM")
        base = tiny_model("qwen", seed=seed, tie_embeddings=False).model  # seeds torch itself
        torch.manual_seed(adapter_seed + index)  # so seed the adapter's weights after it
        peft_model = get_peft_model(base, config)
        with torch.no_grad():
            for parameter_name, parameter in peft_model.named_parameters():
                if "lora_B" in parameter_name:
                    parameter.normal_(0, 0.5)
        peft_model.save_pretrained(root / folder)
        paths[name] = root / folder
    return paths
