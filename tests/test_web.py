"""The subscription service over HTTP (RELIABILITY E1-E14, H1, S4-S18), on SQLite and PostgreSQL.

Starlette's TestClient drives the real app against a real database (the
``db_url`` fixture runs each test on both). Every response of every test is
recorded: none may be a redirect or a 500 (E12, S15, E7).
"""

from __future__ import annotations

import base64
import email
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.header import decode_header, make_header
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from starlette.applications import Starlette

from builders import make_config, write_config, write_post
from publisher.cli.web import CategoryRefresher, open_web_app
from publisher.config import Config, load_config
from publisher.deliver.confirmations import (
    ConfirmationMailer,
    confirmation_message,
    confirmation_quotas,
)
from publisher.deliver.tokens import Purpose, TokenSigner, load_keys
from publisher.deliver.transports import Outcome, SendResult, Stage, transport_factory
from publisher.errors import PublisherError
from publisher.publish.newsletter import PREFERENCES_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER
from publisher.publish.templating import make_environment
from publisher.store import (
    Consent,
    ConsentMethod,
    IssueStatus,
    NewIssue,
    Store,
    Subscriber,
    SubscriberStatus,
)
from publisher.store.signups import MailStatus
from publisher.web.app import Categories, WebService, create_app
from publisher.web.forms import ClientAddress, rate_key
from smtp_sink import SmtpSink, free_port

with warnings.catch_warnings():
    # Starlette 1.x asks for the httpx2 fork; the httpx client it wraps works the same.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

BASE = "https://blog.example.com/"
WEB = BASE + "newsletter/"
CATEGORIES = ("세계", "기술")
SECRET = {"PUBLISHER_SECRET_KEY": "test-signing-key-" + "x" * 32}
VISITOR = ("203.0.113.7", 40000)
URLENCODED = {"content-type": "application/x-www-form-urlencoded"}


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 6, 20, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class RecordingMailer:
    """Records (recipient, confirm URL); with ``hold`` set it waits for ``release`` first."""

    def __init__(self, hold: bool = False) -> None:
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.sent: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def send_confirmation(self, recipient: str, confirm_url: str) -> SendResult:
        self.release.wait(10)  # a mail server that hangs until the test lets it go
        with self.lock:
            self.sent.append((recipient, confirm_url))
        return SendResult(Outcome.SENT, Stage.END, 250)


@dataclass
class Web:
    config: Config
    store: Store
    clock: FakeClock
    mailer: Any
    app: Starlette
    client: TestClient
    statuses: list[int] = field(default_factory=list)

    @property
    def service(self) -> WebService:
        return self.app.state.web  # type: ignore[no-any-return]

    def new_client(self, peer: tuple[str, int] = VISITOR) -> TestClient:
        client = TestClient(self.app, base_url=BASE, follow_redirects=False, client=peer)
        client.event_hooks = {"response": [lambda r: self.statuses.append(r.status_code)]}
        return client

    def signup(self, email: str = "reader@example.com", client: TestClient | None = None, **form):
        data = {"email": email, "website": "", **form}
        return (client or self.client).post(WEB + "subscribe", data=data)

    def mails(self) -> list[tuple[str, str]]:
        assert self.service.queue.wait_idle(10)
        with self.mailer.lock:
            return list(self.mailer.sent)

    def subscriber(self, address: str = "reader@example.com") -> Subscriber | None:
        self.settle()
        return self.store.find_subscriber(address)

    def settle(self) -> None:
        """Apply the queued signups now, as the worker would (the request only queues them)."""
        quotas = partial(confirmation_quotas, self.config)
        deadline = time.monotonic() + 10
        # Until none is left: one the worker holds (SKIP LOCKED) counts until it commits.
        while self.service.web_store.pending_signups():
            self.service.web_store.apply_signups(quotas)
            assert time.monotonic() < deadline, "signups were not applied"
            time.sleep(0.01)

    def active(self, address: str = "reader@example.com", categories=()) -> Subscriber:
        found, _ = self.store.add_subscriber(
            address, Consent(ConsentMethod.OPERATOR), categories=categories
        )
        return found

    def signer(self) -> TokenSigner:
        return TokenSigner(load_keys(self.config, self.store), self.clock)

    def token(self, purpose: Purpose, subscriber: Subscriber, **kw: Any) -> str:
        return self.signer().sign(purpose, subscriber.id, subscriber.state_version, **kw)


WebFactory = Callable[..., Web]


def _web_factory(db_url: str, root: Path, made: list[Web]) -> WebFactory:
    def make(
        mailer: Any = None,
        store: Store | None = None,
        categories=CATEGORIES,
        clock: FakeClock | None = None,
        **sections: Any,
    ) -> Web:
        config = make_config(root, env=SECRET, **sections)
        clock = clock or FakeClock()
        store = store or Store.open(db_url, clock=clock)
        mailer = mailer or RecordingMailer()
        try:
            app = create_app(config, store, mailer, clock, categories=categories)
        except Exception:
            store.close()
            raise
        web = Web(config, store, clock, mailer, app, None)  # type: ignore[arg-type]
        web.client = web.new_client()
        web.client.__enter__()
        made.append(web)
        return web

    return make


def _close(made: list[Web]) -> None:
    for web in made:
        web.client.__exit__(None, None, None)
        web.store.close()
        # E12/S15 and E7 for every response of the test: never a redirect, never a 500.
        assert not [s for s in web.statuses if 300 <= s < 400 or s == 500], web.statuses


@pytest.fixture
def make_web(db_url: str, tmp_path: Path) -> Iterator[WebFactory]:
    """Builds the app on the test's database (SQLite, then PostgreSQL)."""
    made: list[Web] = []
    yield _web_factory(db_url, tmp_path, made)
    _close(made)


@pytest.fixture
def make_sqlite_web(tmp_path: Path) -> Iterator[WebFactory]:
    made: list[Web] = []
    yield _web_factory(f"sqlite:///{tmp_path / 'publisher.db'}", tmp_path, made)
    _close(made)


@pytest.fixture
def web(make_web: WebFactory) -> Web:
    return make_web()


