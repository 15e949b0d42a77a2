"""Provider webhooks over real HTTP (uvicorn on loopback): signed right, signed wrong, replayed.

Keys are made here: an HMAC key each for Mailgun and Resend/Svix, Basic auth for
Postmark, an ECDSA P-256 pair for SendGrid, and a self-signed RSA certificate
standing in for Amazon SNS's (pinned in config; nothing is fetched).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from builders import make_config
from inbound_world import World, sent_world
from publisher.inbound.webhooks import sns_string_to_sign
from publisher.web.app import create_app
from sending import open_store
from test_inbound_cli import free_port
from test_web import SECRET, RecordingMailer

pytestmark = pytest.mark.timeout(120)
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-feedback"


@dataclass
class ProviderKeys:
    postmark: str
    mailgun: str
    resend: bytes
    sendgrid: ec.EllipticCurvePrivateKey
    ses: rsa.RSAPrivateKey
    ses_pem: bytes

    def env(self) -> dict[str, str]:
        public = self.sendgrid.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            **SECRET,
            "PUBLISHER_POSTMARK_WEBHOOK_AUTH": self.postmark,
            "PUBLISHER_MAILGUN_SIGNING_KEY": self.mailgun,
            "PUBLISHER_RESEND_WEBHOOK_SECRET": "whsec_" + base64.b64encode(self.resend).decode(),
            "PUBLISHER_SENDGRID_PUBLIC_KEY": base64.b64encode(public).decode(),
        }


def make_keys() -> ProviderKeys:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.us-east-1.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(rsa_key, hashes.SHA256())
    )
    return ProviderKeys(
        postmark="hooks:" + "p" * 24,
        mailgun="key-" + "m" * 32,
        resend=b"r" * 24,
        sendgrid=ec.generate_private_key(ec.SECP256R1()),
        ses=rsa_key,
        ses_pem=cert.public_bytes(serialization.Encoding.PEM),
    )


KEYS = make_keys()  # RSA generation is slow: once per session


@dataclass
class Served:
    world: World
    url: str
    now: datetime

    def post(self, provider: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(
            f"{self.url}inbound/{provider}", content=body, headers=headers, timeout=10
        )


def serve(app: Any) -> tuple[str, Callable[[], None]]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return f"http://127.0.0.1:{port}/newsletter/", stop


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[Served]:
    yield from _served(db_url, tmp_path, configured=True)


@pytest.fixture
def unconfigured(db_url: str, tmp_path: Path) -> Iterator[Served]:
    yield from _served(db_url, tmp_path, configured=False)


def _served(db_url: str, tmp_path: Path, *, configured: bool) -> Iterator[Served]:
    store = open_store(db_url)
    world = sent_world(store, tmp_path)
    (tmp_path / "sns.pem").write_bytes(KEYS.ses_pem)
    inbound = {"ses_certificate": "sns.pem", "ses_topic_arn": TOPIC} if configured else {}
    config = make_config(
        tmp_path,
        env=KEYS.env() if configured else SECRET,
        newsletter={"bounce_limit": 1},
        inbound=inbound,
    )
    app = create_app(config, store, RecordingMailer(), store.clock, categories=())
    url, stop = serve(app)
    try:
        yield Served(world, url, store.clock())
    finally:
        stop()


# --- signed requests, one builder per provider ------------------------------------------------


def postmark(
    s: Served, kind: str, index: int, *, good: bool = True, skew: float = 0
) -> tuple[bytes, dict[str, str]]:
    record = {"complaint": "SpamComplaint", "hard": "Bounce", "soft": "Bounce"}[kind]
    kind_name = {"complaint": "SpamComplaint", "hard": "HardBounce", "soft": "SoftBounce"}[kind]
    body = json.dumps(
        {
            "RecordType": record,
            "Type": kind_name,
            "ID": 4323372036854775807 + index,
            "Email": s.world.email(index),
            "BouncedAt": (s.now + timedelta(seconds=skew)).isoformat(),
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        }
    ).encode()
    secret = KEYS.postmark if good else "hooks:wrong"
    auth = base64.b64encode(secret.encode()).decode()
    return body, {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}


def mailgun(
    s: Served, kind: str, index: int, *, good: bool = True, skew: float = 0
) -> tuple[bytes, dict[str, str]]:
    timestamp = str(int(s.now.timestamp() + skew))
    token = f"token{index}{kind}" + "x" * 40
    signature = hmac.new(
        KEYS.mailgun.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    event = {"hard": "failed", "soft": "failed", "complaint": "complained"}[kind]
    body = {
        "signature": {
            "timestamp": timestamp,
            "token": token,
            "signature": signature if good else "0" * 64,
        },
        "event-data": {
            "event": event,
            "severity": "permanent" if kind == "hard" else "temporary",
            "id": f"mg-{index}-{kind}",
            "timestamp": float(timestamp),
            "recipient": s.world.email(index),
            "message": {"headers": {"message-id": s.world.message_id(index).strip("<>")}},
            "delivery-status": {"code": 550, "message": "5.1.1 mailbox does not exist"},
        },
    }
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


def sendgrid(
    s: Served, kind: str, index: int, *, good: bool = True, skew: float = 0
) -> tuple[bytes, dict[str, str]]:
    timestamp = str(int(s.now.timestamp() + skew))
    event = {"hard": "bounce", "soft": "deferred", "complaint": "spamreport"}[kind]
    body = json.dumps(
        [
            {
                "email": s.world.email(index),
                "event": event,
                "type": "bounce",
                "sg_event_id": f"sg-{index}-{kind}",
                "timestamp": int(timestamp),
                "smtp-id": s.world.message_id(index),
                "status": "5.1.1",
                "reason": "550 5.1.1 user unknown",
            },
            {"email": s.world.email(index), "event": "delivered", "sg_event_id": "d"},
        ]
    ).encode()
    key = KEYS.sendgrid if good else ec.generate_private_key(ec.SECP256R1())
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def resend(
    s: Served, kind: str, index: int, *, good: bool = True, skew: float = 0
) -> tuple[bytes, dict[str, str]]:
    timestamp = str(int(s.now.timestamp() + skew))
    msg_id = f"msg_{index}_{kind}"
    event = {
        "hard": "email.bounced",
        "soft": "email.delivery_delayed",
        "complaint": "email.complained",
    }[kind]
    body = json.dumps(
        {
            "type": event,
            "created_at": s.now.isoformat(),
            "data": {
                "email_id": f"re-{index}",
                "to": [s.world.email(index)],
                "bounce": {
                    "type": "Permanent",
                    "subType": "General",
                    "message": "550 5.1.1 unknown",
                },
            },
        }
    ).encode()
    key = KEYS.resend if good else b"w" * 24
    signed = f"{msg_id}.{timestamp}.".encode() + body
    sig = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return body, {
        "svix-id": msg_id,
        "svix-timestamp": timestamp,
        "svix-signature": f"v1,{base64.b64encode(b'other').decode()} v1,{sig}",
        "Content-Type": "application/json",
    }


def ses(
    s: Served, kind: str, index: int, *, good: bool = True, skew: float = 0
) -> tuple[bytes, dict[str, str]]:
    mail = {"headers": [{"name": "Message-ID", "value": s.world.message_id(index)}]}
    if kind == "complaint":
        note = {
            "notificationType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": s.world.email(index)}],
                "complaintFeedbackType": "abuse",
            },
            "mail": mail,
        }
    else:
        note = {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": "Permanent" if kind == "hard" else "Transient",
                "bouncedRecipients": [
                    {
                        "emailAddress": s.world.email(index),
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
            },
            "mail": mail,
        }
    message = {
        "Type": "Notification",
        "MessageId": f"sns-{index}-{kind}",
        "TopicArn": TOPIC,
        "Message": json.dumps(note),
        "Timestamp": (s.now + timedelta(seconds=skew)).isoformat().replace("+00:00", "Z"),
        "SignatureVersion": "2",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/never-fetched.pem",
    }
    key = KEYS.ses if good else rsa.generate_private_key(public_exponent=65537, key_size=1024)
    signature = key.sign(sns_string_to_sign(message), padding.PKCS1v15(), hashes.SHA256())
    message["Signature"] = base64.b64encode(signature).decode()
    return json.dumps(message).encode(), {
        "x-amz-sns-message-type": "Notification",
        "Content-Type": "text/plain",
    }


BUILDERS = {
    "postmark": postmark,
    "mailgun": mailgun,
    "sendgrid": sendgrid,
    "resend": resend,
    "ses": ses,
}
REPLAYABLE = ("mailgun", "sendgrid", "resend", "ses")  # signed timestamps


@pytest.mark.parametrize("provider", sorted(BUILDERS))
def test_a_signed_complaint_and_bounce_apply_once(served: Served, provider: str) -> None:
    build = BUILDERS[provider]
    body, headers = build(served, "complaint", 0)
    first = served.post(provider, body, headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"applied": 1, "duplicate": 0, "ignored": 0}
    again = served.post(provider, body, headers)  # a provider's retry
    assert again.status_code == 200 and again.json()["applied"] == 0
    assert served.world.status(0) == "unsubscribed"
    body, headers = build(served, "hard", 1)
    assert served.post(provider, body, headers).status_code == 200
    assert served.world.status(1) == "bounced"
    from publisher.store.bounces import BounceStore

    events = BounceStore(served.world.store).events()
    assert {e["source"] for e in events} == {f"webhook:{provider}"}
    assert all(e["issue_id"] == served.world.issue.id for e in events)
    assert served.world.status(2) == "active"


@pytest.mark.parametrize("provider", sorted(BUILDERS))
def test_a_badly_signed_request_gets_401_and_changes_nothing(served: Served, provider: str) -> None:
    body, headers = BUILDERS[provider](served, "complaint", 0, good=False)
    response = served.post(provider, body, headers)
    assert response.status_code == 401
    good_body, good_headers = BUILDERS[provider](served, "hard", 1)
    tampered = good_body.replace(served.world.email(1).encode(), served.world.email(2).encode())
    if provider == "mailgun":
        # Mailgun signs the token, not the body: once a token was used, its requests are not read.
        assert served.post(provider, good_body, good_headers).status_code == 200
        assert served.post(provider, tampered, good_headers).json()["applied"] == 0
    elif provider != "postmark":  # Basic auth covers no body: Postmark's limit, see the README
        assert served.post(provider, tampered, good_headers).status_code == 401
    assert served.post(provider, b"", {}).status_code == 401
    if provider != "postmark":
        assert served.world.status(2) == "active"
    assert served.world.status(0) == "active"


@pytest.mark.parametrize("provider", REPLAYABLE)
def test_a_replay_outside_the_window_is_refused(served: Served, provider: str) -> None:
    body, headers = BUILDERS[provider](served, "complaint", 0, skew=-3600)
    assert served.post(provider, body, headers).status_code == 401
    body, headers = BUILDERS[provider](served, "complaint", 0, skew=+3600)
    assert served.post(provider, body, headers).status_code == 401
    assert served.world.status(0) == "active"


@pytest.mark.parametrize("provider", sorted(BUILDERS))
def test_an_unconfigured_provider_fails_closed(unconfigured: Served, provider: str) -> None:
    body, headers = BUILDERS[provider](unconfigured, "complaint", 0)
    response = unconfigured.post(provider, body, headers)
    assert response.status_code == 401 and "not configured" in response.text
    assert unconfigured.world.status(0) == "active"


def test_sns_subscription_confirmation_is_verified_and_logged(served: Served, caplog) -> None:  # type: ignore[no-untyped-def]
    message = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "sub-1",
        "Token": "t" * 40,
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=t",
        "Timestamp": served.now.isoformat().replace("+00:00", "Z"),
        "SignatureVersion": "1",
    }
    signature = KEYS.ses.sign(sns_string_to_sign(message), padding.PKCS1v15(), hashes.SHA1())
    message["Signature"] = base64.b64encode(signature).decode()
    with caplog.at_level("WARNING", logger="publisher.inbound"):
        response = served.post("ses", json.dumps(message).encode(), {})
    assert response.status_code == 200
    assert "ConfirmSubscription" in caplog.text
    other_topic = {**message, "TopicArn": "arn:aws:sns:us-east-1:999:other"}
    assert served.post("ses", json.dumps(other_topic).encode(), {}).status_code == 401


def test_oversized_and_unknown_paths(served: Served) -> None:
    assert served.post("mailgun", b"x" * (1024 * 1024 + 1), {}).status_code == 413
    assert served.post("mailjet", b"{}", {}).status_code == 404
    assert httpx.get(f"{served.url}inbound/mailgun", timeout=5).status_code == 405
