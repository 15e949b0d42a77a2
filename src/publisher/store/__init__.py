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
"""

from __future__ import annotations

import json
import time as _time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

import email_validator
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from publisher.errors import PublisherError

T = TypeVar("T")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The production clock: aware UTC. Tests pass their own."""
    return datetime.now(UTC)


class StoreError(PublisherError):
    """A database problem; the message names the database."""


class InvalidAddress(PublisherError):
    """An email address that cannot be stored (D4, D5, E1, E3)."""


class SubscriberStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


class IssueStatus(StrEnum):
    DRAFT = "draft"
    SENDING = "sending"
    PAUSED = "paused"
    DONE = "done"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED_TEMP = "failed_temp"
    FAILED_PERM = "failed_perm"
    IN_DOUBT = "in_doubt"
    SKIPPED = "skipped"


class ConsentMethod(StrEnum):
    OPERATOR = "operator"
    IMPORT = "import"
    WEB = "web"


DUE_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.FAILED_TEMP)
UNFINISHED_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.FAILED_TEMP)


# --- schema -----------------------------------------------------------------------------


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


metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),  # normalized (E3)
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("confirmed_at", UtcDateTime),
    Column("unsubscribed_at", UtcDateTime),
    Column("bounce_count", Integer, nullable=False, default=0),
    # Incremented on every status change: tokens signed over it die with the state (S2).
    Column("state_version", Integer, nullable=False, default=1),
    Column("consent_at", UtcDateTime),
    Column("consent_method", String(16)),
    Column("consent_source", String(500)),
    Column("consent_text_version", String(100)),
)

# Empty = every category. A join table, so the recipient snapshot is one SQL query.
subscriber_categories = Table(
    "subscriber_categories",
    metadata,
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("category", String(200), primary_key=True),
)

