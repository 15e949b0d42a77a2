"""Issue 12, done when: a send to dead, full and complaining addresses, their reports by pipe,
LMTP and webhooks, and the next issue mails none of the bounced, complained or unsubscribed."""

from __future__ import annotations

import random
import smtplib
from pathlib import Path

import pytest

import reports
from builders import make_config
from inbound_world import UNSUBSCRIBE, sent_world
from publisher.deliver.sender import send_issue
from publisher.deliver.tokens import Purpose, make_signer
from publisher.inbound.listener import Listener
from publisher.store.bounces import BounceStore
from publisher.web.app import create_app
from sending import PlainComposer, make_issue, open_store, policy, smtp_to
from smtp_sink import SmtpSink
from test_inbound_cli import SECRET, crlf, free_port, pipe, site
from test_web import RecordingMailer
from test_webhooks import KEYS, TOPIC, Served, mailgun, serve, ses

pytestmark = pytest.mark.timeout(180)


def test_the_deliverability_loop_closes(tmp_path: Path, db_url: str, smtp_sink: SmtpSink) -> None:
    store = open_store(db_url)
    world = sent_world(store, tmp_path, count=8)
    env = site(tmp_path / "site", db_url)
    root = tmp_path / "site"

    # By pipe: a dead address (Postfix DSN) and a mailto: unsubscribe with the token.
    done = pipe(root, env, reports.postfix_bounce(world.verp(0), world.email(0)), world.verp(0))
    assert done.returncode == 0, done.stderr
    config = make_config(root, env={"PUBLISHER_SECRET_KEY": SECRET})
    token = make_signer(config, store, store.clock).sign(
        Purpose.UNSUBSCRIBE, world.subscribers[5].id, 1
    )
    raw = reports.unsubscribe_mail(UNSUBSCRIBE, f"unsubscribe {token}")
    assert pipe(root, env, raw, UNSUBSCRIBE).returncode == 0

    # By LMTP: a dead address (Gmail), a full mailbox (Yahoo) and a complaint (Yahoo ARF).
    port = free_port()
    listener = Listener(
        world.handler.mail, world.handler.settings.accepts, host="127.0.0.1", port=port
    )
    listener.start()
    try:
        with smtplib.LMTP("127.0.0.1", port) as client:
            client.sendmail(
                "", [world.verp(1)], crlf(reports.gmail_bounce(world.verp(1), world.email(1)))
            )
            full = crlf(reports.yahoo_mailbox_full(world.verp(2), world.email(2)))
            client.sendmail("", [world.verp(2)], full)
            arf = reports.arf(to=world.verp(3), mail_from=world.verp(3), rcpt_to=world.email(3))
            client.sendmail("", [world.verp(3)], crlf(arf))
    finally:
        listener.stop()

    # By webhook: an SES complaint and a Mailgun hard bounce, signed.
    (tmp_path / "sns.pem").write_bytes(KEYS.ses_pem)
    web_config = make_config(
        tmp_path,
        env=KEYS.env(),
        newsletter={"bounce_limit": 1},
        inbound={"ses_certificate": "sns.pem", "ses_topic_arn": TOPIC},
    )
    url, stop = serve(create_app(web_config, store, RecordingMailer(), store.clock, categories=()))
    try:
        served = Served(world, url, store.clock())
        for provider, build, kind, index in (
            ("ses", ses, "complaint", 4),
            ("mailgun", mailgun, "hard", 6),
        ):
            body, headers = build(served, kind, index)
            response = served.post(provider, body, headers)
            assert response.json()["applied"] == 1, response.text
    finally:
        stop()

    states = [world.status(i) for i in range(8)]
    assert states == [
        "bounced",  # pipe, hard
        "bounced",  # LMTP, hard
        "active",  # LMTP, mailbox full: one soft bounce, counted apart
        "unsubscribed",  # LMTP, ARF complaint
        "unsubscribed",  # SES complaint
        "unsubscribed",  # mailto: unsubscribe
        "bounced",  # Mailgun hard bounce
        "active",
    ]
    bounces = BounceStore(store)
    assert bounces.soft_count(world.subscribers[2].id) == 1
    assert bounces.suppressed(world.email(3)) and bounces.suppressed(world.email(4))
    evidence = {(e["subscriber_id"], e["kind"], e["source"]) for e in bounces.events()}
    ids = [s.id for s in world.subscribers]
    assert evidence == {
        (ids[0], "hard", "pipe"),
        (ids[1], "hard", "lmtp"),
        (ids[2], "soft", "lmtp"),
        (ids[3], "complaint", "lmtp"),
        (ids[4], "complaint", "webhook:ses"),
        (ids[5], "unsubscribe", "pipe"),
        (ids[6], "hard", "webhook:mailgun"),
    }
    feedback = bounces.feedback(world.issue.id)
    assert (feedback.hard, feedback.soft, feedback.complaints) == (3, 1, 2)

    # The next issue mails only the two still active.
    second = make_issue(store, "post:next")
    report = send_issue(
        store,
        second.id,
        smtp_to(smtp_sink),
        PlainComposer(),
        policy(),
        rng=random.Random(5),
        clock=store.clock,
    )
    assert report.sent == 2
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == [world.email(2), world.email(7)]
