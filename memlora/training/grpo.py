"""Reinforcement learning of a memory adapter with GRPO (TRL's GRPOTrainer), rewarded on a real store.

A rollout is one assistant turn of an episode, played by memlora's own agent
(`memlora.agent.loop.MemoryAgent`: the strict parser, the schema check, the calls run through
memlora's MCP server) on a fresh SQLite store holding the memory as it stood before that turn,
with the session so far as its chat history (`memlora.training.turns`). The turn's steps are
sampled by memlora's generation engine from the adapter being trained. What the turn did to
the store is scored by `memlora.training.rewards` with the evaluator's rules, and GRPO compares
the rollouts of the same turn with each other.

What TRL does: the group sampling, advantages, the clipped policy loss, the optimizer,
checkpoints, resume and logging. What is written here, because TRL lacks it: the rollout
(`rollout_func`; TRL's `environment_factory` renders tool schemas from Python signatures and
parses calls with the tokenizer's own rules, so the model would see another tool block than the
one it learnt and run calls memlora's parser rejects), and the log-probabilities under the
shared-prefix cache (as `memlora train sft` does, the system prompt and tool block run once per
optimizer step instead of once per rollout).
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import click

from memlora.files import sha256_file
from memlora.settings import (
    DEVICE, DTYPE, MODEL, QUIET, Dtype, common_setting, hush_progress_bars, setting, settings_to_dict,
)
from memlora.training.sft import SettingsError

ADAPTER = "default"  # the name PEFT gives the adapter being trained
PrefixCacheChoice = Literal["auto", "adapted", "base", "off"]
PREFIX_CACHES: tuple[str, ...] = get_args(PrefixCacheChoice)
FOLDER = click.Path(path_type=Path, file_okay=False)


@dataclass
class GrpoSettings:
    """Everything `memlora train grpo` takes; each field is one of its command-line options
    (memlora.settings), and the adapter's card.json records them all under "settings"."""

    init: Path = setting(help="The adapter to refine: a `memlora train sft` output folder.", type=FOLDER)
    data: Path = setting(help="Folder written by `memlora datagen`: turns are drawn from its train.episodes.jsonl.",
                         type=FOLDER)
    out: Path = setting(help="Adapter folder to write (its card, plots, and checkpoints in OUT/checkpoints), "
                             "e.g. adapters/my-memory-grpo.", type=FOLDER)
    model: str = common_setting(MODEL, "The base model of --init.")
    weights_from: Path | None = setting(
        None, "A `memlora eval` folder (or its report.json) on validation episodes: draw the kinds of turn the "
              "adapter gets wrong there more often (memlora.training.sampling). Default: every kind equally often.")
    max_steps: int = setting(50, "Optimizer steps of the whole run; each samples --turns-per-step turns.")
    turns_per_step: int = setting(2, "Distinct turns per optimizer step.")
    group_size: int = setting(4, "Rollouts per turn (GRPO's group: rewards are compared within it), at least 2.")
    max_new_tokens: int = setting(160, "Tokens the model may write per assistant step.")
    agent_steps: int = setting(3, "Assistant steps per turn (calls, results, calls ... reply), as "
                                  "`memlora eval --max-steps`.")
    temperature: float = setting(1.0, "Sampling temperature of the rollouts (GRPO needs different rollouts per "
                                      "group).")
    top_p: float = setting(1.0, "Nucleus of the rollouts' sampling.")
    learning_rate: float = setting(2e-5, "Learning rate.", flag="--lr")
    beta: float = setting(0.0, "KL penalty towards the --init adapter (TRL's beta; 0 skips the reference pass).")
    epsilon: float = setting(0.2, "Clipping of the probability ratio (TRL's epsilon, PPO-style).")
    micro_batch: int = setting(1, "Rollouts per forward/backward pass; --turns-per-step x --group-size must be a "
                                  "multiple of it times the number of processes.")
    save_every: int = setting(10, "Checkpoint every N optimizer steps (OUT/checkpoints, for --resume).")
    max_minutes: float | None = setting(
        None, "Wall-time budget of this run: stop after the optimizer step that passes it, save a checkpoint and "
              "write the adapter. Default: run to --max-steps.")
    resume: bool = setting(False, "Continue from the newest checkpoint in OUT/checkpoints.")
    seed: int = setting(0, "Seeds the turn sample and the rollouts' sampling.")
    prefix_cache: PrefixCacheChoice = setting(
        "auto", "The shared system prompt + tool block as a KV cache: as the --init adapter was trained (auto: "
                "its card says; adapters before 2026-12-07 saw a base-model cache), computed with the adapter "
                "every step (adapted), once by the base model (base), or run in every rollout (off: exact, about "
                "twice the cost on a CPU).")
    turn_prompt_cache: bool = setting(
        True, "Run each turn's own prompt (the session so far) once per group without gradients, like the shared "
              "prefix: only the model's outputs run with gradients, about --group-size times less work per "
              "rollout on a CPU. Off: every rollout runs its prompt with gradients (exact). No effect with "
              "--prefix-cache off, which runs everything exactly.")
    threads: int | None = setting(None, "torch CPU threads. Default: torch's choice.")
    device: str | None = common_setting(DEVICE)
    dtype: Dtype | None = common_setting(DTYPE)
    quiet: bool = common_setting(QUIET)


