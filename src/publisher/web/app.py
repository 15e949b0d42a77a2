"""The subscription service: signup with double opt-in, confirm, unsubscribe, preferences, archive.

Routes, under the path of ``config.web_base_url`` (default ``<site.base_url>newsletter/``)::

    GET       subscribe                 the signup form (also at the base path itself)
    POST      subscribe                 signup: one answer for every address (S13)
    GET|HEAD  confirm/{token}           a page with a button; changes nothing (E8, R9)
    POST      confirm/{token}           confirms (form carries a CSRF token)
    GET|HEAD  unsubscribe/{token}       a page with a button; changes nothing
    POST      unsubscribe/{token}       unsubscribes; RFC 8058 one-click, 200, no redirect
    GET|HEAD  preferences/{token}       categories form, or unsubscribe
    POST      preferences/{token}       saves (form carries a CSRF token)
    GET       archive/, archive/{id}    sent issues, without any token (S18)
    GET       health                    200 when the database answers, else 503

The endpoint only turns requests into store calls (publisher.store.signups) and
answers with pages (publisher.web.pages). Decisions, by RELIABILITY id:

- Signup (E1-E5, E14, S7, S12, S13): the body is read under the rules of
  publisher.web.forms; the per-IP limit is counted first (429 when used up);
  a filled honeypot gets the normal answer and nothing is stored. A valid
  address is queued as a ``signup_requests`` row: one INSERT whatever the
  address, so new, pending, active and unsubscribed addresses cost the request
  the same statements and get the same 200 page (S13; issue 8 item 8 measured a
  2 ms oracle before). After the answer is sent the worker thread
  (publisher.deliver.confirmations) applies it: at most a ``pending`` row, and a
  ``confirmation_mails`` row only for pending or unsubscribed addresses within
  the per-address and global quotas; then it sends the mail (at-least-once,
  picked up again after a crash).
- Tokens (S1-S5, S10; publisher.deliver.tokens): purpose-bound; confirm links expire
  after ``[web].token_max_age_hours`` and die when the subscriber's state
  changes (E10); unsubscribe and preferences links never expire (CAN-SPAM and
  Gmail want opt-out links in old mail to work). Every bad token, whatever is
  wrong with it, gets the same page with status 400 and changes nothing (E9).
- GET and HEAD never change state; confirm and preferences forms carry a CSRF
  token, an HMAC of the link token under the signing key, checked on POST (no
  cookies exist, so nothing else is needed, S11). The unsubscribe POST needs
  neither cookie nor CSRF token (RFC 8058 section 3.1, E11, S9) and is idempotent.
- Errors: 400/413/415 for bad input (E7), 429 with ``Retry-After`` for the
  per-IP limit, 503 with ``Retry-After`` when the database is locked or down
  (H1): never a 500 and never a partial row (each change is one transaction).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from publisher.config import Config
from publisher.deliver.confirmations import ConfirmationDrain, ConfirmationWorker, Mailer
from publisher.deliver.tokens import (
    InvalidToken,
    Purpose,
    TokenSigner,
    confirm_max_age,
    confirm_url,
    load_keys,
    preferences_url,
    unsubscribe_url,
)
from publisher.inbound.webhooks import webhook_routes
from publisher.publish.render import Signup
from publisher.publish.templating import make_environment
from publisher.store import (
    InvalidAddress,
    Issue,
    IssueStatus,
    Store,
    StoreError,
    SubscriberStatus,
    normalize_email,
)
from publisher.store.quotas import Quota
from publisher.store.signups import MAILABLE, ConfirmOutcome, WebStore
from publisher.web.forms import BadInput, ClientAddress, Form, rate_key, read_form
from publisher.web.pages import (
    Link,
    Links,
    Pages,
    SecurityHeaders,
    archive_csp,
    neutral_archive_html,
    security_headers,
)

log = logging.getLogger("publisher.web")

P = ParamSpec("P")
T = TypeVar("T")

MAX_ADDRESS_CHARS = 254  # RFC 5321 path limit (E3, S17)
REPEATABLE = frozenset({"categories"})
RETRY_LOCKED_SECONDS = "5"
MAX_ISSUE_ID = 2**31 - 1  # PostgreSQL's integer; SQLite's int64 overflows later
HOUR = timedelta(hours=1)
SIGNUP_TEMPLATE = "partials/signup.html"


# --- small parts -------------------------------------------------------------------------------


class Categories:
    """The site's category names and post dates, as the composition root last read them.

    The service never reads posts itself (no file I/O at request time, and a
    broken post cannot turn a signup into a 500): ``publisher web`` reads the
    site at start-up and calls :meth:`replace` when the posts change
    (publisher.cli.web). Names and dates are replaced as one tuple, atomically,
    so requests see the old reading or the new one, never a mix.
    """

    def __init__(
        self, names: Iterable[str] = (), post_dates: Mapping[str, datetime] | None = None
    ) -> None:
        self._reading: tuple[tuple[str, ...], Mapping[str, datetime]] = (
            tuple(names),
            MappingProxyType(dict(post_dates or {})),
        )

    @property
    def names(self) -> tuple[str, ...]:
        return self._reading[0]

    @property
    def post_dates(self) -> Mapping[str, datetime]:
        """Each public post's date by slug: the archive lists issues by their posts' dates."""
        return self._reading[1]

    def replace(
        self, names: Iterable[str], post_dates: Mapping[str, datetime] | None = None
    ) -> None:
        self._reading = (tuple(names), MappingProxyType(dict(post_dates or {})))

    def check(self, values: Iterable[str]) -> tuple[str, ...] | None:
        """``values`` deduplicated in site order, or None when one is unknown."""
        names = self.names  # one snapshot for the whole check
        wanted = set(values)
        if not wanted <= set(names):
            return None
        return tuple(name for name in names if name in wanted)


class Csrf:
    """Form tokens: an HMAC of the link token, so a form works only for its own link (S11)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self.keys = tuple(keys)

    def token(self, purpose: Purpose, link_token: str) -> str:
        return self._mac(self.keys[0], purpose, link_token)

    def valid(self, purpose: Purpose, link_token: str, given: str) -> bool:
        checks = [
            hmac.compare_digest(given.encode(), self._mac(k, purpose, link_token).encode())
            for k in self.keys
        ]
        return any(checks)

    @staticmethod
    def _mac(key: bytes, purpose: Purpose, link_token: str) -> str:
        message = f"publisher-csrf|{purpose.value}|{link_token}".encode()
        digest = hmac.new(key, message, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def checked_address(raw: str) -> str:
    """The normalized address, or 400 (E1, E3, S17): no CR/LF/NUL, no ``=?``, length caps."""
    if any(ch in raw for ch in "\r\n\x00") or "=?" in raw:
        raise BadInput(400, "올바른 이메일 주소를 입력해 주세요.")  # checked before any strip
    address = raw.strip(" \t")
    if not address:
        raise BadInput(400, "이메일 주소를 입력해 주세요.")
    if len(address) > MAX_ADDRESS_CHARS:
        raise BadInput(400, "올바른 이메일 주소를 입력해 주세요.")
    try:
        return normalize_email(address)
    except InvalidAddress:
        raise BadInput(400, "올바른 이메일 주소를 입력해 주세요.") from None


def consent_text_version(env: jinja2.Environment) -> str:
    """Which consent text the visitor saw: the signup form template's name and hash (R10)."""
    assert env.loader is not None
    source = env.loader.get_source(env, SIGNUP_TEMPLATE)[0]
    return f"{SIGNUP_TEMPLATE}@{hashlib.sha256(source.encode()).hexdigest()[:12]}"


class ConfirmState(StrEnum):
    READY = "ready"
    ACTIVE = "active"
    INVALID = "invalid"


@dataclass(frozen=True)
class ArchiveItem:
    subject: str
    date: datetime
    url: str


@dataclass(frozen=True)
class Choice:
    name: str
    checked: bool


# --- the service -------------------------------------------------------------------------------


class WebService:
    """Request handlers; each turns one request into store calls and one page."""

    def __init__(
        self,
        config: Config,
        store: WebStore,
        keys: Sequence[bytes],
        mailer: Mailer,
        clock: Callable[[], datetime],
        categories: Categories,
        env: jinja2.Environment,
    ) -> None:
        self.config = config
        self.store = store.store
        self.web_store = store
        self.mailer = mailer
        self.signer = TokenSigner(keys, clock)
        self.csrf = Csrf(keys)
        self.categories = categories
        self.links = Links.from_config(config)
        self.pages = Pages(env, self.links)
        self.client = ClientAddress(config.web.trusted_proxies)
        self.consent_version = consent_text_version(env)
        self.confirm_age = confirm_max_age(config)
        self.drain = ConfirmationDrain(config, store, self.signer, mailer, clock=clock)
        self.queue = ConfirmationWorker(self.drain.run)

    async def _db(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await run_in_threadpool(func, *args, **kwargs)

    def _client(self, request: Request) -> str:
        peer = request.client.host if request.client else None
        return self.client(peer, request.headers.getlist("x-forwarded-for"))

    # signup ---------------------------------------------------------------------------------

    async def subscribe_form(self, request: Request) -> Response:
        signup = Signup(self.links.signup, self.categories.names, self.links.archive)
        return self.pages.render(
            "web/subscribe.html", title="뉴스레터 구독", private=False, signup=signup
        )

    async def subscribe(self, request: Request) -> Response:
        form = await read_form(request, repeatable=REPEATABLE)
        client = self._client(request)
        ip_quota = Quota("ip:" + rate_key(client), self.config.web.signups_per_ip_per_hour, HOUR)
        if await self._db(self.web_store.take_quota, [ip_quota]) is not None:
            return self.pages.message(
                "요청이 너무 많습니다",
                "잠시 후 다시 시도해 주세요.",
                status=429,
                headers={"Retry-After": "3600"},
            )
        if form.get("website").strip():  # the honeypot: bots fill it, people never see it (E5)
            return self._accepted()
        address = checked_address(form.get("email"))
        categories = self.categories.check(form.get_all("categories"))
        if categories is None:
            raise BadInput(400, "알 수 없는 카테고리입니다.")
        # The same one INSERT for every address; what it means for the address (a pending
        # row, a mail, nothing) is decided by the worker, woken once the answer is sent (S13).
        await self._db(
            self.web_store.record_signup,
            address,
            categories,
            source=f"web signup from {client}",
            text_version=self.consent_version,
        )
        return self._accepted(background=BackgroundTask(self.queue.wake))

    def _accepted(self, background: BackgroundTask | None = None) -> Response:
        # One page for every address state and for the honeypot (S13).
        response = self.pages.message(
            "메일함을 확인해 주세요",
            "구독 신청을 받았습니다. 입력하신 주소로 확인 메일을 보냈으니, 메일의 링크를 열어 "
            "구독을 확인해 주세요.",
            "확인 메일이 보이지 않으면 스팸함을 확인해 주세요. 이미 구독 중이거나 최근에 확인 "
            "메일을 받은 주소에는 새 메일을 보내지 않습니다.",
            link=Link(self.links.home, "블로그로 돌아가기"),
        )
        response.background = background
        return response

    # confirm --------------------------------------------------------------------------------

    async def confirm_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        state = await self._db(self._confirm_state, token)
        if state is ConfirmState.INVALID:
            return self._invalid_link()
        if state is ConfirmState.ACTIVE:
            return self.pages.message("이미 구독 중입니다", "이 주소는 이미 구독이 확인되었습니다.")
        return self.pages.render(
            "web/confirm.html",
            title="구독 확인",
            action=confirm_url(self.config, token),
            csrf=self.csrf.token(Purpose.CONFIRM, token),
        )

    def _confirm_state(self, token: str) -> ConfirmState:
        found = self._verify(token, Purpose.CONFIRM, self.confirm_age)
        subscriber = None if found is None else self.store.get_subscriber(found[0])
        if found is None or subscriber is None:
            return ConfirmState.INVALID
        if subscriber.status == SubscriberStatus.ACTIVE:
            return ConfirmState.ACTIVE
        if subscriber.status in MAILABLE and subscriber.state_version == found[1]:
            return ConfirmState.READY
        return ConfirmState.INVALID

    async def confirm(self, request: Request) -> Response:
        token = request.path_params["token"]
        form = await read_form(request)
        found = self._verify(token, Purpose.CONFIRM, self.confirm_age)
        if found is None or not self.csrf.valid(Purpose.CONFIRM, token, form.get("csrf")):
            return self._invalid_link()
        source = f"confirmed from {self._client(request)}"
        outcome = await self._db(self.web_store.confirm, found[0], found[1], source)
        if outcome is ConfirmOutcome.INVALID:
            return self._invalid_link()
        preferences = self.signer.sign(Purpose.PREFERENCES, found[0], found[1])
        return self.pages.message(
            "구독이 확인되었습니다",
            "이제 새 글을 이메일로 받아보실 수 있습니다. 메일마다 있는 링크로 언제든 해지할 수 "
            "있습니다.",
            link=Link(preferences_url(self.config, preferences), "받을 카테고리 고르기"),
        )

    # unsubscribe ----------------------------------------------------------------------------

    async def unsubscribe_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        if self._verify(token, Purpose.UNSUBSCRIBE, None) is None:
            return self._invalid_link()
        return self.pages.render(
            "web/unsubscribe.html", title="구독 해지", action=unsubscribe_url(self.config, token)
        )

    async def unsubscribe(self, request: Request) -> Response:
        # RFC 8058: "List-Unsubscribe=One-Click" urlencoded or multipart, or no body at
        # all; the content is not needed, only the size and encoding rules apply.
        await read_form(request, repeatable=frozenset({"List-Unsubscribe"}))
        found = self._verify(request.path_params["token"], Purpose.UNSUBSCRIBE, None)
        if found is None:
            return self._invalid_link()
        await self._db(self.store.set_status, found[0], SubscriberStatus.UNSUBSCRIBED)
        return self._unsubscribed()

    def _unsubscribed(self) -> Response:
        return self.pages.message(
            "구독이 해지되었습니다",
            "더 이상 뉴스레터를 보내지 않습니다.",
            link=Link(self.links.signup, "다시 구독하기"),
        )

    # preferences ----------------------------------------------------------------------------

    async def preferences_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = self._verify(token, Purpose.PREFERENCES, None)
        if found is None:
            return self._invalid_link()
        subscriber = await self._db(self.store.get_subscriber, found[0])
        if subscriber is None or subscriber.status != SubscriberStatus.ACTIVE:
            return self._not_subscribed()
        return self._preferences(token, subscriber.categories)

    async def preferences(self, request: Request) -> Response:
        token = request.path_params["token"]
        form = await read_form(request, repeatable=REPEATABLE)
        found = self._verify(token, Purpose.PREFERENCES, None)
        if found is None or not self.csrf.valid(Purpose.PREFERENCES, token, form.get("csrf")):
            return self._invalid_link()
        action = form.get("action")
        if action == "unsubscribe":
            await self._db(self.store.set_status, found[0], SubscriberStatus.UNSUBSCRIBED)
            return self._unsubscribed()
        if action != "save":
            raise BadInput(400, "알 수 없는 요청입니다.")
        return await self._save_preferences(token, found[0], form)

    async def _save_preferences(self, token: str, subscriber_id: int, form: Form) -> Response:
        categories = self.categories.check(form.get_all("categories"))
        if categories is None:
            raise BadInput(400, "알 수 없는 카테고리입니다.")
        if not await self._db(self.web_store.set_categories, subscriber_id, categories):
            return self._not_subscribed()
        return self._preferences(token, categories, notice="설정을 저장했습니다.")

    def _preferences(
        self, token: str, chosen: Sequence[str], notice: str | None = None
    ) -> Response:
        names = list(self.categories.names) + [c for c in chosen if c not in self.categories.names]
        return self.pages.render(
            "web/preferences.html",
            title="구독 설정",
            action=preferences_url(self.config, token),
            csrf=self.csrf.token(Purpose.PREFERENCES, token),
            choices=[Choice(name, name in chosen) for name in names],
            notice=notice,
        )

    def _not_subscribed(self) -> Response:
        return self.pages.message(
            "구독 중이 아닙니다",
            "이 주소는 지금 뉴스레터를 받고 있지 않습니다.",
            link=Link(self.links.signup, "구독하기"),
        )

    # archive and health ---------------------------------------------------------------------

    async def archive(self, request: Request) -> Response:
        issues = await self._db(self._sent_issues)
        dates = self.categories.post_dates  # one snapshot for the whole page
        items = sorted(
            (
                ArchiveItem(i.subject, _issue_date(i, dates), f"{self.links.archive}{i.id}")
                for i in issues
            ),
            key=lambda item: (item.date, item.url),
            reverse=True,
        )
        return self.pages.render(
            "web/archive.html", title="지난 뉴스레터", private=False, issues=items
        )

    async def archive_issue(self, request: Request) -> Response:
        issue_id = request.path_params["issue_id"]
        if issue_id > MAX_ISSUE_ID:  # no such row; the database would overflow, not answer
            raise HTTPException(404)
        issue = await self._db(self.store.get_issue, issue_id)
        if issue is None or issue.status not in (IssueStatus.DONE, IssueStatus.SENDING):
            raise HTTPException(404)
        return HTMLResponse(
            neutral_archive_html(issue.html, self.config),
            headers={"Content-Security-Policy": archive_csp(self.config)},
        )

    def _sent_issues(self) -> list[Issue]:
        sent = (IssueStatus.DONE, IssueStatus.SENDING)
        return sorted(
            (i for i in self.store.list_issues() if i.status in sent),
            key=lambda i: i.id,
            reverse=True,
        )

    async def health(self, request: Request) -> Response:
        version = await self._db(self.store.schema_version)
        return JSONResponse(
            {"status": "ok", "schema_version": version}, headers={"Cache-Control": "no-store"}
        )

    # shared ---------------------------------------------------------------------------------

    def _verify(
        self, token: str, purpose: Purpose, max_age: timedelta | None
    ) -> tuple[int, int] | None:
        try:
            subscriber_id, state_version, _issued = self.signer.verify(token, purpose, max_age)
        except InvalidToken:
            return None
        return subscriber_id, state_version

    def _invalid_link(self) -> Response:
        # One page and status for every bad token: expired, altered, truncated, another
        # purpose's, a used confirm link (E9, S4, S5).
        return self.pages.message(
            "링크를 사용할 수 없습니다",
            "링크가 만료되었거나 올바르지 않습니다. 구독을 원하시면 다시 신청해 주세요.",
            status=400,
            link=Link(self.links.signup, "구독 신청하기"),
        )

    def routes(self) -> list[BaseRoute]:
        form = _by_method(self.subscribe_form, self.subscribe)
        return [
            Route("/", self.subscribe_form, methods=["GET"]),
            Route("/subscribe", form, methods=["GET", "POST"]),
            Route("/confirm/{token}", _by_method(self.confirm_page, self.confirm), methods=BOTH),
            Route(
                "/unsubscribe/{token}",
                _by_method(self.unsubscribe_page, self.unsubscribe),
                methods=BOTH,
            ),
            Route(
                "/preferences/{token}",
                _by_method(self.preferences_page, self.preferences),
                methods=BOTH,
            ),
            Route("/archive", self.archive, methods=["GET"]),
            Route("/archive/", self.archive, methods=["GET"]),
            Route("/archive/{issue_id:int}", self.archive_issue, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
        ]

    # errors -----------------------------------------------------------------------------------

    async def bad_input(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadInput)
        titles = {413: "요청이 너무 큽니다", 415: "지원하지 않는 형식입니다"}
        return self.pages.message(
            titles.get(exc.status, "요청을 처리할 수 없습니다"),
            exc.reason,
            status=exc.status,
            link=Link(self.links.signup, "구독 신청 페이지"),
        )

    async def unavailable(self, request: Request, exc: Exception) -> Response:
        log.warning("database unavailable: %s", exc)
        return self.pages.message(
            "잠시 후 다시 시도해 주세요",
            "지금은 요청을 처리할 수 없습니다. 잠시 후 다시 시도해 주세요.",
            status=503,
            headers={"Retry-After": RETRY_LOCKED_SECONDS},
        )

    async def client_gone(self, request: Request, exc: Exception) -> Response:
        # The client left mid-body (or was cut off for being slow, publisher.web.server):
        # nobody reads this answer, and it is no error of ours to log as a traceback.
        return Response(status_code=400)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        titles = {404: "페이지를 찾을 수 없습니다", 405: "허용되지 않는 요청입니다"}
        return self.pages.message(
            titles.get(exc.status_code, "요청을 처리할 수 없습니다"),
            status=exc.status_code,
            headers=exc.headers,
            link=Link(self.links.signup, "구독 신청 페이지"),
        )


Endpoint = Callable[[Request], Awaitable[Response]]
BOTH = ["GET", "POST"]  # HEAD comes with GET


def _by_method(get: Endpoint, post: Endpoint) -> Endpoint:
    """One route per path, so a 405 lists every allowed method in ``Allow``."""

    async def endpoint(request: Request) -> Response:
        return await (post if request.method == "POST" else get)(request)

    return endpoint


def _issue_date(issue: Issue, post_dates: Mapping[str, datetime]) -> datetime:
    """The date of the issue's newest post (what readers know it by), else when it was sent;
    a digest sent on Monday is listed by its posts, not by the day the mail went (issue 8)."""
    known = [post_dates[slug] for slug in issue.post_slugs if slug in post_dates]
    return max(known) if known else issue.finished_at or issue.snapshot_at or issue.created_at


# --- the app -----------------------------------------------------------------------------------


def create_app(
    config: Config,
    store: Store,
    mailer: Mailer,
    clock: Callable[[], datetime],
    *,
    categories: Categories | Sequence[str] = (),
    env: jinja2.Environment | None = None,
) -> Starlette:
    """The service as an ASGI app, its routes mounted at the path of ``config.web_base_url``.

    ``categories`` are the site's category names; pass a :class:`Categories`
    to replace them while the app runs (``publisher web`` does, from the posts).
    """
    env = env or make_environment(config)
    if not isinstance(categories, Categories):
        categories = Categories(categories)
    keys = load_keys(config, store, warn=log.warning)
    service = WebService(config, WebStore.open(store), keys, mailer, clock, categories, env)
    headers = security_headers(config)
    inner = Starlette(
        routes=[*service.routes(), *webhook_routes(config, store, clock)],  # issue 12
        middleware=[Middleware(SecurityHeaders, headers=headers)],
        exception_handlers={
            BadInput: service.bad_input,
            StoreError: service.unavailable,
            HTTPException: service.http_error,
            ClientDisconnect: service.client_gone,
        },
    )
    inner.router.redirect_slashes = False  # no redirects at all (E12, S15)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        service.queue.start()  # sends what a stopped or crashed process left queued (G1)
        yield
        await run_in_threadpool(service.queue.close)

    from publisher.web.editor import editor_routes  # mounted first: the web path may be "/"

    outer = Starlette(
        routes=[
            *editor_routes(config, store, keys, clock, env),
            Mount(mount_path(config), app=inner),
        ],
        middleware=[Middleware(SecurityHeaders, headers=headers)],
        lifespan=lifespan,
    )
    outer.router.redirect_slashes = False
    outer.state.web = service
    return outer


def mount_path(config: Config) -> str:
    """``/newsletter`` for ``https://blog.example.com/newsletter/``; ``""`` at the root."""
    return urlsplit(config.web_base_url).path.rstrip("/")