def confirm_form(web: Web, url: str) -> dict[str, str]:
    page = web.client.get(url)
    assert page.status_code == 200, page.text
    return {"csrf": re.search(r'name="csrf" value="([^"]+)"', page.text)[1]}  # type: ignore[index]


def main_text(response: httpx.Response) -> str:
    return response.text.split('<main id="main">', 1)[1].split("</main>", 1)[0]


# --- signup: double opt-in (E3, E14, R10) ---------------------------------------------------


def test_signup_creates_a_pending_row_with_consent_and_mails_only_a_link(web: Web):
    response = web.signup("Reader@Example.COM", categories=["기술"])
    assert response.status_code == 200
    assert "메일함을 확인해 주세요" in response.text
    subscriber = web.subscriber("reader@example.com")  # one row per address, any case (E3)
    assert subscriber is not None
    assert subscriber.status == SubscriberStatus.PENDING  # never active without confirming
    assert subscriber.categories == ("기술",)
    assert subscriber.consent is not None
    assert subscriber.consent.method == ConsentMethod.WEB
    assert subscriber.consent.source == "web signup from 203.0.113.7"
    assert subscriber.consent.text_version.startswith("partials/signup.html@")
    [(recipient, url)] = web.mails()
    assert recipient == "reader@example.com"
    assert url.startswith(WEB + "confirm/")


def test_confirm_get_and_head_change_nothing_post_confirms(web: Web):
    """E8, R9: link scanners open GET links; only the button's POST confirms."""
    web.signup()
    [(_, url)] = web.mails()
    for method in ("GET", "HEAD", "GET", "HEAD"):
        assert web.client.request(method, url).status_code == 200
    assert web.subscriber().status == SubscriberStatus.PENDING
    form = confirm_form(web, url)
    confirmed = web.client.post(url, data=form)
    assert confirmed.status_code == 200
    assert "구독이 확인되었습니다" in confirmed.text
    subscriber = web.subscriber()
    assert subscriber.status == SubscriberStatus.ACTIVE
    assert subscriber.confirmed_at == web.clock.now
    assert subscriber.consent.source == "web signup from 203.0.113.7; confirmed from 203.0.113.7"
    # E10: a second confirm is harmless.
    again = web.client.post(url, data=form)
    assert again.status_code == 200
    assert web.subscriber().state_version == subscriber.state_version


def test_confirm_page_links_to_preferences_that_work(web: Web):
    web.signup()
    [(_, url)] = web.mails()
    confirmed = web.client.post(url, data=confirm_form(web, url))
    prefs = re.search(
        r'href="(https://blog\.example\.com/newsletter/preferences/[^"]+)"', confirmed.text
    )
    assert prefs is not None
    assert web.client.get(prefs[1]).status_code == 200


@pytest.mark.parametrize("csrf", [None, "", "AAAAAAAAAAAAAAAAAAAAAA", "wrong"])
def test_confirm_post_needs_the_forms_csrf_token(web: Web, csrf: str | None):
    web.signup()
    [(_, url)] = web.mails()
    data = {} if csrf is None else {"csrf": csrf}
    response = web.client.post(url, data=data)
    assert response.status_code == 400
    assert web.subscriber().status == SubscriberStatus.PENDING


def test_confirm_after_unsubscribe_needs_a_newer_link(web: Web):
    """E10: an old confirmation link cannot resubscribe; a new signup's link can."""
    web.signup()
    [(_, old)] = web.mails()
    form = confirm_form(web, old)
    web.client.post(old, data=form)
    web.store.set_status(web.subscriber().id, SubscriberStatus.UNSUBSCRIBED)
    assert web.client.get(old).status_code == 400
    assert web.client.post(old, data=form).status_code == 400
    assert web.subscriber().status == SubscriberStatus.UNSUBSCRIBED
    web.clock.advance(hours=web.config.web.confirmations_per_address_hours, minutes=2)
    web.signup()
    assert web.subscriber().status == SubscriberStatus.UNSUBSCRIBED
    [_, (_, new)] = web.mails()
    assert web.client.post(new, data=confirm_form(web, new)).status_code == 200
    assert web.subscriber().status == SubscriberStatus.ACTIVE


def test_signup_answers_every_state_alike(web: Web):
    """S13, E4, E10: new, pending, active, unsubscribed and bounced get the same answer."""
    web.active("active@example.com")
    gone = web.active("gone@example.com")
    web.store.set_status(gone.id, SubscriberStatus.UNSUBSCRIBED)
    bounced = web.active("bounced@example.com")
    web.store.set_status(bounced.id, SubscriberStatus.BOUNCED)
    addresses = ["new@example.com", "new@example.com", "active@example.com"]
    addresses += ["gone@example.com", "bounced@example.com"]
    answers = [web.signup(a) for a in addresses]
    assert {(r.status_code, r.text) for r in answers} == {(answers[0].status_code, answers[0].text)}
    assert answers[0].status_code == 200
    # Mail only where it can lead to a subscription, once per address.
    assert sorted(r for r, _ in web.mails()) == ["gone@example.com", "new@example.com"]
    assert web.subscriber("active@example.com").status == SubscriberStatus.ACTIVE
    assert web.subscriber("gone@example.com").status == SubscriberStatus.UNSUBSCRIBED


def test_signup_does_the_same_database_work_for_every_state(web: Web):
    """Issue 8 item 8: a new address took ~2 ms longer than a subscribed one (a timing oracle).

    Timing itself would flake; the work the request does is what can differ, so the
    SQL statements run on the request's behalf (every thread but the mail worker's)
    must be the same, in the same order, whatever the address's state.
    """
    web.active("active@example.com")
    for address, status in (
        ("gone@example.com", SubscriberStatus.UNSUBSCRIBED),
        ("bounced@example.com", SubscriberStatus.BOUNCED),
    ):
        web.store.set_status(web.active(address).id, status)
    web.signup("pending@example.com")
    assert web.subscriber("pending@example.com").status == SubscriberStatus.PENDING
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.current_thread().name != "publisher-confirmations":
            statements.append(statement)

    event.listen(web.store.engine, "before_cursor_execute", record)
    try:
        work = {}
        for state in ("new", "pending", "active", "gone", "bounced", "new"):
            statements.clear()
            assert web.signup(f"{state}@example.com").status_code == 200
            work.setdefault(state, []).append(tuple(statements))
    finally:
        event.remove(web.store.engine, "before_cursor_execute", record)
    assert len({done for runs in work.values() for done in runs}) == 1, work
    assert any(s.startswith("INSERT INTO signup_requests") for s in work["new"][0])
    assert sorted(r for r, _ in web.mails()) == [
        "gone@example.com",
        "new@example.com",
        "pending@example.com",
    ]


