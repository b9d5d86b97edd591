"""The batched engine decodes exactly what plain greedy generation would, with or without batching."""

from __future__ import annotations

import asyncio

import pytest
import torch

from memlora.agent.engine import GenerationEngine, SamplingParams
from memlora.agent.loop import session_prefix
from memlora.agent.prompt import session_opening
from memlora.agent.protocol import model_tools
from memlora.models.chat_format import render_prompt
from memlora.testing import tiny_model


@pytest.fixture(scope="module")
def setup() -> tuple[object, list[str], str]:
    loaded = tiny_model("qwen")
    tools = model_tools()
    opening = session_opening({"entities": [], "relations": []})
    users = ["I'm Bob.", "My sister Mia lives in Lisbon and she is an architect.", "Hi"]
    prompts = [render_prompt(loaded.tokenizer, opening + [{"role": "user", "content": u}], tools) for u in users]
    return loaded, prompts, session_prefix(loaded.tokenizer, tools)


def reference(loaded, engine: GenerationEngine, prompt: str, n: int) -> list[int]:
    ids = torch.tensor([engine.encode(prompt)])
    with torch.inference_mode():
        out = loaded.model.generate(ids, max_new_tokens=n, do_sample=False, eos_token_id=sorted(engine.stop_ids),
                                    pad_token_id=engine.pad_id)
    tokens = out[0, ids.shape[1]:].tolist()
    return [t for t in tokens if t not in engine.stop_ids]


@pytest.mark.parametrize("rows_alone", [True, False], ids=["cpu-prefill", "gpu-prefill"])
def test_batched_prefix_cached_greedy_matches_generate(setup, rows_alone: bool) -> None:
    """Both prefill layouts: each row's new tokens alone (CPU default) or one padded batch (GPU)."""
    loaded, prompts, prefix = setup
    engine = GenerationEngine(loaded, prefix=prefix, prefill_sequences_alone=rows_alone)
    results = engine.generate_many(prompts, SamplingParams(max_new_tokens=16))
    assert all(r.cached_prompt_tokens == len(engine.prefix_ids) > 0 for r in results)
    assert all(r.batch_size == 3 for r in results)
    outputs = [r.token_ids for r in results]
    assert len({tuple(o) for o in outputs}) > 1  # the rows really differ
    for prompt, result in zip(prompts, results):
        assert result.token_ids == reference(loaded, engine, prompt, 16)
    # no prefix cache, one at a time: same tokens
    plain = GenerationEngine(loaded, prefix=None)
    assert [plain.generate_many([p], SamplingParams(max_new_tokens=16))[0].token_ids for p in prompts] == outputs


def test_seeded_sampling_is_reproducible(setup) -> None:
    loaded, prompts, prefix = setup
    engine = GenerationEngine(loaded, prefix=prefix)

    def sample(seed: int) -> list[int]:
        params = SamplingParams(max_new_tokens=24, temperature=1.5, seed=seed, ignore_stop=True)
        return engine.generate_many(prompts[:1], params)[0].token_ids

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)
    assert len(sample(3)) == 24


def test_concurrent_async_requests_share_a_batch(setup) -> None:
    loaded, prompts, prefix = setup
    engine = GenerationEngine(loaded, prefix=prefix)
    expected = [r.token_ids for r in engine.generate_many(prompts, SamplingParams(max_new_tokens=8))]

    async def main():
        return await asyncio.gather(*(engine.generate(p, SamplingParams(max_new_tokens=8)) for p in prompts))

    results = asyncio.run(main())
    assert [r.token_ids for r in results] == expected
    assert {r.batch_size for r in results} == {3}


def test_next_step_reuses_the_conversation_kv(setup) -> None:
    loaded, prompts, prefix = setup
    engine = GenerationEngine(loaded, prefix=prefix)
    first = engine.generate_many(prompts, SamplingParams(max_new_tokens=10))
    # the next step of each conversation: its prompt, what the model wrote, then a tool result
    follow_ups = [prompt + result.text + "<|im_end|>\n<|im_start|>user\n<tool_response>\n[]\n</tool_response>"
                  "<|im_end|>\n<|im_start|>assistant\n" for prompt, result in zip(prompts, first)]
    follow_ups[2] = prompts[2] + " something else entirely"  # shares only the prompt with its first step
    second = engine.generate_many(follow_ups, SamplingParams(max_new_tokens=10))
    for prompt, before, after in zip(follow_ups, first, second):
        assert after.cached_prompt_tokens > before.prompt_tokens - 1  # beyond the shared prefix
        assert after.token_ids == reference(loaded, engine, prompt, 10)
    assert engine.conversations.tokens <= engine.conversations.budget_tokens


