"""publisher.inbound.parse: real report shapes in, the right verdict out, never an exception."""

from __future__ import annotations

import pytest

import reports
from publisher.inbound.parse import Kind, parse

VERP = "bounces+1.2.aaaaaaaaaaaaaaaa@blog.example.com"
ID = "<issue-1.2@blog.example.com>"
WHO = "reader1@example.com"


@pytest.mark.parametrize(
    ("build", "kind", "status"),
    [
        (reports.postfix_bounce, Kind.HARD, "5.1.1"),
        (reports.exim_bounce, Kind.HARD, "5.0.0"),
        (reports.gmail_bounce, Kind.HARD, "5.1.1"),
        (reports.outlook_bounce, Kind.HARD, "5.1.10"),
        (reports.yahoo_no_user, Kind.HARD, "5.0.0"),  # status read from "554" alone
        (reports.yahoo_mailbox_full, Kind.SOFT, "4.2.2"),
    ],
)
def test_dsn_layouts(build, kind: Kind, status: str) -> None:  # type: ignore[no-untyped-def]
    report = parse(build(VERP, WHO, ID))
    assert (report.kind, report.status) == (kind, status)
    assert WHO in report.recipients
    assert report.original_message_id == ID
    assert VERP in report.return_paths
    assert report.report_id.startswith("<dsn-")
    assert report.diagnostic.startswith("smtp; ")


def test_a_delivered_dsn_is_ignored() -> None:
    raw = reports.dsn(
        to=VERP, recipient=WHO, status="2.0.0", diagnostic="250 ok", action="delivered"
    )
    assert parse(raw).kind == Kind.IGNORED


def test_arf_from_yahoo_and_microsoft() -> None:
    yahoo = parse(
        reports.arf(to="fbl@blog.example.com", mail_from=VERP, rcpt_to=WHO, message_id=ID)
    )
    assert (yahoo.kind, yahoo.recipients, yahoo.original_message_id) == (Kind.COMPLAINT, (WHO,), ID)
    assert VERP in yahoo.return_paths and "Yahoo" in yahoo.diagnostic
    microsoft = parse(reports.microsoft_arf("fbl@blog.example.com", VERP, ID))
    assert microsoft.kind == Kind.COMPLAINT
    assert microsoft.recipients == ()  # "[redacted]" is not an address
    not_spam = parse(reports.arf(to="x@blog.example.com", mail_from=VERP, feedback_type="not-spam"))
    assert not_spam.kind == Kind.IGNORED and "not-spam" in not_spam.reason


def test_auto_replies_change_nothing() -> None:
    assert parse(reports.auto_reply(VERP)).kind == Kind.AUTO_REPLY


def test_unsubscribe_token_in_subject_or_address() -> None:
    token = "AbCdEfGhIjKlMnOpQrStUvWx_-12"
    by_subject = parse(
        reports.unsubscribe_mail("leave@blog.example.com", f"unsubscribe {token}"),
        unsubscribe_address="leave@blog.example.com",
    )
    assert (by_subject.kind, by_subject.tokens) == (Kind.UNSUBSCRIBE, (token,))
    undecoded = parse(
        reports.unsubscribe_mail("leave@blog.example.com", f"unsubscribe%20{token}"),
        unsubscribe_address="leave@blog.example.com",
    )
    assert undecoded.tokens == (token,)
    by_address = parse(
        reports.unsubscribe_mail(f"leave+{token}@blog.example.com", "unsubscribe"),
        envelope_to=[f"leave+{token}@Blog.Example.com"],
        unsubscribe_address="leave@blog.example.com",
    )
    assert by_address.tokens == (token,)
    bare = parse(
        reports.unsubscribe_mail("leave@blog.example.com", "unsubscribe"),
        unsubscribe_address="leave@blog.example.com",
    )
    assert bare.kind == Kind.IGNORED and "without a token" in bare.reason


def test_plain_and_html_bounces() -> None:
    qmail = parse(reports.qmail_bounce(VERP, WHO))
    assert (qmail.kind, qmail.status) == (Kind.HARD, "5.1.1")
    html = parse(reports.html_only_bounce(VERP))
    assert html.kind == Kind.IGNORED and "HTML-only" in html.reason


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n",
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\n\n--b\n'
        b"Content-Type: message/feedback-report\n\n\n--b--\n",
        b"Subject: =?x-unknown?q?caf=E9?=\nContent-Type: text/plain; charset=x-nonsense\n\n"
        b"\xe9\xe9 550 5.1.1\n",
        b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n!!!!",
        b"Subject: \xff\xfe\xfd\n\nhello",
        b'Content-Type: multipart/mixed; boundary="' + b"a" * 5000 + b'"\n\nx',
    ],
)
def test_hostile_input_never_raises(raw: bytes) -> None:
    report = parse(raw, envelope_to=["x@y.z"], unsubscribe_address="leave@blog.example.com")
    assert report.kind in tuple(Kind)
    assert report.report_id


def test_deeply_nested_mime_is_survived() -> None:
    raw = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(300)
    )
    assert parse(raw).kind == Kind.IGNORED
