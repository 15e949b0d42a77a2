"""Builders of inbound reports in the shapes real servers send (issue 12), made with the email package.

Each returns the bytes an MTA would hand to ``publisher inbound``. The layouts
follow what Postfix, Exim, Gmail, Outlook/Exchange and Yahoo put in their
delivery status notifications (RFC 3464) and what Yahoo's and Microsoft's
feedback loops send (ARF, RFC 5965).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime

WHEN = format_datetime(datetime(2025, 6, 20, 1, 0, tzinfo=UTC))


def original_headers(message_id: str, to: str, return_path: str = "") -> str:
    lines = [
        f"Return-Path: <{return_path}>" if return_path else "",
        "From: =?utf-8?b?7Y6465+p67aA?= <news@blog.example.com>",
        f"To: {to}",
        "Subject: =?utf-8?b?7JWI64WV7ZWY7IS47JqU?=",
        f"Message-ID: {message_id}",
        "List-Id: <newsletter.blog.example.com>",
        "MIME-Version: 1.0",
        "",
    ]
    return "\n".join(line for line in lines if line is not None).lstrip("\n") + "\n"


def _fields(pairs: list[tuple[str, str]]) -> Message:
    block = Message()
    for name, value in pairs:
        block[name] = value
    return block


def _status_part(
    per_message: list[tuple[str, str]], recipients: list[list[tuple[str, str]]]
) -> MIMEBase:
    part = MIMEBase("message", "delivery-status")
    part.set_payload([_fields(per_message), *(_fields(r) for r in recipients)])
    return part


def _headers_part(headers: str, *, full: bool) -> MIMEBase:
    if full:  # message/rfc822, the whole original (Exim, Gmail)
        inner = MIMEText("본문", "plain", "utf-8")
        for line in headers.strip().splitlines():
            name, _, value = line.partition(": ")
            if name:
                inner[name] = value
        part = MIMEBase("message", "rfc822")
        part.set_payload([inner])
        return part
    text = MIMEText(headers, "rfc822-headers", "us-ascii")  # Postfix, Outlook
    return text


def dsn(
    *,
    to: str,
    recipient: str,
    status: str,
    diagnostic: str,
    message_id: str = "",
    action: str = "failed",
    mta: str = "postfix",
    human: MIMEBase | MIMEText | MIMEMultipart | None = None,
    full_original: bool = False,
    subject: str = "Undelivered Mail Returned to Sender",
    sender: str = "MAILER-DAEMON@mx.example.net (Mail Delivery System)",
    extra: dict[str, str] | None = None,
    original_return_path: str = "",
) -> bytes:
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = sender
    report["To"] = to
    report["Subject"] = subject
    report["Date"] = WHEN
    report["Message-ID"] = f"<dsn-{mta}-{recipient}-{status}@mx.example.net>"
    for name, value in (extra or {}).items():
        report[name] = value
    report.attach(
        human
        or MIMEText(
            f"This is the mail system at host mx.example.net.\n\n<{recipient}>: {diagnostic}\n"
        )
    )
    per_message = [("Reporting-MTA", "dns; mx.example.net"), ("Arrival-Date", WHEN)]
    block = [
        ("Final-Recipient", f"rfc822; {recipient}"),
        ("Original-Recipient", f"rfc822;{recipient}"),
        ("Action", action),
        ("Status", status),
        ("Remote-MTA", "dns; mail.example.com"),
        ("Diagnostic-Code", f"smtp; {diagnostic}"),
    ]
    report.attach(_status_part(per_message, [block]))
    if message_id:
        headers = original_headers(message_id, recipient, original_return_path)
        report.attach(_headers_part(headers, full=full_original))
    return report.as_bytes()


def postfix_bounce(to: str, recipient: str, message_id: str = "") -> bytes:
    return dsn(
        to=to,
        recipient=recipient,
        status="5.1.1",
        diagnostic=f"550 5.1.1 <{recipient}>: Recipient address rejected: User unknown",
        message_id=message_id,
        extra={"Auto-Submitted": "auto-replied"},  # Postfix marks its bounces so
    )


def exim_bounce(to: str, recipient: str, message_id: str = "") -> bytes:
    return dsn(
        to=to,
        recipient=recipient,
        status="5.0.0",
        diagnostic="550 No such user here",
        message_id=message_id,
        mta="exim",
        full_original=True,
        subject="Mail delivery failed: returning message to sender",
        sender="Mail Delivery System <Mailer-Daemon@mx.example.net>",
        extra={"X-Failed-Recipients": recipient, "Auto-Submitted": "auto-replied"},
    )


def gmail_bounce(to: str, recipient: str, message_id: str = "") -> bytes:
    human = MIMEMultipart("alternative")
    human.attach(MIMEText("Address not found\n\nYour message wasn't delivered.\n"))
    human.attach(MIMEText("<html><b>Address not found</b></html>", "html"))
    return dsn(
        to=to,
        recipient=recipient,
        status="5.1.1",
        diagnostic="550-5.1.1 The email account that you tried to reach does not exist.",
        message_id=message_id,
        mta="gmail",
        human=human,
        full_original=True,
        subject="Delivery Status Notification (Failure)",
        sender="Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
    )


def outlook_bounce(to: str, recipient: str, message_id: str = "") -> bytes:
    human = MIMEText(
        "<html><body><p>Your message to " + recipient + " couldn't be delivered.</p>"
        "<p>Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound'</p></body></html>",
        "html",
        "utf-8",
    )
    return dsn(
        to=to,
        recipient=recipient,
        status="5.1.10",
        diagnostic="550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        message_id=message_id,
        mta="outlook",
        human=human,
        subject="Undeliverable: 안녕하세요",
        sender="postmaster@outlook.com",
    )


def yahoo_mailbox_full(to: str, recipient: str, message_id: str = "") -> bytes:
    return dsn(
        to=to,
        recipient=recipient,
        status="4.2.2",
        action="delayed",
        diagnostic="452 4.2.2 Mailbox full",
        message_id=message_id,
        mta="yahoo",
        subject="Delivery delayed",
        sender="MAILER-DAEMON@yahoo.com",
    )


def yahoo_no_user(to: str, recipient: str, message_id: str = "") -> bytes:
    return dsn(
        to=to,
        recipient=recipient,
        status="",
        diagnostic="554 delivery error: dd This user doesn't have a yahoo.com account",
        message_id=message_id,
        mta="yahoo",
        sender="MAILER-DAEMON@yahoo.com",
    )


def arf(
    *,
    to: str,
    mail_from: str,
    rcpt_to: str = "",
    message_id: str = "",
    original_to: str = "",
    feedback_type: str = "abuse",
    agent: str = "Yahoo!-Mail-Feedback/2.0",
    sender: str = "feedback@arf.mail.yahoo.com",
) -> bytes:
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = sender
    report["To"] = to
    report["Subject"] = "FW: 안녕하세요"
    report["Date"] = WHEN
    report["Message-ID"] = (
        f"<arf-{agent}-{rcpt_to or original_to}-{feedback_type}@feedback.example>"
    )
    report.attach(MIMEText("This is an email abuse report for an email message received.\n"))
    fields = MIMEBase("message", "feedback-report")
    pairs = [
        ("Feedback-Type", feedback_type),
        ("User-Agent", agent),
        ("Version", "1"),
        ("Original-Mail-From", f"<{mail_from}>"),
        ("Arrival-Date", WHEN),
        ("Source-IP", "192.0.2.1"),
    ]
    if rcpt_to:
        pairs.append(("Original-Rcpt-To", f"<{rcpt_to}>"))
    fields.set_payload("".join(f"{k}: {v}\n" for k, v in pairs))
    report.attach(fields)
    if message_id:
        report.attach(
            _headers_part(original_headers(message_id, original_to or "[redacted]"), full=True)
        )
    return report.as_bytes()


def microsoft_arf(to: str, mail_from: str, message_id: str = "") -> bytes:
    return arf(
        to=to,
        mail_from=mail_from,
        message_id=message_id,
        agent="Microsoft JMRP",
        sender="staff@hotmail.com",
    )


def auto_reply(to: str) -> bytes:
    msg = MIMEText("I am on holiday until Monday.\n550 5.1.1 is not what this is.\n")
    msg["From"] = "reader1@example.com"
    msg["To"] = to
    msg["Subject"] = "Automatic reply: 안녕하세요"
    msg["Auto-Submitted"] = "auto-replied"
    return msg.as_bytes()


def unsubscribe_mail(to: str, subject: str) -> bytes:
    msg = MIMEText("")
    msg["From"] = "reader1@example.com"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<unsub-{subject[-8:]}@mail.example.com>"
    return msg.as_bytes()


def html_only_bounce(to: str) -> bytes:
    msg = MIMEText("<html><p>550 5.1.1 user unknown</p></html>", "html")
    msg["From"] = "postmaster@old.example.org"
    msg["To"] = to
    msg["Subject"] = "failure notice"
    return msg.as_bytes()


def qmail_bounce(to: str, recipient: str) -> bytes:
    msg = MIMEText(
        "Hi. This is the qmail-send program at mx.example.org.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
        f"<{recipient}>:\nRemote host said: 550 5.1.1 No such mailbox\n"
    )
    msg["From"] = "MAILER-DAEMON@mx.example.org"
    msg["To"] = to
    msg["Subject"] = "failure notice"
    return msg.as_bytes()