def test_signup_does_not_wait_for_the_mail(make_web: WebFactory):
    """S13: the mail goes from a worker thread, so a slow mail server cannot be timed."""
    web = make_web(mailer=RecordingMailer(hold=True))
    started = time.perf_counter()
    assert web.signup("slow@example.com").status_code == 200
    assert time.perf_counter() - started < 5  # a send on the request path would wait 10 s
    assert web.mailer.sent == []  # answered while the mail server still holds the message
    web.mailer.release.set()
    assert [r for r, _ in web.mails()] == ["slow@example.com"]


def test_honeypot_gets_the_same_page_and_nothing_happens(web: Web):
    real = web.signup("person@example.com")
    bot = web.signup("bot@example.com", website="https://spam.example.com")
    assert (bot.status_code, bot.text) == (real.status_code, real.text)
    assert web.subscriber("bot@example.com") is None
    assert [r for r, _ in web.mails()] == ["person@example.com"]


@pytest.mark.parametrize(
    "address",
    [
        "a@example.com\r\nBcc: victim@example.com",  # E1
        "a@example.com\nBcc: victim@example.com",
        "a@example.com\r",
        "a\x00@example.com",
        "=?utf-8?q?a=0D=0ABcc=3A_v@example.com?=@example.com",  # D1b, S17
        "x" * 250 + "@example.com",  # E3: over 254 characters
        "not-an-address",
        "a@b",
        "alice@example.org)<bob@example.org>",  # D5: parseaddr's laxness
        "사용자@example.com",  # D4: needs SMTPUTF8
        "",
        "   ",
    ],
)
def test_bad_addresses_are_400_and_store_nothing(web: Web, address: str):
    response = web.signup(address)
    assert response.status_code == 400
    assert web.store.count_subscribers() == 0
    assert web.mails() == []


def test_unknown_category_is_400(web: Web):
    assert web.signup(categories=["세계", "없는 카테고리"]).status_code == 400
    assert web.store.count_subscribers() == 0


def test_a_new_category_is_accepted_after_the_posts_change(tmp_path: Path):
    """The composition root re-reads the posts when a file changes, never on a request."""
    write_config(tmp_path)
    write_post(tmp_path, "a.md", category="세계")
    config = load_config(tmp_path, env=SECRET)
    refresher = CategoryRefresher(config, FakeClock(), poll_seconds=3600)
    assert refresher.refresh() and refresher.categories.names == ("세계",)
    assert not refresher.refresh()  # nothing changed: nothing read
    write_post(tmp_path, "b.md", category="과학")
    assert refresher.refresh()
    assert refresher.categories.names == ("과학", "세계")
    assert refresher.categories.check(["세계", "과학", "세계"]) == ("과학", "세계")
    assert sorted(refresher.categories.post_dates) == ["a", "b"]  # the archive's order


def test_signups_never_read_the_posts(tmp_path: Path):
    """A post the reader cannot open made an unknown-category signup a 500 (issue 8 item 6)."""
    write_config(tmp_path, web={"signups_per_ip_per_hour": 100})
    write_post(tmp_path, "a.md", category="세계")
    config = load_config(tmp_path, env=SECRET)
    app, close = open_web_app(config, FakeClock())
    try:
        (tmp_path / "posts" / "broken.md").mkdir()  # read_bytes() raises IsADirectoryError
        with TestClient(app, base_url=BASE, client=VISITOR) as client:
            for categories, status in ((["없는 카테고리"], 400), (["세계"], 200)):
                data = {"email": "r@example.com", "categories": categories}
                assert client.post(WEB + "subscribe", data=data).status_code == status
    finally:
        close()


def test_confirmation_mail_has_no_visitor_text_and_config_urls_only(make_web: WebFactory, tmp_path):
    """E2, S7, E13, S14: a forged Host and spam in extra fields never reach the mail."""
    outbox = {"transport": "outbox", "outbox_dir": "outbox"}
    config = make_config(tmp_path, env=SECRET, newsletter=outbox)
    mailer = ConfirmationMailer(
        config, make_environment(config), transport_factory(config), FakeClock()
    )
    web = make_web(mailer=mailer, newsletter=outbox)
    spam = "Cheap pills at https://spam.example.net"
    forged = {"host": "evil.example.net", "x-forwarded-host": "evil.example.net"}
    response = web.client.post(
        WEB + "subscribe",
        data={"email": "reader@example.com", "name": spam, "website": ""},
        headers=forged,
    )
    assert response.status_code == 200
    assert "evil.example.net" not in response.text
    assert web.service.queue.wait_idle(10)
    [path] = (tmp_path / "outbox").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["To"] == "reader@example.com"
    assert message["From"].addresses[0].display_name == "테스트 블로그"
    assert message["From"].addresses[0].addr_spec == "news@blog.example.com"
    assert message["Auto-Submitted"] == "auto-generated"
    assert str(message["Subject"]) == "테스트 블로그 뉴스레터 구독 확인"
    bodies = [part.get_content() for part in message.walk() if not part.is_multipart()]
    assert len(bodies) == 2
    for body in bodies:
        assert "Cheap pills" not in body and "spam.example.net" not in body
        assert "reader@example.com" not in body  # not even the address (S7)
        assert "evil.example.net" not in body
        urls = set(re.findall(r"https?://[^\s\"'<>]+", body))
        assert urls and all(u.startswith(WEB + "confirm/") for u in urls), urls


# --- limits (E4, E5, E6, E14, S12) --------------------------------------------------------


