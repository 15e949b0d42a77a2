"""publisher.inbound.handler: each report changes the right subscriber, once, or nobody."""

from __future__ import annotations

from pathlib import Path

import reports
from inbound_world import PATH, sent_world
from publisher.inbound.handler import ProviderEvent
from publisher.store import DeliveryStatus
from publisher.store.bounces import BounceStore, EventKind
from sending import open_store


def test_a_hard_bounce_by_verp_bounces_and_keeps_evidence(db_url: str, tmp_path: Path) -> None:
    world = sent_world(open_store(db_url), tmp_path)
    raw = reports.postfix_bounce(world.verp(0), world.email(0))
    handled = world.handler.mail(raw, [world.verp(0)], "pipe")
    assert handled.outcome == "applied", handled.detail
    assert world.status(0) == "bounced" and world.status(1) == "active"
    again = world.handler.mail(raw, [world.verp(0)], "pipe")
    assert again.outcome == "duplicate"
    (event,) = BounceStore(world.store).events()
    assert (event["kind"], event["status"], event["source"]) == ("hard", "5.1.1", "pipe")
    assert event["issue_id"] == world.issue.id
    row = BounceStore(world.store).delivery_for(world.issue.id, world.subscribers[0].id)
    assert row is not None and row.status == DeliveryStatus.FAILED_PERM


def test_message_id_fallback_needs_the_matching_recipient(db_url: str, tmp_path: Path) -> None:
    world = sent_world(open_store(db_url), tmp_path)
    # No VERP (sent to the plain bounce address), the quoted original names the row.
    raw = reports.gmail_bounce("bounces@blog.example.com", world.email(1), world.message_id(1))
    assert world.handler.mail(raw, [], "pipe").outcome == "applied"
    assert world.status(1) == "bounced"
    # The same Message-ID with someone else's address changes nobody.
    raw = reports.gmail_bounce(
        "bounces@blog.example.com", "stranger@example.org", world.message_id(2)
    )
    handled = world.handler.mail(raw, [], "pipe")
    assert handled.outcome == "ignored" and "not changing anyone" in handled.detail
    assert world.status(2) == "active"


def test_a_forged_return_path_is_never_acted_on(db_url: str, tmp_path: Path) -> None:
    world = sent_world(open_store(db_url), tmp_path)
    forged = world.verp(0).replace(f".{world.subscribers[0].id}.", f".{world.subscribers[3].id}.")
    raw = reports.postfix_bounce(forged, world.email(3), world.message_id(3))
    handled = world.handler.mail(raw, [forged], "lmtp")
    assert handled.outcome == "ignored" and "forged or altered" in handled.detail
    assert [world.status(i) for i in range(4)] == ["active"] * 4


def test_a_report_claiming_another_recipient_changes_nobody(db_url: str, tmp_path: Path) -> None:
    world = sent_world(open_store(db_url), tmp_path)
    raw = reports.postfix_bounce(world.verp(0), world.email(1))
    handled = world.handler.mail(raw, [world.verp(0)], "pipe")
    assert handled.outcome == "ignored"
    assert world.status(0) == world.status(1) == "active"


def test_soft_bounces_count_separately(db_url: str, tmp_path: Path) -> None:
    world = sent_world(open_store(db_url), tmp_path)
    raw = reports.yahoo_mailbox_full(world.verp(2), world.email(2))
    assert world.handler.mail(raw, [world.verp(2)], "pipe").outcome == "applied"
    assert world.status(2) == "active"
    assert BounceStore(world.store).soft_count(world.subscribers[2].id) == 1


def test_complaints_unsubscribe_and_suppress(db_url: str, tmp_path: Path) -> None:
    world = sent_world(open_store(db_url), tmp_path)
    yahoo = reports.arf(to="fbl@blog.example.com", mail_from=world.verp(0), rcpt_to=world.email(0))
    assert world.handler.mail(yahoo, ["fbl@blog.example.com"], "pipe").outcome == "applied"
    microsoft = reports.microsoft_arf("fbl@blog.example.com", world.verp(1), world.message_id(1))
    assert world.handler.mail(microsoft, [], "pipe").outcome == "applied"
    assert world.status(0) == world.status(1) == "unsubscribed"
    bounces = BounceStore(world.store)
    assert bounces.suppressed(world.email(0)) and bounces.suppressed(world.email(1))
    assert bounces.feedback(world.issue.id).complaints == 2


def test_unknown_rows_auto_replies_and_junk_are_ignored(db_url: str, tmp_path: Path) -> None:
    world = sent_world(open_store(db_url), tmp_path)
    ghost = PATH.address(world.issue.id, 999)
    for raw, to in [
        (reports.postfix_bounce(ghost, "ghost@example.com"), ghost),
        (reports.auto_reply(world.verp(0)), world.verp(0)),
        (reports.html_only_bounce(world.verp(0)), world.verp(0)),
        (b"\xff\xfe\x00 not mail", world.verp(0)),
    ]:
        assert world.handler.mail(raw, [to], "pipe").outcome == "ignored"
    assert [world.status(i) for i in range(4)] == ["active"] * 4
    assert BounceStore(world.store).events() == []


def test_unsubscribe_by_mail_with_a_valid_token(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    token = "T" * 30
    world = sent_world(store, tmp_path, tokens=lambda t: 2 if t == token else None)
    raw = reports.unsubscribe_mail("leave@blog.example.com", f"unsubscribe {token}")
    assert world.handler.mail(raw, ["leave@blog.example.com"], "lmtp").outcome == "applied"
    assert world.status(1) == "unsubscribed"
    bad = reports.unsubscribe_mail("leave@blog.example.com", "unsubscribe " + "X" * 30)
    assert world.handler.mail(bad, ["leave@blog.example.com"], "lmtp").outcome == "ignored"


def test_provider_events_map_by_address_and_message_id(db_url: str, tmp_path: Path) -> None:
    world = sent_world(open_store(db_url), tmp_path)
    event = ProviderEvent(
        EventKind.COMPLAINT,
        world.email(3).upper(),
        "webhook:test",
        "evt-1",
        message_id=world.message_id(3),
    )
    assert world.handler.event(event).outcome == "applied"
    assert world.handler.event(event).outcome == "duplicate"
    assert world.status(3) == "unsubscribed"
    nobody = ProviderEvent(EventKind.HARD, "nobody@example.com", "webhook:test", "evt-2")
    assert world.handler.event(nobody).outcome == "ignored"
