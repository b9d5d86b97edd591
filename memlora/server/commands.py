"""`memlora serve`: run the memory server over stdio (default) or streamable HTTP."""

from __future__ import annotations

import hmac
import logging
import os
from typing import Any

import click

from memlora.store import default_store_url, open_store
from memlora.store.locking import DEFAULT_LOCK_TIMEOUT

TOKEN_ENV = "MEMLORA_TOKEN"


class BearerTokenGate:
    """ASGI wrapper that answers 401 unless the request carries `Authorization: Bearer <token>`.

    The scheme name is case-insensitive (RFC 9110, section 11.1): `bearer` and `BEARER` count.
    """

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    def _authorized(self, header: bytes) -> bool:
        scheme, _, credentials = header.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.expected)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            supplied = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not self._authorized(supplied):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": b"missing or wrong bearer token\n"})
                return
        await self.app(scope, receive, send)


@click.command()
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="sqlite:PATH, jsonl:PATH or sqlite::memory:. Default: jsonl:$MEMORY_FILE_PATH if set, "
    "else a SQLite file in the user data folder.",
)
@click.option("--http", "port", type=int, metavar="PORT", help="Serve streamable HTTP on PORT instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind with --http.")
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_LOCK_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long a call waits for another process holding the store before it fails.",
)
@click.option(
    "--allow-other-tables",
    is_flag=True,
    help="Use an SQLite file that holds another program's tables (memlora adds its own and switches it to WAL).",
)
@click.option("--records", "with_records", is_flag=True,
              help="Also serve the memory-record tools records_write, records_recall, records_purge (docs/records.md).")
@click.option("--records-store", metavar="URL", help="Records store for --records; default sqlite:<user data folder>/records.db.")
@click.option("--records-model", metavar="MODEL",
              help="Model that writes and answers for --records; 'none' for rules and extraction. MEMORY_BACKEND picks the backend.")
@click.option("--records-mission", metavar="ID", help="The current mission: records_recall searches it unless told otherwise.")
def serve(store_url: str | None, port: int | None, host: str, lock_timeout: float, allow_other_tables: bool,
          with_records: bool, records_store: str | None, records_model: str | None, records_mission: str | None) -> None:
    """Serve the knowledge-graph memory over MCP (stdio unless --http is given).

    With --http, set MEMLORA_TOKEN to require `Authorization: Bearer <token>` on every request.
    """
    from memlora.server.app import build_server

    token = os.environ.get(TOKEN_ENV)
    if port is not None and token is not None and not token.strip():
        # An empty token would switch authentication off without a word; say so instead.
        raise click.ClickException(f"{TOKEN_ENV} is set but empty; set it to a token, or unset it to serve without one")
    url = store_url or default_store_url()
    try:
        store = open_store(url, lock_timeout=lock_timeout, allow_other_tables=allow_other_tables)
    except Exception as error:  # a bad URL or an unreadable file: say so, no traceback
        raise click.ClickException(str(error)) from error
    records = None
    if with_records:
        from memlora.records.backends import open_manager
        from memlora.records.errors import RecordsError

        try:
            records = open_manager(store_url=records_store, model=records_model, mission=records_mission)
        except RecordsError as error:
            store.close()
            raise click.ClickException(str(error)) from error
    elif records_store or records_model or records_mission:
        raise click.UsageError("--records-store, --records-model and --records-mission need --records")
    server = build_server(store, records=records)
    try:
        import anyio

        if port is None:
            from memlora.server.stdio import serve_stdio

            logging.basicConfig(format="memlora: %(message)s", level=logging.WARNING)
            anyio.run(serve_stdio, server)
            return
        import uvicorn

        app: Any = server.streamable_http_app(host=host)
        if token:
            app = BearerTokenGate(app, token.strip())
        elif host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(f"warning: serving on {host} without {TOKEN_ENV}; anyone who can reach it can edit the memory", err=True)
        click.echo(f"memlora: serving {url} at http://{host}:{port}/mcp", err=True)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning")
        anyio.run(uvicorn.Server(config).serve)
    finally:
        store.close()
        if records is not None:
            records.close()
