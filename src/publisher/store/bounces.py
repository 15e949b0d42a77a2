"""Bounces, complaints and the suppression list, beside publisher.store (issue 12).

What a report does to a subscriber is decided here, in ONE transaction per
report run by the store's retrying runner (``Store.run``, H1, H3). The policy
(also in README "Inbound mail"):

- **Hard bounce** (RFC 3463 ``5.x.x``): ``subscribers.bounce_count`` goes up, the
  same counter a ``5xx`` at RCPT feeds (F4); at ``[newsletter].bounce_limit`` an
  active subscriber becomes ``bounced`` and is mailed no more. A delivery row
  that was ``sent`` becomes ``failed_perm`` with the report's evidence.
- **Soft bounce** (``4.x.x``, a full mailbox, a DSN with ``Action: delayed``):
  counted apart in ``soft_bounces``. The count decays: a soft bounce more than
  ``[inbound].soft_bounce_days`` after the previous one starts again at 1. At
  ``[inbound].soft_bounce_limit`` an active subscriber becomes ``bounced``.
- **Complaint** (ARF ``abuse``, a provider's complaint event): unsubscribed at
  once and the address goes on the **suppression list**, which sign-ups,
  confirmations, imports and the sender all honour; only
  ``publisher suppressions remove`` takes it off.
- **Unsubscribe by mail** (the ``mailto:`` of List-Unsubscribe with a valid
  token): unsubscribed, as the one-click POST does.
- Auto-replies change nothing (they never get here).

Every applied report is a ``bounce_events`` row naming the subscriber, the
delivery row and issue when known, and its evidence (status code, diagnostic,
source, when). Duplicates count once: an event's ``fingerprint`` is its kind
plus its delivery row (one hard bounce, one soft bounce, one complaint per
message), or plus the report's own id when no row is known; a second copy, a
replayed webhook or the same bounce arriving by mail and by webhook finds the
fingerprint taken and changes nothing.

Status changes bump ``state_version`` like ``Store.set_status`` (S2): links
issued before die with the state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)

from publisher.store import (
    Delivery,
    DeliveryStatus,
    Store,
    SubscriberStatus,
    UtcDateTime,
    normalize_email,
)
from publisher.store.deliveries import _delivery
from publisher.store.schema import deliveries, subscribers

bounce_metadata = MetaData()  # kept out of migration 1's create_all

suppressions = Table(
    "suppressions",
    bounce_metadata,
    Column("email", String(320), primary_key=True),  # normalized (E3)
    Column("reason", String(32), nullable=False),
    Column("source", String(200), nullable=False),
    Column("detail", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

bounce_events = Table(
    "bounce_events",
    bounce_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(300), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column(
        "subscriber_id", Integer, ForeignKey(subscribers.c.id, ondelete="CASCADE"), nullable=False
    ),
    Column("delivery_id", Integer, ForeignKey(deliveries.c.id, ondelete="SET NULL")),
    Column("issue_id", Integer),
    Column("status", String(20), nullable=False),  # enhanced code, or "" (ARF, unsubscribe)
    Column("diagnostic", Text, nullable=False),
    Column("source", String(100), nullable=False),  # pipe, lmtp, smtp, webhook:<provider>
    Column("reported_at", UtcDateTime),  # when the report says it happened
    Column("received_at", UtcDateTime, nullable=False),
    Index("ix_bounce_events_issue", "issue_id", "kind"),
)

soft_bounces = Table(
    "soft_bounces",
    bounce_metadata,
    Column(
        "subscriber_id",
        Integer,
        ForeignKey(subscribers.c.id, ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("count", Integer, nullable=False),
    Column("last_at", UtcDateTime, nullable=False),
)


def create_tables(conn: Connection) -> None:
    """The bounce tables; idempotent and independent of other migrations' order."""
    bounce_metadata.create_all(conn, checkfirst=True)


