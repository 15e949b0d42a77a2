"""Per-minute event counters, and the quotas built on them (one implementation).

Two counters share it: the persisted hourly send budget (``send_counts``, one row per
minute) and the subscription endpoint's quotas (``web_counts``, one row per bucket and
minute; E4, E5, S12). A quota is "at most ``limit`` events in the last ``window``";
minutes are floored, so an event counts for up to a minute longer, never shorter.
Checking and counting happen in one transaction that SQLite serializes (``BEGIN
IMMEDIATE``) and PostgreSQL serializes per bucket with ``pg_advisory_xact_lock``, so 20
parallel requests cannot all pass a limit of one (E14). State lives in the database, so
a restart or a second process does not reset a limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, delete, func, select

from publisher.store.db import Database, dialect_insert
from publisher.store.schema import send_counts, web_counts

_QUOTA_LOCK_SPACE = 5005  # first key of the two-key advisory lock per quota bucket
KEEP_COUNTS = timedelta(days=31)  # longer than any configurable window (720 h)


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` events of ``bucket`` in the last ``window``."""

    bucket: str
    limit: int
    window: timedelta


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def count_event(conn: Connection, table: Table, minute: datetime, **key: Any) -> None:
    """One more event in ``minute`` (and ``key``, e.g. ``bucket=...``) of a counter table."""
    stmt = dialect_insert(conn, table).values(minute=minute, count=1, **key)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[*(table.c[k] for k in key), table.c.minute],
            set_={"count": table.c.count + 1},
        )
    )


def events_since(conn: Connection, table: Table, since: datetime, **key: Any) -> int:
    """How many events a counter table holds from minute ``since`` on (for ``key``)."""
    query = select(func.coalesce(func.sum(table.c.count), 0)).where(
        table.c.minute >= since, *(table.c[k] == v for k, v in key.items())
    )
    return int(conn.execute(query).scalar_one())


class Quotas(Database):
    """The send budget and the endpoint's quotas, over the counters above."""

    def reserve_send_slot(self, per_hour: int) -> timedelta:
        """Take one slot of the persisted hourly budget; returns zero, or how long to wait."""
        now = self.clock()
        minute = minute_of(now)
        window_start = minute - timedelta(minutes=59)

        def work(conn: Connection) -> timedelta:
            conn.execute(delete(send_counts).where(send_counts.c.minute < window_start))
            if events_since(conn, send_counts, window_start) >= per_hour:
                oldest: datetime = conn.execute(select(func.min(send_counts.c.minute))).scalar_one()
                wait: timedelta = oldest + timedelta(hours=1) - now
                return max(wait, timedelta(seconds=1))
            count_event(conn, send_counts, minute)
            return timedelta(0)

        return self.run(work)

    def take_quota(self, quotas: Sequence[Quota]) -> Quota | None:
        """Count one event against every quota; or count nothing and return the one used up."""
        now = self.clock()
        return self.run(lambda conn: self.take_quota_in(conn, quotas, now))

    def take_quota_in(
        self, conn: Connection, quotas: Sequence[Quota], now: datetime
    ) -> Quota | None:
        """:meth:`take_quota` inside a transaction the caller holds (a signup's)."""
        self._lock_buckets(conn, [q.bucket for q in quotas])
        for quota in quotas:
            since = minute_of(now - quota.window)
            if events_since(conn, web_counts, since, bucket=quota.bucket) >= quota.limit:
                return quota
        minute = minute_of(now)
        for quota in quotas:
            count_event(conn, web_counts, minute, bucket=quota.bucket)
            # Old minutes of this bucket are dead weight; older buckets go below.
            conn.execute(
                delete(web_counts).where(
                    web_counts.c.bucket == quota.bucket,
                    web_counts.c.minute < minute_of(now - quota.window),
                )
            )
        conn.execute(delete(web_counts).where(web_counts.c.minute < now - KEEP_COUNTS))
        return None

    def _lock_buckets(self, conn: Connection, buckets: Iterable[str]) -> None:
        if self.is_sqlite:
            return  # BEGIN IMMEDIATE already serializes every writer
        for bucket in sorted(set(buckets)):  # one order everywhere: no deadlocks
            conn.execute(
                select(func.pg_advisory_xact_lock(_QUOTA_LOCK_SPACE, func.hashtext(bucket)))
            )
