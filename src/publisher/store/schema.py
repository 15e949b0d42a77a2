"""The tables and the ordered MIGRATIONS that create and upgrade them."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    inspect,
    select,
    text,
)

from publisher.store.db import StoreError, UtcDateTime

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


# The subscription endpoint's tables (publisher.store.signups); their own MetaData keeps
# them out of _migration_1.
web_metadata = MetaData()

web_counts = Table(
    "web_counts",
    web_metadata,
    Column("bucket", String(100), primary_key=True),
    Column("minute", UtcDateTime, primary_key=True),
    Column("count", Integer, nullable=False),
    Index("ix_web_counts_minute", "minute"),
)


# The durable queue of double opt-in mails (see the module docstring); no secret in it.
confirmation_mails = Table(
    "confirmation_mails",
    web_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "subscriber_id", Integer, ForeignKey(subscribers.c.id, ondelete="CASCADE"), nullable=False
    ),
    Column("email", String(320), nullable=False),
    Column("state_version", Integer, nullable=False),  # the link confirms this state only (E10)
    Column("created_at", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("claimed_by", String(200)),
    Column("lease_until", UtcDateTime),
    Column("last_error", Text),
    Index("ix_confirmation_mails_due", "status", "next_attempt_at"),
)


# Before issue 9 the web tables had a version of their own, under this ``settings`` key
# (1: web_counts, 2: confirmation_mails), created by the web service on first use.
LEGACY_WEB_VERSION_KEY = "web_schema_version"
LEGACY_WEB_VERSION = 2


def _migration_one_version(conn: Connection) -> None:
    """The web tables join ``schema_version`` (issue 9): one version for the database.

    Idempotent and order-independent: a table is created only when missing, whatever web
    version the database had (none, 1 or 2), and the old key is removed. A web version
    above 2 was written by a newer Publisher: refused, as before (H6).
    """
    key = settings.c.key == LEGACY_WEB_VERSION_KEY
    found = conn.execute(select(settings.c.value).where(key)).scalar_one_or_none()
    if found is not None and int(found) > LEGACY_WEB_VERSION:
        name = conn.engine.url.render_as_string(hide_password=True)
        raise StoreError(
            f"database {name} has web schema version {found}, newer than this "
            f"Publisher's {LEGACY_WEB_VERSION}",
            hint="Upgrade Publisher; an older version must not write to this database.",
        )
    web_metadata.create_all(conn, tables=[web_counts, confirmation_mails], checkfirst=True)
    conn.execute(delete(settings).where(key))


# Ordered; index + 1 is the version a migration produces. Append, never edit.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _migration_1,
    _migration_signup_requests,
    _migration_published_identity,
    _migration_handed_over,
    _migration_bounces,
    _migration_editors,
    _migration_one_version,
)


SCHEMA_VERSION = len(MIGRATIONS)
