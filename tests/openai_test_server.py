"""A small, real OpenAI-compatible HTTP server for the openai backend's tests (loopback only).

/v1/embeddings embeds with the bundled all-MiniLM-L6-v2; /v1/chat/completions answers by rules:
for memlora's write prompt, the rule-based record draft as JSON; for its answer prompt, the
first evidence line, cited as [1]. It runs uvicorn in a thread, so the `openai` client talks to
it over real HTTP. `fail_next` makes the next requests answer 500, to test errors and retries.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from memlora.records.answer import ANSWER_SYSTEM_PROMPT, NOT_FOUND
from memlora.records.writer import WRITE_SYSTEM_PROMPT, rule_draft


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OpenAICompatibleServer:
    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.fail_next = 0
        self.port = free_port()
        app = Starlette(routes=[
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
        ])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> OpenAICompatibleServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    async def _body(self, request: Request, path: str) -> dict[str, Any] | JSONResponse:
        body = await request.json()
        self.requests.append((path, body))
        if self.fail_next:
            self.fail_next -= 1
            return JSONResponse({"error": {"message": "injected failure", "type": "server_error"}}, status_code=500)
        return body

    async def embeddings(self, request: Request) -> JSONResponse:
        body = await self._body(request, "embeddings")
        if isinstance(body, JSONResponse):
            return body
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = self.embedder.embed(texts)
        return JSONResponse({
            "object": "list", "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        })

    async def chat(self, request: Request) -> JSONResponse:
        body = await self._body(request, "chat")
        if isinstance(body, JSONResponse):
            return body
        messages = body["messages"]
        system, last = messages[0]["content"], messages[-1]["content"]
        if system == WRITE_SYSTEM_PROMPT:
            draft = rule_draft(last.removeprefix("Observation: "))
            reply = json.dumps({"event": draft.event, "text": draft.text, "tags": draft.tags})
        elif system == ANSWER_SYSTEM_PROMPT:
            first = re.search(r"^\[1\] .*?: (.*?)(?: \(.*\))?$", last, re.MULTILINE)
            reply = f"{first[1].rstrip('.')} [1]." if first else NOT_FOUND
        else:
            reply = "I only speak memlora's prompts."
        return JSONResponse({
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        })