class EventKind(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"


class Applied(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    UNKNOWN_SUBSCRIBER = "unknown_subscriber"


class SuppressionReason(StrEnum):
    COMPLAINT = "complaint"
    OPERATOR = "operator"
    IMPORT = "import"


@dataclass(frozen=True)
class BouncePolicy:
    bounce_limit: int
    soft_bounce_limit: int
    soft_bounce_days: int


@dataclass(frozen=True)
class BounceEvent:
    """One report about one subscriber, with its evidence."""

    kind: EventKind
    subscriber_id: int
    delivery_id: int | None
    issue_id: int | None
    status: str
    diagnostic: str
    source: str
    report_id: str  # the report's own id, for dedup when no delivery row is known
    reported_at: datetime | None = None

    @property
    def fingerprint(self) -> str:
        if self.delivery_id is not None:
            return f"{self.kind}:delivery:{self.delivery_id}"
        return f"{self.kind}:subscriber:{self.subscriber_id}:{self.report_id}"[:300]


@dataclass(frozen=True)
class Result:
    applied: Applied
    status: SubscriberStatus | None  # the subscriber's status afterwards


@dataclass(frozen=True)
class Suppression:
    email: str
    reason: str
    source: str
    detail: str
    created_at: datetime


@dataclass(frozen=True)
class Feedback:
    """What reports said about one issue."""

    hard: int
    soft: int
    complaints: int
    unsubscribes: int
    delivered: int  # rows sent, or sent and bounced afterwards

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.delivered if self.delivered else 0.0


# Gmail's and Yahoo's sender guidelines: keep spam complaints under 0.1%, never reach 0.3%.
COMPLAINT_WARN = 0.001
COMPLAINT_LIMIT = 0.003


def complaint_warning(feedback: Feedback) -> str | None:
    rate = feedback.complaint_rate
    if rate >= COMPLAINT_LIMIT:
        return f"complaint rate {rate:.2%} reached 0.3%, Gmail's and Yahoo's limit"
    if rate >= COMPLAINT_WARN:
        return f"complaint rate {rate:.2%} passed 0.1%, the recommended ceiling"
    return None


class BounceStore:
    """Reports and suppressions over a :class:`publisher.store.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._run = store.run  # the store's public retrying transaction runner (H1, H3)

    # reports ------------------------------------------------------------------------------

    def record(self, event: BounceEvent, policy: BouncePolicy) -> Result:
        """Apply one report (see the module docstring), once."""
        now = self.store.clock()
        return self._run(lambda conn: self._record(conn, event, policy, now))

    def _record(
        self, conn: Connection, event: BounceEvent, policy: BouncePolicy, now: datetime
    ) -> Result:
        row = conn.execute(
            select(subscribers.c.status, subscribers.c.email)
            .where(subscribers.c.id == event.subscriber_id)
            .with_for_update()
        ).first()
        if row is None:
            return Result(Applied.UNKNOWN_SUBSCRIBER, None)
        stmt = self.store.insert(bounce_events).values(
            fingerprint=event.fingerprint,
            kind=event.kind,
            subscriber_id=event.subscriber_id,
            delivery_id=event.delivery_id,
            issue_id=event.issue_id,
            status=event.status[:20],
            diagnostic=event.diagnostic[:2000],
            source=event.source[:100],
            reported_at=event.reported_at,
            received_at=now,
        )
        new = conn.execute(stmt.on_conflict_do_nothing().returning(bounce_events.c.id))
        if new.scalar_one_or_none() is None:
            return Result(Applied.DUPLICATE, SubscriberStatus(row.status))
        if event.kind == EventKind.HARD:
            self._hard(conn, event, policy, now)
        elif event.kind == EventKind.SOFT:
            self._soft(conn, event, policy, now)
        elif event.kind == EventKind.COMPLAINT:
            _set_status(conn, event.subscriber_id, SubscriberStatus.UNSUBSCRIBED, now)
            self._suppress(conn, row.email, SuppressionReason.COMPLAINT, event.source, now, event)
        else:
            _set_status(conn, event.subscriber_id, SubscriberStatus.UNSUBSCRIBED, now)
        status = conn.execute(
            select(subscribers.c.status).where(subscribers.c.id == event.subscriber_id)
        ).scalar_one()
        return Result(Applied.APPLIED, SubscriberStatus(status))

    def _hard(
        self, conn: Connection, event: BounceEvent, policy: BouncePolicy, now: datetime
    ) -> None:
        sub = subscribers.c
        conn.execute(
            update(subscribers)
            .where(sub.id == event.subscriber_id)
            .values(bounce_count=sub.bounce_count + 1)
        )
        self._bounce_if(conn, event.subscriber_id, sub.bounce_count >= policy.bounce_limit)
        if event.delivery_id is not None:
            conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == event.delivery_id,
                    deliveries.c.status == DeliveryStatus.SENT,
                )
                .values(
                    status=DeliveryStatus.FAILED_PERM,
                    last_enhanced_code=event.status[:20] or None,
                    last_reply=f"bounced later ({event.source}): {event.diagnostic}"[:1000],
                    updated_at=now,
                )
            )

    def _soft(
        self, conn: Connection, event: BounceEvent, policy: BouncePolicy, now: datetime
    ) -> None:
        found = conn.execute(
            select(soft_bounces.c.count, soft_bounces.c.last_at).where(
                soft_bounces.c.subscriber_id == event.subscriber_id
            )
        ).first()
        window = timedelta(days=policy.soft_bounce_days)
        fresh = found is None or now - found.last_at > window
        count = 1 if fresh or found is None else int(found[0]) + 1
        stmt = self.store.insert(soft_bounces).values(
            subscriber_id=event.subscriber_id, count=count, last_at=now
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[soft_bounces.c.subscriber_id],
                set_={"count": count, "last_at": now},
            )
        )
        if count >= policy.soft_bounce_limit:
            self._bounce_if(conn, event.subscriber_id, True)

    def _bounce_if(self, conn: Connection, subscriber_id: int, condition: Any) -> None:
        sub = subscribers.c
        conn.execute(
            update(subscribers)
            .where(sub.id == subscriber_id, sub.status == SubscriberStatus.ACTIVE, condition)
            .values(status=SubscriberStatus.BOUNCED, state_version=sub.state_version + 1)
        )

    def delivery_for(self, issue_id: int, subscriber_id: int) -> Delivery | None:
        """The delivery row of (issue, subscriber), if there is one."""
        return self._one_delivery(
            (deliveries.c.issue_id == issue_id) & (deliveries.c.subscriber_id == subscriber_id)
        )

    def latest_delivery(self, subscriber_id: int) -> Delivery | None:
        """The subscriber's most recently sent row (a provider event naming only the address)."""
        return self._one_delivery(
            (deliveries.c.subscriber_id == subscriber_id) & deliveries.c.sent_at.is_not(None),
            newest=True,
        )

    def _one_delivery(self, condition: Any, *, newest: bool = False) -> Delivery | None:
        order = deliveries.c.sent_at.desc() if newest else deliveries.c.id
        query = select(deliveries).where(condition).order_by(order, deliveries.c.id.desc()).limit(1)

        def work(conn: Connection) -> Delivery | None:
            row = conn.execute(query).mappings().first()
            return None if row is None else _delivery(row)

        return self._run(work, write=False)

    def soft_count(self, subscriber_id: int) -> int:
        query = select(soft_bounces.c.count).where(soft_bounces.c.subscriber_id == subscriber_id)
        return self._run(lambda c: int(c.execute(query).scalar_one_or_none() or 0), write=False)

    def events(self, subscriber_id: int | None = None) -> list[dict[str, Any]]:
        """Recorded reports with their evidence, oldest first."""
        query = select(bounce_events).order_by(bounce_events.c.id)
        if subscriber_id is not None:
            query = query.where(bounce_events.c.subscriber_id == subscriber_id)
        return self._run(lambda c: [dict(r) for r in c.execute(query).mappings()], write=False)

    def feedback(self, issue_id: int) -> Feedback:
        """Bounces, complaints and unsubscribes by mail for one issue."""
        kinds = (
            select(bounce_events.c.kind, func.count())
            .where(bounce_events.c.issue_id == issue_id)
            .group_by(bounce_events.c.kind)
        )
        delivered = select(func.count()).where(
            deliveries.c.issue_id == issue_id,
            deliveries.c.sent_at.is_not(None),
        )

        def work(conn: Connection) -> Feedback:
            counts = {str(k): int(n) for k, n in conn.execute(kinds)}
            return Feedback(
                hard=counts.get(EventKind.HARD, 0),
                soft=counts.get(EventKind.SOFT, 0),
                complaints=counts.get(EventKind.COMPLAINT, 0),
                unsubscribes=counts.get(EventKind.UNSUBSCRIBE, 0),
                delivered=int(conn.execute(delivered).scalar_one()),
            )

        return self._run(work, write=False)

    # suppressions -------------------------------------------------------------------------

    def _suppress(
        self,
        conn: Connection,
        email: str,
        reason: SuppressionReason,
        source: str,
        now: datetime,
        event: BounceEvent | None = None,
        detail: str = "",
    ) -> bool:
        if event is not None:
            detail = f"{event.kind} {event.status} {event.diagnostic}".strip()
        stmt = self.store.insert(suppressions).values(
            email=email, reason=reason, source=source[:200], detail=detail[:1000], created_at=now
        )
        added = conn.execute(stmt.on_conflict_do_nothing().returning(suppressions.c.email))
        return added.scalar_one_or_none() is not None

    def suppress(
        self, email: str, reason: SuppressionReason, source: str, detail: str = ""
    ) -> bool:
        """Put ``email`` (normalized here) on the list; False when it was there already."""
        address = normalize_email(email)
        now = self.store.clock()
        return self._run(lambda c: self._suppress(c, address, reason, source, now, detail=detail))

    def suppress_many(self, emails: Sequence[str], reason: SuppressionReason, source: str) -> int:
        """Normalized addresses in ONE transaction; returns how many were new."""
        now = self.store.clock()
        return self._run(lambda c: sum(self._suppress(c, e, reason, source, now) for e in emails))

    def unsuppress(self, email: str) -> bool:
        stmt = delete(suppressions).where(suppressions.c.email == normalize_email(email))
        return self._run(lambda c: bool(c.execute(stmt).rowcount))

    def suppressed(self, email: str) -> Suppression | None:
        """The entry for ``email``, or None (an address that cannot be stored is not listed)."""
        query = select(suppressions).where(suppressions.c.email == email.strip().lower())

        def work(conn: Connection) -> Suppression | None:
            row = conn.execute(query).mappings().first()
            return None if row is None else _suppression(row)

        return self._run(work, write=False)

    def iter_suppressions(self, *, batch_size: int = 500) -> Iterator[Suppression]:
        after = ""
        while True:
            query = (
                select(suppressions)
                .where(suppressions.c.email > after)
                .order_by(suppressions.c.email)
                .limit(batch_size)
            )
            batch = self._run(_suppression_reader(query), write=False)
            yield from batch
            if len(batch) < batch_size:
                return
            after = batch[-1].email


def suppressed_condition(email_column: Any) -> Any:
    """SQL: ``email_column`` is on the suppression list (for sign-ups and snapshots)."""
    return select(suppressions.c.email).where(suppressions.c.email == email_column).exists()


def _set_status(
    conn: Connection, subscriber_id: int, status: SubscriberStatus, now: datetime
) -> None:
    values: dict[str, Any] = {"status": status, "state_version": subscribers.c.state_version + 1}
    if status == SubscriberStatus.UNSUBSCRIBED:
        values["unsubscribed_at"] = now
    conn.execute(
        update(subscribers)
        .where(subscribers.c.id == subscriber_id, subscribers.c.status != status)
        .values(**values)
    )


def _suppression_reader(query: Any) -> Callable[[Connection], list[Suppression]]:
    def read(conn: Connection) -> list[Suppression]:
        return [_suppression(r) for r in conn.execute(query).mappings()]

    return read


def _suppression(row: Any) -> Suppression:
    return Suppression(
        email=row["email"],
        reason=row["reason"],
        source=row["source"],
        detail=row["detail"],
        created_at=row["created_at"],
    )
