"""Provider webhooks on ``publisher web``: one path each, verified, then the one handler.

``POST <web base>/inbound/<provider>``:

==========  =================================================================  ======================
provider    verification                                                       replay defence
==========  =================================================================  ======================
postmark    HTTP Basic auth in the webhook URL, ``$[inbound].postmark_auth_env``  event ``ID`` dedup
            (``user:password``; Postmark signs nothing)
mailgun     ``signature.signature`` = hex HMAC-SHA256(signing key,              ``timestamp`` window,
            ``timestamp`` + ``token``), ``$[inbound].mailgun_key_env``;         a ``token`` is
            Mailgun signs no body, so a request whose token was seen is       acted on once per
            answered 200 and not read                                         process; event dedup
sendgrid    ECDSA P-256/SHA-256 over ``X-Twilio-Email-Event-Webhook-Timestamp``  timestamp window,
            + body, base64 DER in ``...-Signature``; the public key in        ``sg_event_id`` dedup
            ``$[inbound].sendgrid_key_env``
resend      Svix: base64 HMAC-SHA256(``whsec_`` key, ``id.timestamp.body``),    ``svix-timestamp``
            ``svix-signature: v1,<sig> ...``, ``$[inbound].resend_secret_env``  window, ``svix-id``
ses         Amazon SNS message signature (``SignatureVersion`` 1: SHA1withRSA,  ``Timestamp`` window,
            2: SHA256withRSA) checked against the certificate pinned in         ``MessageId`` dedup
            ``[inbound].ses_certificate`` (never fetched from the message's
            ``SigningCertURL``), and ``TopicArn`` = ``[inbound].ses_topic_arn``
==========  =================================================================  ======================

Fail closed: a request without a valid signature gets ``401`` and changes
nothing, whether or not the provider is configured (an unconfigured provider
has no key, so nothing verifies). The replay window is
``[inbound].replay_window_seconds`` either side of now; duplicates inside it
count once (publisher.store.bounces). Verified but unreadable payloads get
``400``; a database error ``503`` so the provider retries. SNS subscription
confirmations are verified and their ``SubscribeURL`` logged for the operator
to open (no request is made from here). Bodies over 1 MB get ``413``.

These endpoints take no CSRF token: they are called by the providers, and the
signature is what authenticates them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from publisher.config import Config
from publisher.inbound.handler import Handled, Handler, ProviderEvent, Settings
from publisher.store import Store, StoreError
from publisher.store.bounces import BouncePolicy, EventKind

log = logging.getLogger("publisher.inbound")

MAX_BODY_BYTES = 1024 * 1024
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _unauthorized(reason: str) -> Refused:
    return Refused(401, reason)


class _OnceTokens:
    """Tokens seen inside the replay window (Mailgun signs the token, not the body)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, datetime] = {}

    def first_use(self, token: str, now: datetime, window: timedelta) -> bool:
        with self._lock:
            for old in [t for t, at in self._seen.items() if now - at > 2 * window]:
                del self._seen[old]
            if token in self._seen:
                return False
            self._seen[token] = now
            return True


@dataclass(frozen=True)
class Keys:
    """Secrets and pins, read once from the environment and config."""

    postmark: str | None
    mailgun: str | None
    sendgrid: str | None
    resend: str | None
    ses_certificate: bytes | None
    ses_topic: str
    window: timedelta
    seen: _OnceTokens = field(default_factory=lambda: _OnceTokens(), compare=False)

    @classmethod
    def from_config(cls, config: Config) -> Keys:
        i = config.inbound
        pem = None
        if i.ses_certificate:
            path = (config.root / i.ses_certificate).resolve()
            try:
                pem = Path(path).read_bytes()
            except OSError as exc:
                log.warning("[inbound].ses_certificate %s: %s; SES webhooks refused", path, exc)
        return cls(
            postmark=config.secret(i.postmark_auth_env),
            mailgun=config.secret(i.mailgun_key_env),
            sendgrid=config.secret(i.sendgrid_key_env),
            resend=config.secret(i.resend_secret_env),
            ses_certificate=pem,
            ses_topic=i.ses_topic_arn,
            window=timedelta(seconds=i.replay_window_seconds),
        )


Headers = Mapping[str, str]
Verifier = Callable[[Keys, Headers, bytes, datetime], list[ProviderEvent]]


# --- shared checks --------------------------------------------------------------------------


def _fresh(keys: Keys, when: datetime | None, now: datetime) -> None:
    if when is None or abs(now - when) > keys.window:
        raise _unauthorized("timestamp missing or outside the replay window")