# settings that say how this run goes, or where from, not what it trains: left out of the card's
# "hyperparameters"
RUN_SETTINGS = ("init", "data", "out", "resume", "device", "threads", "weights_from", "quiet")


def check_settings(settings: GrpoSettings) -> None:
    """Settings that cannot work, refused before anything is loaded."""
    at_least = (("--max-steps", settings.max_steps, 1), ("--turns-per-step", settings.turns_per_step, 1),
                ("--group-size", settings.group_size, 2), ("--max-new-tokens", settings.max_new_tokens, 1),
                ("--agent-steps", settings.agent_steps, 1), ("--micro-batch", settings.micro_batch, 1),
                ("--save-every", settings.save_every, 1))
    for name, value, least in at_least:
        if value < least:
            why = " (GRPO compares rollouts of the same turn)" if name == "--group-size" else ""
            raise SettingsError(f"{name} must be at least {least}, not {value}{why}")
    if not settings.temperature > 0:
        raise SettingsError(f"--temperature must be more than 0, not {settings.temperature}: "
                            "greedy rollouts of one turn are all alike and teach nothing")
    if not 0 < settings.top_p <= 1:
        raise SettingsError(f"--top-p must be in (0, 1], not {settings.top_p}")
    if not settings.learning_rate > 0:
        raise SettingsError(f"--lr must be more than 0, not {settings.learning_rate}")
    if settings.beta < 0 or settings.epsilon <= 0:
        raise SettingsError(f"--beta must be at least 0 and --epsilon more than 0 (got {settings.beta}, "
                            f"{settings.epsilon})")
    if settings.max_minutes is not None and not settings.max_minutes > 0:
        raise SettingsError(f"--max-minutes must be more than 0, not {settings.max_minutes}")
    if settings.prefix_cache not in PREFIX_CACHES:
        raise SettingsError(f"--prefix-cache must be one of {', '.join(PREFIX_CACHES)}, not {settings.prefix_cache!r}")
    if not (Path(settings.init) / "adapter_config.json").exists():
        raise SettingsError(f"--init {settings.init}: no adapter_config.json there")
    if not (Path(settings.data) / "train.episodes.jsonl").exists():
        raise SettingsError(f"{Path(settings.data) / 'train.episodes.jsonl'} not found: "
                            f"run `memlora datagen --out {settings.data}` first")
    card = Path(settings.init) / "card.json"
    base = json.loads(card.read_text()).get("base_model") if card.exists() else None
    if base and base != settings.model:
        raise SettingsError(f"--init {settings.init} was trained on {base}, not on --model {settings.model}")


def grad_accumulation(settings: GrpoSettings, processes: int) -> int:
    """Micro-batches per optimizer step: every rollout of the step's turns, spread over the processes."""
    rollouts = settings.turns_per_step * settings.group_size
    if rollouts % (settings.micro_batch * processes):
        raise SettingsError(f"--turns-per-step x --group-size ({rollouts}) must be a multiple of --micro-batch "
                            f"({settings.micro_batch}) x processes ({processes})")
    return rollouts // (settings.micro_batch * processes)


def resolve_prefix_cache(settings: GrpoSettings) -> str:
    """"auto": what the init adapter was trained with, so the policy starts as it was evaluated."""
    if settings.prefix_cache != "auto":
        return settings.prefix_cache
    from memlora.models.loading import adapter_prefix_cache

    return adapter_prefix_cache(settings.init)


# ---------------------------------------------------------------------------------------------
# rollouts


