"""Transports against a real SMTP server on loopback (RELIABILITY section F), and the outbox."""

from __future__ import annotations

import socket
import ssl
import threading
from email.message import EmailMessage
from pathlib import Path

import pytest

from builders import make_config
from publisher.deliver.transports import (
    OutboxTransport,
    Outcome,
    SmtpSettings,
    SmtpTransport,
    Stage,
    classify,
    is_throttle,
    smtp_settings,
    transport_factory,
)
from publisher.errors import PublisherError
from smtp_sink import DROP, SmtpSink, TlsFiles, free_port

FROM = "news@blog.example.com"


def message(to: str = "a@example.com", message_id: str = "<m1@blog.example.com>") -> bytes:
    msg = EmailMessage()
    msg["From"] = FROM
    msg["To"] = to
    msg["Subject"] = "hello"
    msg["Message-ID"] = message_id
    msg.set_content("body\n.\nline after a lone dot\n")
    return msg.as_bytes()


def settings(sink: SmtpSink, **overrides: object) -> SmtpSettings:
    values: dict[str, object] = {
        "host": sink.host,
        "port": sink.port,
        "security": "none",
        "username": "",
        "password": None,
        "timeout": 2.0,
        "messages_per_connection": 20,
        "helo": "blog.example.com",
    }
    values.update(overrides)
    return SmtpSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def smtp(smtp_sink: SmtpSink) -> SmtpTransport:
    transport = SmtpTransport(settings(smtp_sink))
    yield transport  # type: ignore[misc]
    transport.close()


def test_sent_message_arrives_once_with_its_message_id(smtp: SmtpTransport, smtp_sink: SmtpSink):
    result = smtp.send(FROM, "a@example.com", message())
    assert (result.outcome, result.code, result.stage) == (Outcome.SENT, 250, Stage.END)
    assert smtp_sink.message_ids() == ["<m1@blog.example.com>"]
    assert smtp_sink.received[0].rcpt_tos == ("a@example.com",)


def test_wire_format_dot_stuffed_crlf_d6(smtp: SmtpTransport, smtp_sink: SmtpSink):
    raw = message().replace(b"\r\n", b"\n")  # bare LF in, CRLF on the wire
    smtp.send(FROM, "a@example.com", raw)
    data = smtp_sink.received[0].data
    assert b"\r\n.\r\nline after a lone dot" in data  # the sink un-stuffed our '..'
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_450_greylisting_is_temporary_then_sent_f2(smtp: SmtpTransport, smtp_sink: SmtpSink):
    smtp_sink.script("a@example.com", "rcpt", "450 4.2.0 greylisted, try later")
    first = smtp.send(FROM, "a@example.com", message())
    assert (first.outcome, first.stage, first.code) == (Outcome.TEMPORARY, Stage.RCPT, 450)
    assert first.enhanced_code == "4.2.0"
    assert not first.connection_lost  # RSET, same connection
    assert not first.throttled  # one recipient's matter, not the server's (F2, F15)
    assert smtp.send(FROM, "a@example.com", message()).outcome == Outcome.SENT
    assert smtp_sink.connections == 1


@pytest.mark.parametrize(
    ("stage", "reply", "outcome"),
    [
        ("rcpt", "550 5.1.1 no such user", Outcome.PERMANENT),  # F4
        ("rcpt", "553 5.1.3 bad address", Outcome.PERMANENT),
        ("rcpt", "552 5.2.2 mailbox full", Outcome.TEMPORARY),  # F5
        ("rcpt", "452 4.5.3 too many recipients", Outcome.TEMPORARY),  # F3
        ("data", "552 5.3.4 message too big", Outcome.TOO_BIG),  # D14
        ("data", "554 5.7.1 content rejected", Outcome.CONTENT_REJECTED),  # F6
        ("data", "451 4.3.0 try again", Outcome.TEMPORARY),
    ],
)
def test_refusals_are_classified_with_enhanced_codes_f8(
    smtp: SmtpTransport, smtp_sink: SmtpSink, stage: str, reply: str, outcome: Outcome
):
    smtp_sink.script("a@example.com", stage, reply)
    result = smtp.send(FROM, "a@example.com", message())
    assert result.outcome == outcome
    assert result.code == int(reply[:3])
    assert result.enhanced_code == reply.split()[1]
    assert result.reply == reply[4:]
    assert smtp_sink.received == []


