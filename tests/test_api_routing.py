"""`memlora api` routing: `<model>+auto` picks the adapter of each request's task (records writing,
records recall, graph memory) as the adapter mode allows, and merged copies serve the same ids;
the real server on 127.0.0.1, a tiny random model with three random adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from memlora.api.app import SERVED_HEADER, ApiSettings, build_app  # noqa: E402
from memlora.api.commands import auto_roles, default_adapters  # noqa: E402
from memlora.models.loading import adapter_name, load_model  # noqa: E402
from memlora.testing import save_tiny_model_with_adapters  # noqa: E402
from memlora.models.routed import merge_into_base, speed_up  # noqa: E402
from memlora.records.answer import ANSWER_SYSTEM_PROMPT  # noqa: E402
from memlora.records.writer import WRITE_SYSTEM_PROMPT  # noqa: E402
from memlora.routing import ROLE_FOLDERS  # noqa: E402
from test_api_server import RunningServer  # noqa: E402

SUFFIXES = {role: folder for role, folder in ROLE_FOLDERS.items()}  # writing -> records-writing, ...
WRITE = [{"role": "system", "content": WRITE_SYSTEM_PROMPT}, {"role": "user", "content": "Observation: saw a cup"}]
ANSWER = [{"role": "system", "content": ANSWER_SYSTEM_PROMPT}, {"role": "user", "content": "Records:\n(no records)"}]
PLAIN = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("api-routing")
    folders = {role: f"tiny-{suffix}" for role, suffix in SUFFIXES.items()}
    return save_tiny_model_with_adapters(root, seed=6, adapter_folders=folders, adapter_seed=200)


def _paths(folders: dict[str, Path]) -> list[str]:
    return [str(folders[role]) for role in SUFFIXES]


@pytest.fixture(scope="module")
def dynamic(folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    paths = _paths(folders)
    loaded = load_model(str(folders["base"]), adapters=paths, device="cpu", dtype="fp32")
    settings = ApiSettings(store=f"sqlite:{tmp_path_factory.mktemp('api-routing-store')}/{{user}}.db",
                           max_tokens_limit=64, max_steps=1, embeddings=False)
    app = build_app(loaded, settings, adapters={SUFFIXES[r]: adapter_name(folders[r]) for r in SUFFIXES},
                    base_id="tiny", auto=auto_roles("tiny", paths), adapter_mode="auto")
    with RunningServer(app) as running:
        yield running


def _ask(server: RunningServer, model: str, messages: list[dict[str, str]], **extra: Any) -> tuple[str, str]:
    raw = server.client().chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=10,
                                                                    **extra)
    return raw.headers[SERVED_HEADER], raw.parse().choices[0].message.content or ""


def test_auto_roles_and_default_adapters_from_folder_names(folders: dict[str, Path]) -> None:
    assert auto_roles("tiny", _paths(folders)) == {"writing": "records-writing", "recall": "records-recall",
                                                   "memory": "memory"}
    assert auto_roles("tiny", [str(folders["base"])]) == {}
    assert [Path(p).name for p in default_adapters("qwen2.5-coder-0.5b", "auto")] == [
        "qwen2.5-coder-0.5b-memory", "qwen2.5-coder-0.5b-records-recall", "qwen2.5-coder-0.5b-records-writing"]
    assert [Path(p).name for p in default_adapters("qwen2.5-coder-0.5b", "writing")] == [
        "qwen2.5-coder-0.5b-records-writing"]
    assert default_adapters("qwen2.5-coder-0.5b", "none") == []


def test_auto_serves_each_task_with_its_adapter(dynamic: RunningServer) -> None:
    ids = [model.id for model in dynamic.client().models.list()]
    assert ids[-2:] == ["tiny+auto", "tiny+auto:remember"]
    for messages, expected in ((WRITE, "tiny+records-writing"), (ANSWER, "tiny+records-recall"), (PLAIN, "tiny")):
        served, text = _ask(dynamic, "tiny+auto", messages)
        assert served == expected
        assert _ask(dynamic, expected, messages) == (expected, text)  # the same weights as asking for it by name
    replies = {_ask(dynamic, model, WRITE)[1] for model in ("tiny", "tiny+records-writing", "tiny+records-recall")}
    assert len(replies) == 3  # the adapters really differ, so the routing above is seen in the text


def test_memory_mode_under_auto_runs_the_graph_adapter(dynamic: RunningServer) -> None:
    served, _ = _ask(dynamic, "tiny+auto:remember", PLAIN, user="ana")
    assert served == "tiny+memory:remember"


def test_the_adapter_mode_limits_what_auto_routes(folders: dict[str, Path]) -> None:
    paths = _paths(folders)
    loaded = load_model(str(folders["base"]), adapters=paths, device="cpu", dtype="fp32")
    app = build_app(loaded, ApiSettings(embeddings=False), adapters={SUFFIXES[r]: adapter_name(folders[r]) for r in SUFFIXES},
                    base_id="tiny", auto=auto_roles("tiny", paths), adapter_mode="writing")
    with RunningServer(app) as server:
        assert _ask(server, "tiny+auto", WRITE)[0] == "tiny+records-writing"
        assert _ask(server, "tiny+auto", ANSWER)[0] == "tiny"


def test_merged_copies_serve_the_same_ids_and_the_same_replies(folders: dict[str, Path],
                                                               dynamic: RunningServer) -> None:
    base = load_model(str(folders["base"]), device="cpu", dtype="fp32")
    merged = {SUFFIXES[role]: speed_up(merge_into_base(load_model(
        str(folders["base"]), adapters=[str(folders[role])], device="cpu", dtype="fp32", cpu_speedups=False)))
        for role in ("writing", "recall")}
    app = build_app(base, ApiSettings(embeddings=False), base_id="tiny", merged=merged,
                    auto=auto_roles("tiny", [str(folders[r]) for r in ("writing", "recall")]), adapter_mode="auto")
    assert set(app.app.state.engines) == {"", "records-writing", "records-recall"}
    with RunningServer(app) as server:
        for messages, expected in ((WRITE, "tiny+records-writing"), (ANSWER, "tiny+records-recall"), (PLAIN, "tiny")):
            served, text = _ask(server, "tiny+auto", messages)
            assert served == expected
            assert text == _ask(dynamic, expected, messages)[1]