def test_per_ip_limit_ignores_rotating_forwarded_for_from_an_untrusted_peer(make_web):
    web = make_web(web={"signups_per_ip_per_hour": 3})
    for n in range(3):
        headers = {"x-forwarded-for": f"198.51.100.{n}"}
        data = {"email": f"r{n}@example.com", "website": ""}
        assert web.client.post(WEB + "subscribe", data=data, headers=headers).status_code == 200
    blocked = web.client.post(
        WEB + "subscribe",
        data={"email": "r9@example.com"},
        headers={"x-forwarded-for": "198.51.100.99"},
    )
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == "3600"
    assert web.subscriber("r9@example.com") is None
    other = web.new_client(("192.0.2.50", 1))
    with other:
        assert web.signup("other@example.com", client=other).status_code == 200
    web.clock.advance(minutes=61)
    assert web.signup("later@example.com").status_code == 200


def test_forwarded_for_counts_only_from_a_trusted_proxy(make_web: WebFactory):
    web = make_web(web={"signups_per_ip_per_hour": 1, "trusted_proxies": ["10.0.0.0/8"]})
    proxy = web.new_client(("10.0.0.2", 5000))
    with proxy:
        for n in range(3):
            response = proxy.post(
                WEB + "subscribe",
                data={"email": f"p{n}@example.com"},
                headers={"x-forwarded-for": f"198.51.100.{n}, 10.0.0.7"},
            )
            assert response.status_code == 200
        again = proxy.post(
            WEB + "subscribe",
            data={"email": "p9@example.com"},
            headers={"x-forwarded-for": "198.51.100.1"},
        )
        assert again.status_code == 429
    assert web.subscriber("p1@example.com").consent.source == "web signup from 198.51.100.1"


def test_client_address_rules():
    client = ClientAddress(["10.0.0.0/8", "2001:db8::1"])
    assert client("203.0.113.1", ["198.51.100.1"]) == "203.0.113.1"  # untrusted peer
    assert client("10.1.1.1", ["198.51.100.1, 10.0.0.3"]) == "198.51.100.1"
    assert client("10.1.1.1", ["1.1.1.1", "198.51.100.2"]) == "198.51.100.2"  # nearest hop
    assert client("10.1.1.1", []) == "10.1.1.1"
    assert client("10.1.1.1", ["not an ip"]) == "10.1.1.1"
    assert client("2001:db8::1", ["[2001:db8::9]:443"]) == "2001:db8::9"
    assert rate_key("2001:db8:1:2::1") == rate_key("2001:db8:1:2:ffff::9")  # one /64
    assert rate_key("2001:db8:1:3::1") != rate_key("2001:db8:1:2::1")
    with pytest.raises(PublisherError, match=r"\[web\]\.trusted_proxies"):
        ClientAddress(["proxy.example.com"])


def test_one_confirmation_per_address_per_window(web: Web):
    """E4: repeated signups of one address send one mail per [web].confirmations_per_address_hours."""
    for _ in range(5):
        assert web.signup().status_code == 200
    assert len(web.mails()) == 1
    web.clock.advance(hours=web.config.web.confirmations_per_address_hours - 1)
    web.signup()
    assert len(web.mails()) == 1
    web.clock.advance(hours=1, minutes=2)
    web.signup()
    first, second = web.mails()
    for _, url in (first, second):  # both links are for the same pending state
        assert web.client.get(url).status_code == 200


def test_global_hourly_confirmation_cap(make_web: WebFactory):
    web = make_web(web={"confirmations_per_hour": 2})
    for n in range(4):
        assert web.signup(f"g{n}@example.com").status_code == 200
    assert len(web.mails()) == 2
    assert web.store.count_subscribers(SubscriberStatus.PENDING) == 4
    web.clock.advance(minutes=61)
    web.signup("g9@example.com")
    assert len(web.mails()) == 3


@pytest.fixture
def smtp_web(make_web: WebFactory, smtp_sink: SmtpSink, tmp_path: Path) -> Web:
    sections = {
        "newsletter": {"transport": "smtp"},
        "smtp": {"host": smtp_sink.host, "port": smtp_sink.port, "security": "none"},
        "web": {"signups_per_ip_per_hour": 100},
    }
    config = make_config(tmp_path, env=SECRET, **sections)
    mailer = ConfirmationMailer(
        config, make_environment(config), transport_factory(config), FakeClock()
    )
    return make_web(mailer=mailer, **sections)