def _epoch(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        # Postmark writes seven fractional digits.
        match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", value)
        if match is None:
            return None
        when = datetime.fromisoformat(match[1] + (match[3] or "+00:00").replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the body is not JSON") from None


def _status(text: str, code: Any = None) -> str:
    match = _ENHANCED.search(text or "")
    if match:
        return match[1]
    if isinstance(code, int) and 400 <= code < 600:
        return f"{code // 100}.0.0"
    return ""


def _text(value: Any, limit: int = 1000) -> str:
    return str(value)[:limit] if value is not None else ""


# --- Postmark ----------------------------------------------------------------------------------

_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Blocked"}
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "MailFrontier", "SMTPApiError"}


def postmark(keys: Keys, headers: Headers, body: bytes, now: datetime) -> list[ProviderEvent]:
    if not keys.postmark:
        raise _unauthorized("postmark webhook not configured")
    scheme, _, value = headers.get("authorization", "").partition(" ")
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        given = b""
    if scheme.lower() != "basic" or not hmac.compare_digest(given, keys.postmark.encode("utf-8")):
        raise _unauthorized("bad Basic auth")
    data = _json(body)
    if not isinstance(data, dict):
        raise Refused(400, "expected one JSON object")
    record, kind_name = data.get("RecordType"), data.get("Type")
    if record == "SpamComplaint" or kind_name == "SpamComplaint":
        kind = EventKind.COMPLAINT
    elif kind_name in _POSTMARK_HARD:
        kind = EventKind.HARD
    elif kind_name in _POSTMARK_SOFT:
        kind = EventKind.SOFT
    elif kind_name == "Unsubscribe":
        kind = EventKind.UNSUBSCRIBE
    else:
        return []  # AutoResponder, opens, deliveries: nothing to do
    details = _text(data.get("Details") or data.get("Description"))
    return [
        ProviderEvent(
            kind=kind,
            email=_text(data.get("Email"), 320),
            source="webhook:postmark",
            event_id=f"postmark:{_text(data.get('ID'), 100)}",
            status=_status(details) or ("5.0.0" if kind == EventKind.HARD else ""),
            diagnostic=details,
            occurred_at=_iso(data.get("BouncedAt")),
        )
    ]


# --- Mailgun ----------------------------------------------------------------------------------


def mailgun(keys: Keys, headers: Headers, body: bytes, now: datetime) -> list[ProviderEvent]:
    if not keys.mailgun:
        raise _unauthorized("mailgun webhook not configured")
    try:
        data = json.loads(body.decode("utf-8"))
        sig = data["signature"]
        timestamp, token, given = str(sig["timestamp"]), str(sig["token"]), str(sig["signature"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise _unauthorized("no Mailgun signature") from None
    expected = hmac.new(
        keys.mailgun.encode("utf-8"), (timestamp + token).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, given.lower()):
        raise _unauthorized("bad Mailgun signature")
    _fresh(keys, _epoch(timestamp), now)
    if not keys.seen.first_use(token, now, keys.window):
        return []  # a retry or a replay: its event was handled (or refused) the first time
    event = data.get("event-data")
    if not isinstance(event, dict):
        raise Refused(400, "no event-data")
    name, severity = event.get("event"), event.get("severity")
    if name == "failed":
        kind = EventKind.HARD if severity == "permanent" else EventKind.SOFT
    elif name == "complained":
        kind = EventKind.COMPLAINT
    elif name == "unsubscribed":
        kind = EventKind.UNSUBSCRIBE
    else:
        return []
    status = event.get("delivery-status") or {}
    said = (
        _text(status.get("message") or status.get("description"))
        if isinstance(status, dict)
        else ""
    )
    headers_of = (event.get("message") or {}).get("headers") or {}
    return [
        ProviderEvent(
            kind=kind,
            email=_text(event.get("recipient"), 320),
            source="webhook:mailgun",
            event_id=f"mailgun:{_text(event.get('id'), 100)}",
            status=_status(said, status.get("code") if isinstance(status, dict) else None),
            diagnostic=said,
            message_id=_text(headers_of.get("message-id"), 300) or None,
            occurred_at=_epoch(event.get("timestamp")),
        )
    ]


# --- SendGrid ---------------------------------------------------------------------------------


def sendgrid(keys: Keys, headers: Headers, body: bytes, now: datetime) -> list[ProviderEvent]:
    if not keys.sendgrid:
        raise _unauthorized("sendgrid webhook not configured")
    signature = headers.get("x-twilio-email-event-webhook-signature", "")
    timestamp = headers.get("x-twilio-email-event-webhook-timestamp", "")
    try:
        key = load_der_public_key(base64.b64decode(keys.sendgrid))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("not an EC key")
        key.verify(
            base64.b64decode(signature, validate=True),
            timestamp.encode("utf-8") + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError, binascii.Error):
        raise _unauthorized("bad SendGrid signature") from None
    _fresh(keys, _epoch(timestamp), now)
    data = _json(body)
    if not isinstance(data, list):
        raise Refused(400, "expected a JSON array of events")
    return [e for e in (_sendgrid_event(item) for item in data) if e is not None]


def _sendgrid_event(item: Any) -> ProviderEvent | None:
    if not isinstance(item, dict):
        return None
    name = item.get("event")
    if name == "bounce":
        kind = EventKind.SOFT if item.get("type") == "blocked" else EventKind.HARD
    elif name == "deferred":
        kind = EventKind.SOFT
    elif name == "spamreport":
        kind = EventKind.COMPLAINT
    elif name in ("unsubscribe", "group_unsubscribe"):
        kind = EventKind.UNSUBSCRIBE
    else:
        return None  # dropped (SendGrid's own suppression), delivered, opens
    reason = _text(item.get("reason") or item.get("response"))
    return ProviderEvent(
        kind=kind,
        email=_text(item.get("email"), 320),
        source="webhook:sendgrid",
        event_id=f"sendgrid:{_text(item.get('sg_event_id'), 100)}",
        status=_status(_text(item.get("status")) + " " + reason),
        diagnostic=reason,
        message_id=_text(item.get("smtp-id"), 300) or None,
        occurred_at=_epoch(item.get("timestamp")),
    )


# --- Resend (Svix) -------------------------------------------------------------------------------


def resend(keys: Keys, headers: Headers, body: bytes, now: datetime) -> list[ProviderEvent]:
    if not keys.resend:
        raise _unauthorized("resend webhook not configured")
    msg_id, timestamp = headers.get("svix-id", ""), headers.get("svix-timestamp", "")
    try:
        secret = base64.b64decode(keys.resend.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise _unauthorized("the Resend secret is not base64") from None
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()
    offered = [
        part.partition(",")[2]
        for part in headers.get("svix-signature", "").split()
        if part.startswith("v1,")
    ]
    if not msg_id or not any(hmac.compare_digest(expected, s) for s in offered):
        raise _unauthorized("bad Svix signature")
    _fresh(keys, _epoch(timestamp), now)
    data = _json(body)
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise Refused(400, "expected a Resend event object")
    payload = data["data"]
    name = data.get("type")
    bounce = _dict(payload.get("bounce"))
    if name == "email.bounced":
        kind = EventKind.HARD if bounce.get("type") == "Permanent" else EventKind.SOFT
    elif name == "email.delivery_delayed":
        kind = EventKind.SOFT
    elif name == "email.complained":
        kind = EventKind.COMPLAINT
    else:
        return []
    said = _text(bounce.get("message"))
    recipients = payload.get("to")
    emails = recipients if isinstance(recipients, list) else [recipients]
    return [
        ProviderEvent(
            kind=kind,
            email=_text(email, 320),
            source="webhook:resend",
            event_id=f"resend:{msg_id[:100]}:{index}",
            status=_status(said) or ("5.0.0" if kind == EventKind.HARD else ""),
            diagnostic=said or _text(bounce.get("subType")),
            message_id=_header(payload.get("headers"), "message-id"),
            occurred_at=_iso(data.get("created_at")),
        )
        for index, email in enumerate(emails)
        if isinstance(email, str)
    ]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _header(headers: Any, name: str) -> str | None:
    """A header from a provider's ``[{"name": ..., "value": ...}]`` list."""
    if not isinstance(headers, list):
        return None
    for item in headers:
        if isinstance(item, dict) and str(item.get("name", "")).lower() == name:
            return _text(item.get("value"), 300) or None
    return None


# --- Amazon SES via SNS -------------------------------------------------------------------------

_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SNS_FIELDS["UnsubscribeConfirmation"] = _SNS_FIELDS["SubscriptionConfirmation"]


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical string SNS signs: ``name\\nvalue\\n`` for each field, in order."""
    fields = _SNS_FIELDS.get(str(message.get("Type")), ())
    parts = [f"{name}\n{message[name]}\n" for name in fields if message.get(name) is not None]
    return "".join(parts).encode("utf-8")


def ses(keys: Keys, headers: Headers, body: bytes, now: datetime) -> list[ProviderEvent]:
    if not keys.ses_certificate or not keys.ses_topic:
        raise _unauthorized("ses webhook not configured")
    try:
        message = json.loads(body.decode("utf-8"))
        if not isinstance(message, dict) or message.get("Type") not in _SNS_FIELDS:
            raise ValueError("not an SNS message")
        # SignatureVersion 1 is SHA1withRSA by the SNS protocol; 2 (SHA256) is recommended.
        versions = {"1": hashes.SHA1(), "2": hashes.SHA256()}  # noqa: S303
        algorithm = versions[str(message["SignatureVersion"])]
        certificate = x509.load_pem_x509_certificate(keys.ses_certificate)
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError("not an RSA certificate")
        public_key.verify(
            base64.b64decode(str(message["Signature"]), validate=True),
            sns_string_to_sign(message),
            padding.PKCS1v15(),
            algorithm,
        )
    except (InvalidSignature, ValueError, KeyError, TypeError, UnicodeDecodeError, binascii.Error):
        raise _unauthorized("bad SNS signature") from None
    if not hmac.compare_digest(str(message.get("TopicArn", "")), keys.ses_topic):
        raise _unauthorized("unexpected SNS TopicArn")
    _fresh(keys, _iso(message.get("Timestamp")), now)
    if message["Type"] != "Notification":
        log.warning(
            "webhook:ses: SNS %s for %s; to confirm, open %s",
            message["Type"],
            message.get("TopicArn"),
            _text(message.get("SubscribeURL"), 500),
        )
        return []
    try:
        notification = json.loads(str(message["Message"]))
    except ValueError:
        raise Refused(400, "the SNS Message is not JSON") from None
    if not isinstance(notification, dict):
        raise Refused(400, "the SNS Message is not an SES notification")
    return _ses_events(notification, _text(message.get("MessageId"), 100))


def _ses_events(note: dict[str, Any], sns_id: str) -> list[ProviderEvent]:
    kind_name = note.get("notificationType") or note.get("eventType")
    mail = _dict(note.get("mail"))
    common = _dict(mail.get("commonHeaders"))
    message_id = _header(mail.get("headers"), "message-id") or _text(common.get("messageId"), 300)
    if kind_name == "Bounce":
        bounce = _dict(note.get("bounce"))
        kind = EventKind.HARD if bounce.get("bounceType") == "Permanent" else EventKind.SOFT
        people = bounce.get("bouncedRecipients")
        when = _iso(bounce.get("timestamp"))
    elif kind_name == "Complaint":
        complaint = _dict(note.get("complaint"))
        if complaint.get("complaintFeedbackType") == "not-spam":
            return []
        kind, people = EventKind.COMPLAINT, complaint.get("complainedRecipients")
        when = _iso(complaint.get("timestamp"))
    else:
        return []
    found = []
    for index, person in enumerate(people if isinstance(people, list) else []):
        if not isinstance(person, dict):
            continue
        said = _text(person.get("diagnosticCode"))
        found.append(
            ProviderEvent(
                kind=kind,
                email=_text(person.get("emailAddress"), 320),
                source="webhook:ses",
                event_id=f"ses:{sns_id}:{index}",
                status=_text(person.get("status"), 20) or _status(said),
                diagnostic=said,
                message_id=message_id or None,
                occurred_at=when,
            )
        )
    return found


PROVIDERS: dict[str, Verifier] = {
    "postmark": postmark,
    "mailgun": mailgun,
    "sendgrid": sendgrid,
    "resend": resend,
    "ses": ses,
}


# --- routes ---------------------------------------------------------------------------------------


def webhook_routes(
    config: Config, store: Store, clock: Callable[[], datetime], keys: Keys | None = None
) -> list[Route]:
    """``POST /inbound/<provider>`` for every provider; ``publisher web`` mounts them."""
    keys = keys or Keys.from_config(config)
    n, i = config.newsletter, config.inbound
    settings = Settings(
        policy=BouncePolicy(n.bounce_limit, i.soft_bounce_limit, i.soft_bounce_days),
        return_path=None,  # provider events name the address; VERP is for mail
        unsubscribe_address=None,
        unsubscribe_token=lambda _token: None,
    )
    handler = Handler(store, settings)

    def endpoint(name: str, verify: Verifier) -> Callable[[Request], Any]:
        async def receive(request: Request) -> Response:
            body = await _body(request)
            if body is None:
                return PlainTextResponse("request body too large", status_code=413)
            try:
                events = verify(keys, request.headers, body, clock())
            except Refused as refused:
                log.info("webhook:%s: refused (%d): %s", name, refused.status, refused.reason)
                return PlainTextResponse(refused.reason, status_code=refused.status)
            try:
                results = await run_in_threadpool(_apply, handler, events)
            except StoreError as exc:
                log.warning("webhook:%s: database unavailable: %s", name, exc)
                return PlainTextResponse("try again later", status_code=503)
            counts = {
                k: sum(r.outcome == k for r in results) for k in ("applied", "duplicate", "ignored")
            }
            return JSONResponse(counts)

        return receive

    return [
        Route(f"/inbound/{name}", endpoint(name, verify), methods=["POST"])
        for name, verify in PROVIDERS.items()
    ]


def _apply(handler: Handler, events: list[ProviderEvent]) -> list[Handled]:
    return [handler.event(e) for e in events]


async def _body(request: Request) -> bytes | None:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
