"""A small byte-level BPE tokenizer for tests: no download, no GGUF conversion.

It is trained in milliseconds on memlora's own prompt text, carries the special tokens of the
real family (Qwen's <|im_start|>, <|im_end|>, <tool_call>...; Gemma's <start_of_turn>...) and
the family's chat template, so tests exercise the same prompt rendering and stop logic as the
bundled models while the model behind it is a tiny random one.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"]
GEMMA_SPECIAL = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]


def _corpus() -> list[str]:
    from memlora.agent.prompt import SYSTEM_PROMPT

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

    from memlora.agent.protocol import chat_template_for

    backend = Tokenizer.from_str(_build_tokenizer_json(family, vocab_size))
    if family == "gemma":
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
        )
    else:
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>"
        )
    tokenizer.chat_template = chat_template_for(family)
    return tokenizer
