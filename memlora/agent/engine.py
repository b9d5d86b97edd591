"""Batched generation for many concurrent conversations on one model.

Every conversation starts with the same system prompt and tool block (often longer than the
conversation itself), so the engine computes that prefix's KV cache once per adapter (with the
adapter active, as every runtime does) and copies it into each batch. Requests that arrive
together from asyncio tasks are decoded as one batch of sequences, one per request: the prompt
tails after the shared prefix are left-padded *between* the prefix and the tail
([prefix][pad..][tail]) with explicit position ids, so the cached prefix stays valid for every
sequence. Sequences leave the batch as soon as they stop, so the batch shrinks instead of idling.

The asyncio front end batches continuously: a request that arrives while a batch is decoding
joins it at the next step (its prompt run alone, its KV right-aligned beside the others'), so
an agent's next step does not wait for the longest row of the batch it missed. transformers'
own continuous batching (`generate_batch`) manages a paged cache of its own, which the
conversation and prefix caches here could not feed, hence this loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from memlora.models.chat_format import stop_token_ids
from memlora.models.cpu_inference import GrowingKVLayer, growing_cache
from memlora.models.kv_cache import cache_of, with_cache
from memlora.models.loading import BASE_ADAPTER, LoadedModel


class GenerationCancelled(RuntimeError):
    """The engine was closed while it was decoding: the batch stops at its next step."""


@dataclass
class SamplingParams:
    """Greedy when temperature is 0; a seed makes sampling reproducible per request."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    ignore_stop: bool = False  # benchmarks: always decode max_new_tokens


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    prompt_tokens: int
    cached_prompt_tokens: int  # how many prompt tokens came from the shared prefix cache
    completion_tokens: int
    finish_reason: str  # "stop" (end of turn) or "length"
    seconds: float
    batch_size: int
    prefill_seconds: float = 0.0
    stop_token: int | None = None  # the token that ended the turn (not in token_ids); None at the length limit


# Hears each sequence's new tokens as they are chosen, on the engine's worker thread (streaming).
TokenListener = Callable[[list[int]], None]


@dataclass
class _Sequence:
    prompt_ids: list[int]
    params: SamplingParams
    generator: torch.Generator | None = None
    output: list[int] = field(default_factory=list)
    finish_reason: str = "length"
    stop_token: int | None = None
    listener: TokenListener | None = None

    def emit(self, tokens: list[int]) -> None:
        if self.listener is not None and tokens:
            self.listener(tokens)


@dataclass
class SavedKV:
    """Keys and values of one sequence: per layer a (1, kv_heads, len(tokens), head_dim) pair."""

    tokens: list[int]
    layers: list[tuple[torch.Tensor, torch.Tensor]]


def common_prefix_length(a: list[int], b: list[int]) -> int:
    limit = min(len(a), len(b))
    if a[:limit] == b[:limit]:
        return limit
    low, high = 0, limit  # binary search on the first difference; list slices compare in C
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def lookup_draft(tokens: list[int], limit: int, longest: int = 3, shortest: int = 2,
                 corpus: list[int] | None = None) -> list[int]:
    """Up to `limit` tokens that followed an earlier occurrence of the sequence's last n-gram.

    Longer n-grams first; for each n the sequence itself is searched (latest occurrence first),
    then `corpus`, a fixed text of likely output (example tool calls). Nothing when neither
    holds the n-gram.
    """
    if limit <= 0:
        return []
    for n in range(min(longest, len(tokens)), shortest - 1, -1):
        tail = tokens[-n:]
        found = _continuation(tokens, tail, limit) or _continuation(corpus or [], tail, limit)
        if found:
            return found
    return []


def _continuation(source: list[int], tail: list[int], limit: int) -> list[int]:
    """Up to `limit` tokens after the latest occurrence of `tail` in `source` that some token
    follows (so the sequence's own last n tokens are never a match for themselves)."""
    n, first = len(tail), tail[0]
    for start in range(len(source) - n - 1, -1, -1):
        if source[start] == first and source[start : start + n] == tail:
            return source[start + n : start + n + limit]
    return []


