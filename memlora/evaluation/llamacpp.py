"""The check that an exported adapter makes llama.cpp write the same tool calls as memlora's engine.

It plays the user turns of an episode file: each prompt is a session as the reference left it
(the memory after the earlier sessions' reference calls, then this session's earlier turns with
their reference calls, results and replies) and the user's message; both runtimes decode the
model's first step greedily from the same token ids (memlora.models.llamacpp runs llama.cpp),
and memlora's parser reads both outputs.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class TurnPrompt:
    episode: str
    session: str
    turn: int
    user: str
    text: str


async def reference_prompts(episodes: list[Any], tokenizer: Any) -> list[TurnPrompt]:
    """Every user turn's prompt, the session as the reference calls and replies left it."""
    from memlora.agent.loop import connect_memory
    from memlora.agent.prompt import session_opening, tool_call_message, tool_result_message
    from memlora.agent.protocol import model_tools
    from memlora.models.chat_format import render_prompt

    tools = model_tools()
    prompts = []
    for episode in episodes:
        async with connect_memory(store="sqlite::memory:") as memory:
            for session in episode.sessions:
                graph, _ = await memory.call("read_graph", {})
                messages = session_opening(graph)  # type: ignore[arg-type]
                for index, turn in enumerate(session.turns):
                    user = {"role": "user", "content": turn.user}
                    prompts.append(TurnPrompt(episode.id, session.id, index, turn.user,
                                              render_prompt(tokenizer, messages + [user], tools)))
                    messages.append(user)
                    calls = [{"name": call.name, "arguments": call.arguments} for call in turn.calls or ()]
                    if calls:
                        messages.append(tool_call_message(calls))
                        for call in calls:
                            result, _ = await memory.call(call["name"], call["arguments"])
                            messages.append(tool_result_message(call["name"], result))
                    messages.append({"role": "assistant", "content": turn.reply or ""})
    return prompts


def calls_of(text: str) -> list[tuple[str | None, Any]]:
    from memlora.agent.protocol import parse_output

    return [(call.name, call.arguments) for call in parse_output(text).calls]


def compare_first_steps(model: str, adapter_dir: str | Path | None, base_gguf: str | Path,
                        adapter_gguf: str | Path | None, episodes_path: str | Path, max_new_tokens: int = 256,
                        threads: int = 1, device: str | None = None, dtype: str | None = None,
                        backend: str = "auto", invocation: list[int] | None = None) -> dict[str, Any]:
    """memlora's engine and llama.cpp on the first step of every user turn; counts what agrees."""
    import time

    from memlora.agent.engine import SamplingParams
    from memlora.agent.loop import build_engine
    from memlora.evaluation.episodes import load_episodes
    from memlora.models.llamacpp import LlamaCpp
    from memlora.models.loading import adapter_name, load_model

    episodes = load_episodes(episodes_path)
    loaded = load_model(model, adapters=[adapter_dir] if adapter_dir else None, device=device, dtype=dtype)
    engine = build_engine(loaded)
    prompts = asyncio.run(reference_prompts(episodes, loaded.tokenizer))
    ids = [engine.encode(p.text) for p in prompts]
    started = time.perf_counter()
    ours = engine.generate_many(ids, SamplingParams(max_new_tokens=max_new_tokens),
                                adapter=adapter_name(adapter_dir) if adapter_dir else None)
    ours_seconds = time.perf_counter() - started
    runtime = LlamaCpp(base_gguf, adapter_gguf, threads=threads, backend=backend, invocation=invocation)
    started = time.perf_counter()
    theirs = [runtime.greedy(prompt, max_new_tokens) for prompt in ids]
    theirs_seconds = time.perf_counter() - started
    turns = []
    for prompt, mine, other in zip(prompts, ours, theirs):
        other = [token for token in other if token not in engine.stop_ids]  # llama.cpp lists the end of turn too
        other_text = loaded.tokenizer.decode(other, skip_special_tokens=False)
        turns.append({**asdict(prompt), "text": None, "memlora": mine.text, "llamacpp": other_text,
                      "same_calls": calls_of(mine.text) == calls_of(other_text),
                      "same_tokens": mine.token_ids == other, "calls": len(calls_of(mine.text))})
    for turn in turns:
        turn.pop("text")
    return {"backend": runtime.backend, "turns": len(turns), "same_calls": sum(t["same_calls"] for t in turns),
            "same_tokens": sum(t["same_tokens"] for t in turns),
            "turns_with_calls": sum(1 for t in turns if t["calls"]),
            "memlora_seconds": round(ours_seconds, 1), "llamacpp_seconds": round(theirs_seconds, 1), "rows": turns}
