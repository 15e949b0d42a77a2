"""The subscriber and delivery store: SQLAlchemy Core over SQLite or PostgreSQL.

Sending state lives here, one row per (issue, subscriber) with a unique
constraint (RELIABILITY §1.3); the sender and the scheduler only ask what is
due. Design rules:

- Short transactions, each retried as a whole on SQLite ``database is locked``
  (H1, L11) and on a dropped PostgreSQL connection (H3). A lock is never a
  recipient failure: it is waited out, or the run stops with an error naming
  the database.
- SQLite runs in WAL mode with a ``busy_timeout``; write transactions start with
  ``BEGIN IMMEDIATE`` so two processes never deadlock upgrading a read lock.
- Claims: ``BEGIN IMMEDIATE`` on SQLite, ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, then ``UPDATE ... RETURNING``; a claim carries a lease.
- Time comes from an injected clock (aware UTC); the store never reads the
  system time itself. Timestamps are stored as naive UTC on both databases.
- The schema is versioned (``schema_version``); migrations are ordered
  functions. A fresh database is created; an older one is upgraded only when
  asked (``migrate=True``), a newer one is refused (H6).
- Results are dataclasses, never raw rows; lists are streamed with keyset
  pagination so 10^5 subscribers never sit in memory at once (G12).

This module is the facade: :class:`Store` and the types callers use. The rooms:
``db`` (engines, the public transaction runner ``Store.run``, ``UtcDateTime``),
``schema`` (tables, ``MIGRATIONS``), ``model`` (results, statuses, addresses), one
module per aggregate (``subscribers``, ``issues``, ``deliveries``, ``quotas``,
``settings``, ``jobs``, ``published``), and the stores built on :class:`Store`:
``signups`` (the subscription endpoint), ``bounces``, ``editors``.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, insert, inspect, select, text, update

from publisher.store.db import (
    Clock,
    PgTimeouts,
    StoreError,
    UtcDateTime,
    _make_engine,
    normalize_url,
    utc_now,
)
from publisher.store.deliveries import Deliveries
from publisher.store.issues import Issues
from publisher.store.jobs import Jobs
from publisher.store.model import (
    DUE_STATUSES,
    UNFINISHED_STATUSES,
    Consent,
    ConsentMethod,
    Delivery,
    DeliveryCounts,
    DeliveryStatus,
    FlaggedDelivery,
    HandOver,
    ImportResult,
    InvalidAddress,
    Issue,
    IssueStatus,
    IssueSummary,
    JobState,
    NewIssue,
    NewSubscriber,
    PublishedEntry,
    PublishedPost,
    Recovery,
    Reply,
    Subscriber,
    SubscriberStatus,
    normalize_email,
)
from publisher.store.published import Published
from publisher.store.quotas import Quotas
from publisher.store.schema import MIGRATIONS, POST_IDENTITY_COLUMNS, SCHEMA_VERSION, schema_version
from publisher.store.subscribers import Subscribers

__all__ = [
    "DUE_STATUSES",
    "MIGRATIONS",
    "POST_IDENTITY_COLUMNS",
    "SCHEMA_VERSION",
    "UNFINISHED_STATUSES",
    "Clock",
    "Consent",
    "ConsentMethod",
    "Delivery",
    "DeliveryCounts",
    "DeliveryStatus",
    "FlaggedDelivery",
    "HandOver",
    "ImportResult",
    "InvalidAddress",
    "Issue",
    "IssueStatus",
    "IssueSummary",
    "JobState",
    "NewIssue",
    "NewSubscriber",
    "PgTimeouts",
    "PublishedEntry",
    "PublishedPost",
    "Recovery",
    "Reply",
    "Store",
    "StoreError",
    "Subscriber",
    "SubscriberStatus",
    "UtcDateTime",
    "normalize_email",
    "normalize_url",
    "utc_now",
]


class Store(Subscribers, Issues, Deliveries, Quotas, Jobs, Published):
    """Typed access to the database. Build with :meth:`open`; pass it in, never global.

    Composed of one class per aggregate, each in its own module of this package, over
    :class:`publisher.store.db.Database` (the engine and the public transaction runner).
    """

    @classmethod
    def open(
        cls,
        url: str,
        *,
        clock: Clock = utc_now,
        migrate: bool = False,
        busy_timeout: float = 5.0,
        retry_seconds: float = 30.0,
        pg_timeouts: PgTimeouts | None = None,
    ) -> Store:
        """Connect, create a fresh schema or check its version (H6).

        ``busy_timeout`` is SQLite's own wait for a lock; ``pg_timeouts`` bound
        PostgreSQL's waits (none by default); ``retry_seconds`` bounds how long a
        transaction is retried after a lock or a dropped connection.
        """
        engine = _make_engine(url, busy_timeout, pg_timeouts)
        store = cls(engine, clock, retry_seconds)
        try:
            store._prepare_schema(migrate)
        except BaseException:
            store.close()
            raise
        return store

    def _prepare_schema(self, migrate: bool) -> None:
        self.run(lambda conn: self._migrate(conn, migrate))

    def _migrate(self, conn: Connection, migrate: bool) -> None:
        if not self.is_sqlite:
            # Two processes opening a fresh database must not both create it.
            conn.execute(text("SELECT pg_advisory_xact_lock(20250620)"))
        tables = set(inspect(conn).get_table_names())
        if "schema_version" not in tables:
            if "subscribers" in tables:
                raise StoreError(
                    f"database {self.name} has Publisher tables but no schema_version table",
                    hint="Point [database].url at a Publisher database or an empty one.",
                )
            schema_version.create(conn)
            conn.execute(insert(schema_version).values(version=0))
            current = 0
        else:
            current = conn.execute(select(func.max(schema_version.c.version))).scalar_one()
        self._check_version(current, migrate, fresh=current == 0)
        for migration in MIGRATIONS[current:]:
            migration(conn)
        if current != SCHEMA_VERSION:
            conn.execute(update(schema_version).values(version=SCHEMA_VERSION))

    def _check_version(self, current: int, migrate: bool, *, fresh: bool) -> None:
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.name} has schema version {current}, newer than this "
                f"Publisher's {SCHEMA_VERSION}",
                hint="Upgrade Publisher; an older version must not write to this database.",
            )
        if current < SCHEMA_VERSION and not fresh and not migrate:
            raise StoreError(
                f"database {self.name} has schema version {current}; this Publisher "
                f"needs version {SCHEMA_VERSION}",
                hint="Back up the database, then run `publisher migrate`.",
            )

    def schema_version(self) -> int:
        return self.run(
            lambda c: int(c.execute(select(func.max(schema_version.c.version))).scalar_one()),
            write=False,
        )
