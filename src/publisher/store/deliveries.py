"""Deliveries: claims with leases, outcomes, recovery, counts (RELIABILITY §1.3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    func,
    or_,
    select,
    update,
)

from publisher.store.db import Database
from publisher.store.leases import claim_rows, held_by, settle
from publisher.store.model import (
    DUE_STATUSES,
    Delivery,
    DeliveryCounts,
    DeliveryStatus,
    FlaggedDelivery,
    HandOver,
    Recovery,
    Reply,
    SubscriberStatus,
)
from publisher.store.schema import deliveries, subscribers


class Deliveries(Database):
    """Deliveries: claims with leases, outcomes, recovery, counts (RELIABILITY §1.3)."""

    def claim(self, issue_id: int, worker: str, limit: int, lease: timedelta) -> list[Delivery]:
        """Claim up to ``limit`` due deliveries for ``worker`` (§1.3 step 1).

        Committed before any SMTP command. SQLite serializes writers with
        ``BEGIN IMMEDIATE``; PostgreSQL skips rows another claimer holds.
        """
        now = self.clock()

        # An expired delivery lease is not due: recover_expired_leases decides (G1).
        due = and_(
            deliveries.c.issue_id == issue_id,
            deliveries.c.status.in_(DUE_STATUSES),
            deliveries.c.next_attempt_at <= now,
        )
        values = {
            "status": DeliveryStatus.SENDING,
            "claimed_by": worker,
            "lease_until": now + lease,
            "attempt": deliveries.c.attempt + 1,
            "first_attempt_at": func.coalesce(deliveries.c.first_attempt_at, now),
            "handed_over_at": None,
            "updated_at": now,
        }

        def work(conn: Connection) -> list[Delivery]:
            rows = claim_rows(conn, deliveries, due, values, limit=limit)
            return sorted((_delivery(r) for r in rows), key=_by_id)

        return self.run(work)

    def renew_lease(self, worker: str, ids: Sequence[int], lease: timedelta) -> set[int]:
        """Extend ``worker``'s lease on ``ids``; returns the ids it still holds."""
        if not ids:
            return set()
        now = self.clock()
        stmt = (
            update(deliveries)
            .where(
                deliveries.c.id.in_(list(ids)),
                deliveries.c.claimed_by == worker,
                deliveries.c.status == DeliveryStatus.SENDING,
            )
            .values(lease_until=now + lease, updated_at=now)
            .returning(deliveries.c.id)
        )
        return self.run(lambda c: set(c.execute(stmt).scalars()))

    def release(self, worker: str, ids: Sequence[int]) -> int:
        """Give back claimed rows that were never attempted: pending again, attempt undone."""
        if not ids:
            return 0
        stmt = (
            update(deliveries)
            .where(
                deliveries.c.id.in_(list(ids)),
                deliveries.c.claimed_by == worker,
                deliveries.c.status == DeliveryStatus.SENDING,
            )
            .values(
                status=DeliveryStatus.PENDING,
                attempt=deliveries.c.attempt - 1,
                claimed_by=None,
                lease_until=None,
                updated_at=self.clock(),
            )
        )
        return self.run(lambda c: int(c.execute(stmt).rowcount))

    def hand_over(self, delivery_id: int, worker: str) -> HandOver:
        """The last check before DATA (E16, issue 8), committed before DATA is sent.

        In one transaction: the row must still be ``worker``'s; the subscriber is read
        again, and one no longer active makes the row ``skipped``; otherwise the row
        records that its message may now reach the server (``handed_over_at``), so a
        crash from here on leaves it in doubt rather than pending.
        """
        now = self.clock()

        def work(conn: Connection) -> HandOver:
            found = conn.execute(
                select(subscribers.c.status)
                .select_from(
                    deliveries.outerjoin(
                        subscribers, subscribers.c.id == deliveries.c.subscriber_id
                    )
                )
                .where(
                    deliveries.c.id == delivery_id,
                    deliveries.c.claimed_by == worker,
                    deliveries.c.status == DeliveryStatus.SENDING,
                )
            ).first()
            if found is None:
                return HandOver.LOST
            if found.status != SubscriberStatus.ACTIVE:
                why = f"subscriber is {found.status or 'removed'} (E16, checked before DATA)"
                self._finish_in(
                    conn, delivery_id, worker, DeliveryStatus.SKIPPED, Reply(text=why), None
                )
                return HandOver.SKIPPED
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(handed_over_at=now, updated_at=now)
            )
            return HandOver.GO

        return self.run(work)

    def mark_sent(self, delivery_id: int, reply: Reply, message_id: str) -> None:
        """§1.3 step 2: committed right after the 250. The server's word wins over any state."""
        now = self.clock()
        stmt = (
            update(deliveries)
            .where(deliveries.c.id == delivery_id, deliveries.c.status != DeliveryStatus.SENT)
            .values(status=DeliveryStatus.SENT, sent_at=now, **_result_values(reply, message_id))
            .values(claimed_by=None, lease_until=None, updated_at=now)
        )
        self.run(lambda c: c.execute(stmt))

    def mark_failed_temp(
        self, delivery_id: int, worker: str, reply: Reply, message_id: str, retry_at: datetime
    ) -> None:
        self._finish(
            delivery_id,
            worker,
            DeliveryStatus.FAILED_TEMP,
            reply,
            message_id,
            next_attempt_at=retry_at,
        )

    def mark_in_doubt(self, delivery_id: int, worker: str, reply: Reply, message_id: str) -> None:
        self._finish(delivery_id, worker, DeliveryStatus.IN_DOUBT, reply, message_id)

    def mark_skipped(self, delivery_id: int, worker: str, reason: str) -> None:
        self._finish(delivery_id, worker, DeliveryStatus.SKIPPED, Reply(text=reason), None)

    def mark_failed_perm(
        self,
        delivery_id: int,
        worker: str,
        reply: Reply,
        message_id: str,
        *,
        bounce_limit: int | None = None,
    ) -> None:
        """§1.3 step 4. With ``bounce_limit``, also count a hard bounce (F4) and mark the
        subscriber bounced when it reaches the limit, in the same transaction."""

        def work(conn: Connection) -> None:
            self._finish_in(
                conn, delivery_id, worker, DeliveryStatus.FAILED_PERM, reply, message_id
            )
            if bounce_limit is not None:
                self._count_bounce(conn, delivery_id, bounce_limit)

        self.run(work)

    def _count_bounce(self, conn: Connection, delivery_id: int, bounce_limit: int) -> None:
        sub_id = select(deliveries.c.subscriber_id).where(deliveries.c.id == delivery_id)
        sub_id_value = conn.execute(sub_id).scalar_one()
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == sub_id_value)
            .values(bounce_count=subscribers.c.bounce_count + 1)
        )
        conn.execute(
            update(subscribers)
            .where(
                subscribers.c.id == sub_id_value,
                subscribers.c.bounce_count >= bounce_limit,
                subscribers.c.status == SubscriberStatus.ACTIVE,
            )
            .values(status=SubscriberStatus.BOUNCED, state_version=subscribers.c.state_version + 1)
        )

    def _finish(
        self,
        delivery_id: int,
        worker: str,
        status: DeliveryStatus,
        reply: Reply,
        message_id: str | None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        self.run(
            lambda c: self._finish_in(
                c, delivery_id, worker, status, reply, message_id, next_attempt_at
            )
        )

    def _finish_in(
        self,
        conn: Connection,
        delivery_id: int,
        worker: str,
        status: DeliveryStatus,
        reply: Reply,
        message_id: str | None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        now = self.clock()
        values = _result_values(reply, message_id)
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        held = held_by(deliveries, worker, deliveries.c.status == DeliveryStatus.SENDING)
        settle(
            conn,
            deliveries,
            deliveries.c.id == delivery_id,
            *held,
            status=status,
            updated_at=now,
            **values,
        )

    def recover_expired_leases(self) -> Recovery:
        """§1.3 step 6, G1: ``sending`` rows whose lease ran out (see :meth:`_recover`)."""
        return self._recover(deliveries.c.lease_until < self.clock(), "lease expired")

    def recover_claims(self, claimed_by: str) -> Recovery:
        """Rows of a claimer known to be dead (its process is gone)."""
        return self._recover(deliveries.c.claimed_by == claimed_by, "claiming process died")

    def _recover(self, condition: Any, why: str) -> Recovery:
        """A row that was handed over (DATA may have started) may have been delivered: in
        doubt. One that never got that far cannot be at the server: pending again, its
        attempt undone, as :meth:`release` does (issue 8)."""
        now = self.clock()
        abandoned = (deliveries.c.status == DeliveryStatus.SENDING, condition)
        doubtful = (
            update(deliveries)
            .where(*abandoned, deliveries.c.handed_over_at.is_not(None))
            .values(
                status=DeliveryStatus.IN_DOUBT,
                last_reply=f"{why} while sending; the message may have been delivered",
                claimed_by=None,
                lease_until=None,
                updated_at=now,
            )
        )
        untouched = (
            update(deliveries)
            .where(*abandoned, deliveries.c.handed_over_at.is_(None))
            .values(
                status=DeliveryStatus.PENDING,
                attempt=deliveries.c.attempt - 1,
                claimed_by=None,
                lease_until=None,
                updated_at=now,
            )
        )

        def work(conn: Connection) -> Recovery:
            in_doubt = int(conn.execute(doubtful).rowcount)
            return Recovery(in_doubt, int(conn.execute(untouched).rowcount))

        return self.run(work)

    def claimants(self) -> list[str]:
        """Distinct workers holding ``sending`` rows (for dead-process recovery)."""
        query = (
            select(deliveries.c.claimed_by)
            .where(deliveries.c.status == DeliveryStatus.SENDING)
            .distinct()
        )
        return self.run(lambda c: [w for w in c.execute(query).scalars() if w], write=False)

    def requeue_in_doubt(self, issue_id: int) -> int:
        """Policy ``resend_once``: in-doubt rows not yet resent become pending, once."""
        now = self.clock()
        stmt = (
            update(deliveries)
            .where(
                deliveries.c.issue_id == issue_id,
                deliveries.c.status == DeliveryStatus.IN_DOUBT,
                deliveries.c.resent.is_(False),
            )
            .values(status=DeliveryStatus.PENDING, resent=True, next_attempt_at=now, updated_at=now)
        )
        return self.run(lambda c: int(c.execute(stmt).rowcount))

    def release_held(self, issue_id: int, email: str | None = None) -> int:
        """The operator's decision on in-doubt rows: send them again (same Message-ID).

        ``email`` limits it to one address. The rows become pending and count as resent,
        so a resend that is in doubt again is held again, never resent on its own.
        """
        now = self.clock()
        condition = [
            deliveries.c.issue_id == issue_id,
            deliveries.c.status == DeliveryStatus.IN_DOUBT,
        ]
        if email is not None:
            subscriber = select(subscribers.c.id).where(subscribers.c.email == email)
            condition.append(deliveries.c.subscriber_id.in_(subscriber.scalar_subquery()))
        stmt = (
            update(deliveries)
            .where(*condition)
            .values(status=DeliveryStatus.PENDING, resent=True, next_attempt_at=now, updated_at=now)
        )
        return self.run(lambda c: int(c.execute(stmt).rowcount))

    def flagged_deliveries(self, issue_id: int, limit: int = 100) -> list[FlaggedDelivery]:
        """In-doubt rows and rows sent more than once, by address (for ``publisher status``)."""
        query = (
            select(
                subscribers.c.email,
                deliveries.c.status,
                deliveries.c.resent,
                deliveries.c.last_reply,
            )
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(
                deliveries.c.issue_id == issue_id,
                or_(
                    deliveries.c.status == DeliveryStatus.IN_DOUBT,
                    deliveries.c.resent.is_(True),
                ),
            )
            .order_by(subscribers.c.email)
            .limit(limit)
        )

        def work(conn: Connection) -> list[FlaggedDelivery]:
            return [
                FlaggedDelivery(r.email, DeliveryStatus(r.status), bool(r.resent), r.last_reply)
                for r in conn.execute(query)
            ]

        return self.run(work, write=False)

    def get_delivery(self, delivery_id: int) -> Delivery | None:
        def work(conn: Connection) -> Delivery | None:
            row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))
            found = row.mappings().first()
            return None if found is None else _delivery(found)

        return self.run(work, write=False)

    def iter_deliveries(self, issue_id: int, *, batch_size: int = 500) -> Iterator[Delivery]:
        after = 0
        while True:
            query = (
                select(deliveries)
                .where(deliveries.c.issue_id == issue_id, deliveries.c.id > after)
                .order_by(deliveries.c.id)
                .limit(batch_size)
            )
            batch = self.run(_delivery_reader(query), write=False)
            yield from batch
            if len(batch) < batch_size:
                return
            after = batch[-1].id

    def counts(self, issue_id: int) -> DeliveryCounts:
        query = (
            select(deliveries.c.status, func.count())
            .where(deliveries.c.issue_id == issue_id)
            .group_by(deliveries.c.status)
        )

        def work(conn: Connection) -> DeliveryCounts:
            return DeliveryCounts({DeliveryStatus(s): int(n) for s, n in conn.execute(query)})

        return self.run(work, write=False)

    def next_retry_at(self, issue_id: int) -> datetime | None:
        query = select(func.min(deliveries.c.next_attempt_at)).where(
            deliveries.c.issue_id == issue_id, deliveries.c.status.in_(DUE_STATUSES)
        )
        return self.run(lambda c: c.execute(query).scalar_one_or_none(), write=False)


def _result_values(reply: Reply, message_id: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "last_code": reply.code,
        "last_enhanced_code": reply.enhanced_code,
        "last_reply": reply.text[:1000],
    }
    if message_id is not None:
        values["message_id"] = message_id
    return values


def _delivery_reader(query: Any) -> Callable[[Connection], list[Delivery]]:
    def read(conn: Connection) -> list[Delivery]:
        return [_delivery(r) for r in conn.execute(query).mappings()]

    return read


def _by_id(delivery: Delivery) -> int:
    return delivery.id


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row["id"],
        issue_id=row["issue_id"],
        subscriber_id=row["subscriber_id"],
        status=DeliveryStatus(row["status"]),
        attempt=row["attempt"],
        next_attempt_at=row["next_attempt_at"],
        first_attempt_at=row["first_attempt_at"],
        claimed_by=row["claimed_by"],
        lease_until=row["lease_until"],
        last_code=row["last_code"],
        last_enhanced_code=row["last_enhanced_code"],
        last_reply=row["last_reply"],
        message_id=row["message_id"],
        sent_at=row["sent_at"],
        resent=bool(row["resent"]),
        handed_over_at=row["handed_over_at"],
    )
