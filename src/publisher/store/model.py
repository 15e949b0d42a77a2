"""The store's result and input types, statuses and address normalization."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import email_validator

from publisher.errors import PublisherError


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
