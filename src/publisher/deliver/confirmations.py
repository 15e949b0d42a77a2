"""The double opt-in confirmation mail, queued in the database and sent off the request path.

What the mail holds (E2, S7): the site's own words, the site title and the
confirmation link, nothing else. No text a visitor typed reaches it, not even
the address beyond the ``To`` header, so the signup form cannot be used to
mail spam to strangers (listmonk #1133, Ghost #20767). Headers are written as
in publisher.deliver.message: every free-text value is checked for CR, LF, NUL and
``=?`` (D1, D1b), the subject is encoded so it round-trips (D3), addresses go
through email-validator (D4, D5); ``Auto-Submitted`` keeps vacation replies
away (R10). It is DKIM-signed when ``[dkim].enabled``.

Delivery policy (STYLE habit 6): **at-least-once**. The request only queues a
``signup_requests`` row (the same work for every address, S13); each pass of
:class:`ConfirmationDrain` first applies those, each in one transaction that
removes it and inserts a ``confirmation_mails`` row (publisher.store.signups) together with the
pending subscriber and the quotas, so a committed signup always has its mail
queued, and the per-address quota still allows one row per window (E4, E14).
:class:`ConfirmationDrain` claims due rows with a lease (§1.3 step 1: ``BEGIN
IMMEDIATE`` on SQLite, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), signs the
confirm link only then (bound to the row's ``state_version``, so the row holds
no secret, S2), sends through the configured transport and marks the row sent
right after the server's ``250``. Temporary failures (4xx, server down, no
reply after DATA, AUTH refused, a transport that raises) are retried with
doubling back-off up to :attr:`MailPolicy.attempts` attempts; a permanent
refusal or a subscriber whose state changed since the signup (the link would
be dead, E10) fails the row. The request only wakes :class:`ConfirmationWorker`,
one thread per web process, so every signup answers in the same time whether or
not a mail goes out (S13). The worker also drains at start-up and every
``poll_seconds``, and ``publisher run`` drains in its send step, so rows a dead
process left ``pending``, or ``sending`` with an expired lease, are sent later
(G1, G3). A crash between the server's ``250`` and the ``sent`` commit sends that
mail once more when the lease runs out: at most one duplicate confirmation
mail, harmless because both links confirm the same state. Logs name the
subscriber and row ids, never the link (S20).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

import jinja2

from publisher.clock import Clock
from publisher.config import Config
from publisher.deliver.message import (
    encode_subject,
    header_block,
    mailbox,
    normalize_address,
    sign,
    site_host,
)
from publisher.deliver.sender import worker_name
from publisher.deliver.tokens import Purpose, TokenSigner, confirm_url
from publisher.deliver.transports import Outcome, SendResult, Stage, TransportFactory
from publisher.publish.templating import render
from publisher.store import StoreError
from publisher.store.quotas import Quota
from publisher.store.signups import MAILABLE, ConfirmationMail, WebStore

log = logging.getLogger("publisher.web")

TEXT_TEMPLATE = "web/confirmation_email.txt"
HTML_TEMPLATE = "web/confirmation_email.html"
# Retried with back-off. IN_DOUBT too (F9): at-least-once accepts one duplicate; AUTH_FAILED
# (F13) because a fixed password should still get the mail out, within the attempts.
RETRY = (Outcome.TEMPORARY, Outcome.SERVER_DOWN, Outcome.IN_DOUBT, Outcome.AUTH_FAILED)


def confirmation_message(
    config: Config,
    env: jinja2.Environment,
    *,
    to_address: str,
    confirm_url: str,
    date: datetime,
    message_id: str | None = None,
) -> bytes:
    """The confirmation mail as RFC 5322 bytes: the link is its only variable part."""
    host = site_host(config)
    subject = f"{config.site.title} 뉴스레터 구독 확인"
    headers = [
        (
            "From",
            mailbox(config.from_name, normalize_address("From", config.newsletter.from_address)),
        ),
        ("To", normalize_address("To", to_address)),
        ("Subject", encode_subject(subject)),
        ("Date", format_datetime(date)),
        ("Message-ID", message_id or f"<confirm.{secrets.token_hex(12)}@{host}>"),
        ("Auto-Submitted", "auto-generated"),  # RFC 3834 (R10)
        ("X-Auto-Response-Suppress", "OOF, AutoReply"),
    ]
    context = {
        "site_title": config.site.title,
        "confirm_url": confirm_url,
        "hours": config.web.token_max_age_hours,
        "lang": config.site.language,
    }
    body = EmailMessage(policy=policy.SMTP)
    body.set_content(render(env, TEXT_TEMPLATE, **context))
    body.add_alternative(render(env, HTML_TEMPLATE, **context), subtype="html")
    message = header_block(headers) + body.as_bytes()
    return sign(config, message) if config.dkim.enabled else message


def confirmation_quotas(config: Config, address: str) -> list[Quota]:
    """At most one mail per address per window, and a global hourly cap (E4, E5, S12)."""
    web = config.web
    digest = hashlib.sha256(address.encode("utf-8")).hexdigest()[:32]
    return [
        Quota("address:" + digest, 1, timedelta(hours=web.confirmations_per_address_hours)),
        Quota("confirmations", web.confirmations_per_hour, timedelta(hours=1)),
    ]


class Mailer(Protocol):
    """Sends one confirmation mail; :class:`ConfirmationMailer` in production."""

    def send_confirmation(self, recipient: str, confirm_url: str) -> SendResult: ...


class ConfirmationMailer:
    """Sends one confirmation mail through the configured transport (outbox or SMTP), once.

    Retries are the queue's business (:class:`ConfirmationDrain`), kept in the database.
    """

    def __init__(
        self,
        config: Config,
        env: jinja2.Environment,
        transports: TransportFactory,
        clock: Clock,
    ) -> None:
        self.config = config
        self.env = env
        self.transports = transports
        self.clock = clock

    def send_confirmation(self, recipient: str, confirm_url: str) -> SendResult:
        message = confirmation_message(
            self.config, self.env, to_address=recipient, confirm_url=confirm_url, date=self.clock()
        )
        transport = self.transports()
        try:
            return transport.send(self.config.newsletter.from_address, recipient, message)
        finally:
            transport.close()


@dataclass(frozen=True)
class MailPolicy:
    """Attempts, back-off and lease of the confirmation queue."""

    attempts: int = 5  # then the row is failed (G13); the visitor may sign up again
    backoff: timedelta = timedelta(minutes=1)  # doubled per attempt: 1, 2, 4, 8 minutes
    lease: timedelta = timedelta(minutes=5)  # longer than any one SMTP conversation

    @classmethod
    def from_config(cls, config: Config) -> MailPolicy:
        # A send makes a handful of SMTP round trips, each up to timeout_seconds (F10).
        return cls(lease=max(cls.lease, timedelta(seconds=10 * config.smtp.timeout_seconds)))

    def retry_at(self, now: datetime, attempts: int) -> datetime:
        delay: timedelta = self.backoff * 2 ** max(attempts - 1, 0)
        return now + delay


@dataclass
class DrainReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


class ConfirmationDrain:
    """One pass over the queue: claim a due row, send it, record the outcome, repeat."""

    def __init__(
        self,
        config: Config,
        store: WebStore,
        signer: TokenSigner,
        mailer: Mailer,
        *,
        clock: Clock,
        policy: MailPolicy | None = None,
        name: str | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.signer = signer
        self.mailer = mailer
        self.policy = policy or MailPolicy.from_config(config)
        self.name = name or worker_name()

    def run(self, stop: threading.Event | None = None) -> DrainReport:
        """Apply queued signups, then send every mail due now; returns early on ``stop`` (G2)."""
        report = DrainReport()
        self.store.apply_signups(lambda address: confirmation_quotas(self.config, address), stop)
        while stop is None or not stop.is_set():
            # One row per claim: a stop leaves nothing claimed and unattempted.
            claimed = self.store.claim_mails(self.name, 1, self.policy.lease)
            if not claimed:
                break
            for mail in claimed:
                self._deliver(mail, report)
        return report

    def _deliver(self, mail: ConfirmationMail, report: DrainReport) -> None:
        unsendable = self._unsendable(mail)
        if unsendable is not None:
            log.info("confirmation mail #%d not sent: %s", mail.id, unsendable)
            self.store.mark_mail_failed(mail.id, self.name, unsendable)
            report.failed += 1
            return
        token = self.signer.sign(Purpose.CONFIRM, mail.subscriber_id, mail.state_version)
        try:
            result = self.mailer.send_confirmation(mail.email, confirm_url(self.config, token))
        except Exception as exc:  # a broken transport must not stop the queue: retried
            log.exception("confirmation mail #%d: the transport raised", mail.id)
            result = SendResult(Outcome.TEMPORARY, Stage.CONNECT, reply=repr(exc))
        self._record(mail, result, report)

    def _unsendable(self, mail: ConfirmationMail) -> str | None:
        if mail.attempts > self.policy.attempts:  # its lease ran out on the last attempt
            return f"gave up after {self.policy.attempts} attempts"
        if mail.subscriber_status not in MAILABLE:
            return f"subscriber #{mail.subscriber_id} is {mail.subscriber_status or 'gone'}"
        if mail.subscriber_version != mail.state_version:
            # The link would be dead (E10): the state it confirms is gone.
            return f"subscriber #{mail.subscriber_id} changed since the signup"
        return None

    def _record(self, mail: ConfirmationMail, result: SendResult, report: DrainReport) -> None:
        if result.outcome == Outcome.SENT:
            self.store.mark_mail_sent(mail.id)
            report.sent += 1
            return
        reply = " ".join(str(part) for part in (result.code, result.reply) if part)
        error = f"{result.outcome}: {reply}"[:500]  # the basic code too (F8)
        if result.outcome in RETRY and mail.attempts < self.policy.attempts:
            retry_at = self.policy.retry_at(self.clock(), mail.attempts)
            log.warning("confirmation mail #%d: %s; retrying at %s", mail.id, error, retry_at)
            self.store.mark_mail_retry(mail.id, self.name, error, retry_at)
            report.retrying += 1
            return
        log.warning("confirmation mail #%d failed for good: %s", mail.id, error)
        self.store.mark_mail_failed(mail.id, self.name, error)
        report.failed += 1


class ConfirmationWorker:
    """The web process's sending thread: a pass when woken, at start and every ``poll_seconds``.

    Nothing is kept in memory but "a pass is wanted"; the queue is the table.
    """

    def __init__(self, drain: Callable[[threading.Event], object], *, poll_seconds: float = 15.0):
        self._drain = drain
        self._poll = poll_seconds
        self._cond = threading.Condition()
        self._wanted = 0  # passes asked for; a pass covers every request made before it
        self._done = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent); its first pass picks up what a dead process left (G1)."""
        self.wake()

    def wake(self) -> None:
        """Ask for a pass soon; called after a signup queued a mail. Never waits for it (S13)."""
        with self._cond:
            self._wanted += 1
            if not self._stop.is_set() and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(
                    target=self._work, name="publisher-confirmations", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Ask for a pass and wait until one has run; False on timeout."""
        self.wake()
        with self._cond:
            wanted = self._wanted
            return self._cond.wait_for(lambda: self._done >= wanted, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Finish the mail in flight and stop; queued rows stay in the database."""
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stop.is_set() or self._wanted > self._done, self._poll
                )
                if self._stop.is_set():
                    return
                wanted = self._wanted
            self._pass()
            with self._cond:
                self._done = max(self._done, wanted)
                self._cond.notify_all()

    def _pass(self) -> None:
        try:
            self._drain(self._stop)
        except StoreError as exc:  # locked or unreachable (H1, H3): the next pass retries
            log.warning("confirmation mails wait for the database: %s", exc)
        except Exception:  # the thread must survive anything; the rows are safe
            log.exception("confirmation mail pass failed")
