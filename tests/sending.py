"""Builders for store and sender tests: a settable clock, a plain composer, policies."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from publisher.deliver.sender import SendPolicy
from publisher.deliver.transports import SmtpSettings, SmtpTransport, TransportFactory
from publisher.store import Consent, ConsentMethod, Issue, NewIssue, Store, Subscriber
from smtp_sink import SmtpSink

START = datetime(2025, 6, 20, 0, 0, tzinfo=UTC)
OPERATOR = Consent(ConsentMethod.OPERATOR, source="tests")


class FakeClock:
    """An injected clock: aware UTC, moves only when told."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class PlainComposer:
    """A minimal composer: Message-ID per row, the stored text as body.

    ``fail_for`` addresses raise while building (G13: a poison recipient).
    """

    def __init__(self, fail_for: set[str] | None = None) -> None:
        self.fail_for = fail_for or set()
        self.built: list[str] = []

    def message_id(self, issue: Issue, subscriber: Subscriber) -> str:
        return f"<issue-{issue.id}.{subscriber.id}@blog.example.com>"

    def compose(self, issue: Issue, subscriber: Subscriber, message_id: str) -> bytes:
        if subscriber.email in self.fail_for:
            raise ValueError(f"template blew up for {subscriber.email}")
        self.built.append(subscriber.email)
        msg = EmailMessage()
        msg["From"] = "news@blog.example.com"
        msg["To"] = subscriber.email
        msg["Subject"] = issue.subject
        msg["Message-ID"] = message_id
        msg.set_content(issue.text)
        return msg.as_bytes()


def policy(**overrides: Any) -> SendPolicy:
    """Small, fast defaults for tests."""
    base = SendPolicy(
        from_address="news@blog.example.com",
        in_doubt_policy="resend_once",
        max_attempts=5,
        retry_base_seconds=60,
        max_retry_hours=72,
        pause_after_rejections=5,
        bounce_limit=3,
        concurrency=1,
        rate_per_second=0,
        rate_per_hour=0,
        lease_seconds=300,
        claim_size=3,
    )
    return dataclasses.replace(base, **overrides)


def smtp_to(sink: SmtpSink, timeout: float = 2.0) -> TransportFactory:
    settings = SmtpSettings(sink.host, sink.port, "none", "", None, timeout, 20, "blog.example.com")
    return lambda: SmtpTransport(settings)


_OPENED: list[Store] = []


def open_store(url: str, clock: FakeClock | None = None, **kw: Any) -> Store:
    """Store.open with a fake clock; closed after the test (conftest ``_close_stores``)."""
    store = Store.open(url, clock=clock or FakeClock(), **kw)
    _OPENED.append(store)
    return store


def close_stores() -> None:
    while _OPENED:
        _OPENED.pop().close()


def add_subscribers(store: Store, count: int, prefix: str = "reader") -> list[Subscriber]:
    return [
        store.add_subscriber(f"{prefix}{i}@example.com", OPERATOR)[0] for i in range(1, count + 1)
    ]


def make_issue(store: Store, key: str = "post:hello", categories: tuple[str, ...] = ()) -> Issue:
    issue, _ = store.create_issue(
        NewIssue(
            key=key,
            post_slugs=(key.partition(":")[2],),
            categories=categories,
            subject="안녕하세요",
            preheader="미리보기",
            html="<p>본문</p>",
            text="본문",
            digest="d" * 64,
        )
    )
    return issue