class ConversationCache:
    """KV caches of finished sequences, keyed by adapter and the tokens they cover.

    An agent step's prompt is the previous step's prompt, its output and the tool results, so
    the previous sequence's KV covers most of it. Reuse copies an entry and leaves it in place: a
    prompt may share a long prefix with another conversation's entry (every session opens the
    same way), and taking it away would cost that conversation its next step. The least
    recently saved go first when over the token budget.
    """

    def __init__(self, budget_tokens: int):
        self.budget_tokens = budget_tokens
        self.entries: OrderedDict[int, tuple[str, SavedKV]] = OrderedDict()
        self.tokens = 0
        self._next_key = 0

    def put(self, adapter: str, saved: SavedKV) -> None:
        """Keeps `saved`, dropping the entries it extends: a conversation's earlier steps are
        prefixes of its latest one, which serves every prompt they could serve, so keeping them
        only crowded out other conversations (and with a few dozen concurrent ones on a CPU,
        every step ran its whole prompt again)."""
        if len(saved.tokens) > self.budget_tokens:
            return
        for key, (entry_adapter, entry) in list(self.entries.items()):
            if entry_adapter == adapter and len(entry.tokens) <= len(saved.tokens) \
                    and saved.tokens[: len(entry.tokens)] == entry.tokens:
                del self.entries[key]
                self.tokens -= len(entry.tokens)
        self.entries[self._next_key] = (adapter, saved)
        self._next_key += 1
        self.tokens += len(saved.tokens)
        while self.tokens > self.budget_tokens:
            _, (_, dropped) = self.entries.popitem(last=False)
            self.tokens -= len(dropped.tokens)

    def clear(self) -> None:
        self.entries.clear()
        self.tokens = 0

    def longest_match(self, adapter: str, prompt: list[int]) -> tuple[SavedKV | None, int]:
        """The entry sharing the longest prefix with `prompt`, and that length (kept below
        len(prompt): the model must see at least one new token). Callers copy, never modify it."""
        best, best_length = None, 0
        for entry_adapter, saved in self.entries.values():
            if entry_adapter == adapter:
                length = min(common_prefix_length(saved.tokens, prompt), len(prompt) - 1)
                if length > best_length:
                    best, best_length = saved, length
        return best, best_length


