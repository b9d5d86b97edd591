"""`memlora api`: the real server on 127.0.0.1, spoken to with the official `openai` client.

The model is the tiny random one, taught a handful of replies first (a few seconds of training
of its last layer), so that a tool call, a plain reply and memory-mode answers are what greedy
decoding really produces through the engine, the parser and the agent loop."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from memlora.agent.engine import GenerationEngine, SamplingParams  # noqa: E402
from memlora.agent.prompt import session_opening, tool_call_message, tool_result_message  # noqa: E402
from memlora.agent.protocol import model_tools  # noqa: E402
from memlora.api.app import ApiSettings, build_app  # noqa: E402
from memlora.models.chat_format import render_prompt  # noqa: E402
from memlora.models.kv_cache import cache_of, with_cache  # noqa: E402
from memlora.models.loading import load_model  # noqa: E402
from memlora.testing import tiny_model  # noqa: E402

SEARCH_TOOL = {"type": "function", "function": {
    "name": "search", "description": "Search the notes.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}
STORY = "Once upon a time a tiny model streamed its words, one token after another, to a patient client."
ALICE = {"name": "Alice Chen", "entityType": "person", "observations": []}
CREATE_ALICE = {"name": "create_entities", "arguments": {"entities": [ALICE]}}
NICE = "Nice to meet you, Alice Chen."


def lessons(tokenizer: Any) -> list[tuple[str, str]]:
    """(prompt, completion) pairs, rendered exactly as the server and the agent render them."""
    tools = model_tools()
    empty = session_opening({"entities": [], "relations": []})
    with_alice = session_opening({"entities": [ALICE], "relations": []})
    call = f"<tool_call>\n{json.dumps(CREATE_ALICE)}\n</tool_call><|im_end|>"  # Qwen's native call
    meet = empty + [{"role": "user", "content": "My name is Alice Chen."}]
    after_call = meet + [tool_call_message([CREATE_ALICE]), tool_result_message("create_entities", [ALICE])]
    return [
        (render_prompt(tokenizer, meet, tools), call),
        (render_prompt(tokenizer, after_call, tools), NICE + "<|im_end|>"),
        (render_prompt(tokenizer, with_alice + [{"role": "user", "content": "What is my name?"}], tools),
         "Your name is Alice Chen.<|im_end|>"),
        (render_prompt(tokenizer, empty + [{"role": "user", "content": "What is my name?"}], tools),
         "I don't know.<|im_end|>"),
        (render_prompt(tokenizer, [{"role": "user", "content": "Hello"}], None), "Hi there!<|im_end|>"),
        (render_prompt(tokenizer, [{"role": "user", "content": "Find Alice."}], [SEARCH_TOOL]),
         '<tool_call>\n{"name": "search", "arguments": {"query": "Alice"}}\n</tool_call><|im_end|>'),
        (render_prompt(tokenizer, [{"role": "user", "content": "Tell me a story."}], None), STORY + "<|im_end|>"),
    ]


def teach(loaded: Any, pairs: list[tuple[str, str]], max_steps: int = 400) -> None:
    """Trains the last layer's attention output, MLP, final norm and (untied) output head until
    greedy decoding gives every completion. The layers below and the key/value projections stay
    frozen, so each prompt's keys and values are computed once and reused for every step."""
    from transformers.cache_utils import DynamicCache

    model, tokenizer = loaded.model, loaded.tokenizer
    last = model.model.layers[-1]
    trained = [last.self_attn.q_proj, last.self_attn.o_proj, last.post_attention_layernorm, last.mlp,
               model.model.norm, model.lm_head]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    parameters = [p for module in trained for p in module.parameters()]
    for parameter in parameters:
        parameter.requires_grad_(True)
    data = []
    with torch.no_grad():
        for prompt, completion in pairs:
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            out = model(input_ids=torch.tensor([ids[:-1]]), use_cache=True)
            kv = [(layer.keys.clone(), layer.values.clone()) for layer in cache_of(out).layers]
            data.append((kv, len(ids) - 1, ids[-1:] + tokenizer(completion, add_special_tokens=False)["input_ids"]))
    optimizer = torch.optim.Adam(parameters, lr=5e-3)
    model.train()
    for step in range(max_steps):
        all_right = True
        for kv, start, tail in data:
            cache = DynamicCache(config=model.config)
            for index, (keys, values) in enumerate(kv):
                cache.update(keys, values, index)
            tokens = torch.tensor([tail])
            logits = model(input_ids=tokens, **with_cache(cache), use_cache=True,
                           position_ids=torch.arange(start, start + len(tail))[None]).logits[0, :-1]
            torch.nn.functional.cross_entropy(logits, tokens[0, 1:]).backward()
            all_right &= bool((logits.argmax(-1) == tokens[0, 1:]).all())
        if all_right and step >= 10:
            break
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)


