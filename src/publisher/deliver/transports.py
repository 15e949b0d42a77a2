"""Where mail goes: an outbox folder of ``.eml`` files, or an SMTP server.

Both implement :class:`Transport`: ``send(envelope_from, recipient, bytes)``
returns a :class:`SendResult` and never raises for anything the server or the
network does; the sender decides what each outcome means for the delivery row
(publisher.deliver.sender). Classification (RELIABILITY F, §1.3):

=================  =====================================================  ==============
outcome            when                                                    IDs
=================  =====================================================  ==============
sent               250 after the final ``.``
temporary          4xx anywhere (421, 450, 451, 452), 552 at RCPT,         F1-F3, F5
                   a connection error before the message was complete
permanent          5xx at MAIL or RCPT                                     F4
content_rejected   5xx at DATA (the content or the sender is refused)      F6
too_big            552 at DATA: the message is too big for everyone        D14
in_doubt           no readable reply after the final ``.`` (drop/timeout)  F9, F10
auth_failed        535 and other AUTH refusals                             F13
server_down        refused, unreachable, TLS failure, 421 greeting         F11, F12
withdrawn          ``before_data`` said no: RSET, nothing handed over      E16, issue 8
=================  =====================================================  ==============

``send(..., before_data=check)`` calls ``check()`` as late as the protocol allows
before the message can reach the server: after RCPT TO was accepted and just
before DATA (SMTP), or just before the file is written (outbox). When it returns
False the transaction is reset (``RSET``) and the result is ``withdrawn``; an
exception from it resets the transaction too and propagates. The newsletter
sender uses it to re-check the subscriber and to record that the message may now
be at the server (publisher.deliver.sender).

On top of the outcome, ``SendResult.throttled`` says the server asked the
*sender* to slow down (F1, F15): a ``421`` at any stage (the greeting included),
or any 4xx whose enhanced status is ``4.7.x`` (RFC 3463 security or policy
status; Gmail's ``421 4.7.0``/``4.7.28``, Yahoo's ``421 4.7.0 [TSS04]``, the
catalogue's ``451 4.7.1``), unless the reply says it is greylisting. The outcome stays what the table says, so callers
that do not care (the confirmation mailer) keep retrying as before; the newsletter
sender pauses every worker instead of backing off one row. Other 4xx, such as
greylisting's ``450 4.2.0`` or ``452 4.5.3`` (too many recipients, F3), are not
throttling.

The SMTP transport always sets ``timeout=`` (L4), verifies certificates with
``ssl.create_default_context()`` (F12), refuses to continue when STARTTLS is
configured but not offered, never sends a password without TLS, sends one
recipient per transaction (F7) and reconnects after
``[smtp].messages_per_connection`` messages or a dropped connection (F14).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import smtplib
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from enum import StrEnum
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from publisher.config import SMTP_URL_ENV as SMTP_URL_ENV
from publisher.config import Config
from publisher.errors import PublisherError

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")


class Outcome(StrEnum):
    SENT = "sent"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    CONTENT_REJECTED = "content_rejected"
    TOO_BIG = "too_big"
    IN_DOUBT = "in_doubt"
    AUTH_FAILED = "auth_failed"
    SERVER_DOWN = "server_down"
    WITHDRAWN = "withdrawn"  # before_data() said no; nothing was handed over (issue 8)


class Stage(StrEnum):
    """Where in the SMTP transaction the outcome was decided."""

    CONNECT = "connect"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"  # the DATA command or the message body, before the final '.'
    END = "end"  # the reply to the final '.'


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    stage: Stage
    code: int | None = None
    enhanced_code: str | None = None  # "5.1.1" (F8)
    reply: str = ""
    connection_lost: bool = False  # the connection was dropped; the next send reconnects
    throttled: bool = False  # 421 or 4xx 4.7.x: slow the whole send down (F1, F15)


BeforeData = Callable[[], bool]  # the last check before the message can reach the server


class Transport(Protocol):
    def send(
        self,
        envelope_from: str,
        recipient: str,
        message: bytes,
        before_data: BeforeData | None = None,
    ) -> SendResult: ...

    def close(self) -> None: ...


TransportFactory = Callable[[], Transport]


def result(outcome: Outcome, stage: Stage, code: int | None, reply: str, **kw: bool) -> SendResult:
    """A SendResult with the enhanced status code split from the reply text (F8)."""
    text = reply.strip()
    match = _ENHANCED.match(text)
    enhanced = match[1] if match else None
    throttled = is_throttle(code, enhanced, text)
    return SendResult(outcome, stage, code, enhanced, text, throttled=throttled, **kw)


def is_throttle(code: int | None, enhanced_code: str | None, reply: str = "") -> bool:
    """True when a reply asks the sender, not one recipient, to slow down (F1, F15).

    milter-greylist and others greylist one recipient with ``451 4.7.1 Greylisting
    in action``: that is per-row back-off (F2), or one greylisted subscriber would
    pause the whole list for as long as the greylist lasts.
    """
    if code is None or not 400 <= code < 500:
        return False
    if code == 421:
        return True
    return (enhanced_code or "").startswith("4.7.") and "greylist" not in reply.lower()


# --- outbox --------------------------------------------------------------------------------


class OutboxTransport:
    """Writes each message to ``<outbox>/<message-id>.eml``: the default, no server needed.

    Written like Mailman's queue files (G10): a temporary file, fsync, then
    ``os.replace``, so a crash never leaves half a message. A resend of the same
    Message-ID replaces the file.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(
        self,
        envelope_from: str,
        recipient: str,
        message: bytes,
        before_data: BeforeData | None = None,
    ) -> SendResult:
        path = self.directory / (_file_name(message) + ".eml")
        if before_data is not None and not before_data():
            return result(Outcome.WITHDRAWN, Stage.RCPT, None, "withdrawn before writing")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, message)
        except OSError as exc:
            # A full or read-only disk stops the run: no recipient is at fault.
            return result(Outcome.SERVER_DOWN, Stage.CONNECT, None, f"outbox {path}: {exc}")
        return result(Outcome.SENT, Stage.END, None, f"written to {path}")

    def close(self) -> None:
        return None


