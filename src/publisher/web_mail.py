"""The double opt-in confirmation mail, sent off the request path.

What the mail holds (E2, S7): the site's own words, the site title and the
confirmation link, nothing else. No text a visitor typed reaches it, not even
the address beyond the ``To`` header, so the signup form cannot be used to
mail spam to strangers (listmonk #1133, Ghost #20767). Headers are written as
in publisher.message: every free-text value is checked for CR, LF, NUL and
``=?`` (D1, D1b), the subject is encoded so it round-trips (D3), addresses go
through email-validator (D4, D5); ``Auto-Submitted`` keeps vacation replies
away (R10). It is DKIM-signed when ``[dkim].enabled``.

Delivery policy: the request only puts a job on :class:`MailQueue`; one worker
thread builds and sends it, so every signup answers in the same time whether
or not a mail goes out (S13). A temporary failure is retried twice with
back-off. Confirmation mails are at-most-once: a job still queued when the
process dies is lost, and the visitor can sign up again once the per-address
throttle allows (``[web].confirmations_per_address_hours``). Logs name the
subscriber id, never the link (S20).
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

import jinja2

from publisher.config import Config
from publisher.message import (
    encode_subject,
    header_block,
    mailbox,
    normalize_address,
    sign,
    site_host,
)
from publisher.templating import render
from publisher.transports import Outcome, TransportFactory

log = logging.getLogger("publisher.web")

TEXT_TEMPLATE = "web/confirmation_email.txt"
HTML_TEMPLATE = "web/confirmation_email.html"
_RETRY = (Outcome.TEMPORARY, Outcome.SERVER_DOWN)


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


class ConfirmationMailer:
    """Sends one confirmation mail through the configured transport (outbox or SMTP)."""

    def __init__(
        self,
        config: Config,
        env: jinja2.Environment,
        transports: TransportFactory,
        clock: Callable[[], datetime],
        *,
        attempts: int = 3,
        retry_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.env = env
        self.transports = transports
        self.clock = clock
        self.attempts = attempts
        self.retry_seconds = retry_seconds
        self.sleep = sleep

    def send_confirmation(self, recipient: str, confirm_url: str) -> bool:
        """True when the server (or the outbox) took the message."""
        message = confirmation_message(
            self.config, self.env, to_address=recipient, confirm_url=confirm_url, date=self.clock()
        )
        for attempt in range(self.attempts):
            transport = self.transports()
            try:
                result = transport.send(self.config.newsletter.from_address, recipient, message)
            finally:
                transport.close()
            if result.outcome == Outcome.SENT:
                return True
            log.warning("confirmation mail: %s (%s)", result.outcome, result.reply[:200])
            if result.outcome not in _RETRY or attempt + 1 == self.attempts:
                return False
            self.sleep(self.retry_seconds * 2**attempt)
        return False


@dataclass(frozen=True)
class ConfirmationJob:
    subscriber_id: int
    address: str
    state_version: int


class MailQueue:
    """One worker thread taking jobs in order; started on the first job."""

    def __init__(self, handle: Callable[[ConfirmationJob], None]) -> None:
        self._handle = handle
        self._jobs: queue.Queue[ConfirmationJob | None] = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, job: ConfirmationJob) -> None:
        with self._idle:
            self._pending += 1
        self._ensure_started()
        self._jobs.put(job)

    def wait_idle(self, timeout: float) -> bool:
        """Block until every submitted job is done; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Finish queued jobs, then stop the worker."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._jobs.put(None)
            thread.join(timeout)

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="publisher-confirmations", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._handle(job)
            except Exception:  # a failed mail must not stop the worker
                log.exception("confirmation mail for subscriber #%d failed", job.subscriber_id)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
