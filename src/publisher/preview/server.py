"""``publisher serve``: build into a temporary folder, serve it, rebuild on change.

The preview is built with ``base_url`` pointing at the local server, drafts
shown by default, and a small live-reload script added to each HTML page; the
production output folder is never touched.
"""

from __future__ import annotations

import errno
import html
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from publisher.config import Config, load_config
from publisher.errors import PublisherError
from publisher.publish.build import build
from publisher.publish.site import Site


class PreviewServer:
    def __init__(
        self,
        config: Config,
        *,
        drafts: bool,
        live_reload: str,
        log: Callable[[str], None],
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.config = config
        self.routes = list(routes)
        self.drafts = drafts
        self.live_reload = live_reload
        self.log = log
        self.folder = Path(tempfile.mkdtemp(prefix="publisher-preview-"))
        self.output = self.folder / "site"
        self.build_id = 0
        self.site: Site | None = None  # the last good build, for /__preview/
        self.stopping = threading.Event()

    def rebuild(self) -> None:
        """Build the preview; a failed build keeps the last good one and logs why."""
        try:
            self.config = _reload_config(self.config)
            result = build(
                self.config, datetime.now(UTC), include_drafts=self.drafts, output=self.output
            )
        except PublisherError as exc:
            self.log(f"build failed, still serving the previous build:\n{exc}")
            return
        self._inject_live_reload()
        self.site = result.site
        self.build_id += 1
        self.log(f"rebuilt {len(result.site.posts)} posts in {result.seconds:.2f} s")

    def _inject_live_reload(self) -> None:
        for page in self.output.rglob("*.html"):
            html = page.read_text(encoding="utf-8")
            page.write_text(
                html.replace("</body>", self.live_reload + "</body>", 1), encoding="utf-8"
            )

    def watch(self) -> None:
        from watchfiles import watch

        paths = [
            p
            for p in (
                self.config.posts_path,
                self.config.templates_path,
                self.config.root / "config.toml",
            )
            if p.exists()
        ]
        for _changes in watch(*paths, stop_event=self.stopping, debounce=300):
            self.rebuild()

    def app(self) -> object:
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Mount, Route
        from starlette.staticfiles import StaticFiles

        async def build_number(_request: object) -> PlainTextResponse:
            return PlainTextResponse(str(self.build_id), headers={"Cache-Control": "no-store"})

        async def preview(request: Request) -> Response:
            return self.preview_response(str(request.path_params["slug"]))

        routes: list[BaseRoute] = [
            Route("/__build", build_number),
            Route("/__preview/{slug:path}", preview),
        ]
        routes.extend(self.extra_routes())
        routes.append(
            Mount("/", app=StaticFiles(directory=self.output, html=True, check_dir=False))
        )
        return Starlette(routes=routes)

    def preview_response(self, slug: str) -> Response:
        """The side-by-side preview of one post (``publisher preview``)."""
        from starlette.responses import HTMLResponse

        from publisher.preview.page import find_post, preview_page, preview_parts

        if self.site is None:
            return HTMLResponse("<p>The last build failed; see the terminal.</p>", status_code=503)
        try:
            post = find_post(self.site, slug)
            page = preview_page(preview_parts(self.site, post), post.title)
        except PublisherError as exc:
            return HTMLResponse(f"<pre>{html.escape(str(exc))}</pre>", status_code=404)
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    def extra_routes(self) -> list[BaseRoute]:
        """Routes mounted beside the preview (the subscription service, when available)."""
        return list(self.routes)

    def serve(self, listener: socket.socket) -> None:
        """Serve on ``listener`` (from ``listen``) until Ctrl-C."""
        import uvicorn

        # proxy_headers=False: uvicorn would otherwise take any X-Forwarded-For from a loopback
        # peer as the client's address, which the mounted signup service records and limits by
        # (issue 8 item 10). The preview sits behind no proxy.
        config = uvicorn.Config(
            self.app(),  # type: ignore[arg-type]
            log_level="warning",
            proxy_headers=False,
            forwarded_allow_ips="",
        )
        uvicorn.Server(config).run(sockets=[listener])

    def stop(self) -> None:
        self.stopping.set()
        shutil.rmtree(self.folder, ignore_errors=True)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a PublisherError that says what to do.

    Bound here, before anything is built or served, so a busy port is a clear
    message with a ``--port`` hint instead of uvicorn's raw error and exit 3
    (issue 8, item 17); and a browser opened right after connects to a socket
    that is already listening.
    """
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror as exc:
        raise PublisherError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="Pass --host 127.0.0.1 (this machine only) or the address of a local interface.",
        ) from None
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        listener.bind(address)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise PublisherError(
                f"port {port} on {host} is already in use (another `publisher serve`, "
                "`publisher web` or another server is listening there)",
                hint=f"Stop the other server, or choose a free port: --port {_next_port(port)}.",
            ) from None
        raise PublisherError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="Ports below 1024 need privileges; choose another with --port 8000.",
        ) from None
    return listener


def _next_port(port: int) -> int:
    return port + 1 if port < 65535 else 8000


def _reload_config(current: Config) -> Config:
    """Re-read config.toml but keep the preview's local base URLs (site and service)."""
    import dataclasses

    fresh = load_config(current.root)
    return dataclasses.replace(
        fresh,
        site=dataclasses.replace(fresh.site, base_url=current.site.base_url),
        web=dataclasses.replace(fresh.web, base_url=current.web.base_url),
    )
