"""Durable, at-least-once confirmation mails (publisher.deliver.confirmations), on SQLite and PostgreSQL.

The signup queues a ``confirmation_mails`` row in its own transaction; these
tests take the process away at the awkward moments (RELIABILITY G1, G3) and
check that the mail still goes out, once, or at most once more when the server
may already have it. The clock is injected: back-off and leases are waited out
by moving it, never by sleeping.
"""

from __future__ import annotations

import email
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from builders import make_config, write_config
from publisher.config import load_config
from publisher.deliver.confirmations import ConfirmationMailer, MailPolicy
from publisher.deliver.transports import transport_factory
from publisher.publish.templating import make_environment
from publisher.schedule.runner import Runner
from publisher.store import Store, SubscriberStatus
from publisher.store.signups import ConfirmationMail, MailStatus, WebStore
from sending import PlainComposer
from smtp_sink import SmtpSink, free_port
from test_web import (  # the app factory is shared with test_web.py
    SECRET,
    WEB,
    FakeClock,
    RecordingMailer,
    Web,
    WebFactory,
    _close,
    _web_factory,
    confirm_form,
)

READER = "reader@example.com"


@pytest.fixture
def make_web(db_url: str, tmp_path: Path) -> Iterator[WebFactory]:
    """test_web.py's app factory: the app on the test's database (SQLite, then PostgreSQL)."""
    made: list[Web] = []
    yield _web_factory(db_url, tmp_path, made)
    _close(made)


def smtp_sections(port: int) -> dict[str, Any]:
    return {
        "newsletter": {"transport": "smtp"},
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "timeout_seconds": 5},
        "web": {"signups_per_ip_per_hour": 100},
    }


def smtp_mailer(root: Path, sections: dict[str, Any], clock: FakeClock) -> ConfirmationMailer:
    config = make_config(root, env=SECRET, **sections)
    return ConfirmationMailer(config, make_environment(config), transport_factory(config), clock)


def smtp_web(make_web: WebFactory, root: Path, port: int, clock: FakeClock, **kw: Any) -> Web:
    sections = smtp_sections(port)
    return make_web(mailer=smtp_mailer(root, sections, clock), clock=clock, **sections, **kw)


def rows(web: Web) -> list[ConfirmationMail]:
    return web.service.web_store.confirmation_mails()


def settle(web: Web) -> None:
    assert web.service.queue.wait_idle(10)


