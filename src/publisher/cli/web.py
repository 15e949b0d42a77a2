"""``publisher web``: the subscription service (publisher.web.app) under uvicorn.

Meant to run behind a reverse proxy that terminates TLS and forwards
``<web base path>/`` to it; list that proxy in ``[web].trusted_proxies`` so the
per-IP limit sees the visitor's address (E6). uvicorn's own proxy-header
handling is off: it would trust ``X-Forwarded-For`` from any loopback peer,
and which peer to believe is ``[web].trusted_proxies``' decision alone. The
access log is off too, because request paths carry tokens (S20).

``publisher serve`` mounts the same app beside the preview (see
:func:`preview_routes`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from publisher.config import Config, load_config
from publisher.deliver.confirmations import ConfirmationMailer
from publisher.deliver.transports import transport_factory
from publisher.publish.templating import compile_all, make_environment
from publisher.store import Store, utc_now
from publisher.web.app import create_app

# A web request waits at most about this long for a locked SQLite database before
# answering 503 + Retry-After (H1); the sender and the scheduler wait longer.
BUSY_TIMEOUT_SECONDS = 1.0
RETRY_SECONDS = 3.0


def open_web_app(
    config: Config, clock: Callable[[], datetime] = utc_now
) -> tuple[Starlette, Callable[[], None]]:
    """The app for ``config`` and a function that releases its database."""
    env = make_environment(config)
    compile_all(env)  # a template error stops the start, not a request (B2)
    store = Store.open(
        config.database_url,
        clock=clock,
        busy_timeout=BUSY_TIMEOUT_SECONDS,
        retry_seconds=RETRY_SECONDS,
    )
    try:
        mailer = ConfirmationMailer(config, env, transport_factory(config), clock)
        app = create_app(config, store, mailer, clock, env=env)
    except BaseException:
        store.close()
        raise
    return app, store.close


def preview_routes(config: Config) -> tuple[list[BaseRoute], Callable[[], None]]:
    """The service's routes (one Mount at its base path) for ``publisher serve``."""
    app, close = open_web_app(config)
    return list(app.routes), close


@click.command("web")
@click.option("--host", default=None, help="Address to listen on (default: [web].host).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port (default: [web].port)."
)
@click.pass_context
def web_command(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve signup, confirmation, unsubscribe, preferences and the newsletter archive.

    Run it behind a TLS-terminating reverse proxy that forwards the path of
    [web].base_url (default <site.base_url>newsletter/) to this address, and
    set the token key in the environment variable named by [web].secret_env.

    \b
    Example:
        PUBLISHER_SECRET_KEY="$(cat /etc/publisher/web.key)" publisher web --port 8080
    """
    import uvicorn

    config = load_config(Path(ctx.obj.root))
    host = host or config.web.host
    port = port or config.web.port
    app, close = open_web_app(config)
    click.echo(f"Serving {config.web_base_url} at http://{host}:{port}/ (Ctrl-C to stop).")
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            proxy_headers=False,
            server_header=False,
            access_log=False,
            log_level="warning",
        )
    finally:
        close()
