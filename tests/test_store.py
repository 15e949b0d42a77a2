"""The store on SQLite and PostgreSQL: schema, subscribers, claims, locks (§1.3, H)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import event, inspect, text

import publisher.store as store_module
import publisher.store.schema as schema
from publisher.deliver.sender import send_issue
from publisher.store import (
    DeliveryStatus,
    HandOver,
    InvalidAddress,
    NewSubscriber,
    PublishedEntry,
    Recovery,
    Reply,
    Store,
    StoreError,
    SubscriberStatus,
    normalize_email,
)
from sending import (
    OPERATOR,
    FakeClock,
    PlainComposer,
    add_subscribers,
    make_issue,
    open_store,
    policy,
    smtp_to,
)
from smtp_sink import SmtpSink

pytestmark = pytest.mark.timeout(60)


# --- addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Reader@EXAMPLE.COM", "reader@example.com"),
        ("  reader@example.com ", "reader@example.com"),
        ("reader@bücher.example", "reader@xn--bcher-kva.example"),
        ("reader+news@example.com", "reader+news@example.com"),
    ],
)
def test_normalize_email_e3(given: str, stored: str):
    assert normalize_email(given) == stored


@pytest.mark.parametrize(
    "bad",
    [
        "no-at-sign",
        "a@b@example.com",
        "reader@example.com\r\nBcc: x@evil.test",
        "reader\x00@example.com",
        "독자@example.com",  # non-ASCII local part needs SMTPUTF8 (D4, F16)
        "alice@example.org)<bob@example.org>",  # D5: parseaddr's lax reading
        "x" * 400 + "@example.com",
    ],
)
def test_invalid_addresses_are_refused(bad: str):
    with pytest.raises(InvalidAddress, match="invalid email address"):
        normalize_email(bad)


# --- schema -----------------------------------------------------------------------------------


def test_fresh_database_gets_the_current_schema(db_url: str):
    assert open_store(db_url).schema_version() == store_module.SCHEMA_VERSION


def test_older_schema_is_a_clear_error_then_migrates_h6(db_url: str, monkeypatch):
    open_store(db_url).close()
    applied = []
    current = store_module.SCHEMA_VERSION  # not a literal: other migrations get appended
    newer = (*store_module.MIGRATIONS, lambda conn: applied.append(current + 1))
    monkeypatch.setattr(store_module, "MIGRATIONS", newer)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", len(newer))
    with pytest.raises(StoreError) as info:
        Store.open(db_url)
    shown = db_url.split("?")[0].split("///")[-1].split("/")[-1]
    assert shown in info.value.message
    assert (
        f"has schema version {current}; this Publisher needs version {current + 1}"
        in info.value.message
    )
    assert info.value.hint == "Back up the database, then run `publisher migrate`."
    assert applied == []
    assert open_store(db_url, migrate=True).schema_version() == current + 1
    assert applied == [current + 1]


def test_newer_schema_is_refused_h6(db_url: str):
    store = open_store(db_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 99"))
    newer = f"has schema version 99, newer than this Publisher's {store_module.SCHEMA_VERSION}"
    with pytest.raises(StoreError, match=newer):
        Store.open(db_url)


# --- subscribers ------------------------------------------------------------------------------


def test_add_is_idempotent_on_the_normalized_address(db_url: str):
    store = open_store(db_url)
    first, created = store.add_subscriber("reader@EXAMPLE.com", OPERATOR, categories=["세계"])
    again, created_again = store.add_subscriber("reader@example.com", OPERATOR)
    assert (created, created_again, again.id) == (True, False, first.id)
    assert again.categories == ("세계",)
    assert again.consent is not None and again.consent.source == "tests"


def test_status_change_bumps_state_version(db_url: str):
    store = open_store(db_url)
    sub = add_subscribers(store, 1)[0]
    gone = store.unsubscribe(sub.email)
    assert gone is not None
    assert (gone.status, gone.state_version) == (SubscriberStatus.UNSUBSCRIBED, 2)
    assert gone.unsubscribed_at is not None
    # An import does not resubscribe an unsubscribed address.
    result = store.import_subscribers([NewSubscriber(sub.email)], OPERATOR)
    assert (result.added, result.existing) == (0, 1)
    assert store.find_subscriber(sub.email).status == SubscriberStatus.UNSUBSCRIBED  # type: ignore[union-attr]


def test_subscribers_are_streamed_in_batches_g12(db_url: str):
    store = open_store(db_url)
    store.import_subscribers([NewSubscriber(f"r{i}@example.com") for i in range(25)], OPERATOR)
    selects: list[str] = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT") and "FROM subscribers" in statement:
            selects.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    stream = store.iter_subscribers(batch_size=10)
    first = next(stream)
    assert first.email == "r0@example.com" and len(selects) == 1  # lazy: one batch so far
    rest = list(stream)
    assert len(rest) == 24
    assert len(selects) == 3  # 10 + 10 + 5, keyset pagination
    assert all("LIMIT" in s.upper() for s in selects)


def test_import_is_one_transaction(db_url: str, monkeypatch):
    store = open_store(db_url)
    real = store._insert_subscriber
    calls = []

    def failing(conn, address, *args):
        calls.append(address)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return real(conn, address, *args)

    monkeypatch.setattr(store, "_insert_subscriber", failing)
    rows = [NewSubscriber(f"r{i}@example.com") for i in range(5)]
    with pytest.raises(RuntimeError):
        store.import_subscribers(rows, OPERATOR)
    assert store.count_subscribers() == 0


# --- issues and deliveries -------------------------------------------------------------------


def test_create_issue_is_idempotent_on_key(db_url: str):
    store = open_store(db_url)
    first = make_issue(store)
    again = make_issue(store)
    assert first == again and len(store.list_issues()) == 1


def test_snapshot_runs_once(db_url: str):
    store = open_store(db_url)
    add_subscribers(store, 3)
    store.add_subscriber("gone@example.com", OPERATOR)
    store.unsubscribe("gone@example.com")
    issue = make_issue(store)
    assert store.snapshot(issue.id) == 3
    add_subscribers(store, 2, prefix="late")
    assert store.snapshot(issue.id) == 0
    assert store.counts(issue.id)[DeliveryStatus.PENDING] == 3


def test_concurrent_claims_never_overlap_g4(db_url: str):
    store = open_store(db_url)
    store.import_subscribers([NewSubscriber(f"r{i}@example.com") for i in range(100)], OPERATOR)
    issue = make_issue(store)
    store.snapshot(issue.id)
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def claimer(name: str) -> None:
        own = open_store(db_url)
        barrier.wait()
        while batch := own.claim(issue.id, name, 7, timedelta(minutes=5)):
            claimed[name].extend(d.id for d in batch)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    both = claimed["a"] + claimed["b"]
    assert len(both) == len(set(both)) == 100


def test_expired_lease_becomes_in_doubt_g1(db_url: str):
    clock = FakeClock()
    store = open_store(db_url, clock)
    add_subscribers(store, 2)
    issue = make_issue(store)
    store.snapshot(issue.id)
    claimed = store.claim(issue.id, "w", 2, timedelta(seconds=60))
    store.mark_sent(claimed[0].id, Reply(250, "2.0.0", "ok"), "<m@x>")
    assert store.hand_over(claimed[1].id, "w") == HandOver.GO  # DATA was about to start
    assert store.recover_expired_leases() == Recovery(0, 0)
    clock.advance(seconds=61)
    assert store.recover_expired_leases() == Recovery(in_doubt=1, released=0)
    row = store.get_delivery(claimed[1].id)
    assert row is not None and row.status == DeliveryStatus.IN_DOUBT
    assert "lease expired" in (row.last_reply or "")


def test_expired_claim_never_handed_over_is_pending_again(db_url: str):
    """Issue 8: a row claimed but never handed over cannot be at the server."""
    clock = FakeClock()
    store = open_store(db_url, clock)
    add_subscribers(store, 1)
    issue = make_issue(store)
    store.snapshot(issue.id)
    claimed = store.claim(issue.id, "w", 1, timedelta(seconds=60))
    clock.advance(seconds=61)
    assert store.recover_expired_leases() == Recovery(in_doubt=0, released=1)
    row = store.get_delivery(claimed[0].id)
    assert row is not None
    assert (row.status, row.attempt, row.claimed_by) == (DeliveryStatus.PENDING, 0, None)
    again = store.claim(issue.id, "v", 1, timedelta(seconds=60))
    assert again[0].handed_over_at is None and again[0].attempt == 1


def test_hand_over_rechecks_the_subscriber_e16(db_url: str):
    store = open_store(db_url)
    add_subscribers(store, 1)
    issue = make_issue(store)
    store.snapshot(issue.id)
    claimed = store.claim(issue.id, "w", 1, timedelta(seconds=60))
    store.unsubscribe("reader1@example.com")
    assert store.hand_over(claimed[0].id, "w") == HandOver.SKIPPED
    row = store.get_delivery(claimed[0].id)
    assert row is not None and (row.status, row.handed_over_at) == (DeliveryStatus.SKIPPED, None)
    assert store.hand_over(claimed[0].id, "w") == HandOver.LOST


def test_migration_adds_handed_over_at_to_an_older_database(db_url: str):
    from sqlalchemy import inspect

    store = open_store(db_url)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE deliveries DROP COLUMN handed_over_at"))
        conn.execute(text("UPDATE schema_version SET version = 1"))
    store.close()
    with pytest.raises(StoreError, match="has schema version 1"):
        Store.open(db_url)
    migrated = open_store(db_url, migrate=True)
    columns = {c["name"] for c in inspect(migrated.engine).get_columns("deliveries")}
    assert "handed_over_at" in columns
    with migrated.engine.begin() as conn:  # and running it again changes nothing
        schema._migration_handed_over(conn)


def test_hourly_budget_is_persisted(db_url: str):
    clock = FakeClock()
    store = open_store(db_url, clock)
    assert store.reserve_send_slot(2) == timedelta(0)
    clock.advance(minutes=30)
    assert store.reserve_send_slot(2) == timedelta(0)
    wait = open_store(db_url, clock).reserve_send_slot(2)  # a restart sees the same window
    assert timedelta(minutes=29) <= wait <= timedelta(minutes=31)
    clock.advance(minutes=31)
    assert store.reserve_send_slot(2) == timedelta(0)


def test_jobs_and_published_posts(db_url: str):
    clock = FakeClock()
    store = open_store(db_url, clock)
    assert store.claim_job("tick", "a", timedelta(seconds=30))
    assert not store.claim_job("tick", "b", timedelta(seconds=30))
    retry_at = clock.now + timedelta(minutes=5)
    assert store.finish_job("tick", "a", error="boom", next_run_at=retry_at) == 1
    assert not store.claim_job("tick", "b", timedelta(seconds=30))  # backing off (G5)
    assert store.claim_job("tick", "b", timedelta(seconds=30), ignore_backoff=True)
    assert store.finish_job("tick", "a", error=None, next_run_at=None) == -1  # not a's any more
    assert store.record_published_many([("hello", "d" * 64)], clock.now) == ["hello"]
    assert store.record_published_many([("hello", "d" * 64)], clock.now) == []
    assert store.posts_without_issue() == ["hello"]
    store.mark_issues_created(["hello"])
    assert store.posts_without_issue() == []


def test_setting_or_create_first_writer_wins(db_url: str):
    store = open_store(db_url)
    assert store.setting_or_create("k", lambda: "one") == "one"
    assert store.setting_or_create("k", lambda: "two") == "one"


# --- database faults ----------------------------------------------------------------------------

HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def hold_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding BEGIN EXCLUSIVE on the SQLite file (§3.0)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_sqlite_lock_is_waited_out_h1(tmp_path: Path):
    path = tmp_path / "publisher.db"
    store = open_store(f"sqlite:///{path}", busy_timeout=0.05, retry_seconds=10)
    proc = hold_lock(path, 1.0)
    started = time.monotonic()
    store.add_subscriber("reader@example.com", OPERATOR)
    assert time.monotonic() - started >= 0.5
    proc.communicate(timeout=5)
    assert store.count_subscribers() == 1


def test_sqlite_lock_that_outlasts_the_retries_names_the_database_h1(tmp_path: Path):
    path = tmp_path / "publisher.db"
    store = open_store(f"sqlite:///{path}", busy_timeout=0.05, retry_seconds=0.3)
    proc = hold_lock(path, 2.0)
    with pytest.raises(StoreError, match=r"publisher\.db: database is locked"):
        store.add_subscriber("reader@example.com", OPERATOR)
    proc.communicate(timeout=5)


def test_sqlite_lock_during_a_send_is_never_a_recipient_failure_h1(
    tmp_path: Path, smtp_sink: SmtpSink
):
    path = tmp_path / "publisher.db"
    store = open_store(f"sqlite:///{path}", busy_timeout=0.05, retry_seconds=10)
    add_subscribers(store, 4)
    issue = make_issue(store)
    held = smtp_sink.data_event(2)
    locker: list[subprocess.Popen[str]] = []
    held_then_lock = threading.Thread(
        target=lambda: held.wait(10) and locker.append(hold_lock(path, 1.0))
    )
    held_then_lock.start()
    report = send_issue(
        store, issue.id, smtp_to(smtp_sink), PlainComposer(), policy(), clock=store.clock
    )
    held_then_lock.join(10)
    for proc in locker:
        proc.communicate(timeout=5)
    assert (report.sent, report.failed_temp, report.failed_perm, report.done) == (4, 0, 0, True)
    assert sorted(smtp_sink.copies().values()) == [1] * 4


@pytest.mark.postgres
def test_postgres_connection_drop_is_retried_h3(postgres_database: str):
    store = open_store(postgres_database)
    store.add_subscriber("reader@example.com", OPERATOR)
    name = postgres_database.rsplit("/", 1)[1]
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    assert store.count_subscribers() == 1  # reconnected, not an error
    store.add_subscriber("second@example.com", OPERATOR)
    assert store.count_subscribers() == 2


def test_unknown_database_url_is_an_error():
    with pytest.raises(StoreError, match="unsupported database URL"):
        Store.open("mysql://x@localhost/db")


def test_postgresql_url_is_rewritten_for_psycopg():
    assert store_module.normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store_module.normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_published_identity_migration_upgrades_a_version_1_database(db_url: str, monkeypatch):
    """Issue 8, item 1: a database made before post ids gets the columns, once."""
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)
    old = open_store(db_url)
    with old.engine.begin() as conn:
        values = {"slug": "hello", "digest": "d" * 64, "issue_created": True}
        conn.execute(schema.published.insert().values(published_at=FakeClock().now, **values))
    old.close()
    monkeypatch.undo()
    store = open_store(db_url, migrate=True)
    with store.engine.begin() as conn:
        schema._migration_published_identity(conn)  # idempotent: a second run adds nothing
        columns = {c["name"] for c in inspect(conn).get_columns("published")}
    assert set(store_module.POST_IDENTITY_COLUMNS) <= columns
    (record,) = store.published_posts()
    assert (record.slug, record.post_id, record.title, record.post_date) == (
        "hello",
        None,
        None,
        None,
    )


def test_a_rename_moves_the_record_and_the_issues_and_keeps_them_handled(db_url: str):
    clock = FakeClock()
    store = open_store(db_url, clock)
    entry = PublishedEntry("old", "d" * 64, "id-1", "제목", clock.now)
    assert store.record_published_many([entry, ("other", "e" * 64)], clock.now) == ["old", "other"]
    make_issue(store, key="post:old")
    assert store.posts_without_issue() == ["other"]  # create_issue marks the post handled

    moved = PublishedEntry("new", "f" * 64, "id-1", "새 제목", clock.now)
    fresh = store.record_published_many([moved], clock.now, renames=[("old", "new")])
    assert fresh == [] and store.posts_without_issue() == ["other"]
    records = {r.slug: r for r in store.published_posts()}
    assert set(records) == {"new", "other"}
    assert (records["new"].digest, records["new"].title) == ("f" * 64, "새 제목")
    (issue,) = store.list_issues()
    assert issue.post_slugs == ("new",) and store.issues_with_post("new") == [issue.id]
    swapped = store.record_published_many(
        [], clock.now, renames=[("new", "other"), ("other", "new")]
    )
    assert swapped == [] and {r.slug for r in store.published_posts()} == {"new", "other"}
    assert store.list_issues()[0].post_slugs == ("other",)


# The web tables as publisher.store.signups created them before issue 9, under their own
# settings key web_schema_version: version 1 made web_counts, version 2 confirmation_mails.
def _old_web_ddl(sqlite: bool) -> list[str]:
    key = "INTEGER PRIMARY KEY" if sqlite else "SERIAL PRIMARY KEY"
    return [
        "CREATE TABLE web_counts (bucket VARCHAR(100) NOT NULL, minute TIMESTAMP NOT NULL, "
        "count INTEGER NOT NULL, PRIMARY KEY (bucket, minute))",
        "CREATE INDEX ix_web_counts_minute ON web_counts (minute)",
        f"CREATE TABLE confirmation_mails (id {key}, subscriber_id INTEGER NOT NULL "
        "REFERENCES subscribers (id) ON DELETE CASCADE, email VARCHAR(320) NOT NULL, "
        "state_version INTEGER NOT NULL, created_at TIMESTAMP NOT NULL, "
        "status VARCHAR(16) NOT NULL, attempts INTEGER NOT NULL, "
        "next_attempt_at TIMESTAMP NOT NULL, claimed_by VARCHAR(200), lease_until TIMESTAMP, "
        "last_error TEXT)",
        "CREATE INDEX ix_confirmation_mails_due ON confirmation_mails (status, next_attempt_at)",
    ]


def _old_database(db_url: str, monkeypatch, web_version: int) -> int:
    """A database as the code before issue 9 left it; returns its schema_version."""
    before = schema.MIGRATIONS.index(schema._migration_one_version)
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:before])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", before)
    old = open_store(db_url)
    ddl = _old_web_ddl(old.is_sqlite)
    with old.engine.begin() as conn:
        for statement in ddl[: {0: 0, 1: 2}.get(web_version, 4)]:
            conn.execute(text(statement))
        if web_version:
            conn.execute(
                text("INSERT INTO settings (key, value) VALUES ('web_schema_version', :v)"),
                {"v": str(web_version)},
            )
        if web_version >= 1:
            conn.execute(
                text("INSERT INTO web_counts (bucket, minute, count) VALUES ('ip:x', :m, 3)"),
                {"m": FakeClock().now.replace(tzinfo=None, second=0, microsecond=0)},
            )
    old.close()
    monkeypatch.undo()
    return before


@pytest.mark.parametrize("web_version", [0, 1, 2])
def test_migrate_folds_the_web_schema_version_into_the_one_version(
    db_url: str, monkeypatch, web_version: int
):
    """Issue 9: schema_version N + web_schema_version M upgrade to the one version."""
    from publisher.store.quotas import Quota
    from publisher.store.signups import WebStore

    before = _old_database(db_url, monkeypatch, web_version)
    with pytest.raises(
        StoreError, match=f"schema version {before}; this Publisher needs"
    ) as refused:
        open_store(db_url)
    assert "publisher migrate" in (refused.value.hint or "")
    clock = FakeClock()
    store = open_store(db_url, clock, migrate=True)
    assert store.schema_version() == store_module.SCHEMA_VERSION
    assert store.get_setting("web_schema_version") is None  # one version key left
    tables = set(inspect(store.engine).get_table_names())
    assert {"web_counts", "confirmation_mails"} <= tables
    quota = Quota("ip:x", 4, timedelta(hours=1))
    used = 3 if web_version else 0  # the counts an old database had are kept
    for _ in range(4 - used):
        assert store.take_quota([quota]) is None
    assert store.take_quota([quota]) == quota
    assert WebStore.open(store).claim_mails("w", 5, timedelta(minutes=1)) == []
    store.close()
    again = open_store(db_url)  # upgraded once: opens without migrate
    assert again.schema_version() == store_module.SCHEMA_VERSION


def test_a_newer_web_schema_version_is_still_refused(db_url: str, monkeypatch):
    _old_database(db_url, monkeypatch, 3)
    with pytest.raises(StoreError, match="web schema version 3, newer than this Publisher's 2"):
        open_store(db_url, migrate=True)