def test_lookup_drafts_do_not_change_greedy_output(setup) -> None:
    loaded, prompts, prefix = setup
    plain = GenerationEngine(loaded, prefix=prefix, lookahead=0)
    from memlora.agent.protocol import example_calls_text, model_tools

    drafting = GenerationEngine(loaded, prefix=prefix, lookahead=6,
                                draft_corpus=example_calls_text(loaded.tokenizer, model_tools()))
    for prompt in prompts:
        for params in (SamplingParams(max_new_tokens=40), SamplingParams(max_new_tokens=40, ignore_stop=True)):
            expected = plain.generate_many([prompt], params)[0]
            got = drafting.generate_many([prompt], params)[0]
            assert (got.token_ids, got.finish_reason) == (expected.token_ids, expected.finish_reason)
    assert drafting.accepted_tokens > 0  # the drafts were really used, and some were right


def test_lookup_draft_follows_the_latest_match() -> None:
    from memlora.agent.engine import lookup_draft

    assert lookup_draft([1, 2, 3, 9, 1, 2, 3, 7, 8, 1, 2, 3], 2) == [7, 8]
    assert lookup_draft([5, 6, 7, 5, 6], 3) == [7, 5, 6]
    assert lookup_draft([1, 2, 3], 4) == []
    assert lookup_draft([1, 2, 1, 2], 0) == []
    # the corpus is searched after the sequence itself, and only when that has no match
    assert lookup_draft([4, 1, 2], 2, corpus=[1, 2, 8, 9]) == [8, 9]
    assert lookup_draft([1, 2, 5, 1, 2], 2, corpus=[1, 2, 8, 9]) == [5, 1]
    assert lookup_draft([7, 1, 2], 2, corpus=[0, 7, 1, 2, 6, 1, 2, 3]) == [6, 1]  # longer n-gram wins


def test_reusing_a_saved_kv_leaves_it_for_its_own_conversation(setup) -> None:
    loaded, prompts, prefix = setup
    engine = GenerationEngine(loaded, prefix=prefix, lookahead=0)
    first = engine.generate_many(prompts[:1], SamplingParams(max_new_tokens=6))[0]
    # another conversation whose prompt shares all of the first prompt, then goes elsewhere
    other = engine.generate_many([prompts[0] + " and then"], SamplingParams(max_new_tokens=6))[0]
    assert other.cached_prompt_tokens >= first.prompt_tokens - 1
    follow_up = prompts[0] + first.text + "<|im_end|>\n<|im_start|>user\nok<|im_end|>\n<|im_start|>assistant\n"
    again = engine.generate_many([follow_up], SamplingParams(max_new_tokens=6))[0]
    assert again.cached_prompt_tokens > first.prompt_tokens  # the first conversation's own KV was still there
    assert again.token_ids == reference(loaded, engine, follow_up, 6)


def test_conversation_cache_keeps_only_the_latest_step_of_a_conversation() -> None:
    """A step's saved KV extends the previous step's, so the older entry goes; entries that only
    share a prefix (another conversation, the same session opening) stay."""
    from memlora.agent.engine import ConversationCache, SavedKV

    def saved(tokens: list[int]) -> SavedKV:
        return SavedKV(tokens, [(torch.zeros(1, 1, len(tokens), 1), torch.zeros(1, 1, len(tokens), 1))])

    cache = ConversationCache(budget_tokens=100)
    cache.put("a", saved([1, 2, 3]))
    cache.put("a", saved([1, 2, 3, 4, 5]))  # the same conversation, one step on
    cache.put("b", saved([1, 2, 3, 4, 5, 6]))  # another adapter: its own entries
    cache.put("a", saved([1, 2, 9]))  # another conversation with the same opening
    assert sorted((adapter, tuple(s.tokens)) for adapter, s in cache.entries.values()) == [
        ("a", (1, 2, 3, 4, 5)), ("a", (1, 2, 9)), ("b", (1, 2, 3, 4, 5, 6))]
    assert cache.tokens == 5 + 6 + 3
    entry, length = cache.longest_match("a", [1, 2, 3, 4, 5, 7, 8])
    assert entry is not None and entry.tokens == [1, 2, 3, 4, 5] and length == 5


def test_a_stopped_row_names_its_stop_token_and_caches_can_be_dropped(setup) -> None:
    """Training reads which token ended a step, and drops every cache when the weights change."""
    loaded, prompts, prefix = setup
    engine = GenerationEngine(loaded, prefix=prefix)
    first = engine.generate_many(prompts[:1], SamplingParams(max_new_tokens=4))[0]
    assert first.finish_reason == "length" and first.stop_token is None
    engine.stop_ids = engine.stop_ids | {first.token_ids[1]}  # its second token now ends the turn
    stopped = engine.generate_many(prompts[:1], SamplingParams(max_new_tokens=4))[0]
    assert stopped.finish_reason == "stop" and stopped.stop_token == first.token_ids[1]
    assert stopped.token_ids == first.token_ids[:1]
    assert engine._prefix_caches and engine.conversations.entries
    engine.forget_caches()
    assert not engine._prefix_caches and not engine.conversations.entries
    assert engine.generate_many(prompts[:1], SamplingParams(max_new_tokens=4))[0].token_ids == first.token_ids[:1]


