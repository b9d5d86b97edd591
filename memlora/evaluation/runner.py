"""Plays episodes through the memory tools and records everything needed to score them.

Each episode gets a fresh memory store; its sessions are played in order, the graph is read
(through MCP, like the model would) after every session, and each probe is asked in a new
session right after the session its `after` names. Episodes run as concurrent asyncio tasks so
the agent's engine can batch their generations. Finished episodes are appended to
`results.jsonl` at once, so an interrupted run resumes where it stopped.

Two players: the model (through `memlora.agent`) and the oracle, which replays the episode's
reference `calls` through the same MCP path and answers probes with the first answer (or "I
don't know"). The oracle checks the data and the scorer: on complete reference data it scores
100%. A third combines them: the oracle writes the memory and the model answers the probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from memlora.evaluation.episodes import Episode, Probe
from memlora.files import sha256_file
from memlora.evaluation.records import CallRecord, EpisodeRecord, ProbeRecord, SessionRecord, StepRecord, TurnRecord

RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"
ORACLE_ABSTENTION = "I don't know."


# ----------------------------------------------------------------------------- memory servers


class Memory(Protocol):
    """One episode's memory: a store that outlives the MCP sessions opened on it."""

    def connect(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """An MCP client (`mcp.Client`) on this episode's memory; one per chat session."""
        ...

    def close(self) -> None: ...


class InProcessMemory:
    """memlora's own server on a fresh in-memory SQLite store, connected in process."""

    def __init__(self) -> None:
        from memlora.server.app import build_server
        from memlora.store import open_store

        self.store = open_store("sqlite::memory:")
        self.server = build_server(self.store)

    def connect(self) -> contextlib.AbstractAsyncContextManager[Any]:
        from mcp import Client

        return Client(self.server)

    def close(self) -> None:
        self.store.close()


class CommandMemory:
    """An MCP server started as a command (stdio), on a fresh file per episode.

    `{store}` in the command is replaced by that file's path, and MEMORY_FILE_PATH is set to it
    (the reference server's setting), so `npx -y @modelcontextprotocol/server-memory` and
    `memlora serve --store jsonl:{store}` both work. Every chat session starts the command
    anew on the same file, as a user restarting their client would.
    """

    def __init__(self, command: str) -> None:
        self.directory = tempfile.TemporaryDirectory(prefix="memlora-eval-")
        self.path = os.path.join(self.directory.name, "memory.jsonl")
        argv = [part.replace("{store}", self.path) for part in shlex.split(command)]
        if not argv:
            raise ValueError("--server needs a command")
        self.argv = argv

    def connect(self) -> contextlib.AbstractAsyncContextManager[Any]:
        from mcp import Client, StdioServerParameters

        env = {**os.environ, "MEMORY_FILE_PATH": self.path}
        return Client(StdioServerParameters(command=self.argv[0], args=self.argv[1:], env=env))

    def close(self) -> None:
        self.directory.cleanup()


def memory_factory(server_command: str | None) -> Callable[[], Memory]:
    if server_command:
        return lambda: CommandMemory(server_command)
    return InProcessMemory


def result_text(result: Any) -> str:
    """The text of a CallToolResult (its text blocks joined)."""
    return "\n".join(getattr(block, "text", "") for block in getattr(result, "content", []) or [])


async def read_graph(client: Any) -> dict[str, Any]:
    """The whole graph through the `read_graph` tool, as the wire-format dict."""
    result = await client.call_tool("read_graph", {})
    structured = getattr(result, "structured_content", None)
    if isinstance(structured, dict) and "entities" in structured:
        return structured
    try:
        data = json.loads(result_text(result))
    except ValueError:
        return {"entities": [], "relations": [], "unreadable": result_text(result)}
    return data if isinstance(data, dict) else {"entities": [], "relations": [], "unreadable": data}


# ----------------------------------------------------------------------------- players


class Player(Protocol):
    """Who speaks for the assistant: the model through the agent, or the oracle."""

    async def play_session(self, episode: Episode, session_index: int, client: Any) -> list[TurnRecord]: ...

    async def ask(self, episode: Episode, probe: Probe, client: Any) -> TurnRecord: ...


class OraclePlayer:
    """Replays the reference calls of each turn; answers probes with their first answer."""

    def __init__(self) -> None:
        from memlora.agent.protocol import ToolValidator, server_tools

        self.validator = ToolValidator(server_tools())

    async def play_session(self, episode: Episode, session_index: int, client: Any) -> list[TurnRecord]:
        records = []
        for turn in episode.sessions[session_index].turns:
            started = time.perf_counter()
            steps = []
            if turn.calls:
                calls = []
                for call in turn.calls:
                    record = CallRecord(name=call.name, arguments=call.arguments)
                    record.invalid = self.validator.error(call.name, call.arguments)
                    if record.invalid is None:
                        result = await client.call_tool(call.name, call.arguments)
                        record.result, record.is_error = result_text(result), bool(getattr(result, "is_error", False))
                    calls.append(record)
                raw = json.dumps([c.to_dict() for c in turn.calls], ensure_ascii=False)
                steps.append(StepRecord(raw=raw, mode="strict", calls=calls, seconds=time.perf_counter() - started))
            reply = turn.reply or ""
            steps.append(StepRecord(raw=reply, mode="none"))
            records.append(TurnRecord(user=turn.user, steps=steps, reply=reply, seconds=time.perf_counter() - started))
        return records

    async def ask(self, episode: Episode, probe: Probe, client: Any) -> TurnRecord:
        reply = probe.answers[0] if probe.answers else ORACLE_ABSTENTION
        return TurnRecord(user=probe.question, steps=[StepRecord(raw=reply, mode="none")], reply=reply)


class AgentPlayer:
    """The model, through memlora's agent: a fresh chat context per session, memory over MCP.

    One engine serves every episode, so the concurrent episodes' generations batch together.
    """

    def __init__(self, engine: Any, adapter: str | None = None, params: Any = None, max_steps: int = 6) -> None:
        from memlora.agent.engine import SamplingParams
        from memlora.agent.protocol import model_tools

        self.engine = engine
        self.adapter = adapter
        self.params = params or SamplingParams()  # temperature 0: greedy
        self.max_steps = max_steps
        self.tools = model_tools()
        self._server_tools: list[dict[str, Any]] | None = None

    async def _agent(self, client: Any) -> Any:
        from memlora.agent.loop import MemoryAgent, MemoryClient
        from memlora.agent.protocol import list_server_tools

        memory = MemoryClient(client)
        if self._server_tools is None:  # the same server for every episode: list its tools once
            self._server_tools = await list_server_tools(client)
        memory.tools = self._server_tools
        agent = MemoryAgent(
            self.engine, memory, tools=self.tools, adapter=self.adapter, params=self.params, max_steps=self.max_steps
        )
        await agent.start_session()
        return agent

    async def play_session(self, episode: Episode, session_index: int, client: Any) -> list[TurnRecord]:
        agent = await self._agent(client)
        return [turn_from_agent(await agent.turn(turn.user)) for turn in episode.sessions[session_index].turns]

    async def ask(self, episode: Episode, probe: Probe, client: Any) -> TurnRecord:
        agent = await self._agent(client)
        return turn_from_agent(await agent.turn(probe.question))


class ReferenceMemoryPlayer:
    """The reference writes the memory; the model only answers the probes.

    Probe accuracy then measures reading alone: whether the model finds and reports what a
    perfect memory holds, and admits what it does not. Set beside a normal run, it tells a
    writing failure from a reading one, and it costs a fraction of a full run (no session turn
    is generated).
    """

    def __init__(self, model: AgentPlayer) -> None:
        self.reference = OraclePlayer()
        self.model = model

    async def play_session(self, episode: Episode, session_index: int, client: Any) -> list[TurnRecord]:
        return await self.reference.play_session(episode, session_index, client)

    async def ask(self, episode: Episode, probe: Probe, client: Any) -> TurnRecord:
        return await self.model.ask(episode, probe, client)


def turn_from_agent(turn: Any) -> TurnRecord:
    """The agent's turn record (memlora.agent.loop.TurnRecord) in the evaluator's own terms."""
    steps = []
    for step in turn.steps:
        calls = [
            CallRecord(
                name=call.name,
                arguments=call.arguments,
                mode=call.parse_mode,
                invalid=None if call.valid else (call.error or "invalid call"),
                result=call.result,
                is_error=bool(call.is_error),
            )
            for call in step.calls
        ]
        steps.append(
            StepRecord(
                raw=step.raw,
                mode=step.parse_mode,
                calls=calls,
                prompt_tokens=step.prompt_tokens,
                completion_tokens=step.completion_tokens,
                seconds=step.seconds,
                cached_prompt_tokens=step.cached_prompt_tokens,
                prefill_seconds=step.prefill_seconds,
            )
        )
    return TurnRecord(user=turn.user, steps=steps, reply=turn.reply, seconds=turn.seconds, stop=turn.stop)


# ----------------------------------------------------------------------------- one episode


async def play_episode(episode: Episode, player: Player, new_memory: Callable[[], Memory],
                       on_turns: Callable[[int], None] | None = None) -> EpisodeRecord:
    """Sessions in order on a fresh memory, a snapshot after each, probes right after theirs.

    A failure is recorded in the episode record (and the rest of the run goes on): a crash in
    one conversation must not throw away hours of others. `on_turns(n)` hears of every n turns
    played, for progress within long episodes.
    """
    count = on_turns or (lambda n: None)
    started = time.perf_counter()
    record = EpisodeRecord(id=episode.id)
    memory = new_memory()
    try:
        for index, session in enumerate(episode.sessions):
            async with memory.connect() as client:
                turns = await player.play_session(episode, index, client)
                graph = await read_graph(client)  # the snapshot, through the same MCP path
            record.sessions.append(SessionRecord(id=session.id, turns=turns, graph=graph))
            count(len(turns))
            for probe in episode.probes:
                if episode.session_index(probe.after) == index:  # a repeated session id: its first
                    async with memory.connect() as client:
                        turn = await player.ask(episode, probe, client)
                    record.probes.append(ProbeRecord(probe.index, probe.after, probe.question, turn))
                    count(1)
    except Exception as error:  # noqa: BLE001 - recorded and reported, the run goes on
        record.error = describe_error(error)
    finally:
        memory.close()
    record.seconds = time.perf_counter() - started
    return record


def describe_error(error: BaseException) -> str:
    """`Type: message`, with the exceptions inside an ExceptionGroup (an MCP session's TaskGroup
    wraps whatever failed in it, an endpoint's HTTP error included) spelled out."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe_error(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}"


# ----------------------------------------------------------------------------- a whole run


@dataclass(frozen=True)
class RunConfig:
    """What makes two runs comparable; a resumed run must match the one it continues."""

    episodes: str
    episodes_sha256: str
    model: str | None
    adapter: str | None
    server: str | None
    oracle: bool
    dtype: str | None = None  # the model's weight dtype: recorded, not checked on resume
    max_steps: int | None = None  # the agent's budget per user turn (None: the oracle)
    max_new_tokens: int | None = None
    reference_memory: bool = False  # sessions replayed from reference calls, the model asked the probes
    endpoint: str | None = None  # an OpenAI-compatible endpoint's URL; `model` is then its model name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ResumeMismatchError(RuntimeError):
    """The output folder holds a run with other settings: resuming would mix two runs."""


def prepare_out_dir(out_dir: Path, config: RunConfig) -> dict[str, EpisodeRecord]:
    """Creates the folder or checks it holds the same run; returns the episodes already done."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run_file = out_dir / RUN_FILE
    if run_file.exists():
        previous = json.loads(run_file.read_text(encoding="utf-8"))
        mine = config.to_dict()
        # folders written before the budget was recorded lack its keys: those resume under any budget
        keys = ("episodes_sha256", "model", "adapter", "server", "oracle") + tuple(
            k for k in ("max_steps", "max_new_tokens") if k in previous)
        # and before reference_memory: those played the model in every session
        previous.setdefault("reference_memory", False)
        previous.setdefault("endpoint", None)  # and before endpoints: those ran a local model
        keys += ("reference_memory", "endpoint")
        if any(previous.get(k) != mine[k] for k in keys):
            raise ResumeMismatchError(
                f"{out_dir} holds a run with other settings ({ {k: previous.get(k) for k in keys} }); "
                "use another --out or delete it"
            )
    else:
        run_file.write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
    return load_results(out_dir)


def load_results(out_dir: Path) -> dict[str, EpisodeRecord]:
    """The finished episodes of a run; a torn last line (killed mid-write) is ignored."""
    done: dict[str, EpisodeRecord] = {}
    path = out_dir / RESULTS_FILE
    if not path.exists():
        return done
    # "\n" alone ends a record: replies may hold U+2028 and the like, which splitlines splits at
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        try:
            record = EpisodeRecord.from_dict(json.loads(line))
        except (ValueError, KeyError, TypeError):
            continue
        done[record.id] = record
    return done


async def run_episodes(
    episodes: Sequence[Episode],
    player: Player,
    out_dir: Path,
    config: RunConfig,
    new_memory: Callable[[], Memory] | None = None,
    concurrency: int = 16,
    progress: bool = True,
    retry_failed: bool = True,
) -> list[EpisodeRecord]:
    """Plays every episode not yet in `out_dir`, appending each as it finishes; returns all, in file order.

    Episodes that failed in an earlier attempt are played again when `retry_failed` is set.
    """
    done = prepare_out_dir(out_dir, config)
    if retry_failed:
        done = {k: v for k, v in done.items() if v.error is None}
    todo = [e for e in episodes if e.id not in done]
    new_memory = new_memory or memory_factory(config.server)
    limit = asyncio.Semaphore(max(1, concurrency))
    bar = _progress_bar(len(episodes), len(episodes) - len(todo), progress)
    turns_left = sum(e.turn_count() for e in todo)
    turns_played = 0

    def count_turns(n: int) -> None:
        nonlocal turns_played
        turns_played += n
        bar.set_postfix_str(f"turns {turns_played}/{turns_left}")  # redraws: episodes finish rarely

    results_path = out_dir / RESULTS_FILE
    _drop_torn_tail(results_path)
    with results_path.open("a", encoding="utf-8") as sink:

        async def one(episode: Episode) -> None:
            async with limit:
                record = await play_episode(episode, player, new_memory, count_turns)
            sink.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
            sink.flush()
            done[record.id] = record
            bar.update(1)

        try:
            await asyncio.gather(*(one(e) for e in todo))
        finally:
            bar.close()
    return [done[e.id] for e in episodes if e.id in done]


def _drop_torn_tail(path: Path) -> None:
    """Cuts a last line left half-written by a kill, so that appending starts on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="episode", desc="eval", disable=not enabled)
