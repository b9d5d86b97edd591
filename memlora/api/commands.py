"""`memlora api`: serve the model, its adapters and memory mode over the OpenAI API."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click

from memlora.settings import ADAPTER, BASE_ADAPTER, DEVICE, DTYPE, MODEL, QUIET, hush_progress_bars

API_KEY_ENV = "MEMLORA_API_KEY"


def default_store() -> str:
    import platformdirs

    return f"sqlite:{Path(platformdirs.user_data_dir('memlora')) / 'api' / '{user}.db'}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def adapter_id(model: str, path: str) -> str:
    """The id suffix an adapter is served under: its folder name without the model's name
    (adapters/qwen2.5-coder-0.5b-memory -> memory, so the model id is qwen2.5-coder-0.5b+memory)."""
    name = Path(path).name
    return name.removeprefix(Path(model).name + "-") or name


def auto_roles(model: str, paths: list[str]) -> dict[str, str]:
    """{adapter role: id suffix} for the served adapters whose folder names a role
    (...-memory, ...-records-writing, ...-records-recall): what `+auto` routes to."""
    from memlora.routing import ROLE_FOLDERS

    roles: dict[str, str] = {}
    for path in paths:
        short = adapter_id(model, path)
        for role, suffix in ROLE_FOLDERS.items():
            if short == suffix or short.endswith("-" + suffix):
                roles.setdefault(role, short)
    return roles


def default_adapters(model: str, mode: str | None) -> list[str]:
    """The shipped adapters of the roles `mode` turns on (graph memory, records writing and recall)."""
    from memlora.routing import MODE_TASKS, ROLE_OF_TASK, choose_mode, shipped_adapters

    roles = tuple(ROLE_OF_TASK[task] for task in sorted(MODE_TASKS[choose_mode(mode)]))
    return list(shipped_adapters(model, roles).values())


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (local only by default).")
@click.option("--port", default=8000, show_default=True, type=int)
@MODEL
@ADAPTER(name="adapters", multiple=True,
         more_help="Repeatable: each adapter is served as <model>+<name>; 'none' serves the base model alone. "
                   "Here the default covers every adapter shipped for the model (graph memory, records writing "
                   "and recall) that the adapter mode turns on.")
@click.option("--adapter-mode", type=click.Choice(["none", "writing", "recall", "auto"]), default=None,
              help="What <model>+auto routes to: each task its adapter (auto), only writing or recall, or none. "
                   "Default: $ADAPTER_MODE, else auto.")
@click.option("--serving", type=click.Choice(["dynamic", "merged"]), default="dynamic", show_default=True,
              help="dynamic: every adapter on one copy of the base model, picked per request; merged: each adapter "
                   "merged into its own copy, served under the same ids (more memory, no switching).")
@DTYPE
@DEVICE
@QUIET
@click.option("--store", default=None,
              help="Memory mode's store URL with {user} in it, one store per user; sqlite::memory: keeps them in "
                   "memory. Default: sqlite:<user data folder>/api/{user}.db")
@click.option("--api-key", envvar=API_KEY_ENV, default=None,
              help=f"Require 'Authorization: Bearer KEY' on /v1 (or set ${API_KEY_ENV}).")
@click.option("--max-request-bytes", default=1 << 20, show_default=True)
@click.option("--max-concurrency", default=64, show_default=True, help="Requests in flight; more are answered 429.")
@click.option("--max-tokens", "max_tokens_limit", default=4096, show_default=True,
              help="The largest max_tokens a request may ask for.")
@click.option("--max-steps", default=6, show_default=True, help="Model steps per user turn in memory mode.")
@click.option("--max-batch", default=32, show_default=True, help="Rows the engine decodes together.")
@click.option("--embeddings/--no-embeddings", default=True, show_default=True,
              help="Serve all-minilm-l6-v2 on /v1/embeddings (needs memlora[api]).")
@click.option("--default-user", default=None,
              help="Memory mode's user id for requests that name none (a chat UI used by one person).")
@click.option("--allow-remote", is_flag=True, help="Listen on a non-loopback address without an API key.")
def api(host: str, port: int, model: str, adapters: tuple[str, ...], adapter_mode: str | None, serving: str,
        dtype: str | None, device: str | None, quiet: bool, store: str | None, api_key: str | None,
        max_request_bytes: int, max_concurrency: int, max_tokens_limit: int, max_steps: int, max_batch: int,
        embeddings: bool, default_user: str | None,
        allow_remote: bool) -> None:
    """An OpenAI-compatible server: /v1/models, /v1/chat/completions, /v1/embeddings (docs/serving.md)."""
    try:
        import uvicorn

        from memlora.api.app import ApiSettings, build_app
        from memlora.api.memory import check_store_template
    except ImportError as error:
        raise click.ClickException(f"memlora api needs the api extra: pip install 'memlora[api]' ({error})") from error
    from memlora.models.loading import adapter_name, load_model
    from memlora.routing import RoutingError, choose_mode

    if not is_loopback(host) and not api_key and not allow_remote:
        raise click.UsageError(f"--host {host} opens the models and every user's memory to the network: set "
                               f"--api-key (or ${API_KEY_ENV}), or pass --allow-remote")
    store = store or default_store()
    try:
        check_store_template(store)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--store") from error
    try:
        adapter_mode = choose_mode(adapter_mode)
    except RoutingError as error:
        raise click.BadParameter(str(error), param_hint="--adapter-mode") from error
    if not adapters:
        paths = default_adapters(model, adapter_mode)
    elif adapters == (BASE_ADAPTER,):
        paths = []
    else:
        paths = [str(Path(a)) for a in adapters]
        for path in paths:
            if not (Path(path) / "adapter_config.json").exists():
                raise click.BadParameter(f"{path}: no adapter_config.json there", param_hint="--adapter")
    if quiet:
        hush_progress_bars()
    merged = {}
    if serving == "merged":
        from memlora.models.routed import merge_into_base, speed_up

        loaded = load_model(model, device=device, dtype=dtype)
        for path in paths:
            copy = load_model(model, adapters=[path], device=device, dtype=dtype, cpu_speedups=False)
            merged[adapter_id(model, path)] = speed_up(merge_into_base(copy))
        ids = {}
    else:
        loaded = load_model(model, adapters=paths or None, device=device, dtype=dtype)
        ids = {adapter_id(model, path): adapter_name(path) for path in paths}
    settings = ApiSettings(api_key=api_key, max_request_bytes=max_request_bytes, max_concurrency=max_concurrency,
                           max_tokens_limit=max_tokens_limit, max_steps=max_steps, store=store, embeddings=embeddings,
                           default_user=default_user)
    app = build_app(loaded, settings, adapters=ids, base_id=model, max_batch=max_batch, merged=merged,
                    auto=auto_roles(model, paths), adapter_mode=adapter_mode)
    served = ", ".join(app.app.state.models.ids())
    click.echo(f"memlora api on http://{host}:{port}/v1 serving: {served}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
