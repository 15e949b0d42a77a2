"""Database access for the editor (publisher.web.editor), beside publisher.store.

Editors, their sign-in sessions, their bearer tokens for writing apps, failed
sign-ins and an audit log. Each operation is ONE transaction run by the store's
runner (``Store.run``: retries locks and dropped connections, then
``StoreError``, which the web answers with 503).

- Tables are created by the store migration ``_migration_editors`` (see
  ``MIGRATIONS`` in publisher.store): ``create_all(checkfirst=True)`` on this
  module's own ``MetaData``, so it is idempotent and leaves migration 1 alone.
- Nothing secret is stored in the clear: passwords are argon2 hashes (made by
  publisher.web.editor.auth), tokens are stored as the SHA-256 of a random
  256-bit token (enough for high-entropy secrets; looked up by hash, so no
  timing leak on the comparison of the secret itself).
- Sessions are rows, so signing out or changing a password ends them; the
  cookie carries a signed reference to the row (publisher.web.editor.auth).
- Failed sign-ins are rows per bucket (``ip:<key>`` and ``name:<name>``);
  a limit counts those of the last hour, so a restart or a second process
  does not reset it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
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
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from publisher.errors import PublisherError
from publisher.store import Clock, Store, UtcDateTime

SCOPES = ("create", "update", "delete", "media")
KEEP_FAILURES = timedelta(days=1)
_LOGIN_LOCK_SPACE = 5006  # first key of the two-key advisory lock per sign-in bucket (PostgreSQL)

editor_metadata = MetaData()

editors = Table(
    "editors",
    editor_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("email", String(320)),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

editor_sessions = Table(
    "editor_sessions",
    editor_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("editor_id", Integer, ForeignKey(editors.c.id, ondelete="CASCADE"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

editor_tokens = Table(
    "editor_tokens",
    editor_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("editor_id", Integer, ForeignKey(editors.c.id, ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("scopes", String(200), nullable=False),  # comma-separated, from SCOPES
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)

editor_login_failures = Table(
    "editor_login_failures",
    editor_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bucket", String(200), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_editor_login_failures_bucket", "bucket", "at"),
)

editor_audit = Table(
    "editor_audit",
    editor_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("editor", String(100), nullable=False),
    Column("action", String(40), nullable=False),
    Column("target", Text, nullable=False),
    Column("detail", Text, nullable=False),
)


def create_tables(conn: Connection) -> None:
    """The store migration's work: idempotent and independent of other migrations."""
    editor_metadata.create_all(conn, checkfirst=True)


class EditorExists(PublisherError):
    pass


@dataclass(frozen=True)
class Editor:
    id: int
    name: str
    email: str | None
    password_hash: str
    created_at: datetime


@dataclass(frozen=True)
class Token:
    id: int
    editor: Editor
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    token_hash: str


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    editor: str
    action: str
    target: str
    detail: str


