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

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from publisher import wiring
from publisher.config import Config, load_config
from publisher.deliver.confirmations import ConfirmationMailer
from publisher.publish.content import read_posts
from publisher.publish.site import build_site
from publisher.publish.templating import compile_all, make_environment
from publisher.store import PgTimeouts, utc_now
from publisher.web.app import Categories, create_app
from publisher.web.server import KEEP_ALIVE_SECONDS, MAX_HEAD_BYTES, BoundedH11Protocol

log = logging.getLogger("publisher.web")

# A web request waits at most about this long for a locked SQLite database before
# answering 503 + Retry-After (H1); the sender and the scheduler wait longer.
# On PostgreSQL the same wait is lock_timeout and the pool's timeout, and no statement of a
# request runs longer than 3 s: a locked table answers 503 too (issue 8 item 7).
BUSY_TIMEOUT_SECONDS = 1.0
RETRY_SECONDS = 3.0
PG_TIMEOUTS = PgTimeouts(lock=BUSY_TIMEOUT_SECONDS, statement=3.0, pool=BUSY_TIMEOUT_SECONDS)
# Every uvicorn option publisher web sets. No proxy headers: [web].trusted_proxies decides whom
# to believe (E6); no access log: paths carry tokens (S20); slow clients are cut off
# (publisher.web.server, issue 8 item 9).
UVICORN_OPTIONS: dict[str, Any] = {
    "proxy_headers": False,
    "forwarded_allow_ips": "",
    "server_header": False,
    "access_log": False,
    "log_level": "warning",
    "http": BoundedH11Protocol,
    "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
}
# How often the posts folder is checked for changes (a stat of each file, no read).
CATEGORY_POLL_SECONDS = 10.0


def site_categories(config: Config, now: datetime) -> tuple[tuple[str, ...], dict[str, datetime]]:
    """The categories of the public posts at ``now``, and each post's date by slug (for the
    archive's order); a post with problems is left out."""
    site = build_site(config, read_posts(config).posts, now)
    return tuple(c.name for c in site.categories), {p.slug: p.date for p in site.posts}


class CategoryRefresher:
    """Keeps the service's :class:`Categories` in step with ``posts/``, off the request path.

    The posts are read once at start-up and again only when a file's name,
    size or mtime changed (checked every ``poll_seconds`` by a thread), so a
    category that comes with a new post is accepted without a restart. A
    reading that fails keeps the previous names and logs why.
    """

    def __init__(
        self,
        config: Config,
        clock: Callable[[], datetime],
        *,
        poll_seconds: float = CATEGORY_POLL_SECONDS,
    ) -> None:
        self.config = config
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.categories = Categories()
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Re-read the posts if they changed since the last reading; True if re-read."""
        seen = self._fingerprint()
        if seen == self._seen:
            return False
        try:
            names, post_dates = site_categories(self.config, self.clock())
        except Exception as exc:  # a post the reader cannot open must not stop the service
            log.warning("categories not re-read, keeping %s: %s", self.categories.names, exc)
            return False
        self._seen = seen
        self.categories.replace(names, post_dates)
        return True

    def _fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        found = []
        try:
            paths = sorted(self.config.posts_path.rglob("*"))
        except OSError:
            return ()
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                continue  # removed meanwhile: the next check sees the folder as it is
            found.append((path.as_posix(), stat.st_mtime_ns, stat.st_size))
        return tuple(found)

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._poll, name="publisher-categories", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def open_web_app(
    config: Config, clock: Callable[[], datetime] = utc_now
) -> tuple[Starlette, Callable[[], None]]:
    """The app for ``config`` and a function that releases its database."""
    env = make_environment(config)
    compile_all(env)  # a template error stops the start, not a request (B2)
    store = wiring.open_store(
        config,
        clock=clock,
        busy_timeout=BUSY_TIMEOUT_SECONDS,
        retry_seconds=RETRY_SECONDS,
        pg_timeouts=PG_TIMEOUTS,
    )
    refresher = CategoryRefresher(config, clock)
    try:
        mailer = ConfirmationMailer(config, env, wiring.transports(config), clock)
        refresher.start()
        app = create_app(config, store, mailer, clock, categories=refresher.categories, env=env)
    except BaseException:
        refresher.stop()
        store.close()
        raise

    def close() -> None:
        refresher.stop()
        store.close()

    return app, close


def preview_routes(config: Config) -> tuple[list[BaseRoute], Callable[[], None]]:
    """The service's routes (one Mount at its base path) for ``publisher serve``.

    ``[web].trusted_proxies`` is for ``publisher web`` behind its proxy only: the preview
    believes no ``X-Forwarded-For``.
    """
    config = dataclasses.replace(config, web=dataclasses.replace(config.web, trusted_proxies=()))
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
        uvicorn.run(app, host=host, port=port, **UVICORN_OPTIONS)
    finally:
        close()