def test_drop_after_final_dot_is_in_doubt_and_server_has_it_f9(
    smtp: SmtpTransport, smtp_sink: SmtpSink
):
    smtp_sink.script("a@example.com", "data", DROP)
    result = smtp.send(FROM, "a@example.com", message())
    assert (result.outcome, result.stage, result.connection_lost) == (
        Outcome.IN_DOUBT,
        Stage.END,
        True,
    )
    assert smtp_sink.message_ids() == ["<m1@blog.example.com>"]
    # The next message reconnects.
    assert smtp.send(FROM, "b@example.com", message("b@example.com", "<m2@x>")).outcome == (
        Outcome.SENT
    )
    assert smtp_sink.connections == 2


def test_timeout_after_data_is_in_doubt_before_it_temporary_f10(smtp_sink: SmtpSink):
    transport = SmtpTransport(settings(smtp_sink, timeout=0.3))
    smtp_sink.script("slow-data@example.com", "data", "250 OK", sleep=1.5)
    smtp_sink.script("slow-rcpt@example.com", "rcpt", "250 OK", sleep=1.5)
    try:
        late = transport.send(FROM, "slow-data@example.com", message())
        early = transport.send(FROM, "slow-rcpt@example.com", message())
    finally:
        transport.close()
    assert (late.outcome, late.stage) == (Outcome.IN_DOUBT, Stage.END)
    assert (early.outcome, early.stage, early.connection_lost) == (
        Outcome.TEMPORARY,
        Stage.RCPT,
        True,
    )


def test_421_closes_connection_and_next_message_reconnects_f1_f14(
    smtp: SmtpTransport, smtp_sink: SmtpSink
):
    smtp_sink.at_message(2, "mail", "421 4.7.0 too many messages, closing", close=True)
    outcomes = [
        smtp.send(FROM, f"r{i}@example.com", message(f"r{i}@example.com")) for i in range(3)
    ]
    assert [o.outcome for o in outcomes] == [Outcome.SENT, Outcome.TEMPORARY, Outcome.SENT]
    assert outcomes[1].connection_lost and outcomes[1].code == 421
    assert outcomes[1].throttled and not outcomes[0].throttled  # F15
    assert smtp_sink.connections == 2


@pytest.mark.parametrize(
    ("stage", "reply", "throttled"),
    [
        ("rcpt", "451 4.7.1 rate limited, slow down", True),  # the catalogue's F15
        ("mail", "421 4.7.0 [TSS04] temporarily deferred", True),  # Yahoo
        ("rcpt", "421 4.7.28 unusual rate of mail, try later", True),  # Gmail
        ("data", "451 4.7.0 too many messages", True),
        ("rcpt", "450 4.2.0 greylisted", False),  # F2: that recipient only
        ("rcpt", "451 greylisted, come back later", False),  # no enhanced code
        ("rcpt", "452 4.5.3 too many recipients", False),  # F3
        ("rcpt", "450 4.2.1 receiving mail too quickly", False),  # one mailbox's rate
        ("data", "554 5.7.1 policy rejection", False),  # permanent, F6
    ],
)
def test_throttling_replies_are_flagged_f15(
    smtp: SmtpTransport, smtp_sink: SmtpSink, stage: str, reply: str, throttled: bool
):
    if stage == "mail":
        smtp_sink.at_message(1, stage, reply)  # MAIL is scripted by ordinal
    else:
        smtp_sink.script("a@example.com", stage, reply)
    result = smtp.send(FROM, "a@example.com", message())
    assert result.throttled is throttled
    assert result.outcome in (Outcome.TEMPORARY, Outcome.CONTENT_REJECTED)  # unchanged
    assert result.code == int(reply[:3])


def test_is_throttle_table_f15():
    assert is_throttle(421, None) and is_throttle(421, "4.3.2") and is_throttle(451, "4.7.1")
    assert is_throttle(450, "4.7.999")
    assert not is_throttle(451, "4.3.0") and not is_throttle(451, None)
    assert not is_throttle(550, "5.7.1") and not is_throttle(None, None)
    # milter-greylist's answer is per recipient (F2), not a request to slow down.
    assert not is_throttle(451, "4.7.1", "4.7.1 Greylisting in action, please come back later")
    assert is_throttle(451, "4.7.1", "4.7.1 Rate limited, please try again later")


