"""publisher.store.bounces: what a report does to a subscriber, once (issue 12)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import inspect, text

from publisher.store import (
    MIGRATIONS,
    DeliveryStatus,
    Reply,
    Store,
    SubscriberStatus,
    schema_version,
)
from publisher.store.bounces import (
    Applied,
    BounceEvent,
    BouncePolicy,
    BounceStore,
    EventKind,
    Feedback,
    SuppressionReason,
    complaint_warning,
    create_tables,
)
from sending import FakeClock, add_subscribers, make_issue, open_store

POLICY = BouncePolicy(bounce_limit=2, soft_bounce_limit=3, soft_bounce_days=30)


def _sent_rows(store: Store, count: int) -> list[int]:
    add_subscribers(store, count)
    issue = make_issue(store)
    store.snapshot(issue.id)
    rows = store.claim(issue.id, "w", 100, timedelta(minutes=5))
    for row in rows:
        store.mark_sent(row.id, Reply(250, None, "ok"), f"<issue-{issue.id}.{row.subscriber_id}@x>")
    return [r.id for r in rows]


def _event(store: Store, kind: EventKind, delivery_id: int | None, **kw: object) -> BounceEvent:
    delivery = store.get_delivery(delivery_id) if delivery_id else None
    values: dict[str, object] = {
        "kind": kind,
        "subscriber_id": delivery.subscriber_id if delivery else 1,
        "delivery_id": delivery_id,
        "issue_id": delivery.issue_id if delivery else None,
        "status": "5.1.1" if kind == EventKind.HARD else "4.2.2",
        "diagnostic": "smtp; 550 5.1.1 user unknown",
        "source": "pipe",
        "report_id": "<report-1@mx.example.net>",
    }
    values.update(kw)
    return BounceEvent(**values)  # type: ignore[arg-type]


def test_hard_bounces_count_once_per_row_and_bounce_at_the_limit(db_url: str) -> None:
    store = open_store(db_url)
    bounces = BounceStore(store)
    rows = _sent_rows(store, 1)
    issue2 = make_issue(store, "post:second")
    store.snapshot(issue2.id)
    (row2,) = store.claim(issue2.id, "w", 10, timedelta(minutes=5))
    store.mark_sent(row2.id, Reply(250, None, "ok"), "<m2@x>")

    first = bounces.record(_event(store, EventKind.HARD, rows[0]), POLICY)
    again = bounces.record(_event(store, EventKind.HARD, rows[0], report_id="<other>"), POLICY)
    assert (first.applied, first.status) == (Applied.APPLIED, SubscriberStatus.ACTIVE)
    assert again.applied == Applied.DUPLICATE
    assert store.get_subscriber(1).bounce_count == 1  # type: ignore[union-attr]
    delivery = store.get_delivery(rows[0])
    assert delivery is not None and delivery.status == DeliveryStatus.FAILED_PERM
    assert delivery.last_enhanced_code == "5.1.1"
    assert "bounced later (pipe)" in (delivery.last_reply or "")

    second = bounces.record(_event(store, EventKind.HARD, row2.id), POLICY)
    assert second.status == SubscriberStatus.BOUNCED
    (evidence, _) = bounces.events(1)
    assert evidence["status"] == "5.1.1" and evidence["source"] == "pipe"
    assert evidence["diagnostic"] == "smtp; 550 5.1.1 user unknown"
    assert evidence["received_at"] == store.clock()


def test_soft_bounces_count_apart_and_decay(db_url: str) -> None:
    clock = FakeClock()
    store = open_store(db_url, clock)
    bounces = BounceStore(store)
    add_subscribers(store, 1)

    def soft(n: int) -> BounceEvent:
        return _event(store, EventKind.SOFT, None, report_id=f"<r{n}>", subscriber_id=1)

    bounces.record(soft(1), POLICY)
    bounces.record(soft(2), POLICY)
    assert bounces.soft_count(1) == 2
    clock.advance(days=31)
    bounces.record(soft(3), POLICY)  # the old two are forgotten
    assert bounces.soft_count(1) == 1
    assert store.get_subscriber(1).bounce_count == 0  # type: ignore[union-attr]
    bounces.record(soft(4), POLICY)
    result = bounces.record(soft(5), POLICY)
    assert result.status == SubscriberStatus.BOUNCED


def test_a_complaint_unsubscribes_and_suppresses(db_url: str) -> None:
    store = open_store(db_url)
    bounces = BounceStore(store)
    rows = _sent_rows(store, 2)
    before = store.get_subscriber(1)
    result = bounces.record(_event(store, EventKind.COMPLAINT, rows[0], status=""), POLICY)
    assert result.status == SubscriberStatus.UNSUBSCRIBED
    after = store.get_subscriber(1)
    assert after is not None and before is not None
    assert after.state_version == before.state_version + 1
    entry = bounces.suppressed("reader1@example.com")
    assert entry is not None and entry.reason == SuppressionReason.COMPLAINT
    assert bounces.suppressed("reader2@example.com") is None
    assert bounces.feedback(rows[0] and 1) == Feedback(0, 0, 1, 0, 2)


def test_unsubscribe_event_and_unknown_subscriber(db_url: str) -> None:
    store = open_store(db_url)
    bounces = BounceStore(store)
    add_subscribers(store, 1)
    event = _event(store, EventKind.UNSUBSCRIBE, None, subscriber_id=1, status="")
    assert bounces.record(event, POLICY).status == SubscriberStatus.UNSUBSCRIBED
    assert bounces.record(event, POLICY).applied == Applied.DUPLICATE
    ghost = _event(store, EventKind.HARD, None, subscriber_id=999)
    assert bounces.record(ghost, POLICY).applied == Applied.UNKNOWN_SUBSCRIBER
    assert bounces.events(999) == []


def test_suppressions_add_remove_list(db_url: str) -> None:
    store = open_store(db_url)
    bounces = BounceStore(store)
    assert bounces.suppress("Spam@Example.com", SuppressionReason.OPERATOR, "cli", "asked")
    assert not bounces.suppress("spam@example.com", SuppressionReason.OPERATOR, "cli")
    assert (
        bounces.suppress_many(["a@example.com", "spam@example.com"], SuppressionReason.IMPORT, "f")
        == 1
    )
    assert [s.email for s in bounces.iter_suppressions(batch_size=1)] == [
        "a@example.com",
        "spam@example.com",
    ]
    assert bounces.unsuppress("SPAM@example.com")
    assert not bounces.unsuppress("spam@example.com")


def test_complaint_rate_warnings() -> None:
    assert complaint_warning(Feedback(0, 0, 0, 0, 1000)) is None
    assert "passed 0.1%" in (complaint_warning(Feedback(0, 0, 1, 0, 1000)) or "")
    assert "reached 0.3%" in (complaint_warning(Feedback(0, 0, 3, 0, 1000)) or "")
    assert complaint_warning(Feedback(0, 0, 0, 0, 0)) is None


def test_the_migration_is_idempotent_and_upgrades_a_version_1_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = open_store(url)
    with store.engine.begin() as conn:
        for table in ("bounce_events", "soft_bounces", "suppressions"):
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(schema_version.update().values(version=1))
        create_tables(conn)  # running it twice changes nothing
        MIGRATIONS[1](conn)
        assert {"suppressions", "bounce_events", "soft_bounces"} <= set(
            inspect(conn).get_table_names()
        )
        conn.execute(schema_version.update().values(version=1))
    store.close()
    upgraded = open_store(url, migrate=True)
    assert upgraded.schema_version() == len(MIGRATIONS)
