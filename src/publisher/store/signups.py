"""Database access for the subscription endpoint (publisher.web.app), beside publisher.store.

Kept out of ``store.py`` so the endpoint's needs stay additive: one table of
its own and a few subscriber operations, each ONE transaction run by the
store's runner (``Store.run``), which retries SQLite ``database is locked``
and dropped PostgreSQL connections and then raises ``StoreError``; the
endpoint answers that with 503 and ``Retry-After`` (H1, H3).

- **Schema**: the ``web_counts`` and ``confirmation_mails`` tables are in
  ``publisher.store.schema`` under the one ``schema_version`` (issue 9; they had
  their own ``web_schema_version`` key before, which ``publisher migrate`` folds in).
- **Quotas** (E4, E5, S12): ``Store.take_quota`` (publisher.store.quotas, the one
  per-minute counter, shared with the send budget); a signup takes its quotas inside
  its own transaction, and all pass and are counted together, or none is counted.
- **Signup requests** (S13, issue 8 item 8): the request only appends a
  ``signup_requests`` row (:meth:`WebStore.record_signup`); the worker applies
  it with :meth:`WebStore.apply_signups` as one transaction that deletes it and
  does the signup below, so each request is applied once.
- **Signup** (E3, E14, H5): ``INSERT ... ON CONFLICT DO NOTHING`` on the
  normalized address creates at most one ``pending`` row and never an active
  one; the confirmation quotas are taken in the same transaction, only for
  addresses that may be mailed (pending or unsubscribed) and are not on the
  suppression list (publisher.store.bounces): a suppressed address is never
  mailed a confirmation nor confirmed.
- **Confirm** (E10, S2): a compare-and-set on ``state_version``: the link
  confirms only the state it was issued for, so a confirmation link from
  before an unsubscribe cannot resubscribe; a newer link (a new signup) can.
- **Consent** (R10): the subscriber row keeps when, how (``web``), from which
  address and under which consent text; confirmation adds its own address.
- **Confirmation mails** (web schema 2; STYLE habit 6, G1): a signup that may
  mail inserts a ``confirmation_mails`` row in the signup transaction itself, so
  a committed signup always has its mail queued and 20 parallel signups queue
  one (E14). The row holds the address, the subscriber id and the
  ``state_version`` the link will be signed for, never the link: the token is
  signed when the mail is sent (publisher.deliver.confirmations). Rows are claimed like
  deliveries, by ``publisher.store.leases``; unlike a delivery, a ``sending`` row
  whose lease ran out is due again (at-least-once).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from publisher.store import (
    Clock,
    ConsentMethod,
    Store,
    SubscriberStatus,
)
from publisher.store.bounces import suppressed_condition
from publisher.store.leases import claim_rows, held_by, held_expired, settle
from publisher.store.model import Consent
from publisher.store.quotas import Quota
from publisher.store.schema import (
    confirmation_mails,
    signup_requests,
    subscriber_categories,
    subscribers,
)
from publisher.store.subscribers import insert_subscriber

MAILABLE = (SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED)


class MailStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class SignupResult:
    subscriber_id: int
    state_version: int
    send: bool  # a confirmation mail is due now


@dataclass(frozen=True)
class ConfirmationMail:
    """A ``confirmation_mails`` row; ``subscriber_*`` is the subscriber as it is now."""

    id: int
    subscriber_id: int
    email: str
    state_version: int
    created_at: datetime
    status: MailStatus
    attempts: int
    next_attempt_at: datetime
    claimed_by: str | None
    lease_until: datetime | None
    last_error: str | None
    subscriber_status: SubscriberStatus | None = None
    subscriber_version: int | None = None


class ConfirmOutcome(StrEnum):
    CONFIRMED = "confirmed"
    ALREADY_ACTIVE = "already_active"
    INVALID = "invalid"


class WebStore:
    """The endpoint's transactions over a :class:`publisher.store.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock: Clock = store.clock
        self._run = store.run  # the store's public retrying transaction runner (H1, H3)

    @classmethod
    def open(cls, store: Store) -> WebStore:
        """Wrap ``store``; its tables are the store's own (``Store.open`` checks the schema)."""
        return cls(store)

    def has_queued(self) -> bool:
        """Whether the web service ever queued a signup or a mail here (the scheduler asks)."""

        def work(conn: Connection) -> bool:
            for table in (signup_requests, confirmation_mails):
                if conn.execute(select(table.c.id).limit(1)).first() is not None:
                    return True
            return False

        return self._run(work, write=False)

    # quotas -----------------------------------------------------------------------------------

    def take_quota(self, quotas: Sequence[Quota]) -> Quota | None:
        """Count one event against every quota; or count nothing and return the one used up."""
        return self.store.take_quota(quotas)

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
        return self._run(
            lambda conn: self._signup(conn, address, categories, source, text_version, quotas, now)
        )

    def _signup(
        self,
        conn: Connection,
        address: str,
        categories: Sequence[str],
        source: str,
        text_version: str,
        quotas: Sequence[Quota],
        now: datetime,
    ) -> SignupResult:
        self._insert_pending(conn, address, categories, source, text_version, now)
        row = conn.execute(
            select(subscribers.c.id, subscribers.c.status, subscribers.c.state_version)
            .where(subscribers.c.email == address)
            .with_for_update()
        ).one()
        if row.status not in MAILABLE:
            return SignupResult(row.id, row.state_version, send=False)  # active or bounced
        if self._suppressed(conn, address):  # never re-activated by a sign-up (issue 12)
            return SignupResult(row.id, row.state_version, send=False)
        if self.store.take_quota_in(conn, quotas, now) is not None:
            return SignupResult(row.id, row.state_version, send=False)
        self._record_consent(conn, row.id, source, text_version, now)
        self._queue_mail(conn, row.id, address, row.state_version, now)
        return SignupResult(row.id, row.state_version, send=True)

    # signup requests (issue 8 item 8) -----------------------------------------------------------

    def record_signup(
        self, address: str, categories: Sequence[str], *, source: str, text_version: str
    ) -> None:
        """Queue a signup to be applied by :meth:`apply_signups`: one INSERT, whatever the address.

        The request path calls only this, so a new, pending, active or unsubscribed
        address costs it exactly the same statements and nothing about the address
        shows in the response time (S13). Committed before the answer: a signup that
        got its 200 is never lost (G1).
        """
        stmt = insert(signup_requests).values(
            email=address,
            categories=json.dumps(sorted(set(categories)), ensure_ascii=False),
            source=source[:500],
            text_version=text_version[:100],
            created_at=self.clock(),
        )
        self._run(lambda conn: conn.execute(stmt))

    def apply_signups(
        self, quotas: Callable[[str], Sequence[Quota]], stop: threading.Event | None = None
    ) -> list[SignupResult]:
        """Apply queued signups, oldest first, each in ONE transaction with its removal.

        As :meth:`signup` did on the request path (the request's own time counts for
        consent and quotas); a request is applied exactly once, whichever process
        (the web worker or ``publisher run``) takes it.
        """
        results: list[SignupResult] = []
        while stop is None or not stop.is_set():
            result = self._run(lambda conn: self._apply_one(conn, quotas))
            if result is None:
                break
            if isinstance(result, SignupResult):
                results.append(result)
        return results

    def _apply_one(
        self, conn: Connection, quotas: Callable[[str], Sequence[Quota]]
    ) -> SignupResult | bool | None:
        query = (
            select(signup_requests)
            .order_by(signup_requests.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)  # SQLite: BEGIN IMMEDIATE serializes instead
        )
        row = conn.execute(query).mappings().one_or_none()
        if row is None:
            return None
        conn.execute(delete(signup_requests).where(signup_requests.c.id == row["id"]))
        try:
            categories = tuple(json.loads(row["categories"]))
        except ValueError:
            return False  # cannot happen for rows record_signup wrote; dropped, not retried
        address = row["email"]
        now = row["created_at"]
        return self._signup(
            conn, address, categories, row["source"], row["text_version"], quotas(address), now
        )

    def pending_signups(self) -> int:
        """How many signups wait to be applied (tests, operators)."""
        query = select(func.count()).select_from(signup_requests)
        return self._run(lambda conn: int(conn.execute(query).scalar_one()), write=False)

    def _suppressed(self, conn: Connection, address: str) -> bool:
        return bool(conn.execute(select(suppressed_condition(literal(address)))).scalar())

    def _insert_pending(
        self,
        conn: Connection,
        address: str,
        categories: Sequence[str],
        source: str,
        text_version: str,
        now: datetime,
    ) -> None:
        consent = Consent(ConsentMethod.WEB, source, text_version, at=now)
        cats = tuple(sorted(set(categories)))
        insert_subscriber(conn, address, cats, consent, SubscriberStatus.PENDING, now)

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

    def _queue_mail(
        self, conn: Connection, subscriber_id: int, address: str, state_version: int, now: datetime
    ) -> None:
        # In the signup transaction: no committed signup without its mail (G1, STYLE habit 6).
        conn.execute(
            insert(confirmation_mails).values(
                subscriber_id=subscriber_id,
                email=address,
                state_version=state_version,
                created_at=now,
                status=MailStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
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
                ~suppressed_condition(subscribers.c.email),  # never re-activated (issue 12)
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

    # confirmation mails -----------------------------------------------------------------------

    def claim_mails(self, worker: str, limit: int, lease: timedelta) -> list[ConfirmationMail]:
        """Claim up to ``limit`` due mails for ``worker`` (RELIABILITY §1.3 step 1, G4).

        Due: ``pending`` and ``next_attempt_at`` reached, or ``sending`` with an
        expired lease (its process died, maybe after the server took the mail: G1).
        Committed before the mail is built. Each comes with its subscriber's state.
        """
        now = self.clock()
        sending = confirmation_mails.c.status == MailStatus.SENDING
        due = or_(
            and_(
                confirmation_mails.c.status == MailStatus.PENDING,
                confirmation_mails.c.next_attempt_at <= now,
            ),
            held_expired(confirmation_mails, now, sending),  # due again: at-least-once (G1)
        )
        values = {
            "status": MailStatus.SENDING,
            "claimed_by": worker,
            "lease_until": now + lease,
            "attempts": confirmation_mails.c.attempts + 1,
        }

        def work(conn: Connection) -> list[ConfirmationMail]:
            rows = claim_rows(conn, confirmation_mails, due, values, limit=limit)
            return sorted(self._with_subscribers(conn, rows), key=lambda m: m.id)

        return self._run(work)

    def _with_subscribers(self, conn: Connection, rows: list[Any]) -> list[ConfirmationMail]:
        ids = {row["subscriber_id"] for row in rows}
        query = select(subscribers.c.id, subscribers.c.status, subscribers.c.state_version)
        states = {r.id: r for r in conn.execute(query.where(subscribers.c.id.in_(ids)))}
        mails = []
        for row in rows:
            state = states.get(row["subscriber_id"])
            mails.append(
                _mail(
                    row,
                    subscriber_status=None if state is None else SubscriberStatus(state.status),
                    subscriber_version=None if state is None else state.state_version,
                )
            )
        return mails

    def mark_mail_sent(self, mail_id: int) -> None:
        """Right after the server took it. The server's word wins over any claim (§1.3 step 2)."""
        self._finish_mail(mail_id, None, MailStatus.SENT, last_error=None)

    def mark_mail_retry(self, mail_id: int, worker: str, error: str, retry_at: datetime) -> None:
        """Pending again from ``retry_at`` (F1, F2, F11: temporary failures back off)."""
        values = {"last_error": error[:1000], "next_attempt_at": retry_at}
        self._finish_mail(mail_id, worker, MailStatus.PENDING, **values)

    def mark_mail_failed(self, mail_id: int, worker: str, error: str) -> None:
        """Given up: a permanent refusal, too many attempts, or a link that could not work."""
        self._finish_mail(mail_id, worker, MailStatus.FAILED, last_error=error[:1000])

    def _finish_mail(
        self, mail_id: int, worker: str | None, status: MailStatus, **values: Any
    ) -> None:
        table = confirmation_mails
        if worker is None:  # the server took it: that wins over any claim
            held: tuple[Any, ...] = (table.c.status != MailStatus.SENT,)
        else:  # only the claim holder settles a row another worker may have taken over
            held = held_by(table, worker, table.c.status == MailStatus.SENDING)
        self._run(
            lambda conn: settle(conn, table, table.c.id == mail_id, *held, status=status, **values)
        )

    def confirmation_mails(self) -> list[ConfirmationMail]:
        """Every queued, sent and failed confirmation mail, oldest first (tests, operators)."""
        query = select(confirmation_mails).order_by(confirmation_mails.c.id)
        return self._run(
            lambda conn: [_mail(r) for r in conn.execute(query).mappings()], write=False
        )

    # helpers ----------------------------------------------------------------------------------


def _mail(row: Any, **subscriber: Any) -> ConfirmationMail:
    return ConfirmationMail(
        id=row["id"],
        subscriber_id=row["subscriber_id"],
        email=row["email"],
        state_version=row["state_version"],
        created_at=row["created_at"],
        status=MailStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        claimed_by=row["claimed_by"],
        lease_until=row["lease_until"],
        last_error=row["last_error"],
        **subscriber,
    )