def test_twenty_parallel_signups_make_one_row_and_one_mail(smtp_web: Web, smtp_sink: SmtpSink):
    """E14, H5: INSERT ... ON CONFLICT and a serialized quota, on both databases."""
    barrier = threading.Barrier(20)
    answers: list[int] = []

    def signup() -> None:
        barrier.wait()
        answers.append(smtp_web.signup("race@example.com").status_code)

    threads = [threading.Thread(target=signup) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 20
    assert smtp_web.store.count_subscribers() == 1
    assert smtp_web.service.queue.wait_idle(10)
    assert [r.rcpt_tos for r in smtp_sink.received] == [("race@example.com",)]
    # One durable row, queued by the one signup that took the quota (E14, G1).
    [row] = smtp_web.service.web_store.confirmation_mails()
    assert (row.email, row.status, row.attempts) == ("race@example.com", MailStatus.SENT, 1)


# --- tokens (E9, S4, S5, S10) --------------------------------------------------------------


def _swap_id(token: str, new_id: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[1] = new_id  # ids below 128 are one varint byte; the MAC stays the old one
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def _flip(token: str, index: int) -> str:
    return token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]


def bad_tokens(web: Web, target: Subscriber, other: Subscriber, purpose: Purpose) -> dict[str, str]:
    good = web.token(purpose, target)
    long_ago = web.clock.now - timedelta(hours=web.config.web.token_max_age_hours + 1)
    tokens = {
        "tampered-mac": _flip(good, len(good) - 3),
        "tampered-payload": _flip(good, 2),
        "truncated": good[:-4],
        "extended": good + "AAAA",
        "other-address": _swap_id(good, other.id),
        # The app must see "%41QE..." (a double-encoded "AQE..."); TestClient unquotes
        # the path twice where a server unquotes once, hence one more "25".
        "double-encoded": "%2525" + good.encode().hex()[:2] + good[1:],
        "garbage": "not-a-token-at-all-1234567890",
        "empty-ish": "A" * 20,
    }
    for other_purpose in Purpose:
        if other_purpose != purpose:
            tokens[f"purpose-{other_purpose}"] = web.token(other_purpose, target)
    if purpose == Purpose.CONFIRM:
        tokens["expired"] = web.token(purpose, target, issued_at=long_ago)
    return tokens


@pytest.mark.parametrize(
    ("purpose", "path"),
    [
        (Purpose.CONFIRM, "confirm"),
        (Purpose.UNSUBSCRIBE, "unsubscribe"),
        (Purpose.PREFERENCES, "preferences"),
    ],
)
def test_every_bad_token_gets_one_generic_page_and_changes_nothing(
    web: Web, purpose: Purpose, path: str
):
    pending = web.store.add_subscriber(
        "pending@example.com", Consent(ConsentMethod.WEB), status=SubscriberStatus.PENDING
    )[0]
    active = web.active("active@example.com")
    target = pending if purpose == Purpose.CONFIRM else active
    other = active if purpose == Purpose.CONFIRM else pending
    before = [web.store.get_subscriber(s.id) for s in (pending, active)]
    pages = set()
    for name, token in bad_tokens(web, target, other, purpose).items():
        url = f"{WEB}{path}/{token}"
        csrf = web.service.csrf.token(purpose, token)
        for response in (
            web.client.get(url),
            web.client.post(url, data={"csrf": csrf, "action": "unsubscribe"}),
        ):
            assert response.status_code == 400, (name, response.status_code)
            pages.add(main_text(response))
        assert web.client.head(url).status_code == 400
    assert len(pages) == 1  # one page for every failure (E9)
    assert [web.store.get_subscriber(s.id) for s in (pending, active)] == before


def test_old_unsubscribe_link_still_works(web: Web):
    """S10: opt-out links in 60-day-old mail work (confirm links would have expired)."""
    subscriber = web.active()
    token = web.token(Purpose.UNSUBSCRIBE, subscriber, issued_at=web.clock.now - timedelta(days=60))
    web.store.set_status(subscriber.id, SubscriberStatus.BOUNCED)  # state changed since
    assert web.client.post(f"{WEB}unsubscribe/{token}").status_code == 200
    assert web.subscriber().status == SubscriberStatus.UNSUBSCRIBED


# --- unsubscribe (E11, S9, RFC 8058) -------------------------------------------------------

ONE_CLICK = "List-Unsubscribe=One-Click"


def _one_click_requests(url: str) -> dict[str, dict[str, Any]]:
    multipart = (
        b'--b0undary\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        b"One-Click\r\n--b0undary--\r\n"
    )
    return {
        "urlencoded": {"content": ONE_CLICK, "headers": URLENCODED},
        "multipart": {
            "content": multipart,
            "headers": {"content-type": "multipart/form-data; boundary=b0undary"},
        },
        "empty body": {},
        "empty body with a type": {"content": b"", "headers": URLENCODED},
        "cookies": {
            "content": ONE_CLICK,
            "headers": {**URLENCODED, "cookie": "session=abc; csrftoken=zzz"},
        },
    }


@pytest.mark.parametrize(
    "variant", ["urlencoded", "multipart", "empty body", "empty body with a type", "cookies"]
)
def test_one_click_unsubscribe_variants(web: Web, variant: str):
    subscriber = web.active()
    url = f"{WEB}unsubscribe/{web.token(Purpose.UNSUBSCRIBE, subscriber)}"
    for method in ("GET", "HEAD", "GET", "HEAD"):
        assert web.client.request(method, url).status_code == 200
    assert web.subscriber().status == SubscriberStatus.ACTIVE  # E8: scanners change nothing
    request = _one_click_requests(url)[variant]
    for _ in range(3):  # idempotent
        response = web.client.post(url, **request)
        assert response.status_code == 200
        assert "location" not in response.headers
        assert "set-cookie" not in response.headers
        assert "구독이 해지되었습니다" in response.text
    assert web.subscriber().status == SubscriberStatus.UNSUBSCRIBED


def test_unsubscribe_page_button_posts_one_click(web: Web):
    url = f"{WEB}unsubscribe/{web.token(Purpose.UNSUBSCRIBE, web.active())}"
    page = web.client.get(url).text
    assert f'action="{url}"' in page
    assert 'name="List-Unsubscribe" value="One-Click"' in page


def test_unsubscribe_of_a_deleted_subscriber_gets_the_same_success_page(web: Web):
    """E10: unknown addresses are not told apart."""
    known = web.active()
    ghost = Subscriber(**{**known.__dict__, "id": known.id + 50})
    answers = [
        web.client.post(f"{WEB}unsubscribe/{web.token(Purpose.UNSUBSCRIBE, s)}")
        for s in (ghost, known)
    ]
    assert answers[0].status_code == answers[1].status_code == 200
    assert main_text(answers[0]) == main_text(answers[1])


# --- preferences ---------------------------------------------------------------------------


def test_preferences_choose_categories_then_unsubscribe(web: Web):
    subscriber = web.active(categories=["세계"])
    token = web.token(Purpose.PREFERENCES, subscriber)
    url = f"{WEB}preferences/{token}"
    page = web.client.get(url)
    assert page.status_code == 200
    assert 'value="세계" checked' in page.text and 'value="기술">' in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]  # type: ignore[index]
    saved = web.client.post(
        url, data={"csrf": csrf, "action": "save", "categories": ["기술", "세계"]}
    )
    assert saved.status_code == 200 and "설정을 저장했습니다" in saved.text
    assert web.subscriber().categories == ("기술", "세계")
    web.client.post(url, data={"csrf": csrf, "action": "save"})
    assert web.subscriber().categories == ()  # none chosen = every category
    assert web.client.post(url, data={"action": "save", "categories": "기술"}).status_code == 400
    unknown = {"csrf": csrf, "action": "save", "categories": "없음"}
    assert web.client.post(url, data=unknown).status_code == 400
    assert web.client.post(url, data={"csrf": csrf, "action": "delete"}).status_code == 400
    assert web.subscriber().categories == ()
    done = web.client.post(url, data={"csrf": csrf, "action": "unsubscribe"})
    assert done.status_code == 200
    assert web.subscriber().status == SubscriberStatus.UNSUBSCRIBED
    after = web.client.get(url)
    assert after.status_code == 200 and "구독 중이 아닙니다" in after.text
    assert web.client.post(url, data={"csrf": csrf, "action": "save"}).status_code == 200
    assert web.subscriber().status == SubscriberStatus.UNSUBSCRIBED  # saving does not resubscribe