class _RecordingEngine:
    """The agent's view of the engine, keeping each step's prompt tokens and completion."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.steps: list[tuple[list[int], Any]] = []

    async def generate(self, prompt: str | list[int], params: Any = None, adapter: str | None = None) -> Any:
        ids = self.engine.encode(prompt) if isinstance(prompt, str) else list(prompt)
        completion = await self.engine.generate(ids, params, adapter)
        self.steps.append((ids, completion))
        return completion


def turn_sequence(steps: list[tuple[list[int], Any]], end_of_turn: int) -> tuple[list[int], list[int], list[int], bool]:
    """(prompt ids, completion ids, mask, whole) of a played turn, for the policy loss.

    The completion is what the model wrote at every step (with the token that ended it, mask
    1) and, between steps, what the agent added (tool results, the next turn's opening; mask
    0), so each step's tokens sit in the context they were sampled in. That holds while each
    step's prompt continues the previous prompt and output token for token, which it does
    whenever the model writes calls the way the chat template renders them. Where the agent
    re-rendered an earlier output differently, the sequence ends there (`whole` is False).
    """
    prompt = list(steps[0][0])
    sequence, mask = list(prompt), []
    whole = True
    for index, (ids, completion) in enumerate(steps):
        if index:
            if ids[: len(sequence)] != sequence:
                whole = False
                break
            added = ids[len(sequence):]
            sequence += added
            mask += [0] * len(added)
        ended = [completion.stop_token if completion.stop_token is not None else end_of_turn] \
            if completion.finish_reason == "stop" else []
        written = list(completion.token_ids) + ended
        sequence += written
        mask += [1] * len(written)
    return prompt, sequence[len(prompt):], mask, whole


class RolloutRunner:
    """TRL's `rollout_func`: plays every turn of a generation batch with memlora's agent."""

    def __init__(self, tasks: dict[str, Any], loaded: Any, settings: GrpoSettings, prefix_ids: list[int]):
        from memlora.agent.loop import build_engine
        from memlora.agent.protocol import model_tools, server_tools
        from memlora.models.chat_format import END_OF_TURN

        self.tasks = tasks
        self.loaded = loaded
        self.settings = settings
        self.tools = model_tools()
        self.server_tools = server_tools()
        self.engine = build_engine(loaded, self.tools, max_batch=settings.turns_per_step * settings.group_size)
        self.engine.lookahead = 0  # sampled sequences, never a lone greedy one
        self.prefix_ids = list(prefix_ids)  # cut from every prompt: the trainer holds it as a cache
        self.end_of_turn = loaded.tokenizer.convert_tokens_to_ids(END_OF_TURN[loaded.family])
        # totals since the run began (restored from the log history on --resume)
        # sequence tokens: each rollout's prompt (after the shared prefix) and completion, what the loss reads
        self.totals = {"rollouts": 0, "generated_tokens": 0, "rollout_seconds": 0.0, "sequence_tokens": 0,
                       "cut_sequences": 0}

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, Any]:
        from memlora.agent.engine import SamplingParams

        model = self.loaded.model
        training = model.training
        model.eval()  # no dropout: the policy that samples is the policy the loss sees
        self.engine.forget_caches()  # the weights changed since the last batch
        step = trainer.state.global_step
        params = [
            SamplingParams(max_new_tokens=self.settings.max_new_tokens, temperature=self.settings.temperature,
                           top_p=self.settings.top_p, seed=(self.settings.seed * 1_000_003 + step) * 4_099 + index)
            for index in range(len(prompts))
        ]
        started = time.perf_counter()
        try:
            self._prefill_once(prompts)
            played = asyncio.run(self._play_all(prompts, params))
        finally:
            model.train(training)
        seconds = time.perf_counter() - started
        out: dict[str, Any] = {"prompt_ids": [], "completion_ids": [], "logprobs": None, "env_mask": [],
                               "rollout": []}
        generated = cut = 0
        for rollout, steps in played:
            prompt, completion, mask, whole = turn_sequence(steps, self.end_of_turn)
            if self.prefix_ids:
                if prompt[: len(self.prefix_ids)] != self.prefix_ids:
                    raise RuntimeError("a rollout prompt does not start with the shared system prompt and tool block")
                prompt = prompt[len(self.prefix_ids):]
            out["prompt_ids"].append(prompt)
            out["completion_ids"].append(completion)
            out["env_mask"].append(mask)
            out["rollout"].append(rollout)
            generated += sum(mask)
            cut += not whole
            self.totals["sequence_tokens"] += len(prompt) + len(completion)
        self.totals["rollouts"] += len(played)
        self.totals["generated_tokens"] += generated
        self.totals["rollout_seconds"] += seconds
        self.totals["cut_sequences"] += cut
        metrics = trainer._metrics["train"]
        metrics["rollouts_per_second"].append(len(played) / seconds)
        metrics["generated_tokens_per_second"].append(generated / seconds)
        return out

    def _prefill_once(self, keys: list[str]) -> None:
        """Runs each distinct turn's opening prompt once, so that its group shares the prefill.

        The rollouts of a turn start from the same prompt (the session so far, after the shared
        prefix). Decoded together they would each run it; run once here, its keys and
        values stay in the engine's conversation cache and every rollout starts from them.
        """
        from memlora.agent.engine import SamplingParams
        from memlora.models.chat_format import render_prompt

        distinct = list(dict.fromkeys(keys))
        prompts = [render_prompt(self.loaded.tokenizer, self.tasks[key].history
                                 + [{"role": "user", "content": self.tasks[key].user}], self.tools)
                   for key in distinct]
        self.engine.generate_many(prompts, SamplingParams(max_new_tokens=1, ignore_stop=True), ADAPTER)

    async def _play_all(self, keys: list[str], params: list[Any]) -> list[tuple[Any, list[tuple[list[int], Any]]]]:
        return list(await asyncio.gather(*(self._play(key, p) for key, p in zip(keys, params))))

    async def _play(self, key: str, params: Any) -> tuple[Any, list[tuple[list[int], Any]]]:
        """One turn on a fresh store rebuilt from the gold calls before it, as the agent plays it."""
        from mcp import Client

        from memlora.agent.loop import MemoryAgent, MemoryClient
        from memlora.data.execute import execute
        from memlora.evaluation.runner import turn_from_agent
        from memlora.server.app import build_server
        from memlora.store import open_store
        from memlora.training.rewards import Rollout

        task = self.tasks[key]
        store = open_store("sqlite::memory:")
        try:
            for call in task.setup_calls:
                execute(store, call)
            recorder = _RecordingEngine(self.engine)
            async with Client(build_server(store)) as client:
                memory = MemoryClient(client)
                memory.tools = self.server_tools
                agent = MemoryAgent(recorder, memory, tools=self.tools, adapter=ADAPTER, params=params,  # type: ignore[arg-type]
                                    max_steps=self.settings.agent_steps)
                agent.messages = copy.deepcopy(task.history)
                record = await agent.turn(task.user)
                graph = await memory.read_graph()
        finally:
            store.close()
        return Rollout(turn_from_agent(record), graph if isinstance(graph, dict) else {}), recorder.steps


# ---------------------------------------------------------------------------------------------
# the trainer


def grpo_trainer(**kwargs: Any) -> Any:
    """Builds the trainer; the class is defined here so that importing this module skips TRL."""
    import contextlib

    import torch
    from trl import GRPOTrainer

    from memlora.models.kv_cache import cache_of, with_cache

    class MemoryGRPOTrainer(GRPOTrainer):
        """GRPOTrainer whose rollouts continue prompts held as KV caches.

        As in `memlora train sft` (docs/training.md), the shared prefix's keys and values are
        computed without gradients, with the adapter as it stands at this optimizer step
        ("adapted") or once by the base model ("base", for adapters trained that way), and every
        rollout's log-probabilities attend to them. With `turn_prompt_cache`, the same is done
        for each turn's own prompt (the session so far, minus its last token), once for all the
        rollouts of the group: only the model's outputs then run with gradients. Log-probabilities
        come from the model's own logits, so an adapter's trained vectors for the tool-call tags
        count (TRL's fused head reads the base output weights only). Positions count real
        tokens only, so left padding between the prefix and a prompt changes nothing.
        """

        def __init__(self, *args: Any, prefix_ids: list[int], prefix_mode: str, runner: RolloutRunner,
                     turn_prompt_cache: bool = False, **kw: Any) -> None:
            with warnings.catch_warnings():
                # rollout_func is experimental in TRL, and memlora's tests cover its use here
                warnings.filterwarnings("ignore", message="You are using 'rollout_func'", category=UserWarning)
                super().__init__(*args, rollout_func=runner, **kw)
            self.prefix_ids = list(prefix_ids)
            self.prefix_mode = prefix_mode
            self.turn_prompt_cache = turn_prompt_cache and bool(self.prefix_ids)
            self.runner = runner
            self._caches: dict[Any, Any] = {}  # (step, adapter state, prompt) -> KV, this step's only
            self._cache_step = -1
            self.seconds_before = 0.0
            self._restored = False
            self._run_started = time.perf_counter()

        def train(self, *args: Any, **kw: Any) -> Any:
            self._run_started = time.perf_counter()
            return super().train(*args, **kw)

        def training_step(self, *args: Any, **kw: Any) -> Any:
            self._restore_totals()  # before this step's rollouts add to them
            return super().training_step(*args, **kw)

        def adopt_state(self, state: Any) -> None:
            """Takes a checkpoint's history as this run's, with no training time of its own."""
            self.state = state
            self._restored = False
            self._run_started = time.perf_counter()

        def training_seconds(self) -> float:
            """Wall time of training so far, over every run that led to the current weights."""
            self._restore_totals()
            return self.seconds_before + time.perf_counter() - self._run_started

        def _restore_totals(self) -> None:
            """After --resume the checkpoint's log history holds the totals so far."""
            if self._restored:
                return
            self._restored = True
            for entry in reversed(self.state.log_history):
                if "rollouts_total" in entry:
                    self.seconds_before = float(entry.get("train_seconds", 0.0))
                    for name in self.runner.totals:
                        self.runner.totals[name] = type(self.runner.totals[name])(entry.get(f"{name}_total", 0))
                    return

        def log(self, logs: dict[str, float], *args: Any, **kw: Any) -> None:
            # cumulative, in trainer_state.json, so a resumed run counts on from there
            if "loss" in logs:
                seconds = self.training_seconds()
                logs["train_seconds"] = round(seconds, 1)
                for name, value in self.runner.totals.items():
                    logs[f"{name}_total"] = round(value, 1) if isinstance(value, float) else value
            super().log(logs, *args, **kw)

        def _adapter_state(self, peft_model: Any) -> Any:
            from peft.tuners.tuners_utils import BaseTunerLayer

            layer = next((m for m in peft_model.modules() if isinstance(m, BaseTunerLayer)), None)
            disabled = bool(layer is not None and layer.disable_adapters)
            return tuple(getattr(peft_model, "active_adapters", ())), disabled

        def _kv(self, model: Any, prompt: tuple[int, ...] = ()) -> Any:
            """Keys and values of the shared prefix, followed by `prompt`, under the weights in use
            now (this optimizer step, this adapter); computed once, without gradients."""
            peft_model = self.accelerator.unwrap_model(model)
            if self._cache_step != self.state.global_step:
                self._caches = {k: v for k, v in self._caches.items() if k[0] == "base"}  # the rest is stale
                self._cache_step = self.state.global_step
            weights = ("base",) if self.prefix_mode == "base" and not prompt else \
                (self.state.global_step, self._adapter_state(peft_model))
            key = (*weights, prompt)
            if key not in self._caches:
                training = peft_model.training
                peft_model.eval()  # no dropout: the cache stands for the adapter itself
                try:
                    with torch.no_grad(), contextlib.ExitStack() as stack:
                        if not prompt:
                            if self.prefix_mode == "base":
                                stack.enter_context(peft_model.disable_adapter())
                            ids = torch.tensor([self.prefix_ids], device=peft_model.device)
                            self._caches[key] = cache_of(peft_model(input_ids=ids, use_cache=True, logits_to_keep=1))
                        else:
                            cache = copy.deepcopy(self._kv(model))
                            start = len(self.prefix_ids)
                            positions = torch.arange(start, start + len(prompt), device=peft_model.device)[None]
                            peft_model(input_ids=torch.tensor([prompt], device=peft_model.device),
                                       position_ids=positions, **with_cache(cache), use_cache=True, logits_to_keep=1)
                            self._caches[key] = cache
                finally:
                    peft_model.train(training)
            return self._caches[key]

        def _logps(self, model: Any, ids: Any, mask: Any, keep: int, cache: Any, compute_entropy: bool) -> tuple[Any, Any]:
            """Log-probabilities of the last `keep` tokens of `ids` (and entropies), after `cache`."""
            sequences = ids.size(0)
            extra: dict[str, Any] = {}
            if cache is not None:
                cache = copy.deepcopy(cache)  # the forward appends to it
                if sequences > 1:
                    cache.batch_repeat_interleave(sequences)
                mask = torch.cat([mask.new_ones(sequences, cache.get_seq_length()), mask], dim=1)
                extra.update(with_cache(cache))
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.size(1):]
            with self.accelerator.autocast():
                out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                            logits_to_keep=keep + 1, **extra)
            logits = out.logits[:, :-1].float() / self.temperature  # position t predicts token t + 1
            norm = logits.logsumexp(-1)
            logps = logits.gather(-1, ids[:, -keep:].unsqueeze(-1)).squeeze(-1) - norm
            if not compute_entropy:
                return logps, None
            bonus = getattr(self, "_entropy_bonus_enabled", False)
            with torch.set_grad_enabled(torch.is_grad_enabled() and bonus):
                probs = (logits - norm.unsqueeze(-1)).exp()
                return logps, norm - (probs * logits).sum(-1)

        def _get_per_token_logps_and_entropies(self, model: Any, input_ids: Any, attention_mask: Any,
                                               logits_to_keep: int, batch_size: int | None = None,
                                               compute_entropy: bool = False, compute_aux_loss: bool = False,
                                               **_: Any) -> tuple[Any, Any, Any]:
            """Log-probabilities (and entropies) of the completion tokens, sequences in chunks of `batch_size`.

            With the turn-prompt cache, sequences of a chunk that share a prompt run together: the
            prompt's last token and the completion, on top of the cached rest.
            """
            batch_size = batch_size or input_ids.size(0)
            entropies = None
            pieces: list[tuple[Any, Any]] = []
            for start in range(0, input_ids.size(0), batch_size):
                ids, mask = input_ids[start:start + batch_size], attention_mask[start:start + batch_size]
                if not self.turn_prompt_cache:
                    cache = self._kv(model) if self.prefix_ids else None
                    pieces.append((range(start, start + ids.size(0)),
                                   self._logps(model, ids, mask, logits_to_keep, cache, compute_entropy)))
                    continue
                groups: dict[tuple[int, ...], list[int]] = {}
                for sequence in range(ids.size(0)):
                    prompt_part = ids[sequence, :-logits_to_keep][mask[sequence, :-logits_to_keep].bool()]
                    groups.setdefault(tuple(prompt_part.tolist()), []).append(sequence)
                for prompt, members in groups.items():
                    tail = torch.cat([ids.new_tensor([[prompt[-1]]] * len(members)), ids[members, -logits_to_keep:]], 1)
                    tail_mask = torch.cat([mask.new_ones(len(members), 1), mask[members, -logits_to_keep:]], 1)
                    pieces.append(([start + m for m in members],
                                   self._logps(model, tail, tail_mask, logits_to_keep, self._kv(model, prompt[:-1]),
                                               compute_entropy)))
            pieces_logps = torch.cat([piece[1][0] for piece in pieces])
            order = torch.tensor([sequence for piece in pieces for sequence in piece[0]], device=input_ids.device)
            logps = pieces_logps.new_zeros(pieces_logps.shape).index_copy(0, order, pieces_logps)
            if compute_entropy:
                pieces_entropy = torch.cat([piece[1][1] for piece in pieces])
                entropies = pieces_entropy.new_zeros(pieces_entropy.shape).index_copy(0, order, pieces_entropy)
            return logps, entropies, None

    return MemoryGRPOTrainer(**kwargs)