def random_adapter(model: Any, folder: Path) -> Path:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                        task_type="CAUSAL_LM")
    torch.manual_seed(11)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    peft_model.save_pretrained(folder)
    peft_model.unload()
    return folder


@pytest.fixture(scope="module")
def served_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The taught tiny model saved as a folder, loaded back with a random adapter `rand`."""
    folder = tmp_path_factory.mktemp("api-model")
    tiny = tiny_model("qwen", seed=2, tie_embeddings=False)
    pairs = lessons(tiny.tokenizer)
    teach(tiny, pairs)
    tiny.model.save_pretrained(folder / "model")
    tiny.tokenizer.save_pretrained(folder / "model")
    random_adapter(tiny.model, folder / "rand")
    loaded = load_model(str(folder / "model"), adapters={"rand": folder / "rand"}, device="cpu", dtype="fp32")
    engine = GenerationEngine(loaded)
    for prompt, completion in pairs:  # the lessons hold through save, load and memlora's engine
        text = engine.generate_many([prompt], SamplingParams(max_new_tokens=80), adapter="none")[0].text
        assert text + "<|im_end|>" == completion
    return loaded


class RunningServer:
    """uvicorn serving the app on 127.0.0.1 (a free port) in a thread, stopped on exit."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "RunningServer":
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self, key: str = "unused") -> Any:
        return openai.OpenAI(base_url=self.url, api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def server(served_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    store = tmp_path_factory.mktemp("api-memory")
    settings = ApiSettings(store=f"sqlite:{store}/{{user}}.db", max_tokens_limit=256)
    app = build_app(served_model, settings, adapters={"rand": "rand"}, base_id="tiny")
    with RunningServer(app) as running:
        running.store = store
        running.app = app
        yield running


def test_models_list_base_adapter_memory_mode_and_embeddings(server: RunningServer) -> None:
    ids = [model.id for model in server.client().models.list()]
    assert ids[:4] == ["tiny", "tiny:remember", "tiny+rand", "tiny+rand:remember"]
    assert "all-minilm-l6-v2" in ids
    assert server.client().models.retrieve("tiny+rand").id == "tiny+rand"


def test_plain_chat(server: RunningServer) -> None:
    reply = server.client().chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hello"}])
    choice = reply.choices[0]
    assert choice.message.content == "Hi there!"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0
    assert reply.model == "tiny"


def test_tool_calls_come_back_in_the_openai_shape(server: RunningServer) -> None:
    reply = server.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Find Alice."}], tools=[SEARCH_TOOL])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "search"
    assert json.loads(call.function.arguments) == {"query": "Alice"}
    # the call and its result go back in, as a client's next request would send them
    follow = server.client().chat.completions.create(model="tiny", max_tokens=5, messages=[
        {"role": "user", "content": "Find Alice."}, choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Alice lives in Lisbon."}], tools=[SEARCH_TOOL])
    assert follow.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_streaming_sends_the_same_reply_in_pieces(server: RunningServer) -> None:
    client = server.client()
    messages = [{"role": "user", "content": "Tell me a story."}]
    whole = client.chat.completions.create(model="tiny", messages=messages).choices[0].message.content
    assert whole == STORY
    chunks = list(client.chat.completions.create(model="tiny", messages=messages, stream=True,
                                                 stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 5 and "".join(pieces) == STORY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 5

    calls = list(client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Find Alice."}],
                                                tools=[SEARCH_TOOL], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in calls)
    deltas = [d for c in calls for d in (c.choices[0].delta.tool_calls or [])]
    assert "<tool_call>" not in text and text == ""
    assert [(d.index, d.function.name, json.loads(d.function.arguments)) for d in deltas] == \
        [(0, "search", {"query": "Alice"})]
    assert calls[-1].choices[0].finish_reason == "tool_calls"


def test_the_model_id_routes_to_the_adapter(server: RunningServer, served_model: Any) -> None:
    client = server.client()
    messages = [{"role": "user", "content": "Hello"}]
    base = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12).choices[0].message.content
    adapted = client.chat.completions.create(model="tiny+rand", messages=messages,
                                             max_tokens=12).choices[0].message.content
    assert base == "Hi there!" and adapted != base
    engine = GenerationEngine(served_model)
    prompt = render_prompt(served_model.tokenizer, messages, None)
    direct = engine.generate_many([prompt], SamplingParams(max_new_tokens=12), adapter="rand")[0].text
    assert adapted == direct.strip()


def test_concurrent_clients_share_the_engines_batches(server: RunningServer) -> None:
    engine = server.app.app.state.engine
    forwards, rows = engine.decode_forwards, engine.decoded_rows

    async def many() -> list[str]:
        client = openai.AsyncOpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)
        replies = await asyncio.gather(*(client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": text}])
            for text in ["Hello", "Tell me a story."] * 4))
        return [r.choices[0].message.content for r in replies]

    assert asyncio.run(many()) == ["Hi there!", STORY] * 4
    # some decode forward carried several clients' rows
    assert engine.decoded_rows - rows > engine.decode_forwards - forwards > 0


def test_memory_mode_remembers_a_user_across_conversations_and_keeps_users_apart(server: RunningServer) -> None:
    from memlora.store import open_store

    client = server.client()
    first = client.chat.completions.create(model="tiny:remember", user="alice",
                                           messages=[{"role": "user", "content": "My name is Alice Chen."}])
    message = first.choices[0].message
    assert message.content == NICE
    assert message.tool_calls is None  # the client sees a reply; the server ran the tools
    assert [(c["name"], c["ok"]) for c in message.model_extra["memory_calls"]] == [("create_entities", True)]

    second = client.chat.completions.create(model="tiny:remember", user="alice",  # a new conversation
                                            messages=[{"role": "user", "content": "What is my name?"}])
    assert second.choices[0].message.content == "Your name is Alice Chen."
    stranger = client.chat.completions.create(model="tiny:remember", user="bob",
                                              messages=[{"role": "user", "content": "What is my name?"}])
    assert stranger.choices[0].message.content == "I don't know."
    by_header = client.chat.completions.create(model="tiny:remember", extra_headers={"X-Memlora-User": "alice"},
                                               messages=[{"role": "user", "content": "What is my name?"}])
    assert by_header.choices[0].message.content == "Your name is Alice Chen."
    streamed = client.chat.completions.create(model="tiny:remember", user="alice", stream=True,
                                              messages=[{"role": "system", "content": "You are helpful."},
                                                        {"role": "user", "content": "What is my name?"}])
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "Your name is Alice Chen."

    with open_store(f"sqlite:{server.store}/alice.db") as alice, open_store(f"sqlite:{server.store}/bob.db") as bob:
        assert [e.name for e in alice.read_graph().entities] == ["Alice Chen"]
        assert bob.read_graph().entities == []


def test_embeddings(server: RunningServer) -> None:
    client = server.client()
    result = client.embeddings.create(model="all-minilm-l6-v2", input=["The cat sleeps on the sofa.",
                                                                      "A cat is napping on the couch.",
                                                                      "Interest rates rose in March."])
    vectors = [torch.tensor(item.embedding) for item in result.data]
    assert [len(v) for v in vectors] == [384] * 3
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > unrelated + 0.3
    floats = client.embeddings.create(model="all-minilm-l6-v2", input="The cat sleeps on the sofa.",
                                      encoding_format="float")
    assert torch.allclose(torch.tensor(floats.data[0].embedding), vectors[0], atol=1e-6)
    assert result.usage.prompt_tokens > 10


def raw_request(url: str, body: bytes | None = None) -> tuple[int, Any]:
    """A request without the openai client (which would not send broken JSON): status and JSON body."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def read_response(connection: socket.socket) -> str:
    """One whole HTTP/1.1 response with a Content-Length, however many pieces it arrives in."""
    connection.settimeout(120)
    data = b""
    while True:
        head, _, body = data.partition(b"\r\n\r\n")
        if _:
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            if len(body) >= length:
                return data.decode()
        chunk = connection.recv(65536)
        assert chunk, data
        data += chunk


def error_of(call: Any) -> Any:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return caught.value


def test_malformed_requests_get_json_errors_naming_the_field(server: RunningServer) -> None:
    client = server.client()
    status, bad_json = raw_request(f"{server.url}/chat/completions", b'{"model": "tiny", "messages": [')
    assert status == 400 and bad_json["error"]["message"].startswith("body: invalid JSON")

    missing = error_of(lambda: client.chat.completions.create(model="tiny", messages=[]))
    assert missing.status_code == 400 and missing.body["param"] == "messages"
    role = error_of(lambda: client.chat.completions.create(model="tiny", messages=[{"role": "robot", "content": "x"}]))
    assert role.status_code == 400 and role.body["message"].startswith("messages.0.role:")
    arguments = error_of(lambda: client.chat.completions.create(model="tiny", messages=[
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "search", "arguments": "{oops"}}]}]))
    assert "messages.1.tool_calls.0.function.arguments: not valid JSON" in arguments.body["message"]
    unknown = error_of(lambda: client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}]))
    assert unknown.status_code == 404 and "tiny+rand" in unknown.body["message"]
    several = error_of(lambda: client.chat.completions.create(model="tiny", n=2, messages=[{"role": "user", "content": "x"}]))
    assert several.status_code == 400 and several.body["message"] == "n: only n=1 is supported"
    anonymous = error_of(lambda: client.chat.completions.create(model="tiny:remember",
                                                                messages=[{"role": "user", "content": "x"}]))
    assert anonymous.status_code == 400 and anonymous.body["param"] == "user"
    strange_user = error_of(lambda: client.chat.completions.create(model="tiny:remember", user="../etc",
                                                                   messages=[{"role": "user", "content": "x"}]))
    assert strange_user.status_code == 400 and strange_user.body["param"] == "user"
    tools_in_memory = error_of(lambda: client.chat.completions.create(
        model="tiny:remember", user="alice", tools=[SEARCH_TOOL], messages=[{"role": "user", "content": "x"}]))
    assert tools_in_memory.body["param"] == "tools"
    image = error_of(lambda: client.chat.completions.create(model="tiny", messages=[
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]))
    assert "only text content parts are supported" in image.body["message"]
    status, nowhere = raw_request(f"{server.url}/nothing-here")
    assert status == 404 and "/v1/nothing-here" in nowhere["error"]["message"]


def test_auth_and_limits(served_model: Any, tmp_path: Path) -> None:
    settings = ApiSettings(api_key="s3cret", max_request_bytes=4096, max_concurrency=1, max_tokens_limit=64,
                           store="sqlite::memory:", embeddings=False)
    with RunningServer(build_app(served_model, settings, base_id="tiny")) as running:
        messages = [{"role": "user", "content": "Hello"}]
        status, anonymous = raw_request(f"{running.url}/models")
        assert status == 401 and anonymous["error"]["code"] == "invalid_api_key"
        refused = error_of(lambda: running.client("wrong").chat.completions.create(model="tiny", messages=messages))
        assert refused.status_code == 401 and refused.body["code"] == "invalid_api_key"
        client = running.client("s3cret")
        assert client.chat.completions.create(model="tiny", messages=messages).choices[0].message.content == "Hi there!"

        too_long = error_of(lambda: client.chat.completions.create(model="tiny", max_tokens=65, messages=messages))
        assert too_long.status_code == 400 and too_long.body["param"] == "max_tokens"
        too_big = error_of(lambda: client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "x" * 5000}]))
        assert too_big.status_code == 413

        # a request whose body has not fully arrived holds the only place: the next one is refused
        slow = socket.create_connection(("127.0.0.1", running.port))
        body = json.dumps({"model": "tiny", "messages": messages}).encode()
        slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
                     b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                     + body[:10])
        busy = None
        for _ in range(200):  # until the server has seen the slow request's headers
            try:
                client.models.list()
            except openai.RateLimitError as error:
                busy = error
                break
            time.sleep(0.01)
        assert busy is not None and busy.status_code == 429
        slow.sendall(body[10:])
        answer = read_response(slow)
        slow.close()
        assert answer.startswith("HTTP/1.1 200") and "Hi there!" in answer
        assert client.models.list().data[0].id == "tiny"  # the place is free again


EPISODE = {"id": "alice", "user": {"name": "Alice Chen", "aliases": ["Alice"]},
           "sessions": [{"id": "s1", "turns": [{"user": "My name is Alice Chen.", "calls": [CREATE_ALICE],
                                                "reply": "Nice to meet you."}],
                         "learn": [{"kind": "entity", "name": "@user", "type": ["person"]}], "retract": []}],
           "probes": [{"after": "s1", "question": "What is my name?", "answers": ["Alice Chen"], "forbidden": [],
                       "kind": "single"}]}


def test_eval_scores_an_endpoint_through_the_same_agent_loop(server: RunningServer, served_model: Any,
                                                              tmp_path: Path) -> None:
    """`memlora eval --endpoint` on memlora's own server gives the records and scores of the local run."""
    from click.testing import CliRunner

    from memlora.agent.loop import build_engine
    from memlora.evaluation.commands import eval_command
    from memlora.evaluation.episodes import load_episodes
    from memlora.evaluation.runner import AgentPlayer, RunConfig, load_results, run_episodes

    episodes_file = tmp_path / "episodes.jsonl"
    episodes_file.write_text(json.dumps(EPISODE) + "\n")
    local_out, remote_out = tmp_path / "local", tmp_path / "remote"
    player = AgentPlayer(build_engine(served_model), params=SamplingParams(max_new_tokens=80), max_steps=3)
    config = RunConfig(episodes=str(episodes_file), episodes_sha256="-", model="tiny", adapter=None, server=None,
                       oracle=False)
    asyncio.run(run_episodes(load_episodes(episodes_file), player, local_out, config, progress=False))
    result = CliRunner().invoke(eval_command, [str(episodes_file), "--endpoint", server.url, "--endpoint-model", "tiny",
                                               "--max-steps", "3", "--max-new-tokens", "80", "--quiet",
                                               "--out", str(remote_out)])
    assert result.exit_code == 0, result.output
    local, remote = load_results(local_out)["alice"], load_results(remote_out)["alice"]
    assert local.error is None and remote.error is None

    def calls_and_replies(record: Any) -> list[Any]:
        turns = [t for s in record.sessions for t in s.turns] + [p.turn for p in record.probes]
        return [([(c.name, c.arguments, c.result) for s in t.steps for c in s.calls], t.reply) for t in turns]

    assert calls_and_replies(remote) == calls_and_replies(local)
    assert calls_and_replies(remote)[-1][1] == "Your name is Alice Chen."
    report = json.loads((remote_out / "report.json").read_text())
    assert json.loads((remote_out / "run.json").read_text())["endpoint"] == server.url
    assert "probe" in json.dumps(report["summary"])


@pytest.mark.slow
def test_memlora_api_command_serves_the_bundled_model_and_its_adapter(tmp_path: Path) -> None:
    """`memlora api` as a user starts it: the bundled model, each shipped adapter under its own id
    (`+memory`, `+records-recall`, `+records-writing`) and `+auto`, which routes each request to its
    task's adapter."""
    import os
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "memlora.cli", "api", "--port", str(port), "--no-embeddings",
               "--store", f"sqlite:{tmp_path}/{{user}}.db"]
    process = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=600)
        for _ in range(600):
            try:
                ids = [m.id for m in client.models.list()]
                break
            except openai.APIConnectionError:
                assert process.poll() is None, process.stderr.read()
                time.sleep(1)
        served = ["", "+memory", "+records-recall", "+records-writing", "+auto"]  # +auto: each task its adapter
        assert ids == [f"qwen2.5-coder-0.5b{suffix}{mode}" for suffix in served for mode in ("", ":remember")]
        reply = client.chat.completions.create(model="qwen2.5-coder-0.5b+memory:remember", user="dana", max_tokens=160,
                                               messages=[{"role": "user", "content": "Hi, I'm Dana Reyes."}])
        assert reply.choices[0].message.content
        calls = reply.choices[0].message.model_extra["memory_calls"]
        created = [entity["name"] for call in calls if call["name"] == "create_entities" and call["ok"]
                   for entity in call["arguments"]["entities"]]
        assert created, calls
    finally:
        process.terminate()
        process.wait(timeout=60)
    from memlora.store import open_store

    with open_store(f"sqlite:{tmp_path}/dana.db") as store:  # what the model created is in this user's store
        assert set(created) <= {entity.name for entity in store.read_graph().entities}


def test_a_call_cut_off_by_max_tokens_reaches_an_endpoint_client_as_the_local_parser_sees_it() -> None:
    """The server keeps an unparseable call in the content; `memlora eval --endpoint` reads it back
    as an invalid call, as a local run records it."""
    from openai.types.chat import ChatCompletionMessage

    from memlora.agent.endpoint import parsed_message
    from memlora.agent.protocol import parse_output
    from memlora.api.chat import message_content, openai_tool_calls

    text = ('<tool_call>\n{"name": "search", "arguments": {"query": "Alice"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "search", "arguments": {"qu')
    local = parse_output(text)
    calls = openai_tool_calls(local)
    content = message_content(text, local)
    assert [c.function.name for c in calls] == ["search"] and content.startswith("<tool_call>")
    message = ChatCompletionMessage(role="assistant", content=content, tool_calls=[
        {"id": calls[0].id, "type": "function", "function": calls[0].function.model_dump()}])
    _, remote = parsed_message(message)
    assert [(c.name, c.mode) for c in remote.calls] == [(c.name, c.mode) for c in local.calls] == \
        [("search", "strict"), (None, "invalid")]
    assert remote.mode == local.mode == "invalid"


def test_a_conversation_sent_to_an_endpoint_renders_as_the_local_prompt() -> None:
    """The agent's history through the OpenAI format and back into memlora's server gives the prompt
    the local agent renders, strict steps (call ids) and verbatim ones (calls that did not parse) alike."""
    from memlora.agent.endpoint import openai_messages
    from memlora.api.chat import to_trl_messages
    from memlora.api.schemas import ChatRequest

    tokenizer = tiny_model("qwen").tokenizer
    broken = ('<tool_call>\n{"name": "search_nodes", "arguments": {"query": "Mia"}}\n</tool_call>\n'
              '<tool_call>\n{"name": "open_nodes", "argu')
    history = session_opening({"entities": [ALICE], "relations": []}) + [
        {"role": "user", "content": "My name is Alice Chen."},
        tool_call_message([CREATE_ALICE]), tool_result_message("create_entities", [ALICE]),
        {"role": "assistant", "content": NICE},
        {"role": "user", "content": "Where does Mia live?"},
        {"role": "assistant", "content": broken},
        tool_result_message("search_nodes", {"entities": [], "relations": []}),
        {"role": "tool", "name": "invalid_call", "content": "Error: could not parse a tool call"},
        {"role": "user", "content": "Hello?"},
    ]
    wire = openai_messages(history)
    assert [m["role"] for m in wire][-4:] == ["user", "assistant", "user", "user"]
    assert wire[1]["tool_calls"][0]["id"] == wire[2]["tool_call_id"]
    request = ChatRequest(model="tiny", messages=wire)
    tools = model_tools()
    assert render_prompt(tokenizer, to_trl_messages(request.messages), tools) == render_prompt(tokenizer, history, tools)