def _file_name(message: bytes) -> str:
    headers = BytesHeaderParser().parsebytes(message)
    message_id = str(headers.get("Message-ID", "")).strip().strip("<>")
    safe = re.sub(r"[^A-Za-z0-9._@+-]", "_", message_id)[:200]
    return safe or hashlib.sha256(message).hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".eml")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# --- SMTP settings -----------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # starttls | tls | none
    username: str
    password: str | None
    timeout: float
    messages_per_connection: int
    helo: str


def smtp_settings(config: Config) -> SmtpSettings:
    """``[smtp]`` with ``$PUBLISHER_SMTP_URL`` (smtp://user@host:port?security=starttls) on top."""
    smtp = config.smtp
    helo = config.newsletter.from_address.rpartition("@")[2]
    settings = SmtpSettings(
        host=smtp.host,
        port=smtp.port,
        security=smtp.security,
        username=smtp.username,
        password=config.secret(smtp.password_env),
        timeout=smtp.timeout_seconds,
        messages_per_connection=smtp.messages_per_connection,
        helo=helo,
    )
    url = config.env.get(SMTP_URL_ENV, "").strip()
    if url:
        settings = _apply_url(settings, url)
    if settings.username and settings.security == "none":
        raise PublisherError(
            "[smtp]: a username is set but security is none; Publisher never sends a "
            "password without TLS (F12)",
            hint='Set [smtp].security = "starttls" or "tls".',
        )
    return settings


