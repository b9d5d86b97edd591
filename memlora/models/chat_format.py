"""The chat formats memlora's models speak: how a conversation with tool calls becomes text.

A format belongs to the model family, so it lives here beside the loader and not in the agent:
- Qwen 2.5 speaks its native template (the one in its own tokenizer): calls as
  `<tool_call>{"name": ..., "arguments": ...}</tool_call>` blocks in the assistant turn, results
  as `<tool_response>` blocks in one user turn.
- Gemma 3 270M is a base model with no template, so memlora defines one in the same spirit
  (docs/chat-format.md): Gemma's own `<start_of_turn>` / `<end_of_turn>` turns, a `system` turn
  holding the system prompt and the tool block, the same `<tool_call>` blocks in `model` turns,
  and results in `tool` turns.

Conversations are TRL conversational messages; what goes into them (system prompt, opening
read, tool results) is the agent's business (memlora.agent.prompt), and parsing the model's
calls back out is too (memlora.agent.protocol).
"""

from __future__ import annotations

from typing import Any

# memlora's format for Gemma 3 base models (no template of their own); docs/chat-format.md.
GEMMA_CHAT_TEMPLATE = """\
{{- bos_token }}
{%- if messages and messages[0].role == 'system' %}{%- set system = messages[0].content %}\
{%- set rest = messages[1:] %}{%- else %}{%- set system = '' %}{%- set rest = messages %}{%- endif %}
{%- if system or tools %}
{{- '<start_of_turn>system\\n' + system }}
{%- if tools %}
{{- '\\n\\n# Tools\\n\\nTo use a tool, write a <tool_call></tool_call> block holding a JSON object \
with the tool name and its arguments, one block per call:\\n<tool_call>\\n{"name": <tool-name>, \
"arguments": <args-json-object>}\\n</tool_call>\\n\\nThe tools:\\n<tools>' }}
{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}
{{- '\\n</tools>' }}
{%- endif %}
{{- '<end_of_turn>\\n' }}
{%- endif %}
{%- for message in rest %}
{%- if message.role == 'user' %}
{{- '<start_of_turn>user\\n' + message.content + '<end_of_turn>\\n' }}
{%- elif message.role == 'assistant' %}
{{- '<start_of_turn>model' }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls or [] %}
{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '\\n<tool_call>\\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}\
{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<end_of_turn>\\n' }}
{%- elif message.role == 'tool' %}
{%- if loop.index0 == 0 or rest[loop.index0 - 1].role != 'tool' %}{{- '<start_of_turn>tool' }}{%- endif %}
{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}
{%- if loop.last or rest[loop.index0 + 1].role != 'tool' %}{{- '<end_of_turn>\\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}
"""

END_OF_TURN = {"qwen": "<|im_end|>", "gemma": "<end_of_turn>"}


def install_chat_template(tokenizer: Any, family: str) -> Any:
    """Gives a Gemma tokenizer memlora's format; any other tokenizer keeps its own template.

    A non-Gemma tokenizer without a template is refused here rather than at the first prompt:
    memlora speaks the Qwen format through the Qwen tokenizer's own template and has no copy of it.
    """
    if family == "gemma":
        tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    elif not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or "this tokenizer"
        raise ValueError(f"{name} has no chat template; memlora renders the Qwen format with the "
                         "tokenizer's own template (Gemma 3 base models get memlora's)")
    return tokenizer


def stop_token_ids(tokenizer: Any, family: str) -> list[int]:
    """Tokens that end an assistant turn: the family's end-of-turn marker and the EOS token."""
    ids = {tokenizer.convert_tokens_to_ids(END_OF_TURN[family])}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    unk = getattr(tokenizer, "unk_token_id", None)
    return sorted(i for i in ids if i is not None and i != unk)


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                  add_generation_prompt: bool = True) -> str:
    """The prompt text for a conversation, through the tokenizer's chat template."""
    return tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt
    )