issues = Table(
    "issues",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False, unique=True),
    Column("post_slugs", Text, nullable=False),  # JSON list
    Column("categories", Text, nullable=False),  # JSON list; empty = uncategorized
    Column("subject", Text, nullable=False),
    Column("preheader", Text, nullable=False),
    Column("html", Text, nullable=False),  # rendered once, mailed as stored (B6)
    Column("text", Text, nullable=False),
    Column("digest", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("pause_reason", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("snapshot_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issue_id", Integer, ForeignKey("issues.id"), nullable=False),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("first_attempt_at", UtcDateTime),
    Column("claimed_by", String(200)),
    Column("lease_until", UtcDateTime),
    Column("last_code", Integer),
    Column("last_enhanced_code", String(20)),
    Column("last_reply", Text),
    Column("message_id", String(300)),
    Column("sent_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
    # The in-doubt resend of policy resend_once happens at most once per row (§1.3 item 7).
    Column("resent", Boolean, nullable=False, default=False),
    # Set just before DATA, in the transaction that re-checks the subscriber: only a row
    # whose message may have reached the server is in doubt after a crash (G1, issue 8).
    # Added by _migration_handed_over; cleared by every claim.
    Column("handed_over_at", UtcDateTime),
    UniqueConstraint("issue_id", "subscriber_id", name="uq_delivery_issue_subscriber"),
    Index("ix_deliveries_due", "issue_id", "status", "next_attempt_at"),
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

# Messages sent per minute; the hourly limit sums the last 60 (listmonk keeps this in
# memory, so a restart could exceed a provider's quota; §1.3).
send_counts = Table(
    "send_counts",
    metadata,
    Column("minute", UtcDateTime, primary_key=True),
    Column("count", Integer, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("claimed_by", String(200)),
    Column("lease_until", UtcDateTime),
    Column("last_run_at", UtcDateTime),
    Column("last_error", Text),
    Column("next_run_at", UtcDateTime),
)

published = Table(
    "published",
    metadata,
    Column("slug", String(300), primary_key=True),
    Column("digest", String(128), nullable=False),
    Column("published_at", UtcDateTime, nullable=False),
    Column("issue_created", Boolean, nullable=False, default=False),
)


# ``published`` with the columns that recognise a renamed post (issue 8, item 1), added by
# ``_migration_published_identity``. A table object of its own, outside ``metadata``, so that
# migration 1 still creates exactly what it always did.
POST_IDENTITY_COLUMNS = ("post_id", "title", "post_date")
published_identity = Table(
    "published",
    MetaData(),
    Column("slug", String(300), primary_key=True),
    Column("digest", String(128), nullable=False),
    Column("published_at", UtcDateTime, nullable=False),
    Column("issue_created", Boolean, nullable=False, default=False),
    Column("post_id", String(300)),  # front matter 'id', when the post has one
    Column("title", Text),
    Column("post_date", UtcDateTime),
)


def _migration_1(conn: Connection) -> None:
    """The first schema: every table above."""
    metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t is not schema_version])


def _migration_published_identity(conn: Connection) -> None:
    """``published`` remembers each post's id, title and date (issue 8, item 1).

    Idempotent and order-independent: a column is added only when missing.
    """
    present = {c["name"] for c in inspect(conn).get_columns("published")}
    for name in POST_IDENTITY_COLUMNS:
        if name not in present:
            column = published_identity.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE published ADD COLUMN {name} {kind}"))


# Signups as they arrive, before anything is decided about them: the request only appends
# here, so every address costs the request the same work (issue 8 item 8, S13); the
# confirmation worker (publisher.deliver.confirmations) applies them. Its own MetaData keeps
# it out of _migration_1.
signup_metadata = MetaData()
signup_requests = Table(
    "signup_requests",
    signup_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False),  # normalized
    Column("categories", Text, nullable=False),  # JSON list
    Column("source", String(500), nullable=False),
    Column("text_version", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)


def _migration_signup_requests(conn: Connection) -> None:
    """The signup request queue; idempotent and independent of other migrations."""
    signup_requests.create(conn, checkfirst=True)


def _migration_handed_over(conn: Connection) -> None:
    """deliveries.handed_over_at: claimed-but-unattempted rows are not in doubt (issue 8).

    Idempotent and independent of other migrations: the column is added only when
    missing (a database created by this version already has it from migration 1).
    """
    present = {c["name"] for c in inspect(conn).get_columns("deliveries")}
    if "handed_over_at" not in present:
        kind = deliveries.c.handed_over_at.type.compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE deliveries ADD COLUMN handed_over_at {kind}"))


def _migration_bounces(conn: Connection) -> None:
    """Issue 12: suppressions, bounce_events, soft_bounces (idempotent, order-independent)."""
    from publisher.store.bounces import create_tables

    create_tables(conn)


def _migration_editors(conn: Connection) -> None:
    """The editor's tables (publisher.store.editors); idempotent, order-independent."""
    from publisher.store.editors import create_tables  # that module builds on this one

    create_tables(conn)


# Ordered; index + 1 is the version a migration produces. Append, never edit.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _migration_1,
    _migration_signup_requests,
    _migration_published_identity,
    _migration_handed_over,
    _migration_bounces,
    _migration_editors,
)
SCHEMA_VERSION = len(MIGRATIONS)


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consent:
    """Where a subscription came from (R10): when, how, from where, which consent text."""

    method: ConsentMethod
    source: str = ""
    text_version: str = ""
    at: datetime | None = None


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    status: SubscriberStatus
    categories: tuple[str, ...]  # empty = all
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    bounce_count: int
    state_version: int
    consent: Consent | None


@dataclass(frozen=True)
class NewSubscriber:
    """One subscriber to add; ``email`` must already be normalized.

    An import from another platform gives each row the state its export records:
    ``active`` only when the export says the person confirmed, ``unsubscribed`` or
    ``bounced`` (suppressed, never mailed), and when they consented (``consent_at``).
    """

    email: str
    categories: tuple[str, ...] = ()
    status: SubscriberStatus = SubscriberStatus.ACTIVE
    consent_at: datetime | None = None


@dataclass(frozen=True)
class NewIssue:
    key: str
    post_slugs: tuple[str, ...]
    categories: tuple[str, ...]
    subject: str
    preheader: str
    html: str
    text: str
    digest: str


@dataclass(frozen=True)
class Issue:
    id: int
    key: str
    post_slugs: tuple[str, ...]
    categories: tuple[str, ...]
    subject: str
    preheader: str
    html: str
    text: str
    digest: str
    status: IssueStatus
    pause_reason: str | None
    created_at: datetime
    snapshot_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Delivery:
    id: int
    issue_id: int
    subscriber_id: int
    status: DeliveryStatus
    attempt: int
    next_attempt_at: datetime
    first_attempt_at: datetime | None
    claimed_by: str | None
    lease_until: datetime | None
    last_code: int | None
    last_enhanced_code: str | None
    last_reply: str | None
    message_id: str | None
    sent_at: datetime | None
    resent: bool
    handed_over_at: datetime | None = None  # DATA was about to start (the message may be there)


class HandOver(StrEnum):
    """The last check before DATA (issue 8): go on, or the message is withdrawn."""

    GO = "go"  # still ours, subscriber active; the row now says it may reach the server
    SKIPPED = "skipped"  # the subscriber is no longer active; the row is skipped (E16)
    LOST = "lost"  # the row is no longer claimed by this worker; leave it alone


@dataclass(frozen=True)
class Recovery:
    """What startup recovery did with abandoned ``sending`` rows (G1)."""

    in_doubt: int = 0  # handed over: the server may have the message
    released: int = 0  # claimed but never handed over: pending again, attempt undone

    def __add__(self, other: Recovery) -> Recovery:
        return Recovery(self.in_doubt + other.in_doubt, self.released + other.released)


@dataclass(frozen=True)
class FlaggedDelivery:
    """A delivery the operator should know about: in doubt, or sent more than once."""

    email: str
    status: DeliveryStatus
    resent: bool
    last_reply: str | None


@dataclass(frozen=True)
class Reply:
    """What the server said (F8): basic code, enhanced code, text."""

    code: int | None = None
    enhanced_code: str | None = None
    text: str = ""


@dataclass(frozen=True)
class DeliveryCounts:
    """Deliveries of one issue by status."""

    by_status: dict[DeliveryStatus, int] = field(default_factory=dict)

    def __getitem__(self, status: DeliveryStatus) -> int:
        return self.by_status.get(status, 0)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def unfinished(self) -> int:
        return sum(self[s] for s in UNFINISHED_STATUSES)


@dataclass(frozen=True)
class ImportResult:
    added: int
    existing: int
    suppressed: int = 0  # existing subscribers the export says unsubscribed or bounced


# --- addresses --------------------------------------------------------------------------


def normalize_email(address: str) -> str:
    """The stored form of an address: lower-cased, IDN domains as punycode (E3, D4).

    The whole address is lower-cased: RFC 5321 lets a local part be case-sensitive,
    but no mainstream provider treats it so, and readers who type ``Alice@`` once and
    ``alice@`` later expect one subscription, not two (listmonk does the same).
    ``+tags`` are kept: they are separate mailboxes at some providers.

    One strict validator (email-validator), never ``parseaddr`` (D5). Non-ASCII
    local parts are refused: they need SMTPUTF8, which Publisher does not use (F16).
    """
    if len(address) > 320 or any(ch in address for ch in "\r\n\x00"):
        raise InvalidAddress(f"invalid email address {address[:80]!r}: too long or has CR/LF/NUL")
    try:
        valid = email_validator.validate_email(
            address.strip(), check_deliverability=False, allow_smtputf8=False
        )
    except email_validator.EmailNotValidError as exc:
        raise InvalidAddress(f"invalid email address {address!r}: {exc}") from None
    ascii_email = valid.ascii_email or valid.normalized
    return ascii_email.lower()


def _categories(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({v.strip() for v in values if v.strip()}))


# --- the store ----------------------------------------------------------------------------


class Store:
    """Typed access to the database. Build with :meth:`open`; pass it in, never global."""

    def __init__(self, engine: Engine, clock: Clock, retry_seconds: float) -> None:
        self.engine = engine
        self.clock = clock
        self._retry_seconds = retry_seconds
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.name = engine.url.render_as_string(hide_password=True)

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

    def close(self) -> None:
        self.engine.dispose()

    # transactions -------------------------------------------------------------------------

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

    # schema -------------------------------------------------------------------------------

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

    # subscribers --------------------------------------------------------------------------

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
        stmt = self.insert(subscribers).values(**values).on_conflict_do_nothing()
        new_id = conn.execute(stmt.returning(subscribers.c.id)).scalar_one_or_none()
        if new_id is not None and cats:
            conn.execute(
                insert(subscriber_categories),
                [{"subscriber_id": new_id, "category": c} for c in cats],
            )
        return None if new_id is None else int(new_id)

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

    # issues -------------------------------------------------------------------------------

    def create_issue(self, new: NewIssue) -> tuple[Issue, bool]:
        """Create the issue for ``new.key``, or return the existing one unchanged (B6)."""
        now = self.clock()
        values = {
            "key": new.key,
            "post_slugs": json.dumps(list(new.post_slugs), ensure_ascii=False),
            "categories": json.dumps(list(_categories(new.categories)), ensure_ascii=False),
            "subject": new.subject,
            "preheader": new.preheader,
            "html": new.html,
            "text": new.text,
            "digest": new.digest,
            "status": IssueStatus.DRAFT,
            "created_at": now,
        }

        def work(conn: Connection) -> tuple[int, bool]:
            stmt = self.insert(issues).values(**values).on_conflict_do_nothing()
            new_id = conn.execute(stmt.returning(issues.c.id)).scalar_one_or_none()
            # In the same transaction: a post renamed after a crash right here must not
            # find its published record still waiting for an issue (issue 8, item 1).
            self._mark_issues_created(conn, new.post_slugs)
            if new_id is not None:
                return int(new_id), True
            found = conn.execute(select(issues.c.id).where(issues.c.key == new.key))
            return int(found.scalar_one()), False

        issue_id, created = self.run(work)
        issue = self.get_issue(issue_id)
        assert issue is not None
        return issue, created

    def get_issue(self, issue_id: int) -> Issue | None:
        return self._one_issue(issues.c.id == issue_id)

    def find_issue(self, key: str) -> Issue | None:
        return self._one_issue(issues.c.key == key)

    def _one_issue(self, condition: Any) -> Issue | None:
        def work(conn: Connection) -> Issue | None:
            row = conn.execute(select(issues).where(condition)).mappings().first()
            return None if row is None else _issue(row)

        return self.run(work, write=False)

    def list_issues(self) -> list[Issue]:
        def work(conn: Connection) -> list[Issue]:
            rows = conn.execute(select(issues).order_by(issues.c.id)).mappings().all()
            return [_issue(r) for r in rows]

        return self.run(work, write=False)

    def set_issue_status(
        self, issue_id: int, status: IssueStatus, reason: str | None = None
    ) -> None:
        values: dict[str, Any] = {"status": status, "pause_reason": reason}
        if status == IssueStatus.DONE:
            values["finished_at"] = self.clock()
        stmt = update(issues).where(issues.c.id == issue_id).values(**values)
        self.run(lambda c: c.execute(stmt))

    def replace_issue_body(self, issue_id: int, new: NewIssue) -> bool:
        """Store a fresh rendering of an issue nobody may have a copy of yet (issue 8).

        B6 holds: every reader gets the same body, because no row is sent, in doubt or
        being sent. False (nothing changed) when one is.
        """
        started = exists().where(
            deliveries.c.issue_id == issue_id,
            deliveries.c.status.in_(
                (DeliveryStatus.SENT, DeliveryStatus.IN_DOUBT, DeliveryStatus.SENDING)
            ),
        )
        stmt = (
            update(issues)
            .where(issues.c.id == issue_id, issues.c.key == new.key, ~started)
            .values(
                subject=new.subject,
                preheader=new.preheader,
                html=new.html,
                text=new.text,
                digest=new.digest,
            )
        )
        return self.run(lambda c: int(c.execute(stmt).rowcount) == 1)

    def snapshot(self, issue_id: int) -> int:
        """Freeze the recipients of an issue: one delivery row per matching active subscriber.

        Runs once per issue (later subscribers are not added, E15); one
        ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` in the database, so no
        subscriber list passes through memory. Returns the rows added.
        """
        now = self.clock()

        def work(conn: Connection) -> int:
            row = conn.execute(
                select(issues.c.snapshot_at, issues.c.categories)
                .where(issues.c.id == issue_id)
                .with_for_update()  # two senders starting at once snapshot once
            ).one()
            if row.snapshot_at is not None:
                return 0
            source = select(
                literal(issue_id, Integer),
                subscribers.c.id,
                literal(str(DeliveryStatus.PENDING), String),
                literal(0, Integer),
                literal(now, UtcDateTime),
                literal(now, UtcDateTime),
                literal(False, Boolean),
            ).where(_recipient_filter(json.loads(row.categories), confirmed_before=now))
            columns = [
                "issue_id",
                "subscriber_id",
                "status",
                "attempt",
                "next_attempt_at",
                "updated_at",
                "resent",
            ]
            stmt = self.insert(deliveries).from_select(columns, source).on_conflict_do_nothing()
            conn.execute(stmt)
            # rowcount of INSERT ... SELECT is -1 on psycopg; the rows are all new here.
            count = select(func.count()).where(deliveries.c.issue_id == issue_id)
            added = conn.execute(count).scalar_one()
            conn.execute(
                update(issues)
                .where(issues.c.id == issue_id)
                .values(snapshot_at=now, status=IssueStatus.SENDING)
            )
            return int(added)

        return self.run(work)

    # deliveries ---------------------------------------------------------------------------

    def claim(self, issue_id: int, worker: str, limit: int, lease: timedelta) -> list[Delivery]:
        """Claim up to ``limit`` due deliveries for ``worker`` (§1.3 step 1).

        Committed before any SMTP command. SQLite serializes writers with
        ``BEGIN IMMEDIATE``; PostgreSQL skips rows another claimer holds.
        """
        now = self.clock()

        def work(conn: Connection) -> list[Delivery]:
            due = (
                select(deliveries.c.id)
                .where(
                    deliveries.c.issue_id == issue_id,
                    deliveries.c.status.in_(DUE_STATUSES),
                    deliveries.c.next_attempt_at <= now,
                )
                .order_by(deliveries.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            ids = list(conn.execute(due).scalars())
            if not ids:
                return []
            stmt = (
                update(deliveries)
                .where(deliveries.c.id.in_(ids), deliveries.c.status.in_(DUE_STATUSES))
                .values(
                    status=DeliveryStatus.SENDING,
                    claimed_by=worker,
                    lease_until=now + lease,
                    attempt=deliveries.c.attempt + 1,
                    first_attempt_at=func.coalesce(deliveries.c.first_attempt_at, now),
                    handed_over_at=None,
                    updated_at=now,
                )
                .returning(*deliveries.c)
            )
            return sorted((_delivery(r) for r in conn.execute(stmt).mappings()), key=_by_id)

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
        conn.execute(
            update(deliveries)
            .where(
                deliveries.c.id == delivery_id,
                deliveries.c.claimed_by == worker,
                deliveries.c.status == DeliveryStatus.SENDING,
            )
            .values(status=status, claimed_by=None, lease_until=None, updated_at=now, **values)
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

    # rate limit ---------------------------------------------------------------------------

    def reserve_send_slot(self, per_hour: int) -> timedelta:
        """Take one slot of the persisted hourly budget; returns zero, or how long to wait."""
        now = self.clock()
        minute = now.replace(second=0, microsecond=0)
        window_start = minute - timedelta(minutes=59)

        def work(conn: Connection) -> timedelta:
            conn.execute(delete(send_counts).where(send_counts.c.minute < window_start))
            used = conn.execute(select(func.coalesce(func.sum(send_counts.c.count), 0)))
            if int(used.scalar_one()) >= per_hour:
                oldest: datetime = conn.execute(select(func.min(send_counts.c.minute))).scalar_one()
                wait: timedelta = oldest + timedelta(hours=1) - now
                return max(wait, timedelta(seconds=1))
            stmt = self.insert(send_counts).values(minute=minute, count=1)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[send_counts.c.minute],
                    set_={"count": send_counts.c.count + 1},
                )
            )
            return timedelta(0)

        return self.run(work)

    # settings, jobs, published posts --------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        query = select(settings.c.value).where(settings.c.key == key)
        return self.run(lambda c: c.execute(query).scalar_one_or_none(), write=False)

    def setting_or_create(self, key: str, make: Callable[[], str]) -> str:
        """The stored value of ``key``; when absent, store ``make()`` (first writer wins)."""
        stmt = self.insert(settings).values(key=key, value=make()).on_conflict_do_nothing()

        def work(conn: Connection) -> str:
            conn.execute(stmt)
            return str(conn.execute(select(settings.c.value).where(settings.c.key == key)).one()[0])

        return self.run(work)

    def posts_without_issue(self) -> list[str]:
        query = select(published.c.slug).where(published.c.issue_created.is_(False))
        return self.run(lambda c: list(c.execute(query.order_by(published.c.slug)).scalars()))

    # helpers ------------------------------------------------------------------------------

    def insert(self, table: Table) -> Any:
        """The dialect's INSERT, which has ``on_conflict_do_nothing/update``."""
        return (sqlite.insert if self.is_sqlite else postgresql.insert)(table)

    # --- scheduler support ------------------------------------------------------------------
    # Added for publisher.schedule.runner (issue 4). Additive only: no table, column or existing
    # method changes. A job's consecutive failures are kept in ``settings`` under
    # ``job_failures:<name>`` so back-off survives restarts (G5) without a migration.

    def set_setting(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing any earlier value."""
        self.run(lambda c: self.upsert_setting(c, key, value))

    def upsert_setting(self, conn: Connection, key: str, value: str) -> None:
        """``set_setting`` inside a transaction the caller already holds."""
        stmt = self.insert(settings).values(key=key, value=value)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=[settings.c.key], set_={"value": value})
        )

    def claim_job(
        self, name: str, worker: str, lease: timedelta, *, ignore_backoff: bool = False
    ) -> bool:
        """Take the lease on job ``name`` unless another live worker holds it, and only
        once its ``next_run_at`` (back-off after a failure) has come (G5).

        One ``UPDATE``: two schedulers can never both take a job (G4, G6).
        """
        now = self.clock()
        due = or_(jobs.c.next_run_at.is_(None), jobs.c.next_run_at <= now)

        def work(conn: Connection) -> bool:
            conn.execute(self.insert(jobs).values(name=name).on_conflict_do_nothing())
            free = or_(
                jobs.c.claimed_by.is_(None), jobs.c.claimed_by == worker, jobs.c.lease_until < now
            )
            stmt = (
                update(jobs)
                .where(jobs.c.name == name, free, *(() if ignore_backoff else (due,)))
                .values(claimed_by=worker, lease_until=now + lease)
            )
            return bool(conn.execute(stmt).rowcount)

        return self.run(work)

    def finish_job(
        self, name: str, worker: str, *, error: str | None, next_run_at: datetime | None
    ) -> int:
        """Release job ``name`` and record this run; returns its consecutive failures.

        Does nothing (returns -1) when ``worker`` no longer holds the job.
        """
        key = f"job_failures:{name}"

        def work(conn: Connection) -> int:
            stmt = (
                update(jobs)
                .where(jobs.c.name == name, jobs.c.claimed_by == worker)
                .values(
                    claimed_by=None,
                    lease_until=None,
                    last_run_at=self.clock(),
                    last_error=error,
                    next_run_at=next_run_at,
                )
            )
            if not conn.execute(stmt).rowcount:
                return -1
            before = conn.execute(select(settings.c.value).where(settings.c.key == key))
            failures = 0 if error is None else int(before.scalar_one_or_none() or 0) + 1
            self.upsert_setting(conn, key, str(failures))
            return failures

        return self.run(work)

    def release_job(self, name: str, claimed_by: str) -> bool:
        """Free job ``name`` if ``claimed_by`` still holds it (a claimer known to be dead)."""
        stmt = (
            update(jobs)
            .where(jobs.c.name == name, jobs.c.claimed_by == claimed_by)
            .values(claimed_by=None, lease_until=None)
        )
        return self.run(lambda c: bool(c.execute(stmt).rowcount))

    def job_states(self) -> list[JobState]:
        """Every job row with its consecutive failures, by name."""

        def work(conn: Connection) -> list[JobState]:
            counts = conn.execute(
                select(settings.c.key, settings.c.value).where(
                    settings.c.key.like("job\\_failures:%", escape="\\")
                )
            )
            failures = {k.partition(":")[2]: int(v) for k, v in counts}
            rows = conn.execute(select(jobs).order_by(jobs.c.name)).mappings()
            return [_job_state(r, failures.get(r["name"], 0)) for r in rows]

        return self.run(work, write=False)

    def record_published_many(
        self,
        posts: Sequence[PublishedEntry | tuple[str, str]],
        published_at: datetime,
        *,
        renames: Sequence[tuple[str, str]] = (),
    ) -> list[str]:
        """Record public posts in one transaction; returns the slugs new to ``published``.

        ``renames`` (old slug, new slug) move a record to a post's new slug first, keeping
        whether its issue exists, so a renamed post is not published or mailed again
        (issue 8, item 1). Known posts get their id, title, date and digest updated, which
        is what the next rename is recognised by.
        """
        entries = [p if isinstance(p, PublishedEntry) else PublishedEntry(*p) for p in posts]
        table = published_identity

        def work(conn: Connection) -> list[str]:
            self._rename_published(conn, renames)
            rows = {r["slug"]: r for r in conn.execute(select(table)).mappings()}
            fresh = []
            for entry in entries:
                values = entry.values()
                row = rows.get(entry.slug)
                if row is None:
                    fresh.append(entry.slug)
                    stmt = self.insert(table).values(slug=entry.slug, **values)
                    stmt = stmt.values(published_at=published_at, issue_created=False)
                    conn.execute(stmt.on_conflict_do_nothing())
                elif any(row[k] != v for k, v in values.items()):
                    conn.execute(update(table).where(table.c.slug == entry.slug).values(values))
            return fresh

        return self.run(work)

    def _rename_published(self, conn: Connection, renames: Sequence[tuple[str, str]]) -> None:
        # Through temporary keys ('~' is never in a slug), so that swaps and chains work.
        table = published_identity
        moves = [(old, new, f"~{n}") for n, (old, new) in enumerate(renames) if old != new]
        for old, _, temporary in moves:
            conn.execute(update(table).where(table.c.slug == old).values(slug=temporary))
        taken = set(conn.execute(select(table.c.slug)).scalars())
        moved: dict[str, str] = {}
        for old, new, temporary in moves:
            final = old if new in taken else new  # never merge two records into one
            conn.execute(update(table).where(table.c.slug == temporary).values(slug=final))
            taken.add(final)
            if final != old:
                moved[old] = final
        self._rename_in_issues(conn, moved)

    def _rename_in_issues(self, conn: Connection, moved: dict[str, str]) -> None:
        """Issues name their posts by slug: follow the renames (all at once, so a swap works),
        so that a crashed pass's bookkeeping (``mark_issues_created(issue.post_slugs)``)
        still finds the records."""
        found = {
            i: slugs
            for old in moved
            for i, slugs in conn.execute(self._issues_with_post_query(old))
        }
        for issue_id, slugs in found.items():
            names = [moved.get(s, s) for s in json.loads(slugs)]
            encoded = json.dumps(names, ensure_ascii=False)
            conn.execute(update(issues).where(issues.c.id == issue_id).values(post_slugs=encoded))

    def _issues_with_post_query(self, slug: str) -> Any:
        pattern = json.dumps(slug, ensure_ascii=False)
        return (
            select(issues.c.id, issues.c.post_slugs)
            .where(issues.c.post_slugs.contains(pattern, autoescape=True))
            .order_by(issues.c.id)
        )

    def published_posts(self) -> list[PublishedPost]:
        """Every post ever made public, by slug."""
        table = published_identity
        query = select(table).order_by(table.c.slug)

        def work(conn: Connection) -> list[PublishedPost]:
            return [
                PublishedPost(
                    r["slug"],
                    r["digest"],
                    r["published_at"],
                    bool(r["issue_created"]),
                    post_id=r["post_id"],
                    title=r["title"],
                    post_date=r["post_date"],
                )
                for r in conn.execute(query).mappings()
            ]

        return self.run(work, write=False)

    def mark_issues_created(self, slugs: Sequence[str]) -> None:
        """Record that the issues of these published posts exist, in one transaction."""
        self.run(lambda c: self._mark_issues_created(c, slugs))

    def _mark_issues_created(self, conn: Connection, slugs: Sequence[str]) -> None:
        if slugs:
            stmt = update(published).where(published.c.slug.in_(list(slugs)))
            conn.execute(stmt.values(issue_created=True))

    def issues_with_post(self, slug: str) -> list[int]:
        """Ids of the issues that carry the post ``slug``, oldest first."""
        query = self._issues_with_post_query(slug)

        def work(conn: Connection) -> list[int]:
            return [int(i) for i, slugs in conn.execute(query) if slug in json.loads(slugs)]

        return self.run(work, write=False)

    def open_issues(self) -> list[IssueSummary]:
        """Issues not done yet, oldest first, without their bodies (cheap to poll)."""
        query = (
            select(issues.c.id, issues.c.key, issues.c.status, issues.c.pause_reason)
            .where(issues.c.status != IssueStatus.DONE)
            .order_by(issues.c.id)
        )

        def work(conn: Connection) -> list[IssueSummary]:
            return [
                IssueSummary(r.id, r.key, IssueStatus(r.status), r.pause_reason)
                for r in conn.execute(query)
            ]

        return self.run(work, write=False)

    def issue_count(self) -> int:
        query = select(func.count()).select_from(issues)
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


def _issue(row: Any) -> Issue:
    return Issue(
        id=row["id"],
        key=row["key"],
        post_slugs=tuple(json.loads(row["post_slugs"])),
        categories=tuple(json.loads(row["categories"])),
        subject=row["subject"],
        preheader=row["preheader"],
        html=row["html"],
        text=row["text"],
        digest=row["digest"],
        status=IssueStatus(row["status"]),
        pause_reason=row["pause_reason"],
        created_at=row["created_at"],
        snapshot_at=row["snapshot_at"],
        finished_at=row["finished_at"],
    )


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


# --- engines ------------------------------------------------------------------------------


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


# --- scheduler support: results ---------------------------------------------------------------


@dataclass(frozen=True)
class JobState:
    """One scheduler job as recorded in ``jobs`` (G5): who holds it, how it last went."""

    name: str
    claimed_by: str | None
    lease_until: datetime | None
    last_run_at: datetime | None
    last_error: str | None
    next_run_at: datetime | None
    failures: int  # consecutive failed runs


@dataclass(frozen=True)
class PublishedPost:
    slug: str  # the post's slug now: a rename moves the record (issue 8, item 1)
    digest: str  # of the content last recorded
    published_at: datetime
    issue_created: bool  # handled by the newsletter: an issue exists, or none is due
    post_id: str | None = None  # what a renamed post is recognised by: its 'id' ...
    title: str | None = None  # ... or its date and title (None: recorded before these existed)
    post_date: datetime | None = None


@dataclass(frozen=True)
class PublishedEntry:
    """A public post as ``published`` records it."""

    slug: str
    digest: str
    post_id: str | None = None
    title: str | None = None
    post_date: datetime | None = None

    def values(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "post_id": self.post_id,
            "title": self.title,
            "post_date": self.post_date,
        }


@dataclass(frozen=True)
class IssueSummary:
    id: int
    key: str
    status: IssueStatus
    pause_reason: str | None


def _job_state(row: Any, failures: int) -> JobState:
    return JobState(
        name=row["name"],
        claimed_by=row["claimed_by"],
        lease_until=row["lease_until"],
        last_run_at=row["last_run_at"],
        last_error=row["last_error"],
        next_run_at=row["next_run_at"],
        failures=failures,
    )
