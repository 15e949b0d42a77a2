"""One handler for every way a report comes in: the pipe, the listener, the webhooks.

A report changes a subscriber only when it can be tied to them for sure:

1. **VERP** (publisher.inbound.verp): an address of the report (envelope
   recipient, ``Delivered-To``/``To``, ARF ``Original-Mail-From``, the quoted
   ``Return-Path``) that verifies names the (issue, subscriber) row. A VERP-shaped
   address at the bounce mailbox that does *not* verify is forged or altered:
   the whole report is ignored, with no fallback.
2. Otherwise the quoted original's **Message-ID** (``<issue-N.M@host>``), but
   only when the delivery row has exactly that Message-ID *and* the report names
   the row's recipient: a Message-ID alone is guessable.
3. Whatever the way, when the report names recipients (``Final-Recipient``,
   ``Original-Recipient``, ``Original-Rcpt-To``) and none is the row's
   subscriber, the report is ignored: it never changes the wrong subscriber.
4. **Provider events** (signature already verified by publisher.inbound.webhooks)
   name the address; the row is the one their echoed Message-ID names, else the
   subscriber's latest sent row.

Then publisher.store.bounces applies the policy, once per report. Every outcome
is one log line (logger ``publisher.inbound``); nothing here raises for bad
input. A database error (``StoreError``) does propagate: the pipe answers it with
exit 75 and the listener with ``451``, so the report is retried, never lost.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from publisher.config import Config
from publisher.inbound.parse import Kind, Report, parse
from publisher.inbound.verp import ReturnPath, return_path
from publisher.store import Delivery, InvalidAddress, Store, Subscriber
from publisher.store.bounces import (
    Applied,
    BounceEvent,
    BouncePolicy,
    BounceStore,
    EventKind,
)

log = logging.getLogger("publisher.inbound")

_MESSAGE_ID = re.compile(r"^<?issue-(\d{1,12})\.(\d{1,12})@[^>\s]+>?$", re.IGNORECASE)
_KINDS = {
    Kind.HARD: EventKind.HARD,
    Kind.SOFT: EventKind.SOFT,
    Kind.COMPLAINT: EventKind.COMPLAINT,
}


@dataclass(frozen=True)
class Settings:
    policy: BouncePolicy
    return_path: ReturnPath | None
    unsubscribe_address: str | None
    # The subscriber id of a valid unsubscribe token, or None (publisher.deliver.tokens).
    unsubscribe_token: Callable[[str], int | None]

    @classmethod
    def from_config(
        cls, config: Config, unsubscribe_token: Callable[[str], int | None]
    ) -> Settings:
        n, inbound = config.newsletter, config.inbound
        return cls(
            policy=BouncePolicy(
                n.bounce_limit, inbound.soft_bounce_limit, inbound.soft_bounce_days
            ),
            return_path=return_path(config),
            unsubscribe_address=n.unsubscribe_mailto,
            unsubscribe_token=unsubscribe_token,
        )

    def accepts(self, address: str) -> bool:
        """``address`` is the bounce or the unsubscribe mailbox (with or without ``+tag``)."""
        if self.return_path is not None and self.return_path.is_ours(address):
            return True
        if not self.unsubscribe_address:
            return False
        local, _, domain = address.strip().strip("<>").lower().rpartition("@")
        u_local, _, u_domain = self.unsubscribe_address.lower().rpartition("@")
        return domain == u_domain and local.partition("+")[0] == u_local


@dataclass(frozen=True)
class ProviderEvent:
    """A provider's bounce/complaint event, after its signature was verified."""

    kind: EventKind
    email: str
    source: str  # webhook:<provider>
    event_id: str
    status: str = ""
    diagnostic: str = ""
    message_id: str | None = None  # our Message-ID, when the provider echoes it
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class Handled:
    outcome: str  # applied | duplicate | ignored
    detail: str


