"""The real bundled Qwen 0.5B: converted once, cached, and able to play a memory turn."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.slow


def test_bundled_qwen_completes_a_turn() -> None:
    from memlora.agent.engine import SamplingParams
    from memlora.agent.loop import MemoryAgent, build_engine, connect_memory
    from memlora.testing import QWEN_CHAT_TEMPLATE
    from memlora.models.loading import convert_bundled, load_model

    folder = convert_bundled("qwen2.5-coder-0.5b")
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    loaded = load_model("qwen2.5-coder-0.5b")
    assert loaded.family == "qwen"
    # memlora's transcription of the template renders exactly like the model's own
    own = loaded.tokenizer.chat_template
    engine = build_engine(loaded)
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    rendered = loaded.tokenizer.apply_chat_template(messages, tools=[], tokenize=False, add_generation_prompt=True)
    loaded.tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    assert loaded.tokenizer.apply_chat_template(messages, tools=[], tokenize=False, add_generation_prompt=True) == rendered
    loaded.tokenizer.chat_template = own

    async def main():
        async with connect_memory("sqlite::memory:") as memory:
            agent = MemoryAgent(engine, memory, params=SamplingParams(max_new_tokens=96), max_steps=2)
            return await agent.turn("Hi! I'm Alice Chen. I just joined Anthropic as a research engineer."), memory

    record, _ = asyncio.run(main())
    assert record.steps and record.stop in ("reply", "step_limit")
    first = record.steps[0]
    assert first.cached_prompt_tokens > 1000 and first.completion_tokens > 0
    assert "Alice" in first.raw  # a real model, reading the user's message