class EditorStore:
    """The editor's transactions over a :class:`publisher.store.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock: Clock = store.clock
        self._run = store.run  # the store's public retrying transaction runner (H1, H3)

    # editors ----------------------------------------------------------------------------

    def add_editor(self, name: str, email: str | None, password_hash: str) -> Editor:
        now = self.clock()
        stmt = insert(editors).values(
            name=name, email=email, password_hash=password_hash, created_at=now
        )
        try:
            editor_id = self._run(lambda c: _new_id(c.execute(stmt)))
        except IntegrityError:
            raise EditorExists(
                f"an editor named {name!r} exists already",
                hint="Pick another name, or change the password with `publisher editors password`.",
            ) from None
        return Editor(editor_id, name, email, password_hash, now)

    def list_editors(self) -> list[Editor]:
        query = select(editors).order_by(editors.c.name)
        return self._run(lambda c: [_editor(r) for r in c.execute(query)], write=False)

    def find_editor(self, name: str) -> Editor | None:
        query = select(editors).where(editors.c.name == name)
        return self._run(lambda c: _maybe(c.execute(query).first()), write=False)

    def get_editor(self, editor_id: int) -> Editor | None:
        query = select(editors).where(editors.c.id == editor_id)
        return self._run(lambda c: _maybe(c.execute(query).first()), write=False)

    def remove_editor(self, name: str) -> bool:
        def work(conn: Connection) -> bool:
            found = conn.execute(select(editors.c.id).where(editors.c.name == name)).first()
            if found is None:
                return False
            for table in (editor_sessions, editor_tokens):
                conn.execute(delete(table).where(table.c.editor_id == found[0]))
            conn.execute(delete(editors).where(editors.c.id == found[0]))
            return True

        return self._run(work)

    def set_password(self, name: str, password_hash: str) -> bool:
        """New hash; every session of the editor ends (tokens stay: revoke them separately)."""

        def work(conn: Connection) -> bool:
            found = conn.execute(select(editors.c.id).where(editors.c.name == name)).first()
            if found is None:
                return False
            conn.execute(
                update(editors).where(editors.c.id == found[0]).values(password_hash=password_hash)
            )
            conn.execute(delete(editor_sessions).where(editor_sessions.c.editor_id == found[0]))
            return True

        return self._run(work)

    def rehash(self, editor_id: int, password_hash: str) -> None:
        stmt = update(editors).where(editors.c.id == editor_id).values(password_hash=password_hash)
        self._run(lambda c: c.execute(stmt))

    # sessions ---------------------------------------------------------------------------

    def create_session(self, editor_id: int, lifetime: timedelta) -> int:
        now = self.clock()
        stmt = insert(editor_sessions).values(
            editor_id=editor_id, created_at=now, expires_at=now + lifetime
        )

        def work(conn: Connection) -> int:
            conn.execute(delete(editor_sessions).where(editor_sessions.c.expires_at <= now))
            return _new_id(conn.execute(stmt))

        return self._run(work)

    def session_editor(self, session_id: int) -> Editor | None:
        """The editor of a live session, or None when it ended or expired."""
        query = (
            select(editors)
            .join(editor_sessions, editor_sessions.c.editor_id == editors.c.id)
            .where(editor_sessions.c.id == session_id)
            .where(editor_sessions.c.expires_at > self.clock())
        )
        return self._run(lambda c: _maybe(c.execute(query).first()), write=False)

    def end_session(self, session_id: int) -> None:
        stmt = delete(editor_sessions).where(editor_sessions.c.id == session_id)
        self._run(lambda c: c.execute(stmt))

    # tokens -----------------------------------------------------------------------------

    def add_token(self, editor_id: int, token_hash: str, scopes: Sequence[str]) -> int:
        stmt = insert(editor_tokens).values(
            editor_id=editor_id,
            token_hash=token_hash,
            scopes=",".join(scopes),
            created_at=self.clock(),
        )
        return self._run(lambda c: _new_id(c.execute(stmt)))

    def find_token(self, token_hash: str) -> Token | None:
        """The live token with this hash (revoked tokens and removed editors: None)."""
        query = (
            select(editor_tokens, editors)
            .join(editors, editors.c.id == editor_tokens.c.editor_id)
            .where(editor_tokens.c.token_hash == token_hash)
            .where(editor_tokens.c.revoked_at.is_(None))
        )

        def work(conn: Connection) -> Token | None:
            row = conn.execute(query).first()
            if row is None:
                return None
            editor = Editor(row.id_1, row.name, row.email, row.password_hash, row.created_at_1)
            scopes = tuple(s for s in row.scopes.split(",") if s)
            return Token(row.id, editor, scopes, row.created_at, row.revoked_at, row.token_hash)

        return self._run(work, write=False)

    def list_tokens(self, editor_id: int) -> list[tuple[int, tuple[str, ...], datetime, bool]]:
        query = (
            select(editor_tokens)
            .where(editor_tokens.c.editor_id == editor_id)
            .order_by(editor_tokens.c.id)
        )
        return self._run(
            lambda c: [
                (r.id, tuple(r.scopes.split(",")), r.created_at, r.revoked_at is not None)
                for r in c.execute(query)
            ],
            write=False,
        )

    def revoke_tokens(self, editor_id: int, token_id: int | None = None) -> int:
        """Revoke one token (by id) or all of an editor's; the number revoked."""
        stmt = (
            update(editor_tokens)
            .where(editor_tokens.c.editor_id == editor_id)
            .where(editor_tokens.c.revoked_at.is_(None))
        )
        if token_id is not None:
            stmt = stmt.where(editor_tokens.c.id == token_id)
        stmt = stmt.values(revoked_at=self.clock())
        return self._run(lambda c: int(c.execute(stmt).rowcount))

    # sign-in limits ---------------------------------------------------------------------

    def take_attempt(
        self, buckets: Sequence[str], limit: int, window: timedelta
    ) -> list[int] | None:
        """Count one sign-in attempt against every bucket, or None when one is used up.

        Check and count are one transaction that SQLite serializes (``BEGIN
        IMMEDIATE``) and PostgreSQL serializes per bucket (advisory locks), so
        parallel guesses cannot all pass the limit. A good password gives the
        attempt back (:meth:`forgive`); a wrong one leaves it counted.
        """
        now = self.clock()

        def work(conn: Connection) -> list[int] | None:
            if not self.store.is_sqlite:
                for bucket in sorted(buckets):
                    conn.execute(
                        select(func.pg_advisory_xact_lock(_LOGIN_LOCK_SPACE, func.hashtext(bucket)))
                    )
            conn.execute(
                delete(editor_login_failures).where(
                    editor_login_failures.c.at < now - KEEP_FAILURES
                )
            )
            for bucket in buckets:
                count = conn.execute(
                    select(func.count())
                    .select_from(editor_login_failures)
                    .where(editor_login_failures.c.bucket == bucket)
                    .where(editor_login_failures.c.at > now - window)
                ).scalar_one()
                if count >= limit:
                    return None
            return [
                _new_id(conn.execute(insert(editor_login_failures).values(bucket=b, at=now)))
                for b in buckets
            ]

        return self._run(work)

    def forgive(self, attempt_ids: Sequence[int]) -> None:
        stmt = delete(editor_login_failures).where(
            editor_login_failures.c.id.in_(list(attempt_ids))
        )
        self._run(lambda c: c.execute(stmt))

    # audit ------------------------------------------------------------------------------

    def audit(self, editor: str, action: str, target: str, detail: str = "") -> None:
        stmt = insert(editor_audit).values(
            at=self.clock(), editor=editor, action=action, target=target, detail=detail
        )
        self._run(lambda c: c.execute(stmt))

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        query = select(editor_audit).order_by(editor_audit.c.id.desc()).limit(limit)
        return self._run(
            lambda c: [
                AuditEntry(r.at, r.editor, r.action, r.target, r.detail) for r in c.execute(query)
            ],
            write=False,
        )


def _new_id(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _editor(row: object) -> Editor:
    r = row._mapping  # type: ignore[attr-defined]
    return Editor(r["id"], r["name"], r["email"], r["password_hash"], r["created_at"])


def _maybe(row: object | None) -> Editor | None:
    return None if row is None else _editor(row)
