"""Database access for the subscription endpoint (publisher.web), beside publisher.store.

Kept out of ``store.py`` so the endpoint's needs stay additive: one table of
its own and a few subscriber operations, each ONE transaction run by the
store's runner (``Store._run``), which retries SQLite ``database is locked``
and dropped PostgreSQL connections and then raises ``StoreError``; the
endpoint answers that with 503 and ``Retry-After`` (H1, H3).

- **Schema**: the ``web_counts`` table, versioned like the store's schema but
  under the ``settings`` key ``web_schema_version``; a database written by a
  newer Publisher is refused (H6). Created on first use, under an advisory lock
  on PostgreSQL so two processes starting together do not both create it.
- **Quotas** (E4, E5, S12): events per bucket and minute; a quota is "at most
  ``limit`` events in the last ``window``". Checking and counting happen in one
  transaction that SQLite serializes (``BEGIN IMMEDIATE``) and PostgreSQL
  serializes per bucket with ``pg_advisory_xact_lock``, so 20 parallel
  requests cannot all pass a limit of one (E14). All quotas pass and are
  counted together, or none is counted. State lives in the database, so a
  restart or a second process does not reset a limit (listmonk's in-memory
  window does).
- **Signup** (E3, E14, H5): ``INSERT ... ON CONFLICT DO NOTHING`` on the
  normalized address creates at most one ``pending`` row and never an active
  one; the confirmation quotas are taken in the same transaction, only for
  addresses that may be mailed (pending or unsubscribed).
- **Confirm** (E10, S2): a compare-and-set on ``state_version``: the link
  confirms only the state it was issued for, so a confirmation link from
  before an unsubscribe cannot resubscribe; a newer link (a new signup) can.
- **Consent** (R10): the subscriber row keeps when, how (``web``), from which
  address and under which consent text; confirmation adds its own address.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store import (
    Clock,
    ConsentMethod,
    Store,
    StoreError,
    SubscriberStatus,
    UtcDateTime,
    settings,
    subscriber_categories,
    subscribers,
)

VERSION_KEY = "web_schema_version"
_SCHEMA_LOCK = 20250622  # pg_advisory_xact_lock key while creating the web tables
_QUOTA_LOCK_SPACE = 5005  # first key of the two-key advisory lock per quota bucket
KEEP_COUNTS = timedelta(days=31)  # longer than any configurable window (720 h)
MAILABLE = (SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED)

web_metadata = MetaData()

web_counts = Table(
    "web_counts",
    web_metadata,
    Column("bucket", String(100), primary_key=True),
    Column("minute", UtcDateTime, primary_key=True),
    Column("count", Integer, nullable=False),
    Index("ix_web_counts_minute", "minute"),
)


def _web_migration_1(conn: Connection) -> None:
    web_metadata.create_all(conn, tables=[web_counts])


# Ordered; index + 1 is the version a migration produces. Append, never edit.
WEB_MIGRATIONS = (_web_migration_1,)


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` events of ``bucket`` in the last ``window``."""

    bucket: str
    limit: int
    window: timedelta


@dataclass(frozen=True)
class SignupResult:
    subscriber_id: int
    state_version: int
    send: bool  # a confirmation mail is due now


class ConfirmOutcome(StrEnum):
    CONFIRMED = "confirmed"
    ALREADY_ACTIVE = "already_active"
    INVALID = "invalid"