def test_421_greeting_is_server_down_and_throttled_f15():
    """Yahoo answers a sender it wants slower with a 421 4.7.0 [TSS04] greeting."""
    listener = socket.create_server(("127.0.0.1", 0))

    def greet() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"421 4.7.0 [TSS04] Messages temporarily deferred\r\n")

    server = threading.Thread(target=greet, daemon=True)
    server.start()
    port = listener.getsockname()[1]
    s = SmtpSettings("127.0.0.1", port, "none", "", None, 2.0, 20, "blog.example.com")
    transport = SmtpTransport(s)
    try:
        result = transport.send(FROM, "a@example.com", message())
    finally:
        transport.close()
        server.join(5)
        listener.close()
    assert (result.outcome, result.stage, result.code) == (Outcome.SERVER_DOWN, Stage.CONNECT, 421)
    assert (result.enhanced_code, result.throttled) == ("4.7.0", True)


def test_reconnects_after_messages_per_connection(smtp_sink: SmtpSink):
    transport = SmtpTransport(settings(smtp_sink, messages_per_connection=2))
    for i in range(5):
        assert transport.send(FROM, f"r{i}@example.com", message()).outcome == Outcome.SENT
    transport.close()
    assert smtp_sink.connections == 3


def test_server_down_f11():
    transport = SmtpTransport(
        SmtpSettings("127.0.0.1", free_port(), "none", "", None, 1.0, 20, "blog.example.com")
    )
    result = transport.send(FROM, "a@example.com", message())
    assert (result.outcome, result.stage) == (Outcome.SERVER_DOWN, Stage.CONNECT)
    assert "ConnectionRefusedError" in result.reply


def test_starttls_configured_but_not_offered_is_refused_f12(smtp_sink: SmtpSink):
    transport = SmtpTransport(settings(smtp_sink, security="starttls"))
    result = transport.send(FROM, "a@example.com", message())
    assert result.outcome == Outcome.SERVER_DOWN
    assert "does not offer STARTTLS" in result.reply
    assert smtp_sink.received == []


def test_self_signed_certificate_is_rejected_f12(smtp_tls_sink: SmtpSink):
    transport = SmtpTransport(settings(smtp_tls_sink, security="starttls"))
    result = transport.send(FROM, "a@example.com", message())
    assert result.outcome == Outcome.SERVER_DOWN
    assert "CERTIFICATE_VERIFY_FAILED" in result.reply
    assert smtp_tls_sink.received == []


def trusting(tls_files: TlsFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_files.cert))


def test_starttls_with_verified_certificate_and_login(smtp_tls_sink: SmtpSink, tls_files: TlsFiles):
    s = settings(smtp_tls_sink, security="starttls", username="u", password="p")
    transport = SmtpTransport(s, trusting(tls_files))
    assert transport.send(FROM, "a@example.com", message()).outcome == Outcome.SENT
    transport.close()
    assert smtp_tls_sink.login_attempts == 1


def test_auth_535_is_auth_failed_f13(smtp_tls_sink: SmtpSink, tls_files: TlsFiles):
    smtp_tls_sink.handler.accept_login = False
    s = settings(smtp_tls_sink, security="starttls", username="u", password="wrong")
    result = SmtpTransport(s, trusting(tls_files)).send(FROM, "a@example.com", message())
    assert (result.outcome, result.code) == (Outcome.AUTH_FAILED, 535)
    assert result.enhanced_code == "5.7.8"


def test_never_auth_in_clear(tmp_path: Path):
    config = make_config(tmp_path, smtp={"username": "u", "security": "none"})
    with pytest.raises(PublisherError, match="never sends a password without TLS"):
        smtp_settings(config)


