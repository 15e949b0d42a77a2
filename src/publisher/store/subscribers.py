"""Subscribers: adding, importing, reading, status changes, recipient counts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from publisher.store.db import Database, dialect_insert
from publisher.store.model import (
    Consent,
    ConsentMethod,
    ImportResult,
    NewSubscriber,
    Subscriber,
    SubscriberStatus,
    _categories,
    normalize_email,
)
from publisher.store.schema import subscriber_categories, subscribers


class Subscribers(Database):
    """Subscribers: adding, importing, reading, status changes, recipient counts."""

    def add_subscriber(
        self,
        email: str,
        consent: Consent,
        *,
        categories: Iterable[str] = (),
        status: SubscriberStatus = SubscriberStatus.ACTIVE,
    ) -> tuple[Subscriber, bool]:
        """Add an address (normalized here); returns the row and whether it is new.

        An existing address is left unchanged (an unsubscribed person is not
        resubscribed by an operator's add or an import).
        """
        address = normalize_email(email)
        cats = _categories(categories)
        now = self.clock()

        def work(conn: Connection) -> tuple[int, bool]:
            new_id = self._insert_subscriber(conn, address, cats, consent, status, now)
            if new_id is not None:
                return new_id, True
            row = conn.execute(select(subscribers.c.id).where(subscribers.c.email == address))
            return int(row.scalar_one()), False

        sub_id, created = self.run(work)
        found = self.get_subscriber(sub_id)
        assert found is not None
        return found, created

    def _insert_subscriber(
        self,
        conn: Connection,
        address: str,
        cats: tuple[str, ...],
        consent: Consent,
        status: SubscriberStatus,
        now: datetime,
    ) -> int | None:
        return insert_subscriber(conn, address, cats, consent, status, now)

    def import_subscribers(self, rows: Sequence[NewSubscriber], consent: Consent) -> ImportResult:
        """Add many normalized addresses in ONE transaction: all or nothing.

        Existing addresses keep their state, except that a row the export marks
        unsubscribed or bounced suppresses an existing active or pending subscriber:
        suppression always wins, so nobody who left the old platform is mailed here.
        """
        now = self.clock()

        def work(conn: Connection) -> ImportResult:
            added = suppressed = 0
            for row in rows:
                cats = _categories(row.categories)
                given = replace(consent, at=row.consent_at) if row.consent_at else consent
                if self._insert_subscriber(conn, row.email, cats, given, row.status, now):
                    added += 1
                elif row.status in _SUPPRESSED:
                    suppressed += self._suppress(conn, row.email, row.status, now)
            return ImportResult(added, len(rows) - added, suppressed)

        return self.run(work)

    def _suppress(
        self, conn: Connection, address: str, status: SubscriberStatus, now: datetime
    ) -> int:
        stmt = (
            update(subscribers)
            .where(
                subscribers.c.email == address,
                subscribers.c.status.in_([SubscriberStatus.ACTIVE, SubscriberStatus.PENDING]),
            )
            .values(
                status=status,
                unsubscribed_at=now,
                state_version=subscribers.c.state_version + 1,
            )
        )
        return int(conn.execute(stmt).rowcount or 0)

    def get_subscriber(self, subscriber_id: int) -> Subscriber | None:
        found = self._select_subscribers(subscribers.c.id == subscriber_id, limit=1)
        return found[0] if found else None

    def find_subscriber(self, email: str) -> Subscriber | None:
        found = self._select_subscribers(subscribers.c.email == normalize_email(email), limit=1)
        return found[0] if found else None

    def iter_subscribers(
        self, status: SubscriberStatus | None = None, *, batch_size: int = 500
    ) -> Iterator[Subscriber]:
        """Every subscriber by id, fetched ``batch_size`` at a time (keyset pagination).

        Each batch is its own short read transaction: no lock is held while the
        caller works, and memory stays bounded (G12).
        """
        after = 0
        while True:
            condition = subscribers.c.id > after
            if status is not None:
                condition = condition & (subscribers.c.status == status)
            batch = self._select_subscribers(condition, limit=batch_size)
            yield from batch
            if len(batch) < batch_size:
                return
            after = batch[-1].id

    def _select_subscribers(self, condition: Any, limit: int) -> list[Subscriber]:
        def work(conn: Connection) -> list[Subscriber]:
            query = select(subscribers).where(condition).order_by(subscribers.c.id).limit(limit)
            rows = conn.execute(query).mappings().all()
            ids = [r["id"] for r in rows]
            cats: dict[int, list[str]] = {}
            if ids:
                found = conn.execute(
                    select(subscriber_categories)
                    .where(subscriber_categories.c.subscriber_id.in_(ids))
                    .order_by(subscriber_categories.c.category)
                )
                for sub_id, category in found:
                    cats.setdefault(sub_id, []).append(category)
            return [_subscriber(r, tuple(cats.get(r["id"], ()))) for r in rows]

        return self.run(work, write=False)

    def count_subscribers(self, status: SubscriberStatus | None = None) -> int:
        query = select(func.count()).select_from(subscribers)
        if status is not None:
            query = query.where(subscribers.c.status == status)
        return self.run(lambda c: int(c.execute(query).scalar_one()), write=False)

    def set_status(self, subscriber_id: int, status: SubscriberStatus) -> Subscriber | None:
        """Change a subscriber's status; bumps ``state_version`` so old tokens die (S2)."""
        now = self.clock()
        values: dict[str, Any] = {
            "status": status,
            "state_version": subscribers.c.state_version + 1,
        }
        if status == SubscriberStatus.ACTIVE:
            values["confirmed_at"] = now
            values["unsubscribed_at"] = None
        elif status == SubscriberStatus.UNSUBSCRIBED:
            values["unsubscribed_at"] = now
        stmt = (
            update(subscribers)
            .where(subscribers.c.id == subscriber_id, subscribers.c.status != status)
            .values(**values)
        )
        self.run(lambda c: c.execute(stmt))
        return self.get_subscriber(subscriber_id)

    def unsubscribe(self, email: str) -> Subscriber | None:
        """Mark an address unsubscribed (kept, so a later import cannot re-add it)."""
        found = self.find_subscriber(email)
        if found is None:
            return None
        return self.set_status(found.id, SubscriberStatus.UNSUBSCRIBED)

    def count_recipients(self, categories: Sequence[str]) -> int:
        """How many active subscribers an issue in ``categories`` would go to now."""
        query = select(func.count()).select_from(subscribers).where(_recipient_filter(categories))
        return self.run(lambda c: int(c.execute(query).scalar_one()), write=False)


_SUPPRESSED = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED)