def wait_until(condition: Callable[[], object], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def stop(web: Web) -> None:
    """The app shuts down (the fixture's second close is a no-op)."""
    web.client.__exit__(None, None, None)
    web.store.close()


def queue_signup(store: Store, address: str = READER) -> None:
    """A signup committed by a web process that is gone now: the row is all that is left."""
    result = WebStore.open(store).signup(
        address, (), source="web signup from 203.0.113.7", text_version="t", quotas=[]
    )
    assert result.send


def confirm_link(sink: SmtpSink, index: int = 0) -> str:
    message = email.message_from_bytes(sink.received[index].data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(re.escape(WEB) + r"confirm/[A-Za-z0-9_-]+", body.get_content())
    assert found is not None
    return found[0]


# --- durability (G1, G3, STYLE habit 6) --------------------------------------------------------


def test_a_queued_mail_survives_an_app_restart(
    make_web: WebFactory, smtp_sink: SmtpSink, tmp_path: Path
):
    """The mail server is down at signup; the app stops; the next app sends the mail."""
    clock = FakeClock()
    first = smtp_web(make_web, tmp_path, free_port(), clock)  # nothing listens there (F11)
    assert first.signup().status_code == 200
    settle(first)
    [row] = rows(first)
    assert (row.status, row.attempts) == (MailStatus.PENDING, 1)
    assert row.last_error is not None and row.last_error.startswith("server_down")
    assert row.next_attempt_at == clock.now + timedelta(minutes=1)
    assert (row.claimed_by, row.lease_until) == (None, None)
    stop(first)

    clock.advance(minutes=1)
    second = smtp_web(make_web, tmp_path, smtp_sink.port, clock)
    wait_until(lambda: smtp_sink.received)  # no signup, no wake: the start-up pass sent it
    settle(second)
    assert [r.rcpt_tos for r in smtp_sink.received] == [(READER,)]
    [row] = rows(second)
    assert (row.status, row.attempts, row.last_error) == (MailStatus.SENT, 2, None)
    # The link was signed at send time for the signup's state, and it works (E10).
    link = confirm_link(smtp_sink)
    assert second.client.post(link, data=confirm_form(second, link)).status_code == 200
    assert second.subscriber().status == SubscriberStatus.ACTIVE


def test_a_transport_that_raises_is_retried_after_a_restart(make_web: WebFactory, tmp_path: Path):
    class Broken:
        def send_confirmation(self, recipient: str, confirm_url: str) -> Any:
            raise OSError("the mail library fell over")

    clock = FakeClock()
    first = make_web(mailer=Broken(), clock=clock)
    first.signup()
    settle(first)
    [row] = rows(first)
    assert (row.status, row.attempts) == (MailStatus.PENDING, 1)
    assert "the mail library fell over" in (row.last_error or "")
    stop(first)
    clock.advance(minutes=2)
    second = make_web(clock=clock)
    assert [r for r, _ in second.mails()] == [READER]


def test_a_mail_claimed_by_a_crashed_process_is_sent_once_after_its_lease(
    make_web: WebFactory, smtp_sink: SmtpSink, db_url: str, tmp_path: Path
):
    """G1: the dead process claimed the row and maybe got the 250; one more copy at most."""
    clock = FakeClock()
    store = Store.open(db_url, clock=clock)
    queue_signup(store)
    lease = MailPolicy().lease
    [claimed] = WebStore(store).claim_mails("gone-host:4242:dead", 1, lease)
    assert (claimed.status, claimed.attempts) == (MailStatus.SENDING, 1)
    web = smtp_web(make_web, tmp_path, smtp_sink.port, clock, store=store)
    settle(web)
    assert smtp_sink.received == []  # the lease still holds: maybe it is still sending
    clock.advance(seconds=lease.total_seconds() - 1)
    settle(web)
    assert smtp_sink.received == []
    clock.advance(seconds=2)
    settle(web)
    assert [r.rcpt_tos for r in smtp_sink.received] == [(READER,)]
    [row] = rows(web)
    assert (row.status, row.attempts, row.claimed_by) == (MailStatus.SENT, 2, None)
    clock.advance(hours=1)
    settle(web)
    assert len(smtp_sink.received) == 1  # sent is final


# --- retries (F1, F2, F4, G13) ----------------------------------------------------------------


def test_a_temporary_failure_is_retried_after_the_back_off(
    make_web: WebFactory, smtp_sink: SmtpSink, tmp_path: Path
):
    smtp_sink.script(READER, "rcpt", "451 4.7.1 greylisted, try again later")
    web = smtp_web(make_web, tmp_path, smtp_sink.port, FakeClock())
    web.signup()
    settle(web)
    [row] = rows(web)
    assert (row.status, row.attempts) == (MailStatus.PENDING, 1)
    assert "451" in (row.last_error or "")
    web.clock.advance(seconds=59)
    settle(web)
    assert smtp_sink.received == []  # not before the back-off
    web.clock.advance(seconds=1)
    settle(web)
    assert [r.rcpt_tos for r in smtp_sink.received] == [(READER,)]
    [row] = rows(web)
    assert (row.status, row.attempts) == (MailStatus.SENT, 2)


def test_retries_are_bounded_and_a_permanent_refusal_is_final(
    make_web: WebFactory, smtp_sink: SmtpSink, tmp_path: Path
):
    smtp_sink.script("busy@example.com", "rcpt", "451 4.7.1 try later", times=None)
    smtp_sink.script("gone@example.com", "rcpt", "550 5.1.1 no such user", times=None)
    web = smtp_web(make_web, tmp_path, smtp_sink.port, FakeClock())
    web.signup("busy@example.com")
    web.signup("gone@example.com")
    for _ in range(20):  # back-off 1, 2, 4, 8 minutes: five attempts within 15 minutes
        settle(web)
        web.clock.advance(minutes=1)
    busy, gone = rows(web)
    assert (busy.status, busy.attempts) == (MailStatus.FAILED, MailPolicy().attempts)
    assert (gone.status, gone.attempts) == (MailStatus.FAILED, 1)
    assert "550" in (gone.last_error or "")
    assert smtp_sink.received == []


def test_no_mail_when_the_subscriber_changed_before_the_send(make_web: WebFactory, db_url: str):
    """E10: the link would be dead (the state it confirms is gone), so none is sent."""
    clock = FakeClock()
    store = Store.open(db_url, clock=clock)
    queue_signup(store)
    subscriber = store.find_subscriber(READER)
    assert subscriber is not None
    store.set_status(subscriber.id, SubscriberStatus.ACTIVE)  # e.g. added by the operator
    web = make_web(mailer=RecordingMailer(), store=store, clock=clock)
    assert web.mails() == []
    [row] = rows(web)
    assert row.status == MailStatus.FAILED
    assert row.last_error == f"subscriber #{subscriber.id} is active"


# --- publisher run (G1: the web process is down) -----------------------------------------------


def test_publisher_run_sends_what_the_web_service_left(
    smtp_sink: SmtpSink, db_url: str, tmp_path: Path
):
    root = write_config(tmp_path / "site", **smtp_sections(smtp_sink.port))
    config = load_config(root, env=SECRET)
    clock = FakeClock()
    store = Store.open(db_url, clock=clock)
    try:
        queue_signup(store)
        log = logging.getLogger("t")
        runner = Runner(
            config, store, clock, transport_factory(config), log, composer=PlainComposer()
        )
        runner.tick()
        assert [r.rcpt_tos for r in smtp_sink.received] == [(READER,)]
        [row] = WebStore(store).confirmation_mails()
        assert (row.status, row.attempts) == (MailStatus.SENT, 1)
        runner.tick()
        assert len(smtp_sink.received) == 1
    finally:
        store.close()


def test_publisher_run_leaves_a_database_without_the_web_service_alone(
    smtp_sink: SmtpSink, db_url: str, tmp_path: Path
):
    root = write_config(tmp_path / "site", **smtp_sections(smtp_sink.port))
    config = load_config(root, env=SECRET)
    clock = FakeClock()
    store = Store.open(db_url, clock=clock)
    try:
        log = logging.getLogger("t")
        Runner(
            config, store, clock, transport_factory(config), log, composer=PlainComposer()
        ).tick()
        assert not WebStore(store).has_queued()  # nothing queued, nothing drained
        assert store.get_setting("web_schema_version") is None
    finally:
        store.close()
