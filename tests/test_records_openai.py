"""The openai backend against a real OpenAI-compatible HTTP server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import json

import pytest

from memlora.records.backends import open_manager
from memlora.records.chat import openai_client
from memlora.records.errors import BackendUnavailableError, StoreMismatchError
from openai_test_server import OpenAICompatibleServer, free_port


@pytest.fixture(scope="module")
def server(minilm):
    with OpenAICompatibleServer(minilm) as running:
        yield running


@pytest.fixture
def env(server, monkeypatch):
    monkeypatch.setenv("MEMORY_BACKEND", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("MEMLORA_OPENAI_EMBED_MODEL", "minilm-test")
    monkeypatch.setenv("MEMLORA_OPENAI_CHAT_MODEL", "rules-test")
    server.requests.clear()
    server.fail_next = 0
    return server


def test_write_and_recall_through_the_endpoint(env, tmp_path) -> None:
    with open_manager(store_url=f"sqlite:{tmp_path / 'r.db'}", mission="m-1") as manager:
        result = manager.write("saw a red ball on the table in the kitchen", pose=(1.0, 2.0, 0.5))
        manager.write("met Alice in the lobby")
        answer = manager.recall("where did we see the red ball?")
    assert result.method == "model" and result.record.source == "openai:rules-test"
    assert result.attempts[0].json_valid and result.record.pose.x == 1.0
    assert answer.answer == "Saw a red ball on the table in the kitchen [1]."
    assert answer.citations == [result.record.id]
    assert answer.trace["backend"] == "openai" and answer.trace["answered_by"] == "openai:rules-test"
    paths = [path for path, _ in env.requests]
    assert "embeddings" in paths and paths.count("chat") == 3
    chat = [body for path, body in env.requests if path == "chat"]
    assert chat[-1]["model"] == "rules-test" and "[1]" in chat[-1]["messages"][-1]["content"]
    embed = next(body for path, body in env.requests if path == "embeddings")
    assert embed["model"] == "minilm-test"


def test_the_store_remembers_the_endpoints_embedding_model(env, tmp_path, monkeypatch) -> None:
    url = f"sqlite:{tmp_path / 'r.db'}"
    with open_manager(store_url=url) as manager:
        manager.write("saw a cup")
    monkeypatch.setenv("MEMORY_BACKEND", "local")
    with pytest.raises(StoreMismatchError, match="openai:minilm-test/384"):
        open_manager(store_url=url, model="none")


def test_a_transient_server_error_is_retried(env, tmp_path) -> None:
    client = openai_client(timeout=5, max_retries=2)
    with open_manager(store_url=f"sqlite:{tmp_path / 'r.db'}", openai_client=client, model="none") as manager:
        env.fail_next = 1
        assert manager.write("saw a cup").stored
    assert [path for path, _ in env.requests][:2] == ["embeddings", "embeddings"]


def test_a_persistent_server_error_is_a_clear_error(env, tmp_path) -> None:
    client = openai_client(timeout=5, max_retries=0)
    with open_manager(store_url=f"sqlite:{tmp_path / 'r.db'}", openai_client=client, model="none") as manager:
        env.fail_next = 5
        with pytest.raises(BackendUnavailableError, match="answered 500: .*injected failure"):
            manager.write("saw a cup")
        env.fail_next = 0
        assert manager.store.count() == 0


def test_an_unreachable_endpoint_is_named(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEMORY_BACKEND", "openai")
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    client = openai_client(base_url=dead, api_key="k", timeout=2, max_retries=1)
    with pytest.raises(BackendUnavailableError) as caught:
        open_manager(store_url=f"sqlite:{tmp_path / 'r.db'}", openai_client=client, model="none")
    message = str(caught.value)
    assert dead in message and "unreachable after 1 retries" in message and "OPENAI_BASE_URL" in message


def test_no_key_and_no_url_says_what_to_set(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(BackendUnavailableError, match="OPENAI_API_KEY"):
        openai_client()


def test_the_cli_uses_the_endpoint(env, tmp_path) -> None:
    from click.testing import CliRunner

    from memlora.cli import main

    store = f"sqlite:{tmp_path / 'r.db'}"
    out = CliRunner().invoke(main, ["records", "write", "saw a blue mug in the kitchen", "--store", store, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["record"]["source"] == "openai:rules-test"
    out = CliRunner().invoke(main, ["records", "recall", "where is the blue mug?", "--store", store])
    assert out.exit_code == 0 and out.stdout.startswith("Saw a blue mug in the kitchen [1].")