def test_smtp_url_overrides_config_and_password_comes_from_env(tmp_path: Path):
    env = {
        "PUBLISHER_SMTP_URL": "smtp://mailer%40x@mail.example.net:2525?security=starttls",
        "PUBLISHER_SMTP_PASSWORD": "s3cret",
    }
    got = smtp_settings(make_config(tmp_path, env=env, smtp={"timeout_seconds": 7}))
    assert (got.host, got.port, got.security, got.username, got.password, got.timeout) == (
        "mail.example.net",
        2525,
        "starttls",
        "mailer@x",
        "s3cret",
        7.0,
    )


def test_bad_smtp_url_is_an_error(tmp_path: Path):
    config = make_config(tmp_path, env={"PUBLISHER_SMTP_URL": "http://x?foo=1"})
    with pytest.raises(PublisherError, match="PUBLISHER_SMTP_URL"):
        smtp_settings(config)


def test_classify_table():
    assert classify(Stage.MAIL, 550) == Outcome.PERMANENT
    assert classify(Stage.DATA, 554) == Outcome.CONTENT_REJECTED
    assert classify(Stage.END, 552) == Outcome.TOO_BIG
    assert classify(Stage.RCPT, 552) == Outcome.TEMPORARY
    assert classify(Stage.END, 421) == Outcome.TEMPORARY


def test_outbox_writes_one_file_per_message_id_atomically(tmp_path: Path):
    outbox = OutboxTransport(tmp_path / "outbox")
    data = message(message_id="<issue-1.2@blog.example.com>")
    first = outbox.send(FROM, "a@example.com", data)
    again = outbox.send(FROM, "a@example.com", data)  # a resend replaces, never duplicates
    assert first.outcome == again.outcome == Outcome.SENT
    files = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert files == ["issue-1.2@blog.example.com.eml"]
    assert (tmp_path / "outbox" / files[0]).read_bytes() == data


def test_outbox_unwritable_stops_the_run(tmp_path: Path):
    (tmp_path / "outbox").write_text("a file, not a folder")
    result = OutboxTransport(tmp_path / "outbox").send(FROM, "a@example.com", message())
    assert result.outcome == Outcome.SERVER_DOWN


def test_default_transport_is_the_outbox(tmp_path: Path):
    transport = transport_factory(make_config(tmp_path))()
    assert isinstance(transport, OutboxTransport)
    assert transport.directory == tmp_path.resolve() / "outbox"


# --- the last check before DATA (issue 8) ----------------------------------------------------


def test_before_data_runs_after_rcpt_and_no_withdraws_with_rset(
    smtp: SmtpTransport, smtp_sink: SmtpSink
):
    seen: list[list[str]] = []

    def withdraw() -> bool:
        seen.append([address for address, _ in smtp_sink.rcpts()])
        return False

    out = smtp.send(FROM, "a@example.com", message(), before_data=withdraw)
    assert (out.outcome, out.stage, out.connection_lost) == (Outcome.WITHDRAWN, Stage.RCPT, False)
    assert seen == [["a@example.com"]]  # asked once, with the RCPT already accepted
    assert smtp_sink.received == [] and smtp_sink.data_count == 0
    # RSET left the connection clean: the next message goes through on it.
    ok = smtp.send(FROM, "b@example.com", message("b@example.com", "<m2@x>"), lambda: True)
    assert ok.outcome == Outcome.SENT
    assert smtp_sink.recipients() == ["b@example.com"] and smtp_sink.connections == 1


def test_before_data_that_raises_sends_nothing_and_propagates(
    smtp: SmtpTransport, smtp_sink: SmtpSink
):
    def broken() -> bool:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError, match="database gone"):
        smtp.send(FROM, "a@example.com", message(), before_data=broken)
    assert smtp_sink.received == []
    assert smtp.send(FROM, "a@example.com", message()).outcome == Outcome.SENT  # reconnects


def test_outbox_before_data_runs_before_the_file_is_written(tmp_path: Path):
    outbox = OutboxTransport(tmp_path / "outbox")
    out = outbox.send(FROM, "a@example.com", message(), before_data=lambda: False)
    assert out.outcome == Outcome.WITHDRAWN
    assert not (tmp_path / "outbox").exists() or list((tmp_path / "outbox").iterdir()) == []
    assert outbox.send(FROM, "a@example.com", message(), lambda: True).outcome == Outcome.SENT
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