def layer_tensors(cache: Any, sequence: int,
                  slots: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Copies one batch sequence's keys and values out of a cache, keeping only `slots` (real tokens)."""
    layers = []
    for layer in cache.layers:
        keys, values = layer.keys[sequence : sequence + 1], layer.values[sequence : sequence + 1]
        if slots is not None:
            keys, values = keys.index_select(2, slots), values.index_select(2, slots)
        layers.append((keys.clone(), values.clone()))
    return layers


def load_sequences(cache: Any, sequences: list[tuple[list[tuple[torch.Tensor, torch.Tensor]] | None, int]],
                   width: int, spare: int = 0) -> None:
    """Fills an empty cache with each sequence's first `length` saved tokens, right-aligned in `width` slots.

    `spare` more zero slots are left after them for the tokens about to be appended, so that
    the first forward does not have to move the whole cache into a larger buffer."""
    for index, layer in enumerate(cache.layers):
        sample = next(saved[index][0] for saved, length in sequences if saved is not None and length)
        shape = (len(sequences), sample.shape[1], width + spare, sample.shape[3])
        keys, values = sample.new_zeros(shape), sample.new_zeros(shape)
        for sequence, (saved, length) in enumerate(sequences):
            if saved is not None and length:
                keys[sequence, :, width - length : width] = saved[index][0][0, :, :length]
                values[sequence, :, width - length : width] = saved[index][1][0, :, :length]
        layer.load(keys, values, width)


@dataclass
class _Row:
    """A sequence in the running batch: the token its next forward reads (None until the
    logits of the batch's prefill are chosen from) and that token's position id."""

    sequence: _Sequence
    feed: int | None
    position: int
    cached_prompt_tokens: int
    started: float
    prefill_seconds: float
    batch_size: int  # rows in the batch when this one joined
    deliver: Callable[[Completion | BaseException], None]


@dataclass
class _Request:
    ids: list[int]
    params: SamplingParams
    adapter: str
    future: asyncio.Future[Completion]
    listener: TokenListener | None


class _RunningBatch:
    """The rows decoding together: one KV cache whose rows end at the same slot (right-aligned).

    Each layer's keys and values live in a pool buffer (rows x slots) larger than the batch; the
    cache's layers see its first `len(rows)` rows and `width` slots. A row that leaves is
    replaced by the last row (one row copied), a row that joins is written into the next free
    row, so a membership change copies one row's KV, not the batch's. Only a joining row longer
    than the batch's width moves every row (to the right), and only a long run of slots that
    are padding in every row left moves them back. Slots left of a row's tokens are masked and
    hold finite leftovers (zeros or an earlier row's keys): masked slots get exactly zero weight.
    Between forwards rows leave (finished: their KV is kept for the conversation's next step)
    and join (their prompt already run, all but its last token, which becomes their first feed).
    """

    def __init__(self, engine: "GenerationEngine", adapter: str, cache: Any = None,
                 mask: torch.Tensor | None = None, rows: list[_Row] | None = None):
        self.engine = engine
        self.adapter = adapter
        self.cache = cache if cache is not None else growing_cache(engine.model)
        self.rows: list[_Row] = rows or []
        self.mask = mask if mask is not None else torch.zeros((0, 0), dtype=torch.long, device=engine.device)
        # per layer: (keys, values) pools; a prefilled cache's own buffers are the first pools
        self.pools: list[tuple[torch.Tensor, torch.Tensor]] = (
            [(layer.key_buffer, layer.value_buffer) for layer in self.cache.layers] if self.rows else [])

    @property
    def width(self) -> int:
        return self.mask.shape[1]

    def _bind(self) -> None:
        """Points the cache's layers at the pools' live rows and slots."""
        for layer, (keys, values) in zip(self.cache.layers, self.pools):
            layer.load(keys[: len(self.rows)], values[: len(self.rows)], self.width)

    def _reserve(self, rows: int, slots: int, like: list[torch.Tensor] | None = None) -> bool:
        """Makes the pools hold at least `rows` rows of `slots` slots; True when they were
        replaced (the layers then need `_bind`). `like`: a key tensor per layer, for shape and
        dtype when there are no pools yet."""
        if self.pools and rows <= self.pools[0][0].shape[0] and slots <= self.pools[0][0].shape[2]:
            return False
        like = like or [keys for keys, _ in self.pools]
        live, width = len(self.rows), self.width
        capacity_rows = max(rows, min(self.engine.max_batch, 2 * live), 1)
        capacity_slots = slots + GrowingKVLayer.reserve
        pools = []
        for index, sample in enumerate(like):
            shape = (capacity_rows, sample.shape[1], capacity_slots, sample.shape[3])
            keys, values = sample.new_zeros(shape), sample.new_zeros(shape)
            if self.pools and live:
                keys[:live, :, :width] = self.pools[index][0][:live, :, :width]
                values[:live, :, :width] = self.pools[index][1][:live, :, :width]
            pools.append((keys, values))
        self.pools = pools
        return True

    def _shift(self, by: int) -> None:
        """Moves every row's slots `by` to the right (or left, when negative), resizing the mask."""
        live, width = len(self.rows), self.width
        new_width = width + by
        self._reserve(live, new_width + 1)
        for keys, values in self.pools:
            for pool in (keys, values):
                if by > 0:
                    pool[:live, :, by:new_width] = pool[:live, :, :width].clone()
                else:
                    pool[:live, :, :new_width] = pool[:live, :, -by:width].clone()
        if by > 0:
            self.mask = torch.cat([self.mask.new_zeros((live, by)), self.mask], dim=1)
        else:
            self.mask = self.mask[:, -by:]

    def forward(self) -> torch.Tensor:
        """One decode step of every row; the next-token logits, a row each."""
        engine = self.engine
        engine._check_open()
        if self.pools and self._reserve(len(self.rows), self.width + 1):
            self._bind()  # otherwise the layers are bound already: take, join and the last update left them so
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        ids = torch.tensor([[row.feed] for row in self.rows], device=engine.device)
        positions = torch.tensor([[row.position] for row in self.rows], device=engine.device)
        out = engine.model(input_ids=ids, attention_mask=self.mask, position_ids=positions,
                           **with_cache(self.cache), use_cache=True, logits_to_keep=1)
        self.cache = cache_of(out)
        if not self.pools:  # the first forward of rows with no cached tokens made the buffers
            self.pools = [(layer.key_buffer, layer.value_buffer) for layer in self.cache.layers]
        engine.decode_forwards += 1
        engine.decoded_rows += len(self.rows)
        return out.logits[:, -1, :]

    def take(self, logits: torch.Tensor) -> None:
        """Chooses each row's next token; rows that stop or reach their limit leave the batch."""
        chosen = self.engine._choose(logits, [row.sequence for row in self.rows]).tolist()
        leaving: list[int] = []
        for slot, (row, token) in enumerate(zip(self.rows, chosen)):
            sequence = row.sequence
            if token in self.engine.stop_ids and not sequence.params.ignore_stop:
                sequence.finish_reason, sequence.stop_token = "stop", token
            else:
                sequence.output.append(token)
                sequence.emit([token])
                if len(sequence.output) < sequence.params.max_new_tokens:
                    row.feed, row.position = token, row.position + 1
                    continue
            leaving.append(slot)
        if not leaving:
            return
        gone = set(leaving)
        keep = [slot for slot in range(len(self.rows)) if slot not in gone]
        self.engine._save_finished(self.cache, self.mask, list(range(len(self.rows))), keep,
                                   [row.sequence for row in self.rows], self.adapter)
        for slot in leaving:
            self.rows[slot].deliver(self.engine._completion(self.rows[slot]))
        for slot in reversed(leaving):  # fill each hole with the last row
            last = len(self.rows) - 1
            if slot != last:
                for keys, values in self.pools:
                    keys[slot, :, : self.width] = keys[last, :, : self.width]
                    values[slot, :, : self.width] = values[last, :, : self.width]
                self.mask[slot] = self.mask[last]
                self.rows[slot] = self.rows[last]
            self.rows.pop()
            self.mask = self.mask[: len(self.rows)]
        if not self.rows:
            self.cache, self.pools, self.mask = growing_cache(self.engine.model), [], self.mask[:0, :0]
            return
        unused = int(self.mask.any(0).nonzero()[0])  # slots that are padding in every row left
        if unused >= max(256, self.width // 8):
            self._shift(-unused)
        self._bind()

    def join(self, rows: list[tuple[_Row, SavedKV | None, int]]) -> None:
        """Adds rows whose KV covers the first `length` tokens of their prompt, all but the token
        they feed next, right-aligned with the others."""
        if not rows:
            return
        longest = max(length for _, _, length in rows)
        like = [keys for keys, _ in self.pools] or next(
            ([pair[0] for pair in saved.layers] for _, saved, length in rows if saved is not None and length), [])
        if not like:  # nothing cached anywhere yet: the first forward makes the buffers
            self.mask = torch.cat([self.mask, self.mask.new_zeros((len(rows), self.width))])
            self.rows += [row for row, _, _ in rows]
            return
        if longest > self.width:
            if self.pools:
                self._shift(longest - self.width)
            else:
                self.mask = self.mask.new_zeros((len(self.rows), longest))
        total = len(self.rows) + len(rows)
        self._reserve(total, self.width + 1, like)
        width, first = self.width, len(self.rows)
        mask = self.mask.new_zeros((len(rows), width))
        for offset, (row, saved, length) in enumerate(rows):
            if saved is not None and length:
                for index, (keys, values) in enumerate(self.pools):
                    keys[first + offset, :, width - length : width] = saved.layers[index][0][0, :, :length]
                    values[first + offset, :, width - length : width] = saved.layers[index][1][0, :, :length]
            mask[offset, width - length :] = 1
            row.batch_size = total
        self.mask = torch.cat([self.mask, mask])
        self.rows += [row for row, _, _ in rows]
        self._bind()


def _settle(future: asyncio.Future[Completion], result: Completion | BaseException) -> None:
    """Hands a result or failure to a caller still waiting (one that gave up is left alone)."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _deliver_to(future: asyncio.Future[Completion], loop: asyncio.AbstractEventLoop
                ) -> Callable[[Completion | BaseException], None]:
    """A row's result hand-over from the worker thread to the caller's event loop."""
    return lambda result: loop.call_soon_threadsafe(_settle, future, result)


def conversation_budget(loaded: LoadedModel, max_batch: int) -> int:
    """Tokens of finished conversations kept for reuse: room for 8,192 of each batched
    conversation, and never more than a quarter of the machine's memory.

    A fixed 64k-token budget kept 16 concurrent evaluation episodes (each entry repeats the
    system prompt) but at 32 it evicted entries still in use, and every evicted conversation
    ran its whole prompt again.
    """
    config = loaded.model.config
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    element = next(loaded.model.parameters()).element_size()
    bytes_per_token = 2 * config.num_hidden_layers * kv_heads * head_dim * element
    if loaded.device.type == "cuda":
        memory = torch.cuda.get_device_properties(loaded.device).total_memory
    else:
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            memory = 8 << 30
    wanted = max(65536, 8192 * max_batch)
    return max(4096, min(wanted, memory // 4 // bytes_per_token))


class GenerationEngine:
    """Decodes prompts in batches; `generate` is the asyncio entry point, `generate_many` the sync one."""

    def __init__(self, loaded: LoadedModel, prefix: str | None = None, max_batch: int = 32,
                 use_prefix_cache: bool = True, conversation_cache_tokens: int | None = None, lookahead: int = 3,
                 draft_corpus: str | None = None, prefill_sequences_alone: bool | None = None,
                 continuous: bool = True):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.max_batch = max_batch
        self.stop_ids = set(stop_token_ids(self.tokenizer, loaded.family))
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.use_prefix_cache = use_prefix_cache
        self.prefix_ids: list[int] = self.encode(prefix) if prefix else []
        self._prefix_caches: dict[str, SavedKV] = {}  # KV of the shared prefix, per adapter that computed it
        if conversation_cache_tokens is None:
            conversation_cache_tokens = conversation_budget(loaded, max_batch)
        self.conversations = ConversationCache(conversation_cache_tokens)
        # On a CPU a padded batch prefill computes every pad, so sequences' new tokens run one at a
        # time; on a GPU the pads are nearly free and 200 small forwards are not.
        self.prefill_sequences_alone = (loaded.device.type == "cpu" if prefill_sequences_alone is None
                                        else prefill_sequences_alone)
        self.lookahead = lookahead  # draft tokens checked per step for a lone greedy sequence; 0: off
        self.draft_corpus: list[int] = self.encode(draft_corpus) if draft_corpus else []
        self.drafted_tokens = self.accepted_tokens = 0
        # what the batches did: decode forwards and the rows they carried (drafting lone rows not counted)
        self.decode_forwards = self.decoded_rows = 0
        # where the continuous worker's time went: running joining rows' prompts, decode steps
        self.join_seconds = self.decode_seconds = 0.0
        self.continuous = continuous
        self._pending: list[_Request] = []
        self._pending_lock = threading.Lock()
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memlora-generate")
        self._closed = False

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def forget_caches(self) -> None:
        """Drops every kept key and value: after the weights change (a training step) they are stale."""
        self._prefix_caches.clear()
        self.conversations.clear()

    # --- asyncio front end: collect concurrent requests into batches ----------------------

    async def generate(self, prompt: str | list[int], params: SamplingParams | None = None,
                       adapter: str | None = None, on_tokens: TokenListener | None = None) -> Completion:
        """Queues one prompt; it is decoded together with whatever else is queued or decoding.

        `on_tokens` hears the output tokens as they are chosen (for streaming); it runs on the
        engine's worker thread, so it must only hand them over (loop.call_soon_threadsafe)."""
        ids = self.encode(prompt) if isinstance(prompt, str) else list(prompt)
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        with self._pending_lock:
            self._pending.append(_Request(ids, params or SamplingParams(), adapter or BASE_ADAPTER, future, on_tokens))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._serve())
        return await future

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            # let every task that is about to submit do so before the batch closes
            for _ in range(3):
                await asyncio.sleep(0)
            adapter = self._pending[0].adapter
            if self.continuous and not self._wants_lookup(adapter):
                await loop.run_in_executor(self._executor, self._serve_continuously, adapter, loop)
                continue
            batch = self._take_pending(adapter, self.max_batch)
            try:
                results = await loop.run_in_executor(
                    self._executor, self.generate_many, [r.ids for r in batch], [r.params for r in batch],
                    adapter, [r.listener for r in batch],
                )
            except Exception as error:  # hand the failure to every waiting caller
                for request in batch:
                    _settle(request.future, error)
                continue
            for request, result in zip(batch, results):
                _settle(request.future, result)

    def _take_pending(self, adapter: str, room: int) -> list[_Request]:
        """Up to `room` queued requests for `adapter`, oldest first, taken off the queue."""
        with self._pending_lock:
            taken = [request for request in self._pending if request.adapter == adapter][:room]
            for request in taken:
                self._pending.remove(request)
        return taken

    def _wants_lookup(self, adapter: str) -> bool:
        """A lone greedy request decodes faster with lookup drafts than in a batch of one."""
        waiting = [request for request in self._pending if request.adapter == adapter]
        return bool(self.lookahead) and len(waiting) == 1 and waiting[0].params.temperature <= 0

    def _serve_continuously(self, adapter: str, loop: asyncio.AbstractEventLoop) -> None:
        """Decodes `adapter`'s requests on the worker thread, taking in new ones between steps,
        until none is decoding or queued. A queued request for another adapter stops the intake,
        so that one waits for this batch to drain, not for the queue to run dry."""
        running = _RunningBatch(self, adapter)
        joining: list[_Request] = []
        first = True
        try:
            with self.loaded.adapter(adapter), torch.inference_mode():
                while True:
                    with self._pending_lock:
                        other_waiting = any(request.adapter != adapter for request in self._pending)
                    started = time.perf_counter()
                    if first or not other_waiting:
                        joining = self._take_pending(adapter, self.max_batch - len(running.rows))
                        running.join([self._prepare_row(request.ids, request.params, request.listener, adapter,
                                                        _deliver_to(request.future, loop)) for request in joining])
                        joining, first = [], False
                    joined = time.perf_counter()
                    self.join_seconds += joined - started
                    if not running.rows:
                        return
                    running.take(running.forward())
                    self.decode_seconds += time.perf_counter() - joined
        except BaseException as error:  # every caller in the batch hears the failure
            for row in running.rows:
                row.deliver(error)
            for request in joining:
                loop.call_soon_threadsafe(_settle, request.future, error)
            if not isinstance(error, Exception):
                raise

    def _prepare_row(self, prompt: list[int], params: SamplingParams, listener: TokenListener | None, adapter: str,
                     deliver: Callable[[Completion | BaseException], None]) -> tuple[_Row, SavedKV | None, int]:
        """Runs a prompt, all but its last token, on top of the longest cached KV: a row ready
        to join a running batch, with that KV and its length."""
        started = time.perf_counter()
        sequence = self._sequence(prompt, params, listener)
        saved, length = self._reusable(prompt, adapter)
        cached = length
        if len(prompt) - length > 1:
            saved, length = self._extend(saved, length, prompt)
        row = _Row(sequence, prompt[-1], len(prompt) - 1, cached, started, time.perf_counter() - started, 0, deliver)
        return row, saved, length

    # --- synchronous core -----------------------------------------------------------------

    def generate_many(self, prompts: list[str | list[int]], params: SamplingParams | list[SamplingParams] | None = None,
                      adapter: str | None = None, listeners: list[TokenListener | None] | None = None
                      ) -> list[Completion]:
        """Decodes all prompts (in chunks of max_batch) and returns their completions in order."""
        ids = [self.encode(p) if isinstance(p, str) else list(p) for p in prompts]
        if not isinstance(params, list):
            params = [params or SamplingParams()] * len(ids)
        listeners = listeners or [None] * len(ids)
        results: list[Completion] = []
        with self.loaded.adapter(adapter), torch.inference_mode():
            for start in range(0, len(ids), self.max_batch):
                chunk = slice(start, start + self.max_batch)
                results += self._decode(ids[chunk], params[chunk], adapter or BASE_ADAPTER, listeners[chunk])
        return results

    def _prefix_kv(self, adapter: str) -> SavedKV:
        """The prefix's KV cache for `adapter`, computed once with that adapter active.

        A LoRA changes the keys and values of every token, the system prompt's too, so each
        adapter has its own cache (the same numbers PEFT or llama.cpp compute). Older memlora
        adapters were trained on the base model's cache; `LoadedModel.prefix_weights` says so and
        they share the base one.
        """
        weights = self.loaded.prefix_weights(adapter)
        if weights not in self._prefix_caches:
            ids = torch.tensor([self.prefix_ids], device=self.device)
            with contextlib.ExitStack() as stack:
                if weights != adapter:  # called inside generate_many's `adapter(adapter)`
                    stack.enter_context(self.loaded.adapter(weights))
                out = self.model(input_ids=ids, **with_cache(growing_cache(self.model)), use_cache=True,
                                 logits_to_keep=1)
            self._prefix_caches[weights] = SavedKV(list(self.prefix_ids), layer_tensors(cache_of(out), 0))
        return self._prefix_caches[weights]

    def _reusable(self, prompt: list[int], adapter: str) -> tuple[SavedKV | None, int]:
        """The longest cached KV that covers a prefix of `prompt`: an earlier step of the same
        conversation, or else the shared system prefix. At least one prompt token is left to run."""
        if not self.use_prefix_cache:
            return None, 0
        best, length = self.conversations.longest_match(adapter, prompt)
        prefix = self.prefix_ids
        if length < len(prefix) < len(prompt) and prompt[: len(prefix)] == prefix:
            best, length = self._prefix_kv(adapter), len(prefix)
        return best, length

    def _sequence(self, prompt: list[int], params: SamplingParams, listener: TokenListener | None) -> _Sequence:
        sequence = _Sequence(prompt, params, listener=listener)
        if params.temperature > 0:
            sequence.generator = torch.Generator(device=self.device)
            sequence.generator.manual_seed(params.seed if params.seed is not None else torch.seed())
        return sequence

    def _decode(self, prompts: list[list[int]], params: list[SamplingParams], adapter: str,
                listeners: list[TokenListener | None] | None = None) -> list[Completion]:
        """Decodes a fixed set of prompts as one batch, all started together."""
        started = time.perf_counter()
        batch = len(prompts)
        sequences = [self._sequence(p, sp, listener)
                     for p, sp, listener in zip(prompts, params, listeners or [None] * batch)]

        # Layout per sequence: [pad.. | reused KV][pad.. | prompt tail]; positions count real tokens only.
        reused = [self._reusable(p, adapter) for p in prompts]
        from_cache = [length for _, length in reused]
        if batch > 1 and self.use_prefix_cache and self.prefill_sequences_alone:
            # Run each sequence's new tokens alone, all but the last: a batch would pad every sequence
            # to the longest tail (one new session's long opening made every other sequence compute
            # as many pads).
            reused = [self._extend(saved, length, prompt) if len(prompt) - length > 1 else (saved, length)
                      for prompt, (saved, length) in zip(prompts, reused)]
        cached = max(length for _, length in reused)
        tails = [p[length:] for p, (_, length) in zip(prompts, reused)]
        width = max(len(t) for t in tails)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((batch, cached + width), dtype=torch.long)
        for i, ((_, length), tail) in enumerate(zip(reused, tails)):
            mask[i, cached - length : cached] = 1
            input_ids[i, width - len(tail) :] = torch.tensor(tail)
            mask[i, cached + width - len(tail) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, cached:]
        input_ids, mask, positions = input_ids.to(self.device), mask.to(self.device), positions.to(self.device)

        cache = growing_cache(self.model)
        if cached:
            load_sequences(cache, [(saved.layers if saved else None, length) for saved, length in reused], cached,
                      spare=width + max(p.max_new_tokens for p in params) + self.lookahead)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                         **with_cache(cache), use_cache=True, logits_to_keep=1)
        cache, logits = cache_of(out), out.logits[:, -1, :]
        prefill_seconds = time.perf_counter() - started
        results: dict[int, Completion] = {}  # a failure here raises from the forward, not through a row
        rows = [_Row(sequence, None, int(positions[i, -1]), from_cache[i], started, prefill_seconds, batch,
                     functools.partial(results.__setitem__, i)) for i, sequence in enumerate(sequences)]
        if batch == 1 and self.lookahead and params[0].temperature <= 0:
            self._decode_with_lookup(sequences[0], cache, mask, logits, rows[0].position, adapter)
            return [self._completion(rows[0])]
        running = _RunningBatch(self, adapter, cache, mask, rows)
        running.take(logits)
        while running.rows:
            running.take(running.forward())
        return [results[i] for i in range(batch)]

    def _completion(self, row: _Row) -> Completion:
        sequence = row.sequence
        return Completion(
            text=self.tokenizer.decode(sequence.output, skip_special_tokens=False),
            token_ids=sequence.output,
            prompt_tokens=len(sequence.prompt_ids),
            cached_prompt_tokens=row.cached_prompt_tokens,
            completion_tokens=len(sequence.output) + (1 if sequence.finish_reason == "stop" else 0),
            finish_reason=sequence.finish_reason,
            seconds=time.perf_counter() - row.started,
            batch_size=row.batch_size,
            prefill_seconds=row.prefill_seconds,
            stop_token=sequence.stop_token,
        )

    def _extend(self, saved: SavedKV | None, length: int, prompt: list[int]) -> tuple[SavedKV, int]:
        """The KV of all of `prompt` but its last token, computed on top of `saved[:length]`."""
        cache = growing_cache(self.model)
        if length:
            load_sequences(cache, [(saved.layers, length)], length, spare=len(prompt) - 1 - length)
        new = prompt[length:-1]
        self.model(input_ids=torch.tensor([new], device=self.device),
                   attention_mask=torch.ones((1, len(prompt) - 1), dtype=torch.long, device=self.device),
                   position_ids=torch.arange(length, len(prompt) - 1, device=self.device)[None],
                   **with_cache(cache), use_cache=True, logits_to_keep=1)
        return SavedKV(prompt[:-1], layer_tensors(cache, 0)), len(prompt) - 1

    def _decode_with_lookup(self, sequence: _Sequence, cache: Any, mask: torch.Tensor, logits: torch.Tensor,
                            position: int, adapter: str) -> None:
        """Greedy decoding of a lone sequence with drafts looked up in its own context.

        Tool calls copy names and values from the conversation, so the tokens that followed the
        latest occurrence of the last few tokens are a good guess for what comes next; where the
        conversation has none, the engine's draft corpus (example calls with every argument
        key) supplies the JSON between the values. The guess is checked in the same forward
        pass as the next token (one weight read for several tokens); the longest agreeing run
        is kept and the rest of the cache dropped.
        The output is what plain greedy decoding gives, up to bf16 rounding in near ties.
        """
        context = list(sequence.prompt_ids)
        token = int(logits[0].argmax())
        budget = sequence.params.max_new_tokens
        while True:  # invariant: `token` is chosen but not yet fed to the model
            self._check_open()
            if token in self.stop_ids and not sequence.params.ignore_stop:
                sequence.finish_reason, sequence.stop_token = "stop", token
                break
            sequence.output.append(token)
            sequence.emit([token])
            context.append(token)
            if len(sequence.output) >= budget:
                break
            draft = lookup_draft(context, min(self.lookahead, budget - len(sequence.output) - 1),
                                 corpus=self.draft_corpus)
            if not sequence.params.ignore_stop:
                draft = draft[: next((i for i, t in enumerate(draft) if t in self.stop_ids), len(draft))]
            feed = [token] + draft
            mask = torch.cat([mask, mask.new_ones((1, len(feed)))], dim=1)
            positions = torch.arange(position + 1, position + 1 + len(feed), device=self.device)[None]
            out = self.model(input_ids=torch.tensor([feed], device=self.device), attention_mask=mask,
                             position_ids=positions, **with_cache(cache), use_cache=True,
                             logits_to_keep=len(feed))
            cache = cache_of(out)
            choices = out.logits[0].argmax(-1).tolist()  # choices[i]: the model's pick after feed[i]
            accepted = 0
            while accepted < len(draft) and choices[accepted] == draft[accepted]:
                accepted += 1
            rejected = len(draft) - accepted
            if rejected:
                cache.crop(-rejected)
                mask = mask[:, :-rejected]
            sequence.output += draft[:accepted]
            sequence.emit(draft[:accepted])
            context += draft[:accepted]
            position += 1 + accepted
            token = choices[accepted]
            self.drafted_tokens += len(draft)
            self.accepted_tokens += accepted
        self._save_finished(cache, mask, [0], [], [sequence], adapter)

    def _save_finished(self, cache: Any, mask: torch.Tensor, active: list[int], keep: list[int],
                       sequences: list[_Sequence], adapter: str) -> None:
        """Keeps the KV of sequences leaving the batch, so the conversation's next step reuses it."""
        if not self.use_prefix_cache:
            return
        kept = set(keep)
        for slot, index in enumerate(active):
            if slot in kept:
                continue
            sequence = sequences[index]
            output = sequence.output if sequence.finish_reason == "stop" else sequence.output[:-1]
            fed = sequence.prompt_ids + output
            real = mask[slot].nonzero().squeeze(-1)
            if len(real) != len(fed):  # cannot happen unless the layout above changes; never store a wrong cache
                continue
            self.conversations.put(adapter, SavedKV(fed, layer_tensors(cache, slot, real)))

    @staticmethod
    def _choose(logits: torch.Tensor, sequences: list[_Sequence]) -> torch.Tensor:
        """Greedy argmax per sequence, or seeded temperature / top-p sampling for sequences that ask for it."""
        chosen = logits.argmax(dim=-1)
        for slot, sequence in enumerate(sequences):
            if sequence.params.temperature <= 0:
                continue
            probs = torch.softmax(logits[slot].float() / sequence.params.temperature, dim=-1)
            if sequence.params.top_p < 1.0:
                sorted_probs, order = probs.sort(descending=True)
                cut = sorted_probs.cumsum(-1) - sorted_probs > sequence.params.top_p
                sorted_probs[cut] = 0
                probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
            chosen[slot] = torch.multinomial(probs, 1, generator=sequence.generator)[0]
        return chosen

    def _check_open(self) -> None:
        if self._closed:
            raise GenerationCancelled("the generation engine was closed")

    def close(self) -> None:
        """Stops the batch being decoded at its next step and drops queued ones.

        The worker is a plain thread that Python waits for at exit, so without this an
        interrupted command (Ctrl-C in `memlora eval`) would sit until its batch ran to the end."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