def test_listeners_hear_every_output_token_as_it_is_chosen(setup) -> None:
    """What `memlora api` streams: batched rows and a lone row (decoded with drafts) alike."""
    loaded, prompts, prefix = setup
    engine = GenerationEngine(loaded, prefix=prefix)
    heard: list[list[int]] = [[] for _ in prompts]
    results = engine.generate_many(prompts, SamplingParams(max_new_tokens=10), listeners=[h.extend for h in heard])
    assert heard == [r.token_ids for r in results] and all(heard)
    alone: list[int] = []
    result = engine.generate_many(prompts[:1], SamplingParams(max_new_tokens=10), listeners=[alone.extend])[0]
    assert alone == result.token_ids


@pytest.mark.parametrize("batched", [True, False], ids=["batch", "alone-with-drafts"])
def test_closing_the_engine_stops_the_batch_being_decoded(setup, batched: bool) -> None:
    """Ctrl-C in `memlora eval` closes the engine; its worker must not decode on to the end."""
    from memlora.agent.engine import GenerationCancelled

    loaded, prompts, prefix = setup
    engine = GenerationEngine(loaded, prefix=prefix)
    heard: list[int] = []

    def close_after_two(tokens: list[int]) -> None:
        heard.extend(tokens)
        if len(heard) >= 2:
            engine.close()

    chosen = prompts if batched else prompts[:1]
    with pytest.raises(GenerationCancelled):
        engine.generate_many(chosen, SamplingParams(max_new_tokens=200, ignore_stop=True),
                             listeners=[close_after_two] + [None] * (len(chosen) - 1))
    assert len(heard) < 200


def test_requests_that_arrive_while_a_batch_decodes_join_it(setup) -> None:
    """Continuous batching: rows that arrive mid-batch join at the next step, longer and shorter
    than the rows already there, and every row gives the tokens of the batch-at-once path."""
    loaded, prompts, prefix = setup
    engine = GenerationEngine(loaded, prefix=prefix, lookahead=0)
    long_params = SamplingParams(max_new_tokens=300, ignore_stop=True)  # past the pools' spare slots
    short_params = SamplingParams(max_new_tokens=12)
    static = GenerationEngine(loaded, prefix=prefix, continuous=False)
    expected_first = static.generate_many([prompts[2]], long_params)[0].token_ids
    expected_late = [r.token_ids for r in static.generate_many(prompts[:2], short_params)]

    async def main():
        loop = asyncio.get_running_loop()
        heard: list[int] = []
        third_token = asyncio.Event()

        def listen(tokens: list[int]) -> None:  # on the worker thread
            heard.extend(tokens)
            if len(heard) >= 3:
                loop.call_soon_threadsafe(third_token.set)

        first = asyncio.create_task(engine.generate(prompts[2], long_params, on_tokens=listen))
        await third_token.wait()
        late = await asyncio.gather(*(engine.generate(p, short_params) for p in prompts[:2]))
        heard_then = len(heard)
        return await first, late, heard_then

    first, late, heard_when_late_done = asyncio.run(main())
    assert first.token_ids == expected_first
    assert [r.token_ids for r in late] == expected_late
    assert heard_when_late_done < 300  # the late rows finished while the first was still decoding
    assert all(r.batch_size >= 2 for r in late)  # they joined the first row's batch (together or one by one)
    assert first.batch_size == 1


def test_a_running_batch_drops_the_slots_only_padding_uses(setup) -> None:
    """When a much longer row leaves, the slots left of every remaining row's tokens go; rows
    that leave are replaced by the last row, and every row still decodes as it would alone."""
    from memlora.agent.engine import _RunningBatch

    loaded, prompts, prefix = setup
    engine = GenerationEngine(loaded, prefix=prefix, lookahead=0)
    texts = [prompts[0], prompts[1] + " and then some more" * 80, prompts[2]]
    ids = [engine.encode(t) for t in texts]
    assert len(ids[1]) - max(len(ids[0]), len(ids[2])) >= 256
    params = [SamplingParams(max_new_tokens=2 if i == 1 else 8, ignore_stop=True) for i in range(3)]
    finished: list = []
    with torch.inference_mode():
        running = _RunningBatch(engine, "base")
        running.join([engine._prepare_row(ids[i], params[i], None, "base", finished.append) for i in range(3)])
        assert running.width == len(ids[1]) - 1
        running.take(running.forward())
        running.take(running.forward())  # the long middle row reaches its limit and leaves
        assert len(finished) == 1 and [row.sequence.prompt_ids for row in running.rows] == [ids[0], ids[2]]
        assert running.width == max(len(ids[0]), len(ids[2])) + 1  # prompt and one fed token, no pad column
        assert all(layer.length == running.width for layer in running.cache.layers)
        while running.rows:
            running.take(running.forward())
    static = GenerationEngine(loaded, prefix=prefix, continuous=False).generate_many(texts, params)
    assert sorted(c.token_ids for c in finished) == sorted(r.token_ids for r in static)