# --- malformed requests (E7) ---------------------------------------------------------------


def _targets(web: Web) -> dict[str, str]:
    subscriber = web.active("victim@example.com")
    return {
        "subscribe": WEB + "subscribe",
        "unsubscribe": f"{WEB}unsubscribe/{web.token(Purpose.UNSUBSCRIBE, subscriber)}",
        "preferences": f"{WEB}preferences/{web.token(Purpose.PREFERENCES, subscriber)}",
    }


@pytest.mark.parametrize("target", ["subscribe", "unsubscribe", "preferences"])
def test_ten_megabyte_body_is_413(web: Web, target: str):
    url = _targets(web)[target]
    body = b"email=" + b"a" * (10 * 1024 * 1024)
    assert web.client.post(url, content=body, headers=URLENCODED).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut off while streaming
        for _ in range(200):
            yield b"a" * 1024

    assert web.client.post(url, content=chunks(), headers=URLENCODED).status_code == 413
    assert web.store.count_subscribers(SubscriberStatus.ACTIVE) == 1
    assert web.store.count_subscribers() == 1


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", b"email=a@example.com", 415),
        ("application/json", b'{"email": "a@example.com"}', 415),
        (None, b"email=a@example.com", 415),
        ("application/x-www-form-urlencoded; charset=iso-8859-1", b"email=a@example.com", 415),
        ("application/x-www-form-urlencoded", b"email=\xff\xfe@example.com", 400),
        ("application/x-www-form-urlencoded", b"email=a%FF%FE@example.com", 400),
        ("application/x-www-form-urlencoded", b"email=a@example.com&email=b@example.com", 400),
        ("application/x-www-form-urlencoded", b"email=a@example.com&website=&website=", 400),
        ("multipart/form-data", b"--x\r\n", 400),  # no boundary
        # RFC 2046 allows 70 characters; python-multipart raised ValueError beyond 256 (a 500).
        ("multipart/form-data; boundary=" + "b" * 71, b"--" + b"b" * 71 + b"\r\n", 400),
        ("multipart/form-data; boundary=" + "b" * 300, b"--" + b"b" * 300 + b"\r\n", 400),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-da", 400),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="email"\r\n\r\n\xff@example.com\r\n--x--\r\n',
            400,
        ),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="email"; filename="a.txt"\r\n\r\n'
            b"a@example.com\r\n--x--\r\n",
            400,
        ),
    ],
)
def test_malformed_signups_are_4xx_and_store_nothing(web: Web, content_type, body, status):
    headers = {"content-type": content_type} if content_type else {}
    response = web.client.post(WEB + "subscribe", content=body, headers=headers)
    assert response.status_code == status
    assert web.store.count_subscribers() == 0


def test_multipart_signup_works(web: Web):
    body = (
        b'--x\r\nContent-Disposition: form-data; name="email"\r\n\r\nm@example.com\r\n'
        b'--x\r\nContent-Disposition: form-data; name="categories"\r\n\r\n'
        + "세계".encode()
        + b"\r\n--x--\r\n"
    )
    headers = {"content-type": "multipart/form-data; boundary=x"}
    assert web.client.post(WEB + "subscribe", content=body, headers=headers).status_code == 200
    assert web.subscriber("m@example.com").categories == ("세계",)


# --- headers, redirects, CORS (S14-S16, E12, E13) -----------------------------------------

SECURITY = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def test_security_headers_on_every_response(web: Web):
    subscriber = web.active()
    token = web.token(Purpose.UNSUBSCRIBE, subscriber)
    requests = [
        ("GET", WEB + "subscribe", {}),
        ("POST", WEB + "subscribe", {"data": {"email": "h@example.com"}}),
        ("POST", WEB + "subscribe", {"data": {"email": "bad"}}),
        ("POST", WEB + "subscribe", {"content": b"x" * 70_000, "headers": URLENCODED}),
        ("POST", WEB + "subscribe", {"content": b"{}", "headers": {"content-type": "text/json"}}),
        ("PUT", WEB + "subscribe", {}),
        ("OPTIONS", WEB + "subscribe", {"headers": {"origin": "https://evil.example.net"}}),
        ("GET", f"{WEB}unsubscribe/{token}", {}),
        ("GET", f"{WEB}confirm/bad-token-0000000000000", {}),
        ("GET", f"{WEB}preferences/{web.token(Purpose.PREFERENCES, subscriber)}", {}),
        ("GET", WEB + "archive/", {}),
        ("GET", WEB + "health", {}),
        ("GET", WEB + "no-such-page", {}),
        ("GET", BASE + "outside/the/service", {}),
    ]
    for method, url, kwargs in requests:
        response = web.client.request(method, url, **kwargs)
        for name, value in SECURITY.items():
            assert response.headers.get(name) == value, (method, url, name)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script" not in csp and "unsafe" not in csp
        assert "frame-ancestors 'none'" in csp
        assert not any(h.startswith("access-control-") for h in response.headers), url
    assert web.client.options(WEB + "subscribe").status_code == 405  # no CORS preflight


@pytest.mark.parametrize("path", ["confirm", "unsubscribe", "preferences"])
def test_token_pages_are_not_cached_or_indexed(web: Web, path: str):
    subscriber = web.active()
    purpose = Purpose(path)
    for token in (web.token(purpose, subscriber), "invalid-token-0000000000"):
        response = web.client.get(f"{WEB}{path}/{token}")
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-robots-tag"] == "noindex"
        assert (
            '<link rel="stylesheet" href="https://blog.example.com/static/style.css">'
            in response.text
        )
        assert "<script" not in response.text


