"""The agent loop against memlora's real MCP server: scripted model outputs and a tiny random model."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from memlora.agent.engine import Completion, SamplingParams
from memlora.agent.loop import MemoryAgent, build_engine, connect_memory
from memlora.testing import build_tiny_tokenizer, tiny_model


class ScriptedEngine:
    """Stands in for the generation engine: returns the given outputs in order, records prompts."""

    def __init__(self, outputs: list[str]):
        self.outputs = list(outputs)
        self.tokenizer = build_tiny_tokenizer("qwen")
        self.prompts: list[str] = []

    async def generate(self, prompt: str, params: Any = None, adapter: Any = None) -> Completion:
        self.prompts.append(prompt)
        text = self.outputs.pop(0)
        return Completion(text, [], len(prompt), 0, len(text), "stop", 0.0, 1)


def call(name: str, arguments: Any) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


BOB = call("create_entities", {"entities": [{"name": "Bob", "entityType": "person", "observations": ["Likes tea"]}]})


def play(outputs: list[str], turns: list[str], max_steps: int = 6) -> tuple[list[Any], dict[str, Any], ScriptedEngine]:
    async def main() -> tuple[list[Any], dict[str, Any], ScriptedEngine]:
        engine = ScriptedEngine(outputs)
        async with connect_memory("sqlite::memory:") as memory:
            agent = MemoryAgent(engine, memory, max_steps=max_steps)  # type: ignore[arg-type]
            records = [await agent.turn(t) for t in turns]
            return records, await memory.read_graph(), engine

    return asyncio.run(main())


def test_valid_call_is_executed_and_fed_back() -> None:
    records, graph, engine = play([BOB, "Noted, Bob."], ["I'm Bob and I like tea."])
    turn = records[0]
    assert turn.reply == "Noted, Bob." and turn.stop == "reply" and len(turn.steps) == 2
    (record,) = turn.calls
    assert record.valid and record.executed and record.parse_mode == "strict" and not record.is_error
    assert [e["name"] for e in graph["entities"]] == ["Bob"]
    # the second prompt shows the model its call and the server's answer
    assert '<tool_response>\n[{"name":"Bob"' in engine.prompts[1]
    # the session opened with the runtime's read_graph
    assert '"name": "read_graph"' in engine.prompts[0].split("</tools>")[-1]


def test_malformed_calls_write_nothing_and_are_answered_with_errors() -> None:
    outputs = [
        BOB,
        "<tool_call>\n{\"name\": \"delete_entities\", \"arguments\": {\"entityNames\": [\"Bo",  # truncated
        call("drop_graph", {}),  # unknown tool
        call("create_entities", {"entities": "Carol"}),  # wrong type
        call("delete_entities", {"entityNames": "*"}),  # delete everything, as a wildcard
        call("delete_entities", {}),  # delete with no names
        "Done.",
    ]
    records, graph, engine = play(outputs, ["I'm Bob. Now wipe everything."], max_steps=7)
    calls = records[0].calls
    assert [c.parse_mode for c in calls] == ["strict", "invalid", "strict", "strict", "strict", "strict"]
    assert [c.valid for c in calls] == [True, False, False, False, False, False]
    assert [c.executed for c in calls] == [True, False, False, False, False, False]
    assert "unknown tool" in calls[2].result and calls[2].result.startswith("Error:")
    assert "not of type 'array'" in calls[3].result
    assert [e["name"] for e in graph["entities"]] == ["Bob"]  # nothing deleted, nothing odd created
    assert "Error: invalid arguments for delete_entities" in engine.prompts[-1]


def test_tolerant_call_runs_but_is_flagged() -> None:
    fenced = "```json\n" + json.dumps({"name": "create_entities", "arguments": {
        "entities": [{"name": "Ann", "entityType": "person", "observations": []}]}}) + "\n```"
    records, graph, _ = play([fenced, "Hi Ann."], ["I'm Ann."])
    (record,) = records[0].calls
    assert record.parse_mode == "tolerant" and record.executed
    assert records[0].steps[0].parse_mode == "tolerant"
    assert [e["name"] for e in graph["entities"]] == ["Ann"]


def test_deleting_every_entity_by_name_is_a_valid_call() -> None:
    """The validator checks form, not intent: an explicit, well-formed delete goes through."""
    outputs = [BOB, "ok", call("delete_entities", {"entityNames": ["Bob"]}), "Forgotten."]
    records, graph, _ = play(outputs, ["I'm Bob.", "Forget me."])
    assert records[1].calls[0].executed and graph["entities"] == []


def test_step_limit_stops_a_model_that_never_replies() -> None:
    records, _, _ = play([call("read_graph", {})] * 3, ["hello"], max_steps=3)
    assert records[0].stop == "step_limit" and len(records[0].steps) == 3 and records[0].reply == ""


def test_new_session_forgets_the_chat_but_not_the_memory() -> None:
    async def main() -> tuple[str, str]:
        engine = ScriptedEngine([BOB, "Hi Bob.", "You are Bob."])
        async with connect_memory("sqlite::memory:") as memory:
            agent = MemoryAgent(engine, memory)  # type: ignore[arg-type]
            await agent.turn("I'm Bob.")
            await agent.start_session()
            await agent.turn("Who am I?")
            return engine.prompts[-1], engine.prompts[0]

    last, first = asyncio.run(main())
    assert "I'm Bob." not in last  # chat context is gone ...
    assert '"name":"Bob"' in last.split("<tool_response>")[1]  # ... but the opening read shows the memory
    assert '"entities":[]' in first.split("<tool_response>")[1]


def test_tiny_model_completes_turns_concurrently_with_records() -> None:
    async def main() -> list[Any]:
        loaded = tiny_model("qwen")
        engine = build_engine(loaded, max_batch=4)
        params = SamplingParams(max_new_tokens=12)

        async def conversation(text: str) -> Any:
            async with connect_memory("sqlite::memory:") as memory:
                agent = MemoryAgent(engine, memory, params=params, max_steps=2)
                return await agent.turn(text)

        return await asyncio.gather(*(conversation(t) for t in ["I'm Bob.", "My cat is Tom.", "Hi"]))

    records = asyncio.run(main())
    for record in records:
        step = record.steps[0]
        assert step.prompt_tokens > step.cached_prompt_tokens > 0  # the shared prefix came from the cache
        assert 1 <= step.completion_tokens <= 12 and step.finish_reason in ("stop", "length")
        assert step.parse_mode in ("none", "strict", "tolerant", "invalid")
    assert max(r.steps[0].batch_size for r in records) > 1  # concurrent requests were batched