def test_a_request_for_another_adapter_waits_for_the_batch_and_is_served(tmp_path) -> None:
    """Rows of one batch share an adapter; the other adapter's request runs once the batch drains,
    and the batch stops taking in new rows meanwhile."""
    from memlora.models.loading import load_model
    from memlora.testing import save_tiny_model_with_adapters

    paths = save_tiny_model_with_adapters(tmp_path, seed=3, adapter_folders={"left": "left", "right": "right"}, adapter_seed=11)
    loaded = load_model(str(paths["base"]), adapters={"left": paths["left"], "right": paths["right"]}, device="cpu", dtype="fp32")
    tools = model_tools()
    opening = session_opening({"entities": [], "relations": []})
    users = ["I'm Bob.", "My sister Mia lives in Lisbon.", "Hi"]
    prompts = [render_prompt(loaded.tokenizer, opening + [{"role": "user", "content": u}], tools) for u in users]
    engine = GenerationEngine(loaded, prefix=session_prefix(loaded.tokenizer, tools), lookahead=0)
    static = GenerationEngine(loaded, prefix=session_prefix(loaded.tokenizer, tools), continuous=False)
    params = SamplingParams(max_new_tokens=10, ignore_stop=True)
    long_params = SamplingParams(max_new_tokens=150, ignore_stop=True)  # decoding while the others arrive
    expected = {(name, i): static.generate_many([p], long_params if i == 0 else params, adapter=name)[0].token_ids
                for name in ("left", "right") for i, p in enumerate(prompts)}
    assert expected[("left", 0)] != expected[("right", 0)]

    async def main():
        loop = asyncio.get_running_loop()
        started = asyncio.Event()
        first = [asyncio.create_task(engine.generate(prompts[0], long_params, adapter="left",
                                                     on_tokens=lambda _: loop.call_soon_threadsafe(started.set)))]
        await started.wait()
        other = asyncio.create_task(engine.generate(prompts[1], params, adapter="right"))
        await asyncio.sleep(0)
        same = asyncio.create_task(engine.generate(prompts[2], params, adapter="left"))
        return await asyncio.gather(*first, other, same)

    a0, b1, a2 = asyncio.run(main())
    assert a0.token_ids == expected[("left", 0)]
    assert b1.token_ids == expected[("right", 1)]
    assert a2.token_ids == expected[("left", 2)]
    assert a2.batch_size == 1  # it did not join a0's batch while b1 waited


def test_closing_the_engine_fails_every_row_of_a_continuous_batch(setup) -> None:
    from memlora.agent.engine import GenerationCancelled

    loaded, prompts, prefix = setup
    engine = GenerationEngine(loaded, prefix=prefix, lookahead=0)
    params = SamplingParams(max_new_tokens=200, ignore_stop=True)

    async def main():
        heard: list[int] = []

        def close_after_two(tokens: list[int]) -> None:
            heard.extend(tokens)
            if len(heard) >= 2:
                engine.close()

        requests = [engine.generate(prompts[0], params, on_tokens=close_after_two)]
        requests += [engine.generate(p, params) for p in prompts[1:]]
        return await asyncio.gather(*requests, return_exceptions=True), len(heard)

    results, heard = asyncio.run(main())
    assert all(isinstance(r, GenerationCancelled) for r in results)
    assert heard < 200


def test_the_conversation_cache_holds_every_batched_conversation_within_a_quarter_of_memory(setup, monkeypatch) -> None:
    """8,192 tokens for each conversation the engine may batch (32 evaluation episodes each repeat
    a 3k-token system prompt: a fixed 64k budget evicted entries still in use), capped at a
    quarter of the machine's memory."""
    import os

    from memlora.agent.engine import conversation_budget

    loaded, _, _ = setup
    config = loaded.model.config
    per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * \
        (getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads) * 4  # fp32
    assert conversation_budget(loaded, 4) == 65536
    assert conversation_budget(loaded, 32) == 8192 * 32
    assert GenerationEngine(loaded, max_batch=32).conversations.budget_tokens == 8192 * 32
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 100 * 8192 * per_token // 4096}  # room for 100 x 8k / 4
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    assert conversation_budget(loaded, 64) == 100 * 8192 // 4