class Handler:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.bounces = BounceStore(store)
        self.settings = settings

    # mail ---------------------------------------------------------------------------------

    def mail(self, raw: bytes, envelope_to: Sequence[str], source: str) -> Handled:
        """Read and apply one inbound message; ``source`` is pipe, lmtp or smtp."""
        report = parse(
            raw, envelope_to=envelope_to, unsubscribe_address=self.settings.unsubscribe_address
        )
        if report.kind in (Kind.AUTO_REPLY, Kind.IGNORED):
            return self._ignored(source, report.reason, report)
        if report.kind == Kind.UNSUBSCRIBE:
            return self._unsubscribe(report, source)
        found = self._locate(report)
        if isinstance(found, str):
            return self._ignored(source, found, report)
        row, subscriber = found
        event = BounceEvent(
            kind=_KINDS[report.kind],
            subscriber_id=subscriber.id,
            delivery_id=row.id,
            issue_id=row.issue_id,
            status=report.status,
            diagnostic=report.diagnostic or report.reason,
            source=source,
            report_id=report.report_id,
            reported_at=report.reported_at,
        )
        return self._apply(event, subscriber, report.reason)

    def _locate(self, report: Report) -> tuple[Delivery, Subscriber] | str:
        """The row and subscriber the report is about, or why there is none."""
        verified, why = self._by_return_path(report)
        if why:
            return why
        if verified is None:
            verified = self._by_message_id(report)
            if verified is None:
                return "no verified return path and no known Message-ID"
            if not report.recipients:
                return "Message-ID fallback needs the report to name the recipient"
        issue_id, subscriber_id = verified
        row = self.bounces.delivery_for(issue_id, subscriber_id)
        subscriber = self.store.get_subscriber(subscriber_id)
        if row is None or subscriber is None:
            return f"no delivery row for issue {issue_id}, subscriber {subscriber_id}"
        if report.recipients and not _names(report.recipients, subscriber.email):
            shown = ", ".join(report.recipients[:3])
            return (
                f"report names {shown}, but the row of issue {issue_id} is for subscriber "
                f"{subscriber_id}; not changing anyone"
            )
        return row, subscriber

    def _by_return_path(self, report: Report) -> tuple[tuple[int, int] | None, str]:
        path = self.settings.return_path
        if path is None:
            return None, ""
        for address in report.return_paths:
            if not path.is_ours(address):
                continue
            decoded = path.decode(address)
            if decoded is not None:
                return decoded, ""
            if "+" in address.partition("@")[0]:
                return None, f"forged or altered return path {address[:100]!r}"
        return None, ""

    def _by_message_id(self, report: Report) -> tuple[int, int] | None:
        message_id = report.original_message_id or ""
        match = _MESSAGE_ID.match(message_id.strip())
        if match is None:
            return None
        issue_id, subscriber_id = int(match[1]), int(match[2])
        row = self.bounces.delivery_for(issue_id, subscriber_id)
        stored = (row.message_id or "") if row else ""
        if stored.strip("<>").lower() != message_id.strip().strip("<>").lower():
            return None
        return issue_id, subscriber_id

    def _unsubscribe(self, report: Report, source: str) -> Handled:
        for token in report.tokens:
            subscriber_id = self.settings.unsubscribe_token(token)
            if subscriber_id is None:
                continue
            subscriber = self.store.get_subscriber(subscriber_id)
            if subscriber is None:
                return self._ignored(source, "unsubscribe token of a removed subscriber", report)
            event = BounceEvent(
                kind=EventKind.UNSUBSCRIBE,
                subscriber_id=subscriber_id,
                delivery_id=None,
                issue_id=None,
                status="",
                diagnostic="mailto: List-Unsubscribe",
                source=source,
                report_id=report.report_id,
            )
            return self._apply(event, subscriber, report.reason)
        return self._ignored(source, "unsubscribe mail without a valid token", report)

    # provider events ------------------------------------------------------------------------

    def event(self, event: ProviderEvent) -> Handled:
        """Apply one verified provider event."""
        subscriber = self._subscriber(event.email)
        if subscriber is None:
            return self._ignored(event.source, f"no subscriber {event.email[:100]!r}", None)
        row = None
        match = _MESSAGE_ID.match((event.message_id or "").strip())
        if match and int(match[2]) == subscriber.id:
            row = self.bounces.delivery_for(int(match[1]), subscriber.id)
        if row is None and event.kind != EventKind.UNSUBSCRIBE:
            row = self.bounces.latest_delivery(subscriber.id)
        bounce = BounceEvent(
            kind=event.kind,
            subscriber_id=subscriber.id,
            delivery_id=row.id if row else None,
            issue_id=row.issue_id if row else None,
            status=event.status,
            diagnostic=event.diagnostic,
            source=event.source,
            report_id=event.event_id,
            reported_at=event.occurred_at,
        )
        return self._apply(bounce, subscriber, f"{event.source} {event.kind}")

    def _subscriber(self, email: str) -> Subscriber | None:
        try:
            return self.store.find_subscriber(email)
        except InvalidAddress:  # an address we could never have mailed
            return None

    # outcomes -------------------------------------------------------------------------------

    def _apply(self, event: BounceEvent, subscriber: Subscriber, reason: str) -> Handled:
        result = self.bounces.record(event, self.settings.policy)
        where = f"subscriber {subscriber.id}"
        if event.issue_id is not None:
            where += f" (issue {event.issue_id}, delivery {event.delivery_id})"
        if result.applied == Applied.DUPLICATE:
            detail = f"{event.source}: duplicate {event.kind} for {where}, counted once already"
            log.info("%s", detail)
            return Handled("duplicate", detail)
        if result.applied == Applied.UNKNOWN_SUBSCRIBER:
            return self._ignored(event.source, f"{where} no longer exists", None)
        detail = (
            f"{event.source}: {event.kind} {event.status} for {where} ({reason}); "
            f"subscriber is {result.status}"
        ).replace("  ", " ")
        log.info("%s", detail)
        return Handled("applied", detail)

    def _ignored(self, source: str, why: str, report: Report | None) -> Handled:
        ref = f" [{report.report_id[:80]}]" if report is not None else ""
        detail = f"{source}: ignored: {why}{ref}"
        log.info("%s", detail)
        return Handled("ignored", detail)


def _names(recipients: Sequence[str], email: str) -> bool:
    wanted = email.lower()
    return any(r.strip().lower() == wanted for r in recipients)