class WebStore:
    """The endpoint's transactions over a :class:`publisher.store.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock: Clock = store.clock
        self._run = store._run  # the store's retrying transaction runner (H1, H3)

    @classmethod
    def open(cls, store: Store) -> WebStore:
        """Wrap ``store``, creating or checking the web tables first (H6)."""
        web_store = cls(store)
        web_store._prepare()
        return web_store

    def _prepare(self) -> None:
        def work(conn: Connection) -> None:
            if not self.store.is_sqlite:
                conn.execute(text(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})"))
            found = conn.execute(select(settings.c.value).where(settings.c.key == VERSION_KEY))
            current = int(found.scalar_one_or_none() or 0)
            if current > len(WEB_MIGRATIONS):
                raise StoreError(
                    f"database {self.store.name} has web schema version {current}, newer than "
                    f"this Publisher's {len(WEB_MIGRATIONS)}",
                    hint="Upgrade Publisher; an older version must not write to this database.",
                )
            for migration in WEB_MIGRATIONS[current:]:
                migration(conn)
            if current != len(WEB_MIGRATIONS):
                self._upsert_setting(conn, VERSION_KEY, str(len(WEB_MIGRATIONS)))

        self._run(work)

    # quotas -----------------------------------------------------------------------------------

    def take_quota(self, quotas: Sequence[Quota]) -> Quota | None:
        """Count one event against every quota; or count nothing and return the one used up."""
        now = self.clock()
        return self._run(lambda conn: self._take(conn, quotas, now))

    def _take(self, conn: Connection, quotas: Sequence[Quota], now: datetime) -> Quota | None:
        self._lock(conn, [q.bucket for q in quotas])
        for quota in quotas:
            if self._used(conn, quota, now) >= quota.limit:
                return quota
        minute = _minute(now)
        for quota in quotas:
            stmt = self._insert(web_counts).values(bucket=quota.bucket, minute=minute, count=1)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[web_counts.c.bucket, web_counts.c.minute],
                    set_={"count": web_counts.c.count + 1},
                )
            )
            # Old minutes of this bucket are dead weight; older buckets go below.
            conn.execute(
                delete(web_counts).where(
                    web_counts.c.bucket == quota.bucket,
                    web_counts.c.minute < _minute(now - quota.window),
                )
            )
        conn.execute(delete(web_counts).where(web_counts.c.minute < now - KEEP_COUNTS))
        return None

    def _used(self, conn: Connection, quota: Quota, now: datetime) -> int:
        # Minutes are floored, so an event counts for up to a minute longer, never shorter.
        query = select(func.coalesce(func.sum(web_counts.c.count), 0)).where(
            web_counts.c.bucket == quota.bucket,
            web_counts.c.minute >= _minute(now - quota.window),
        )
        return int(conn.execute(query).scalar_one())

    def _lock(self, conn: Connection, buckets: Iterable[str]) -> None:
        if self.store.is_sqlite:
            return  # BEGIN IMMEDIATE already serializes every writer
        for bucket in sorted(set(buckets)):  # one order everywhere: no deadlocks
            conn.execute(
                select(func.pg_advisory_xact_lock(_QUOTA_LOCK_SPACE, func.hashtext(bucket)))
            )

    # subscribers ------------------------------------------------------------------------------

    def signup(
        self,
        address: str,
        categories: Sequence[str],
        *,
        source: str,
        text_version: str,
        quotas: Sequence[Quota],
    ) -> SignupResult:
        """A pending row for ``address`` (normalized) unless one exists, and the mail decision."""
        now = self.clock()

        def work(conn: Connection) -> SignupResult:
            self._insert_pending(conn, address, categories, source, text_version, now)
            row = conn.execute(
                select(subscribers.c.id, subscribers.c.status, subscribers.c.state_version)
                .where(subscribers.c.email == address)
                .with_for_update()
            ).one()
            if row.status not in MAILABLE:
                # Active or bounced: nothing to send. Read the quotas anyway, so every
                # state costs about the same and timing tells nothing (S13).
                for quota in quotas:
                    self._used(conn, quota, now)
                return SignupResult(row.id, row.state_version, send=False)
            if self._take(conn, quotas, now) is not None:
                return SignupResult(row.id, row.state_version, send=False)
            self._record_consent(conn, row.id, source, text_version, now)
            return SignupResult(row.id, row.state_version, send=True)

        return self._run(work)

    def _insert_pending(
        self,
        conn: Connection,
        address: str,
        categories: Sequence[str],
        source: str,
        text_version: str,
        now: datetime,
    ) -> None:
        stmt = (
            self._insert(subscribers)
            .values(
                email=address,
                status=SubscriberStatus.PENDING,
                created_at=now,
                bounce_count=0,
                state_version=1,
                consent_at=now,
                consent_method=ConsentMethod.WEB,
                consent_source=source[:500],
                consent_text_version=text_version[:100],
            )
            .on_conflict_do_nothing()
            .returning(subscribers.c.id)
        )
        new_id = conn.execute(stmt).scalar_one_or_none()
        if new_id is not None and categories:
            rows = [{"subscriber_id": new_id, "category": c} for c in sorted(set(categories))]
            conn.execute(insert(subscriber_categories), rows)

    def _record_consent(
        self, conn: Connection, subscriber_id: int, source: str, text_version: str, now: datetime
    ) -> None:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(
                consent_at=now,
                consent_method=ConsentMethod.WEB,
                consent_source=source[:500],
                consent_text_version=text_version[:100],
            )
        )

    def confirm(self, subscriber_id: int, state_version: int, source: str) -> ConfirmOutcome:
        """Activate the subscriber if still in the state the link was issued for (E10)."""
        now = self.clock()
        appended = func.coalesce(subscribers.c.consent_source, "") + literal("; " + source)
        stmt = (
            update(subscribers)
            .where(
                subscribers.c.id == subscriber_id,
                subscribers.c.state_version == state_version,
                subscribers.c.status.in_(MAILABLE),
            )
            .values(
                status=SubscriberStatus.ACTIVE,
                state_version=subscribers.c.state_version + 1,
                confirmed_at=now,
                unsubscribed_at=None,
                consent_at=now,
                consent_method=ConsentMethod.WEB,
                consent_source=func.substr(appended, 1, 500),
            )
        )

        def work(conn: Connection) -> ConfirmOutcome:
            if conn.execute(stmt).rowcount:
                return ConfirmOutcome.CONFIRMED
            status = conn.execute(
                select(subscribers.c.status).where(subscribers.c.id == subscriber_id)
            ).scalar_one_or_none()
            if status == SubscriberStatus.ACTIVE:
                return ConfirmOutcome.ALREADY_ACTIVE  # a second click is harmless
            return ConfirmOutcome.INVALID

        return self._run(work)

    def set_categories(self, subscriber_id: int, categories: Sequence[str]) -> bool:
        """Replace an active subscriber's categories (empty = all); False if not active."""

        def work(conn: Connection) -> bool:
            status = conn.execute(
                select(subscribers.c.status)
                .where(subscribers.c.id == subscriber_id)
                .with_for_update()
            ).scalar_one_or_none()
            if status != SubscriberStatus.ACTIVE:
                return False
            conn.execute(
                delete(subscriber_categories).where(
                    subscriber_categories.c.subscriber_id == subscriber_id
                )
            )
            if categories:
                rows = [{"subscriber_id": subscriber_id, "category": c} for c in categories]
                conn.execute(insert(subscriber_categories), rows)
            return True

        return self._run(work)

    # helpers ----------------------------------------------------------------------------------

    def _insert(self, table: Table) -> Any:
        return (sqlite.insert if self.store.is_sqlite else postgresql.insert)(table)

    def _upsert_setting(self, conn: Connection, key: str, value: str) -> None:
        stmt = self._insert(settings).values(key=key, value=value)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=[settings.c.key], set_={"value": value})
        )


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)