def _recipient_filter(categories: Sequence[str], confirmed_before: datetime | None = None) -> Any:
    """Active subscribers who want all categories or one of ``categories``.

    An issue without a category goes only to subscribers who chose no filter.
    """
    has_filter = exists().where(subscriber_categories.c.subscriber_id == subscribers.c.id)
    condition = subscribers.c.status == SubscriberStatus.ACTIVE
    if confirmed_before is not None:
        condition = condition & (subscribers.c.confirmed_at <= confirmed_before)
    wanted = ~has_filter
    if categories:
        wanted = or_(
            wanted,
            exists().where(
                subscriber_categories.c.subscriber_id == subscribers.c.id,
                subscriber_categories.c.category.in_(list(categories)),
            ),
        )
    return condition & wanted


def _subscriber(row: Any, categories: tuple[str, ...]) -> Subscriber:
    consent = None
    if row["consent_method"]:
        consent = Consent(
            method=ConsentMethod(row["consent_method"]),
            source=row["consent_source"] or "",
            text_version=row["consent_text_version"] or "",
            at=row["consent_at"],
        )
    return Subscriber(
        id=row["id"],
        email=row["email"],
        status=SubscriberStatus(row["status"]),
        categories=categories,
        created_at=row["created_at"],
        confirmed_at=row["confirmed_at"],
        unsubscribed_at=row["unsubscribed_at"],
        bounce_count=row["bounce_count"],
        state_version=row["state_version"],
        consent=consent,
    )


def insert_subscriber(
    conn: Connection,
    address: str,
    cats: tuple[str, ...],
    consent: Consent,
    status: SubscriberStatus,
    now: datetime,
) -> int | None:
    """Insert a normalized ``address`` with its consent and categories; its id, or None if
    the address exists (left unchanged). The one insert of a subscriber: operator adds,
    imports and web signups (``publisher.store.signups``) all come here."""
    values = {
        "email": address,
        "status": status,
        "created_at": now,
        "confirmed_at": now if status == SubscriberStatus.ACTIVE else None,
        "unsubscribed_at": now if status in _SUPPRESSED else None,
        "bounce_count": 0,
        "state_version": 1,
        "consent_at": consent.at or now,
        "consent_method": consent.method,
        "consent_source": consent.source[:500],
        "consent_text_version": consent.text_version[:100],
    }
    stmt = dialect_insert(conn, subscribers).values(**values).on_conflict_do_nothing()
    new_id = conn.execute(stmt.returning(subscribers.c.id)).scalar_one_or_none()
    if new_id is not None and cats:
        conn.execute(
            insert(subscriber_categories),
            [{"subscriber_id": new_id, "category": c} for c in cats],
        )
    return None if new_id is None else int(new_id)