@pytest.mark.parametrize(
    "target",
    [
        "//evil.test",
        "/\\evil.test",
        "https:/evil.test",
        "javascript:alert(1)",
        "https://blog.example.com.evil.test/",
    ],
)
def test_no_redirect_parameter_has_any_effect(web: Web, target: str):
    """E12, S15: there is no redirect at all, so no variant can become one."""
    subscriber = web.active()
    unsubscribe = f"{WEB}unsubscribe/{web.token(Purpose.UNSUBSCRIBE, subscriber)}"
    names = ("next", "redirect", "return_to", "url", "continue")
    for name in names:
        query = {name: target}
        responses = [
            web.client.get(WEB + "subscribe", params=query),
            web.client.post(
                WEB + "subscribe", params=query, data={"email": "o@example.com", name: target}
            ),
            web.client.get(unsubscribe, params=query),
            web.client.post(unsubscribe, params=query, data={name: target}),
        ]
        for response in responses:
            assert response.status_code in (200, 400), response.status_code
            assert "location" not in response.headers
            assert "evil.test" not in response.text and "javascript:" not in response.text
    assert web.subscriber().status == SubscriberStatus.UNSUBSCRIBED


def test_pages_ignore_a_forged_host(web: Web):
    """E13, S14: absolute URLs come from config.toml, whatever Host says."""
    subscriber = web.active()
    forged = {"host": "evil.example.net", "x-forwarded-host": "evil.example.net"}
    for url in (
        WEB + "subscribe",
        f"{WEB}preferences/{web.token(Purpose.PREFERENCES, subscriber)}",
        f"{WEB}unsubscribe/{web.token(Purpose.UNSUBSCRIBE, subscriber)}",
    ):
        response = web.client.get(url, headers=forged)
        assert response.status_code == 200
        assert "evil.example.net" not in response.text
        assert "evil.example.net" not in response.headers["content-security-policy"]


# --- archive (S18) and health --------------------------------------------------------------


def _issue(web: Web, key: str, status: IssueStatus, html: str) -> int:
    issue, _ = web.store.create_issue(
        NewIssue(key, ("a",), (), f"제목 {key}", "미리보기", html, "text", "0" * 64)
    )
    if status != IssueStatus.DRAFT:
        web.store.set_issue_status(issue.id, status)
    return issue.id


def test_archive_lists_sent_issues_without_any_token(web: Web):
    leaked = WEB + "unsubscribe/AQEBmKyn2AaUnY9HyWKcv91qtXmc38O9"
    html = (
        f'<html><body><p>본문</p><a href="{UNSUBSCRIBE_PLACEHOLDER}">구독 해지</a>'
        f'<a href="{PREFERENCES_PLACEHOLDER}">설정</a><a href="{leaked}">x</a>'
        "<script>alert(1)</script></body></html>"
    )
    done = _issue(web, "done", IssueStatus.DONE, html)
    sending = _issue(web, "sending", IssueStatus.SENDING, html)
    draft = _issue(web, "draft", IssueStatus.DRAFT, html)
    paused = _issue(web, "paused", IssueStatus.PAUSED, html)
    listing = web.client.get(WEB + "archive/")
    assert listing.status_code == 200
    assert "제목 done" in listing.text and "제목 sending" in listing.text
    assert "제목 draft" not in listing.text and "제목 paused" not in listing.text
    assert web.client.get(WEB + "archive").status_code == 200  # no slash redirect
    page = web.client.get(f"{WEB}archive/{done}")
    assert page.status_code == 200
    assert UNSUBSCRIBE_PLACEHOLDER not in page.text and PREFERENCES_PLACEHOLDER not in page.text
    assert "/unsubscribe/" not in page.text and "/preferences/" not in page.text
    assert page.text.count(f'href="{WEB}subscribe"') == 3
    csp = page.headers["content-security-policy"]
    assert "sandbox" in csp and "script" not in csp and "form-action 'none'" in csp
    assert web.client.get(f"{WEB}archive/{sending}").status_code == 200
    # Past PostgreSQL's integer (a false 503) and SQLite's int64 (OverflowError, a 500).
    for hidden in (draft, paused, 9999, 2**31, 10**20):
        assert web.client.get(f"{WEB}archive/{hidden}").status_code == 404


def test_archive_lists_issues_by_their_posts_dates_not_by_send_order(make_web: WebFactory):
    """Issue 8 item 20: a post mailed late (a resumed send, a digest) keeps its place."""
    from datetime import datetime, timedelta, timezone

    seoul = timezone(timedelta(hours=9))
    dates = {"newer": datetime(2025, 6, 20, 9, 0, tzinfo=seoul)}
    dates["older"] = datetime(2025, 6, 1, 9, 0, 30, 123456, tzinfo=seoul)
    web = make_web(categories=Categories(CATEGORIES, dates))
    for slug in ("newer", "older", "gone"):  # sent in this order; "gone" has no post any more
        issue, _ = web.store.create_issue(
            NewIssue(slug, (slug,), (), f"제목 {slug}", "미리보기", "<p>본문</p>", "text", "0" * 64)
        )
        web.store.set_issue_status(issue.id, IssueStatus.DONE)
    listing = web.client.get(WEB + "archive/").text
    order = [listing.index(f"제목 {slug}") for slug in ("gone", "newer", "older")]
    assert order == sorted(order)  # "gone" by its send time (now), then the posts by date
    assert 'datetime="2025-06-20T09:00:00+09:00"' in listing
    assert 'datetime="2025-06-01T09:00:30+09:00"' in listing  # no microseconds


