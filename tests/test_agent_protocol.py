"""The chat format, the tool-call parser and the argument validator, on text alone."""

from __future__ import annotations

import json

import pytest

from memlora.agent.prompt import session_opening, tool_call_message, tool_result_message
from memlora.agent.protocol import ToolValidator, model_tools, parse_output, server_tools
from memlora.models.chat_format import render_prompt
from memlora.testing import build_tiny_tokenizer

CALL = {"name": "create_entities", "arguments": {"entities": [{"name": "Bob", "entityType": "person", "observations": []}]}}


def block(payload: str) -> str:
    return f"<tool_call>\n{payload}\n</tool_call>"


# --- parser ----------------------------------------------------------------------------------


def test_plain_reply_has_no_calls() -> None:
    parsed = parse_output("Nice to meet you, Bob!")
    assert parsed.mode == "none" and parsed.calls == [] and parsed.content == "Nice to meet you, Bob!"


def test_native_calls_parse_strictly() -> None:
    second = {"name": "read_graph", "arguments": {}}
    parsed = parse_output("Saving that.\n" + block(json.dumps(CALL)) + "\n" + block(json.dumps(second)))
    assert parsed.mode == "strict" and parsed.format_ok
    assert [(c.name, c.arguments) for c in parsed.calls] == [(CALL["name"], CALL["arguments"]), ("read_graph", {})]
    assert parsed.content == "Saving that."


@pytest.mark.parametrize(
    "text",
    [
        "```json\n" + json.dumps(CALL) + "\n```",  # markdown fence
        json.dumps(CALL),  # bare JSON
        "Sure: " + json.dumps([CALL, {"name": "read_graph", "arguments": {}}]),  # bare list
        "<tool_call>\n" + json.dumps(CALL),  # missing closing tag
        block(json.dumps({"name": CALL["name"], "parameters": CALL["arguments"]})),  # parameters
        block(json.dumps({"name": CALL["name"], "arguments": json.dumps(CALL["arguments"])})),  # string args
        block(json.dumps(CALL) + " and more"),  # junk after the JSON
        block(json.dumps(CALL)) + " trailing chatter",  # text after the calls
    ],
)
def test_tolerant_recoveries_are_flagged(text: str) -> None:
    parsed = parse_output(text)
    assert parsed.mode == "tolerant" and not parsed.format_ok
    assert parsed.calls[0].name == CALL["name"] and parsed.calls[0].arguments == CALL["arguments"]


@pytest.mark.parametrize(
    "text",
    [
        block('{"name": "create_entities", "arguments": {"entities": [{"name": "Bo'),  # truncated
        "<tool_call>\n{\"name\": \"create_entities\", \"arguments\": {",  # truncated, no close
        block("create_entities(entities=[])"),  # not JSON
        block('{"arguments": {}}'),  # no name
        '{"name": "delete_observations", "arguments": {"deletions": []}',  # bare, unbalanced
        '```json\n{"name": "read_graph", "arguments": {\n```',  # fenced, truncated
    ],
)
def test_unrecoverable_calls_are_invalid(text: str) -> None:
    parsed = parse_output(text)
    assert parsed.mode == "invalid"
    assert parsed.calls[0].name is None and parsed.calls[0].error


def test_quoted_entity_json_in_a_reply_is_not_a_call() -> None:
    parsed = parse_output('I know this: {"name": "Alice", "entityType": "person"}')
    assert parsed.mode == "none" and parsed.calls == []


# --- validator against the server's own schemas ----------------------------------------------


@pytest.fixture(scope="module")
def validator() -> ToolValidator:
    return ToolValidator(server_tools())


def test_valid_call_passes(validator: ToolValidator) -> None:
    assert validator.error(CALL["name"], CALL["arguments"]) is None


@pytest.mark.parametrize(
    ("name", "arguments", "needle"),
    [
        ("drop_graph", {}, "unknown tool"),
        ("create_entities", {"entities": "Bob"}, "not of type 'array'"),
        ("create_entities", {"entities": [{"name": "Bob"}]}, "entityType"),
        ("delete_entities", {"entityNames": "*"}, "not of type 'array'"),
        ("delete_entities", {}, "required"),
        ("create_relations", {"relations": [{"from": "A", "to": 3, "relationType": "knows"}]}, "not of type 'string'"),
    ],
)
def test_invalid_calls_are_explained(validator: ToolValidator, name: str, arguments: dict, needle: str) -> None:
    error = validator.error(name, arguments)
    assert error is not None and needle in error


# --- tool block and chat templates -------------------------------------------------------------


def test_model_tools_are_compact_functions_of_all_nine_tools() -> None:
    tools = model_tools()
    names = [t["function"]["name"] for t in tools]
    assert len(names) == 9 and "read_graph" in names and "delete_relations" in names
    text = json.dumps(tools)
    assert '"title"' not in text and "outputSchema" not in text and "$schema" not in text
    assert all(t["type"] == "function" and "parameters" in t["function"] for t in tools)
    assert len(text) < len(json.dumps(model_tools(compact=False)))


@pytest.mark.parametrize("family", ["qwen", "gemma"])
def test_template_renders_calls_and_results(family: str) -> None:
    tokenizer = build_tiny_tokenizer(family)
    messages = session_opening({"entities": [], "relations": []}) + [
        {"role": "user", "content": "I'm Bob."},
        tool_call_message([CALL]),
        tool_result_message("create_entities", [{"name": "Bob"}]),
    ]
    text = render_prompt(tokenizer, messages, model_tools())
    assert text.count("<tool_call>\n{\"name\": ") == 3  # two calls plus the format example
    assert '<tool_response>\n[{"name":"Bob"}]\n</tool_response>' in text
    assert '"name": "open_nodes"' in text
    generation_prompt = "<|im_start|>assistant\n" if family == "qwen" else "<start_of_turn>model\n"
    assert text.endswith(generation_prompt)
    # what the model writes after the generation prompt parses back to the same call
    turn = "<|im_end|>" if family == "qwen" else "<end_of_turn>"
    written = text.split(generation_prompt)[-2].split(turn)[0]
    assert parse_output(written).calls[0].arguments == CALL["arguments"]


def test_example_calls_show_every_argument_key_in_the_chat_format() -> None:
    from memlora.agent.protocol import example_calls_text, model_tools, parse_output
    from memlora.testing import tiny_model

    tools = model_tools()
    text = example_calls_text(tiny_model().tokenizer, tools)
    body = text[text.index("<tool_call>"):text.rindex("</tool_call>") + len("</tool_call>")]
    parsed = parse_output(body)
    assert [call.name for call in parsed.calls] == [t["function"]["name"] for t in tools]
    create = parsed.calls[0].arguments["entities"][0]
    assert list(create) == ["name", "entityType", "observations"] and create["observations"] == ["x"]
