"""Reading one inbound message: a bounce, a complaint, an unsubscribe, or nothing.

Pure: bytes in, a :class:`Report` out, no I/O and never an exception for
anything a sender on the internet can put in a message (malformed MIME, wrong
or unknown charsets, 8-bit headers, missing parts); what cannot be read becomes
``Kind.IGNORED`` with a reason for the log line.

What is recognised:

- **Delivery status notifications** (RFC 3464): ``multipart/report;
  report-type=delivery-status`` with a ``message/delivery-status`` part. Per
  recipient, ``Action: failed`` with a ``5.x.x`` ``Status`` (RFC 3463) is a hard
  bounce, ``4.x.x`` or ``Action: delayed`` a soft one; ``delivered``,
  ``relayed`` and ``expanded`` are ignored. A missing ``Status`` is read from
  the ``Diagnostic-Code`` (``smtp; 550 5.1.1 ...`` or a bare ``550``). The
  layouts of Postfix, Exim, Gmail, Outlook/Exchange and Yahoo all take this path.
- **Feedback reports** (ARF, RFC 5965): ``multipart/report;
  report-type=feedback-report``; ``Feedback-Type: abuse`` is a complaint, the
  other types (``not-spam``, ``auth-failure``, ``fraud``, ``virus``, ``other``)
  are ignored. ``Original-Mail-From`` carries our VERP return path,
  ``Original-Rcpt-To`` the recipient (providers may redact it).
- The original message's ``Message-ID`` and ``To`` from a ``text/rfc822-headers``
  or ``message/rfc822`` part: the fallback when no VERP address verifies.
- **Auto-replies** (RFC 3834 ``Auto-Submitted``, ``X-Autoreply``,
  ``Precedence: auto_reply``, vacation subjects): ``Kind.AUTO_REPLY``, which
  changes nothing.
- **Unsubscribe by mail**: a message to ``[newsletter].unsubscribe_mailto``
  (or ``local+<token>@domain``) whose address or subject carries a token.
- A non-standard ``text/plain`` bounce (qmail and old servers) is read for its
  first enhanced status code; an HTML-only "bounce" is ignored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email import policy as email_policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from enum import StrEnum
from typing import Any

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BASIC = re.compile(r"\b([245])\d\d\b")
_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{20,64})(?![A-Za-z0-9_-])")
_VACATION = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|vacation|abwesenheit|"
    r"absence|자동\s*회신|自動返信)",
    re.IGNORECASE,
)
HEADER_LIMIT = 4000  # characters kept of any header value


class Kind(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    AUTO_REPLY = "auto_reply"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Report:
    """What one inbound message says; ``reason`` is for the log line."""

    kind: Kind
    reason: str
    report_id: str  # the report's Message-ID, or a digest of its bytes
    recipients: tuple[str, ...] = ()  # addresses the report says it is about
    status: str = ""  # RFC 3463 enhanced code
    diagnostic: str = ""
    original_message_id: str | None = None
    return_paths: tuple[str, ...] = ()  # addresses that may be our VERP return path
    tokens: tuple[str, ...] = ()
    reported_at: Any = None  # an aware datetime when the report says when


def parse(
    raw: bytes, *, envelope_to: Sequence[str] = (), unsubscribe_address: str | None = None
) -> Report:
    """Read ``raw`` (one RFC 5322 message); ``envelope_to`` are its RCPT TO addresses."""
    report_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    try:
        message = BytesParser(policy=email_policy.compat32).parsebytes(raw)
        return _read(message, report_id, tuple(envelope_to), unsubscribe_address)
    except Exception as exc:  # the email package on hostile input: never a traceback (issue 12)
        return Report(Kind.IGNORED, f"unreadable message ({exc.__class__.__name__})", report_id)


def _read(
    message: Message, digest: str, envelope_to: tuple[str, ...], unsubscribe: str | None
) -> Report:
    report_id = header(message, "Message-ID") or digest
    addressed = envelope_to + tuple(
        a for name in ("Delivered-To", "X-Original-To", "To") for a in addresses(message, name)
    )
    ctype = message.get_content_type()
    if ctype == "multipart/report":
        kind = str(message.get_param("report-type", "") or "").lower()
        if kind == "delivery-status":
            return _dsn(message, report_id, addressed)
        if kind == "feedback-report":
            return _arf(message, report_id, addressed)
    if unsubscribe:
        found = _unsubscribe(message, report_id, addressed, unsubscribe)
        if found is not None:
            return found
    if _auto_reply(message):
        return Report(Kind.AUTO_REPLY, "auto-reply (RFC 3834); nothing changes", report_id)
    return _plain_bounce(message, report_id, addressed)


# --- RFC 3464 ---------------------------------------------------------------------------


_SEVERITY = {Kind.HARD: 2, Kind.SOFT: 1}


def _dsn(message: Message, report_id: str, addressed: tuple[str, ...]) -> Report:
    blocks = _status_blocks(message)
    if not blocks:
        return Report(Kind.IGNORED, "DSN without a readable delivery-status part", report_id)
    per_message, recipients = blocks[0], blocks[1:] or blocks[:1]
    original_id, original_to, original_from = _original(message)
    best: Report | None = None
    for block in recipients:
        found = _recipient_block(block, report_id)
        if found is None:
            continue
        if best is None or _SEVERITY.get(found.kind, 0) > _SEVERITY.get(best.kind, 0):
            best = found
    if best is None:
        return Report(Kind.IGNORED, "DSN reports no failed or delayed recipient", report_id)
    return Report(
        kind=best.kind,
        reason=best.reason,
        report_id=report_id,
        recipients=best.recipients or original_to,
        status=best.status,
        diagnostic=best.diagnostic,
        original_message_id=original_id,
        return_paths=addressed
        + original_from
        + _field_addresses(per_message, "X-Original-Envelope-From"),
        reported_at=_date(header(per_message, "Arrival-Date")) or _date(header(message, "Date")),
    )


def _recipient_block(block: Message, report_id: str) -> Report | None:
    action = header(block, "Action").lower().split()[0] if header(block, "Action") else ""
    diagnostic = header(block, "Diagnostic-Code")
    status = _status(header(block, "Status")) or _status(diagnostic) or _basic(diagnostic)
    if action in ("delivered", "relayed", "expanded"):
        return None
    if action == "delayed" or status.startswith("4"):
        kind = Kind.SOFT
    elif status.startswith("5") or (action == "failed" and not status):
        kind = Kind.HARD
    else:
        return None
    recipients = tuple(
        a
        for name in ("Original-Recipient", "Final-Recipient")
        for a in _typed_addresses(header(block, name))
    )
    reason = f"DSN {action or 'failed'} {status or '(no status)'}"
    return Report(kind, reason, report_id, recipients, status, diagnostic)


def _status_blocks(message: Message) -> list[Message]:
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and all(isinstance(p, Message) for p in payload):
            return list(payload)
        # Encoded or unparsed: split the fields into blocks ourselves.
        text = _text(part)
        return [
            HeaderParser().parsestr(b.strip() + "\n")
            for b in re.split(r"\n\s*\n", text)
            if b.strip()
        ]
    return []


# --- RFC 5965 ---------------------------------------------------------------------------


def _arf(message: Message, report_id: str, addressed: tuple[str, ...]) -> Report:
    fields = _feedback_fields(message)
    if fields is None:
        return Report(Kind.IGNORED, "feedback report without a readable feedback part", report_id)
    feedback_type = header(fields, "Feedback-Type").lower()
    original_id, original_to, original_from = _original(message)
    recipients = _field_addresses(fields, "Original-Rcpt-To") or original_to
    common = {
        "report_id": report_id,
        "recipients": recipients,
        "original_message_id": original_id,
        "return_paths": addressed + _field_addresses(fields, "Original-Mail-From") + original_from,
        "diagnostic": f"ARF {feedback_type} from {header(fields, 'User-Agent') or 'unknown'}",
        "reported_at": _date(header(fields, "Arrival-Date")) or _date(header(message, "Date")),
    }
    if feedback_type != "abuse":
        return Report(
            Kind.IGNORED, f"feedback type {feedback_type or '(none)'} is not a complaint", **common
        )
    return Report(Kind.COMPLAINT, "ARF abuse report", **common)


def _feedback_fields(message: Message) -> Message | None:
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        return HeaderParser().parsestr(_text(part).strip() + "\n")
    return None


# --- the original message ------------------------------------------------------------------


def _original(message: Message) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """Message-ID, To and Return-Path of the quoted original, when there is one."""
    for part in message.walk():
        ctype = part.get_content_type()
        headers: Message | None = None
        if ctype == "text/rfc822-headers":
            headers = HeaderParser().parsestr(_text(part))
        elif ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                headers = payload[0]
        if headers is not None and headers.get("Message-ID") is not None:
            message_id = header(headers, "Message-ID").strip() or None
            return_path = addresses(headers, "Return-Path")
            return message_id, addresses(headers, "To"), return_path
    return None, (), ()


# --- unsubscribe, auto-replies, plain bounces ----------------------------------------------


def _unsubscribe(
    message: Message, report_id: str, addressed: tuple[str, ...], unsubscribe: str
) -> Report | None:
    local, _, domain = unsubscribe.lower().rpartition("@")
    tokens: list[str] = []
    to_us = False
    for address in addressed:
        a_local, _, a_domain = address.rpartition("@")
        if a_domain.lower() != domain:
            continue
        base, plus, tag = a_local.partition("+")
        if base.lower() == local:
            to_us = True
            if plus and _TOKEN.fullmatch(tag):
                tokens.append(tag)
    if not to_us:
        return None
    # "%20" too: a client that pasted the mailto: subject without decoding it (RFC 6068).
    tokens += _TOKEN.findall(header(message, "Subject").replace("%20", " "))
    unique = tuple(dict.fromkeys(t for t in tokens if t.lower() != "unsubscribe"))
    if not unique:
        return Report(Kind.IGNORED, "mail to the unsubscribe address without a token", report_id)
    return Report(Kind.UNSUBSCRIBE, "unsubscribe by mail", report_id, tokens=unique)


def _auto_reply(message: Message) -> bool:
    submitted = header(message, "Auto-Submitted").lower()
    if submitted and submitted != "no":
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if header(message, "Precedence").lower() in ("auto_reply", "auto-reply"):
        return True
    return bool(_VACATION.match(header(message, "Subject")))


def _plain_bounce(message: Message, report_id: str, addressed: tuple[str, ...]) -> Report:
    body = ""
    html = False
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.get_filename():
            body = _text(part)
            break
        html = html or part.get_content_type() == "text/html"
    if not body:
        reason = "HTML-only message, not a readable bounce" if html else "no report in the message"
        return Report(Kind.IGNORED, reason, report_id)
    match = _ENHANCED.search(body)
    if match is None or match[1] == "2":
        return Report(Kind.IGNORED, "not a delivery report", report_id)
    status = match.group(0)
    line = next((ln.strip() for ln in body.splitlines() if status in ln), status)
    original_id, original_to, original_from = _original(message)
    return Report(
        kind=Kind.HARD if status.startswith("5") else Kind.SOFT,
        reason=f"non-standard bounce text {status}",
        report_id=report_id,
        recipients=original_to,
        status=status,
        diagnostic=line[:500],
        original_message_id=original_id,
        return_paths=addressed + original_from,
    )


# --- helpers ---------------------------------------------------------------------------------


def header(message: Message, name: str) -> str:
    """A header's decoded value, or ''; undecodable bytes become U+FFFD, never an error."""
    value = message.get(name)
    if value is None:
        return ""
    try:
        text = str(make_header(decode_header(str(value))))
    except Exception:  # unknown charset, broken encoded-word
        text = str(value)
    text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    return " ".join(text.split())[:HEADER_LIMIT]


def addresses(message: Message, name: str) -> tuple[str, ...]:
    values = [header(message, name)] if message.get(name) is not None else []
    return _clean(a for _, a in getaddresses(values))


def _field_addresses(fields: Message, name: str) -> tuple[str, ...]:
    return _clean(_typed_addresses(header(fields, name)))


def _typed_addresses(value: str) -> Iterable[str]:
    """``rfc822; user@example.com`` (RFC 3464 address-type; address)."""
    if not value:
        return ()
    _type, semi, address = value.partition(";")
    return _clean([(address if semi else value).strip().strip("<>")])


def _clean(found: Iterable[str]) -> tuple[str, ...]:
    return tuple(a.strip().strip("<>") for a in found if "@" in a and len(a) <= 320)


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        inner = part.get_payload()
        return inner if isinstance(inner, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("utf-8", "replace")


def _status(value: str) -> str:
    match = _ENHANCED.search(value)
    return match.group(0) if match else ""


def _basic(value: str) -> str:
    """``550`` becomes ``5.0.0``: a class without detail (RFC 3463 section 3.1)."""
    match = _BASIC.search(value)
    return f"{match[1]}.0.0" if match and match[1] != "2" else ""


def _date(value: str) -> Any:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else None