def test_health(web: Web):
    response = web.client.get(WEB + "health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_invalid_trusted_proxy_setting_stops_the_start(make_web: WebFactory):
    with pytest.raises(PublisherError, match="trusted_proxies"):
        make_web(web={"trusted_proxies": ["*"]})


# --- database locked (H1) ------------------------------------------------------------------

LOCKER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(60)
"""


def test_locked_sqlite_answers_503_with_retry_after(make_sqlite_web: WebFactory, tmp_path: Path):
    path = tmp_path / "publisher.db"
    store = Store.open(f"sqlite:///{path}", clock=FakeClock(), busy_timeout=0.1, retry_seconds=0.3)
    web = make_sqlite_web(store=store)
    web.active("before@example.com")
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        response = web.signup("during@example.com")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert time.perf_counter() - started < 5
        subscriber = web.store.find_subscriber("before@example.com")
        url = f"{WEB}unsubscribe/{web.token(Purpose.UNSUBSCRIBE, subscriber)}"
        assert web.client.post(url).status_code == 503
        assert web.client.get(WEB + "health").status_code == 200  # WAL: readers go on
    finally:
        locker.kill()
        locker.wait()
        locker.stdout.close()
    assert web.store.find_subscriber("during@example.com") is None  # no partial row
    assert web.subscriber("before@example.com").status == SubscriberStatus.ACTIVE
    assert web.signup("during@example.com").status_code == 200


@pytest.mark.parametrize(
    "name", ["Daily News", 'News, Inc. "Daily"', "오늘의 세계", ("오늘의 세계 " * 8).strip()]
)
def test_confirmation_from_header_round_trips(tmp_path: Path, name: str):
    """D1, D3: a display name with specials is quoted; Korean is encoded and decodes back."""
    config = make_config(tmp_path, env=SECRET, newsletter={"from_name": name})
    raw = confirmation_message(
        config,
        make_environment(config),
        to_address="reader@example.com",
        confirm_url=WEB + "confirm/AQEBmKyn2AaUnY9HyWKcv91qtXmc38O9",
        date=FakeClock()(),
    )
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in headers.split(b"\r\n"))
    # decode_header follows RFC 2047 section 6.2 (space between encoded-words is dropped);
    # the address parser of policy.default does not, so it is not used here.
    value = email.message_from_bytes(raw, policy=policy.compat32)["From"]
    decoded = str(make_header(decode_header(value)))
    assert decoded.endswith(" <news@blog.example.com>")
    shown = decoded.removesuffix(" <news@blog.example.com>")
    assert shown in (name, f'"{name}"', '"News, Inc. \\"Daily\\""')


# --- the command (publisher web) -------------------------------------------------------------


def test_publisher_web_serves_the_app_with_uvicorn(tmp_path: Path):
    port = free_port()
    write_config(tmp_path, web={"port": port})
    write_post(tmp_path, "a.md", category="세계")
    process = subprocess.Popen(
        [sys.executable, "-m", "publisher", "--site", str(tmp_path), "web", "--host", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"PATH": "/usr/bin:/bin", **SECRET},
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(f"Serving {WEB} at http://127.0.0.1:{port}/")
        local = f"http://127.0.0.1:{port}/newsletter/"
        deadline = time.monotonic() + 10
        while True:
            try:
                health = httpx.get(local + "health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "publisher web did not start"
                time.sleep(0.1)
        assert health.status_code == 200
        form = httpx.get(local + "subscribe", headers={"x-forwarded-for": "1.2.3.4"})
        assert 'value="세계"' in form.text  # categories read from the posts
        assert f'action="{WEB}subscribe"' in form.text  # URLs from config, not Host
        assert "server" not in form.headers
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "/newsletter/" not in output  # no access log: paths carry tokens (S20)


def test_publisher_serve_mounts_the_service_beside_the_preview(tmp_path: Path):
    """The preview's pages post to the preview's own /newsletter/, not to production."""
    port = free_port()
    write_config(tmp_path, web={"base_url": "https://subscribe.example.net/news/"})
    write_post(tmp_path, "a.md", category="세계")
    command = [sys.executable, "-m", "publisher", "--site", str(tmp_path), "serve"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--no-open", "--no-drafts"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", **SECRET},
    )
    local = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                health = httpx.get(local + "newsletter/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "publisher serve did not start"
                time.sleep(0.1)
        assert health.status_code == 200
        page = httpx.get(local + "posts/a/").text
        assert f'action="{local}newsletter/subscribe"' in page
        signup = httpx.post(local + "newsletter/subscribe", data={"email": "p@example.com"})
        assert signup.status_code == 200 and "subscribe.example.net" not in signup.text
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_service_at_the_root_of_its_own_host(make_web: WebFactory):
    web = make_web(web={"base_url": "https://news.example.net/"})
    form = web.client.get("https://news.example.net/subscribe")
    assert form.status_code == 200
    assert 'action="https://news.example.net/subscribe"' in form.text
    assert "form-action https://news.example.net;" in form.headers["content-security-policy"]
    assert "style-src https://blog.example.com;" in form.headers["content-security-policy"]
    response = web.client.post(
        "https://news.example.net/subscribe", data={"email": "r@example.com"}
    )
    assert response.status_code == 200
    [(_, url)] = web.mails()
    assert url.startswith("https://news.example.net/confirm/")
    assert web.client.get(url).status_code == 200


def test_one_click_while_the_message_is_handed_over_withdraws_it_e16(web: Web, smtp_sink: SmtpSink):
    """Issue 8: a one-click POST that lands while RCPT is in progress stops the message."""
    from publisher.deliver.sender import send_issue
    from sending import PlainComposer, make_issue, policy, smtp_to

    reader = web.active("reader@example.com")
    web.active("other@example.com")
    issue = make_issue(web.store)
    smtp_sink.script("reader@example.com", "rcpt", "250 OK", sleep=1.0)  # a slow server
    reports: list[Any] = []

    def sender() -> None:
        reports.append(
            send_issue(
                web.store,
                issue.id,
                smtp_to(smtp_sink),
                PlainComposer(),
                policy(),
                clock=web.store.clock,
            )
        )

    thread = threading.Thread(target=sender)
    thread.start()
    deadline = time.monotonic() + 10
    while "reader@example.com" not in [a for a, _ in smtp_sink.rcpts()]:
        assert time.monotonic() < deadline, "RCPT never arrived"
        time.sleep(0.01)
    url = f"{WEB}unsubscribe/{web.token(Purpose.UNSUBSCRIBE, reader)}"
    assert web.client.post(url, content=ONE_CLICK, headers=URLENCODED).status_code == 200
    thread.join(20)
    assert smtp_sink.recipients() == ["other@example.com"]
    assert (reports[0].sent, reports[0].skipped, reports[0].withdrawn) == (1, 1, 1)
