"""What the subscription service answers with: pages, security headers, archive HTML.

- Every URL on a page or in a mail comes from the configuration (``site.base_url``
  and ``config.web_base_url``), never from the ``Host`` or ``X-Forwarded-Host``
  header (E13, S14); there are no redirects at all, so nothing can be turned
  into an open redirect (E12, S15).
- Every response carries a Content-Security-Policy without any script source,
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
  ``X-Frame-Options: DENY``; pages reached with a token add ``Cache-Control:
  no-store`` and ``X-Robots-Tag: noindex`` (S16). No CORS headers: other sites
  may post the signup form (it only creates a pending row, S11) but cannot read
  any answer.
- Archive issues are author HTML on our origin (listmonk CVE-2026-21483): they
  are served under a sandboxing CSP (no script, no forms, no plugins, a unique
  origin) and with the per-recipient links replaced by the public signup page,
  so no token is ever shown (S18).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.datastructures import MutableHeaders
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher.config import Config
from publisher.publish.newsletter import PLACEHOLDERS
from publisher.publish.templating import render


@dataclass(frozen=True)
class Links:
    """The absolute URLs every page may show, from the configuration only (S14)."""

    home: str
    stylesheet: str
    signup: str
    archive: str

    @classmethod
    def from_config(cls, config: Config) -> Links:
        web = config.web_base_url
        return cls(
            home=config.site.base_url,
            stylesheet=config.site.base_url + "static/style.css",
            signup=web + "subscribe",
            archive=web + "archive/",
        )


@dataclass(frozen=True)
class Link:
    url: str
    text: str


PRIVATE_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


class Pages:
    """Renders templates/web/* with the site's Jinja environment (autoescape, StrictUndefined)."""

    def __init__(self, env: jinja2.Environment, links: Links) -> None:
        self.env = env
        self.links = links

    def render(
        self,
        template: str,
        *,
        title: str,
        status: int = 200,
        private: bool = True,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        body = render(self.env, template, title=title, links=self.links, noindex=private, **context)
        all_headers = {**(PRIVATE_HEADERS if private else {}), **(headers or {})}
        return HTMLResponse(body, status_code=status, headers=all_headers)

    def message(
        self,
        title: str,
        *paragraphs: str,
        status: int = 200,
        link: Link | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        return self.render(
            "web/message.html",
            title=title,
            status=status,
            headers=headers,
            paragraphs=paragraphs,
            link=link,
        )


# --- security headers (S16) ----------------------------------------------------------------


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page_csp(config: Config) -> str:
    """Our pages: the blog's stylesheet, forms posting to the service, and nothing else."""
    site = origin(config.site.base_url)
    return "; ".join(
        (
            "default-src 'none'",
            f"style-src {site}",
            f"img-src {site} data:",
            f"form-action {origin(config.web_base_url)}",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    )


def archive_csp(config: Config) -> str:
    """Archived issues: inline styles (the mail's CSS is inlined) and images; no script (S18)."""
    return "; ".join(
        (
            "default-src 'none'",
            "style-src 'unsafe-inline'",
            f"img-src https: data: {origin(config.site.base_url)}",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "sandbox",
        )
    )


def security_headers(config: Config) -> tuple[tuple[str, str], ...]:
    return (
        ("Content-Security-Policy", page_csp(config)),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
    )


class SecurityHeaders:
    """ASGI middleware: adds each header unless the response set its own."""

    def __init__(self, app: ASGIApp, headers: Sequence[tuple[str, str]]) -> None:
        self.app = app
        self.headers = tuple(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- archive (S18) ----------------------------------------------------------------------------


def neutral_archive_html(issue_html: str, config: Config) -> str:
    """An issue's stored HTML with every per-recipient link pointing at the signup page.

    The stored HTML holds placeholders, not tokens (tokens are added per copy at
    send time); any token-bearing link of the service that appears anyway is
    replaced too, so the archive can never hand out someone's unsubscribe link.
    """
    signup = html.escape(config.web_base_url + "subscribe", quote=True)
    text = issue_html
    for placeholder in PLACEHOLDERS:
        text = text.replace(placeholder, signup)
    token_link = re.compile(
        re.escape(html.escape(config.web_base_url, quote=True))
        + r"(?:confirm|unsubscribe|preferences)/[^\s\"'<>]*"
    )
    return token_link.sub(signup, text)