def _apply_url(settings: SmtpSettings, url: str) -> SmtpSettings:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    unknown = set(query) - {"security"}
    security = query.get("security", ["tls" if parts.scheme == "smtps" else settings.security])
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname or unknown:
        raise PublisherError(
            f"${SMTP_URL_ENV}: expected smtp://user@host:port?security=starttls, "
            f"got scheme {parts.scheme!r}" + (f" and unknown {sorted(unknown)}" if unknown else ""),
        )
    if security[0] not in ("starttls", "tls", "none"):
        raise PublisherError(f"${SMTP_URL_ENV}: security must be starttls, tls or none")
    return SmtpSettings(
        host=parts.hostname,
        port=parts.port or (465 if security[0] == "tls" else 587),
        security=security[0],
        username=unquote(parts.username or ""),
        password=unquote(parts.password) if parts.password else settings.password,
        timeout=settings.timeout,
        messages_per_connection=settings.messages_per_connection,
        helo=settings.helo,
    )


# --- SMTP ------------------------------------------------------------------------------------


class _SessionFailed(Exception):
    def __init__(self, outcome: SendResult) -> None:
        super().__init__(outcome.reply)
        self.result = outcome


class SmtpTransport:
    """One SMTP connection, reused for ``messages_per_connection`` messages.

    Not thread-safe: each sending worker makes its own (``[smtp].concurrency``).
    ``ssl_context`` defaults to ``ssl.create_default_context()``; tests pass one
    that trusts their own CA, still with verification on.
    """

    def __init__(self, settings: SmtpSettings, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self._context = ssl_context or ssl.create_default_context()
        self._smtp: smtplib.SMTP | None = None
        self._sent_on_connection = 0

    def send(
        self,
        envelope_from: str,
        recipient: str,
        message: bytes,
        before_data: BeforeData | None = None,
    ) -> SendResult:
        try:
            smtp = self._connection()
        except _SessionFailed as failed:
            self._drop()
            return failed.result
        try:
            outcome = self._transaction(smtp, envelope_from, recipient, _wire(message), before_data)
        except BaseException:
            self._drop()  # before_data raised after an RSET attempt: start clean next time
            raise
        if outcome.connection_lost:
            self._drop()
        else:
            self._sent_on_connection += 1
            if self._sent_on_connection >= self.settings.messages_per_connection:
                self.close()  # fresh connection every N messages (R2: ~20 at Yahoo)
        return outcome

    def close(self) -> None:
        if self._smtp is not None:
            # QUIT is a courtesy; the connection is dropped either way.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
        self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
        self._smtp = None
        self._sent_on_connection = 0

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            self._smtp = self._open()
        return self._smtp

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        try:
            smtp = self._connect()
            self._smtp = smtp
            smtp.ehlo()
            if s.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise _SessionFailed(
                        result(
                            Outcome.SERVER_DOWN,
                            Stage.CONNECT,
                            None,
                            f"{s.host}:{s.port} does not offer STARTTLS, which [smtp].security "
                            "requires; not sending without TLS (F12)",
                        )
                    )
                smtp.starttls(context=self._context)
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise _SessionFailed(
                result(Outcome.AUTH_FAILED, Stage.CONNECT, exc.smtp_code, _text(exc.smtp_error))
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _SessionFailed(
                result(Outcome.SERVER_DOWN, Stage.CONNECT, exc.smtp_code, _text(exc.smtp_error))
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            # Refused, unreachable, timed out, or a certificate that does not verify.
            reply = f"cannot connect to {s.host}:{s.port}: {exc.__class__.__name__}: {exc}"
            raise _SessionFailed(result(Outcome.SERVER_DOWN, Stage.CONNECT, None, reply)) from None
        return smtp

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            return smtplib.SMTP_SSL(
                s.host, s.port, local_hostname=s.helo, timeout=s.timeout, context=self._context
            )
        return smtplib.SMTP(s.host, s.port, local_hostname=s.helo, timeout=s.timeout)

    def _transaction(
        self,
        smtp: smtplib.SMTP,
        envelope_from: str,
        recipient: str,
        wire: bytes,
        before_data: BeforeData | None,
    ) -> SendResult:
        stage = Stage.MAIL
        try:
            code, reply = smtp.mail(envelope_from)
            if code != 250:
                return self._refused(smtp, stage, code, reply)
            stage = Stage.RCPT
            code, reply = smtp.rcpt(recipient)  # one recipient per transaction (F7)
            if code not in (250, 251):
                return self._refused(smtp, stage, code, reply)
            if before_data is not None and not self._still_wanted(smtp, before_data):
                return result(Outcome.WITHDRAWN, Stage.RCPT, None, "withdrawn before DATA")
            stage = Stage.DATA
            code, reply = smtp.docmd("DATA")
            if code != 354:
                return self._refused(smtp, stage, code, reply)
            smtp.send(wire)
        except (smtplib.SMTPException, OSError) as exc:
            # The final '.' never left: the server must discard a partial message.
            return result(Outcome.TEMPORARY, stage, None, _lost(exc), connection_lost=True)
        try:
            code, reply = smtp.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            # The server may have the message and we cannot know (F9, F10, §1.2).
            return result(Outcome.IN_DOUBT, Stage.END, None, _lost(exc), connection_lost=True)
        if code == 250:
            return result(Outcome.SENT, Stage.END, code, _text(reply))
        return self._refused(smtp, Stage.END, code, reply, reset=False)

    @staticmethod
    def _still_wanted(smtp: smtplib.SMTP, before_data: BeforeData) -> bool:
        """Ask ``before_data`` with the recipient accepted; RSET when it says no or fails.

        A failed RSET raises SMTPException or OSError: the caller treats that as a
        connection lost before the message (temporary, nothing handed over).
        """
        try:
            wanted = before_data()
        except BaseException:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.rset()
            raise
        if not wanted:
            smtp.rset()
        return wanted

    def _refused(
        self, smtp: smtplib.SMTP, stage: Stage, code: int, reply: bytes, *, reset: bool = True
    ) -> SendResult:
        outcome = classify(stage, code)
        lost = code == 421  # "closing transmission channel" (RFC 5321 §3.8)
        if not lost and reset:
            try:
                smtp.rset()
            except (smtplib.SMTPException, OSError):
                lost = True
        return result(outcome, stage, code, _text(reply), connection_lost=lost)


def classify(stage: Stage, code: int) -> Outcome:
    """What a refusal at ``stage`` means (RELIABILITY F1-F6, D14)."""
    if code == 552 and stage == Stage.RCPT:
        return Outcome.TEMPORARY  # F5: mailbox full, as Mailman
    if code == 552 and stage in (Stage.DATA, Stage.END):
        return Outcome.TOO_BIG  # D14: too big for everyone
    if 400 <= code < 500:
        return Outcome.TEMPORARY
    if 500 <= code < 600:
        return Outcome.PERMANENT if stage in (Stage.MAIL, Stage.RCPT) else Outcome.CONTENT_REJECTED
    return Outcome.TEMPORARY  # an unexpected code: try again later, never "sent"


def _wire(message: bytes) -> bytes:
    """CRLF line ends, dot-stuffing and the final '.' (RFC 5321 §4.5.2; D6)."""
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", message)
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return reply


def _lost(exc: BaseException) -> str:
    return f"connection lost: {exc.__class__.__name__}: {exc}".strip()


# --- construction --------------------------------------------------------------------------


def transport_factory(
    config: Config, ssl_context: ssl.SSLContext | None = None
) -> TransportFactory:
    """A factory making one transport per sending worker, as configured."""
    if config.newsletter.transport == "outbox":
        outbox = config.outbox_path
        return lambda: OutboxTransport(outbox)
    settings = smtp_settings(config)
    return lambda: SmtpTransport(settings, ssl_context)
