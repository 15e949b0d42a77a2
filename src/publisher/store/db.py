"""The database connection: engines, the public transaction runner, dialect helpers, UTC times."""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Table,
    create_engine,
    event,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from publisher.errors import PublisherError


class Database:
    """An engine, the clock and the public transaction runner :meth:`run`.

    Every store module (the aggregates of :class:`publisher.store.Store`, and
    ``signups``, ``bounces``, ``editors``) runs its transactions through :meth:`run`.
    """

    def __init__(self, engine: Engine, clock: Clock, retry_seconds: float) -> None:
        self.engine = engine
        self.clock = clock
        self._retry_seconds = retry_seconds
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.name = engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def run(self, work: Callable[[Connection], T], *, write: bool = True) -> T:
        """Run ``work`` in one transaction, retrying it whole on locks and drops (H1, H3).

        Public: the other store modules (signups, bounces, editors) run their
        transactions through it too.
        """
        deadline = _time.monotonic() + self._retry_seconds
        delay = 0.02
        while True:
            try:
                with self.engine.connect() as conn:
                    conn.execution_options(publisher_write=write)
                    with conn.begin():
                        return work(conn)
            except DBAPIError as exc:
                if not self._retryable(exc) or _time.monotonic() + delay > deadline:
                    raise self._error(exc) from exc
                _time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except PoolTimeout as exc:  # every pooled connection is busy: like a lock, not a bug
                raise StoreError(
                    f"database {self.name}: no free connection ({exc})",
                    hint="The database is busy; try again shortly.",
                ) from exc

    def _retryable(self, exc: DBAPIError) -> bool:
        if exc.connection_invalidated:
            return True
        if self.is_sqlite:
            message = str(exc.orig).lower()
            return "database is locked" in message or "database is busy" in message
        return isinstance(exc, OperationalError)

    def _error(self, exc: DBAPIError) -> StoreError:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return StoreError(
            f"database {self.name}: {detail}",
            hint="Check that the database is reachable and writable; nothing was marked sent "
            "without being recorded.",
        )

    def insert(self, table: Table) -> Any:
        """The dialect's INSERT, which has ``on_conflict_do_nothing/update``."""
        return (sqlite.insert if self.is_sqlite else postgresql.insert)(table)


def dialect_insert(conn: Connection, table: Table) -> Any:
    """:meth:`Database.insert` for code that holds only a connection."""
    return (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(table)


T = TypeVar("T")


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The production clock: aware UTC. Tests pass their own."""
    return datetime.now(UTC)


class StoreError(PublisherError):
    """A database problem; the message names the database."""


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC out; stored as naive UTC on every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware UTC times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 here."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True)
class PgTimeouts:
    """PostgreSQL waits, in seconds; each one raises (retried, then StoreError) instead of hanging.

    Without them a request waited forever behind ``LOCK TABLE``, then the pool ran
    dry and every request waited 30 s for a connection (issue 8 item 7).
    """

    lock: float  # lock_timeout: waiting for a row, table or advisory lock
    statement: float  # statement_timeout: one statement, waits included
    pool: float  # waiting for a free pooled connection
    connect: int = 5  # connect_timeout, whole seconds


def _make_engine(url: str, busy_timeout: float, pg_timeouts: PgTimeouts | None) -> Engine:
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, busy_timeout)
    if parsed.get_backend_name() == "postgresql":
        if pg_timeouts is None:
            return create_engine(parsed, pool_pre_ping=True)
        return _postgres_engine(parsed, pg_timeouts)
    raise StoreError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)}",
        hint="Use sqlite:///publisher.db or postgresql://user@host/dbname.",
    )


def _postgres_engine(parsed: Any, timeouts: PgTimeouts) -> Engine:
    engine = create_engine(
        parsed,
        pool_pre_ping=True,
        pool_timeout=timeouts.pool,
        connect_args={"connect_timeout": timeouts.connect},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # Session settings, in milliseconds; SET is transactional, hence the commit.
        cursor.execute(f"SET lock_timeout = {max(int(timeouts.lock * 1000), 1)}")
        cursor.execute(f"SET statement_timeout = {max(int(timeouts.statement * 1000), 1)}")
        cursor.close()
        dbapi_connection.commit()

    return engine


def _sqlite_engine(parsed: Any, busy_timeout: float) -> Engine:
    memory = parsed.database in (None, "", ":memory:")
    engine = create_engine(
        parsed,
        connect_args={"check_same_thread": False, "timeout": busy_timeout},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # synchronous stays FULL: a committed "sent" must survive a power loss too.
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock up front: upgrading a read lock later fails at once
        # with SQLITE_BUSY, bypassing busy_timeout (L11, H1).
        write = conn.get_execution_options().get("publisher_write", True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