# ---------------------------------------------------------------------------------------------
# the run


def train_grpo(settings: GrpoSettings) -> Path:
    """Refines `settings.init` with GRPO; writes the adapter, card, reward plot and log to `settings.out`."""
    import memlora.models  # noqa: F401 - sets OpenMP's passive waiting before torch loads
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from memlora.agent.loop import session_prefix
    from memlora.agent.protocol import model_tools
    from memlora.evaluation.episodes import load_episodes
    from memlora.models.chat_format import END_OF_TURN, install_chat_template
    from memlora.models.loading import (
        LoadedModel, announce_machine, choose_dtype, hide_checkpointing_alias_warning, model_family, pick_device, resolve_model,
    )
    from memlora.models.token_rows import install_fast_token_vectors
    from memlora.training.rewards import trl_reward_functions
    from memlora.training.sampling import sample_turns, weights_from_report
    from memlora.training.sft import checkpoint_step, checkpoint_to_resume, early_stop_callback
    from memlora.training.turns import build_tasks, turn_refs

    hide_checkpointing_alias_warning()
    check_settings(settings)
    from accelerate import PartialState

    accumulation = grad_accumulation(settings, PartialState().num_processes)
    weights = weights_from_report(Path(settings.weights_from)) if settings.weights_from else None
    out = Path(settings.out)
    resume_from = checkpoint_to_resume(out / "checkpoints", settings.max_steps) if settings.resume else None
    prefix_mode = resolve_prefix_cache(settings)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    if settings.quiet:
        hush_progress_bars()

    episodes_path = Path(settings.data) / "train.episodes.jsonl"
    episodes = load_episodes(episodes_path)
    refs = turn_refs(episodes)
    if not refs:
        raise SettingsError(f"{episodes_path}: no turn with gold calls to train on")
    chosen = sample_turns(refs, settings.max_steps * settings.turns_per_step, weights, settings.seed)
    tasks = build_tasks(episodes, chosen)

    device = pick_device(settings.device)
    dtype = choose_dtype(device, settings.dtype)
    announce_machine(device, dtype, "training")
    model_path = resolve_model(settings.model)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    base = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype).to(device)
    family = model_family(base)
    install_chat_template(tokenizer, family)
    tokenizer.padding_side = "left"
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN[family])
    ends = base.generation_config.eos_token_id
    ends = [ends] if isinstance(ends, int) else list(ends or [])
    base.generation_config.eos_token_id = sorted(set(ends) | {end_of_turn})  # TRL counts unended rollouts by it
    model = PeftModel.from_pretrained(base, str(settings.init), adapter_name=ADAPTER, is_trainable=True)
    install_fast_token_vectors(model)  # the adapter's tag vectors without copying the whole output head per token

    prefix_ids = tokenizer(session_prefix(tokenizer, model_tools()), add_special_tokens=False)["input_ids"]
    loaded = LoadedModel(model, tokenizer, settings.model, family, device, [ADAPTER],
                         frozenset({ADAPTER}) if prefix_mode == "base" else frozenset())
    runner = RolloutRunner(tasks, loaded, settings, prefix_ids if prefix_mode != "off" else [])
    out.mkdir(parents=True, exist_ok=True)
    args = GRPOConfig(
        output_dir=str(out / "checkpoints"),
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant",  # so --resume with more --max-steps goes on at the same rate
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.micro_batch,
        gradient_accumulation_steps=accumulation,
        num_generations=settings.group_size,
        max_completion_length=settings.agent_steps * settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        beta=settings.beta,
        epsilon=settings.epsilon,
        shuffle_dataset=False,  # the turns are already a seeded weighted sample, in order
        disable_dropout=True,
        activation_checkpointing=False,  # it would recompute the forward without the prefix cache
        bf16=dtype == torch.bfloat16,
        logging_steps=1,
        save_strategy="steps",
        save_steps=settings.save_every,
        save_total_limit=2,
        seed=settings.seed,
        report_to="none",
        use_cpu=device.type == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=settings.quiet,
    )
    callbacks = [early_stop_callback(settings.max_minutes * 60 if settings.max_minutes else None)]
    trainer = grpo_trainer(
        model=model, reward_funcs=trl_reward_functions(tasks), args=args,
        train_dataset=Dataset.from_list([{"prompt": ref.key} for ref in chosen]),
        processing_class=tokenizer, callbacks=callbacks, runner=runner,
        prefix_ids=prefix_ids if prefix_mode != "off" else [], prefix_mode=prefix_mode,
        turn_prompt_cache=settings.turn_prompt_cache,
    )
    if resume_from is not None and checkpoint_step(resume_from) >= settings.max_steps:
        finish_from_checkpoint(trainer, resume_from)  # nothing left to train
    else:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = trainer.training_seconds()

    trainer.model.save_pretrained(str(out), selected_adapters=[ADAPTER], safe_serialization=True)
    history = trainer.state.log_history
    (out / "training_log.json").write_text(json.dumps(history, indent=1))
    plot_rewards(history, out / "reward.png")
    write_card(out, settings=settings, episodes_path=episodes_path, seconds=seconds, totals=runner.totals,
               steps=trainer.state.global_step, refs=refs, chosen=chosen, weights=weights, prefix_mode=prefix_mode,
               dtype=dtype, history=history)
    return out


def finish_from_checkpoint(trainer: Any, checkpoint: Path) -> None:
    """A checkpoint that already holds every step asked for becomes the run's result as it is."""
    from transformers import TrainerState

    from memlora.training.sft import load_initial_adapter

    trainer.adopt_state(TrainerState.load_from_json(str(checkpoint / "trainer_state.json")))
    load_initial_adapter(trainer.model, checkpoint, trainer.model.peft_config[ADAPTER])


def plot_rewards(history: list[dict[str, Any]], path: Path) -> None:
    """Mean reward per optimizer step, and each term's mean, on one plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    total = [(e["step"], e["reward"]) for e in history if "reward" in e]
    if total:
        axis.plot(*zip(*total), "k-", linewidth=2, label="reward (sum)")
    names = sorted({k for e in history for k in e if k.startswith("rewards/") and k.endswith("/mean")})
    for name in names:
        points = [(e["step"], e[name]) for e in history if isinstance(e.get(name), (int, float)) and not math.isnan(e[name])]
        if points:
            axis.plot(*zip(*points), alpha=0.6, label=name.split("/")[1])
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("mean over the step's rollouts")
    axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_card(out: Path, *, settings: GrpoSettings, episodes_path: Path, seconds: float, totals: dict[str, Any],
               steps: int, refs: list[Any], chosen: list[Any], weights: dict[str, float] | None, prefix_mode: str,
               dtype: Any, history: list[dict[str, Any]]) -> None:
    """card.json and README.md beside the adapter: where it started, what it trained on, how fast."""
    from memlora.training.sft import base_model_sha256

    stats_path = Path(settings.data) / "stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    rewards = [e["reward"] for e in history if "reward" in e]
    rollout_seconds = totals["rollout_seconds"]
    hyperparameters = {k: v for k, v in asdict(settings).items() if k not in RUN_SETTINGS}
    hyperparameters["prefix_cache"] = prefix_mode  # resolved: what the engine must give this adapter
    card = {
        "base_model": settings.model,
        "base_model_sha256": base_model_sha256(settings.model),
        "method": "grpo",
        "init_adapter": str(settings.init),
        "data": {
            "dir": str(settings.data),
            "seed": stats.get("seed"),
            "train_episodes_sha256": sha256_file(episodes_path),
            "turns_available": len(refs),
            "turns_drawn": len(chosen),
            "kinds_drawn": dict(Counter(ref.kind for ref in chosen).most_common()),
        },
        "sampling": {"weights_from": str(settings.weights_from) if settings.weights_from else None,
                     "weights": weights or "every kind 1 (default)"},
        "hyperparameters": hyperparameters,
        "settings": settings_to_dict(settings),  # as given: `memlora train grpo --config card.json`
        "training": {
            "optimizer_steps": steps,
            "wall_seconds": round(seconds, 1),
            "dtype": str(dtype).removeprefix("torch."),
            "rollouts": totals["rollouts"],
            "rollouts_per_second": round(totals["rollouts"] / seconds, 4) if seconds else None,
            "generated_tokens": totals["generated_tokens"],
            "generated_tokens_per_second": round(totals["generated_tokens"] / rollout_seconds, 2)
            if rollout_seconds else None,
            "rollout_seconds": round(rollout_seconds, 1),
            "loss_seconds": round(seconds - rollout_seconds, 1),  # everything else: rewards, loss, optimizer
            "sequence_tokens": totals["sequence_tokens"],
            "sequence_tokens_per_loss_second": round(totals["sequence_tokens"] / (seconds - rollout_seconds), 2)
            if seconds > rollout_seconds else None,
            "sequences_cut_at_a_rerendered_step": totals["cut_sequences"],
            "reward_first_step": rewards[0] if rewards else None,
            "reward_last_step": rewards[-1] if rewards else None,
        },
    }
    (out / "card.json").write_text(json.dumps(card, indent=2, default=str))
    t = card["training"]
    lines = [
        f"# memlora memory adapter for {settings.model}, refined with GRPO",
        "",
        f"Starts from `{settings.init}` and trains with `memlora train grpo` on turns played by memlora's agent",
        "on a real memory store, rewarded by the evaluator's rules (docs/training.md, \"GRPO\").",
        "",
        f"- base model: `{settings.model}` (GGUF sha256 `{card['base_model_sha256']}`)",
        f"- data: seed {stats.get('seed')}, train episodes sha256 `{card['data']['train_episodes_sha256']}`,"
        f" {len(chosen)} turns drawn of {len(refs)}",
        f"- training: {steps} optimizer steps, {t['wall_seconds']} s, {t['rollouts']} rollouts"
        f" ({t['rollouts_per_second']} rollouts/s), {t['generated_tokens']} generated tokens"
        f" ({t['generated_tokens_per_second']} tokens/s while rolling out, {t['rollout_seconds']} s),"
        f" {t['sequence_tokens']} sequence tokens read by the loss in {t['loss_seconds']} s,"
        f" reward {t['reward_first_step']} at the first step,"
        f" {t['reward_last_step']} at the last",
        "",
        "## Hyperparameters",
        "",
        "```json",
        json.dumps(hyperparameters, indent=2, default=str),
        "```",
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n")
