"""Subscriber exports of other tools → ``NewSubscriber`` rows with their state and consent.

Each reader keeps what the export records and nothing more:

- **active** only when the export says the person confirmed (or is subscribed on a
  platform that only lists confirmed readers); otherwise **pending**, never mailed
  until they confirm here;
- unsubscribed, blocklisted and deleted addresses → **unsubscribed**; cleaned
  (hard-bounced) addresses → **bounced**: both are kept as suppressed, so they are
  never mailed and a later import cannot re-add them;
- the date they signed up or confirmed is the consent date; lists, labels and tags
  become categories.

Columns (headers are matched case-insensitively):

| tool | file | columns read |
|---|---|---|
| substack | Subscribers → Export | ``email``, ``email_disabled``, ``created_at`` |
| ghost | Members → Export | ``email``, ``subscribed_to_emails``, ``deleted_at``, ``created_at``, ``labels`` |
| buttondown | Subscribers → Export | ``email``, ``subscriber_type``, ``creation_date``, ``unsubscription_date``, ``tags`` |
| mailchimp | Audience → Export (one CSV per status) | ``Email Address``, ``CONFIRM_TIME``, ``OPTIN_TIME``, ``UNSUB_TIME``, ``CLEAN_TIME``, ``TAGS`` |
| listmonk | Subscribers → Export | ``email``, ``status``, ``created_at`` (and ``subscription_status`` when present) |
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from publisher.errors import Location, Problem, PublisherError
from publisher.publish.importers import parse_date
from publisher.store import InvalidAddress, NewSubscriber, SubscriberStatus, normalize_email

FORMATS = ("substack", "ghost", "buttondown", "mailchimp", "listmonk")
_ACTIVE, _PENDING = SubscriberStatus.ACTIVE, SubscriberStatus.PENDING
_UNSUB, _BOUNCED = SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED
_SUPPRESSED = (_UNSUB, _BOUNCED)

Row = Mapping[str, str]


def read_export(file: Path, tool: str) -> tuple[list[NewSubscriber], list[Problem]]:
    """Every row of ``file`` read as ``tool`` exports it; a located problem per bad row."""
    shown = str(file)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PublisherError(f"{shown}: not valid UTF-8 at byte {exc.start}") from None
    reader = csv.DictReader(text.splitlines(keepends=True))
    headers = [h.strip().lower() for h in reader.fieldnames or []]
    reader.fieldnames = headers
    email_column = next(
        (c for c in ("email", "email address", "email_address") if c in headers), ""
    )
    if not email_column:
        raise PublisherError(
            f"{shown}:1: no email column for a {tool} export (found: {', '.join(headers) or 'none'})"
        )
    state = _READERS[tool]
    rows: dict[str, NewSubscriber] = {}
    problems: list[Problem] = []
    for record in reader:
        where = Location(shown, reader.line_num)
        try:
            address = normalize_email((record.get(email_column) or "").strip())
            status, since, categories = state(record, headers)
        except InvalidAddress as exc:
            problems.append(Problem(where, exc.message))
            continue
        except ValueError as exc:
            problems.append(Problem(where, str(exc)))
            continue
        row = NewSubscriber(address, categories, status, since)
        first = rows.get(address)
        if first is None or (status in _SUPPRESSED and first.status not in _SUPPRESSED):
            rows[address] = row  # suppression wins over a duplicate subscribed row
    return list(rows.values()), problems


def _when(value: str | None) -> datetime | None:
    text = (value or "").strip()
    return parse_date(text, UTC) if text else None


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "t")


def _names(value: str | None) -> tuple[str, ...]:
    """``a, b`` or ``a;b`` or Mailchimp's ``"a","b"`` or Buttondown's ``['a', 'b']``."""
    text = (value or "").strip().strip("[]")
    if not text:
        return ()
    cells = next(csv.reader([text.replace(";", ",")], skipinitialspace=True))
    return tuple(dict.fromkeys(c.strip().strip("'\"").strip() for c in cells if c.strip("'\" ")))


def _substack(
    row: Row, headers: list[str]
) -> tuple[SubscriberStatus, datetime | None, tuple[str, ...]]:
    # Substack lists only people who subscribed; email_disabled marks those who left.
    status = _UNSUB if _true(row.get("email_disabled")) else _ACTIVE
    return status, _when(row.get("created_at")), ()


def _ghost(
    row: Row, headers: list[str]
) -> tuple[SubscriberStatus, datetime | None, tuple[str, ...]]:
    # Ghost members sign in by a magic link, so a member is a confirmed address.
    if (row.get("deleted_at") or "").strip() or not _true(row.get("subscribed_to_emails")):
        status = _UNSUB
    else:
        status = _ACTIVE
    return status, _when(row.get("created_at")), _names(row.get("labels"))


_BUTTONDOWN = {
    "regular": _ACTIVE,
    "premium": _ACTIVE,
    "gifted": _ACTIVE,
    "complimentary": _ACTIVE,
    "trialed": _ACTIVE,
    "past_due": _ACTIVE,
    "churned": _ACTIVE,
    "unpaid": _ACTIVE,
    "unactivated": _PENDING,
    "upcoming": _PENDING,
    "unsubscribed": _UNSUB,
    "removed": _UNSUB,
    "spammy": _UNSUB,
    "undeliverable": _BOUNCED,
}


def _buttondown(
    row: Row, headers: list[str]
) -> tuple[SubscriberStatus, datetime | None, tuple[str, ...]]:
    kind = (row.get("subscriber_type") or row.get("type") or "regular").strip().lower()
    if kind not in _BUTTONDOWN:
        raise ValueError(f"unknown Buttondown subscriber_type {kind!r}")
    status = _UNSUB if (row.get("unsubscription_date") or "").strip() else _BUTTONDOWN[kind]
    return status, _when(row.get("creation_date")), _names(row.get("tags"))


_MAILCHIMP_STATUS = {
    "subscribed": None,
    "unsubscribed": _UNSUB,
    "non-subscribed": _UNSUB,
    "cleaned": _BOUNCED,
    "pending": _PENDING,
}


def _mailchimp(
    row: Row, headers: list[str]
) -> tuple[SubscriberStatus, datetime | None, tuple[str, ...]]:
    # Mailchimp exports one CSV per status; the extra columns tell which one this is.
    confirmed = _when(row.get("confirm_time"))
    optin = _when(row.get("optin_time"))
    named = (row.get("email marketing") or row.get("status") or "").strip().lower()
    if "clean_time" in headers or _MAILCHIMP_STATUS.get(named) == _BOUNCED:
        status = _BOUNCED
    elif "unsub_time" in headers or _MAILCHIMP_STATUS.get(named) == _UNSUB:
        status = _UNSUB
    else:
        status = _ACTIVE if confirmed else _PENDING
    return status, confirmed or optin, _names(row.get("tags"))


_LISTMONK = {"enabled": _ACTIVE, "disabled": _UNSUB, "blocklisted": _UNSUB}
_LISTMONK_SUBSCRIPTION = {"confirmed": _ACTIVE, "unconfirmed": _PENDING, "unsubscribed": _UNSUB}


def _listmonk(
    row: Row, headers: list[str]
) -> tuple[SubscriberStatus, datetime | None, tuple[str, ...]]:
    kind = (row.get("status") or "").strip().lower()
    if kind not in _LISTMONK:
        raise ValueError(f"unknown listmonk status {kind!r} (enabled, disabled or blocklisted)")
    status = _LISTMONK[kind]
    subscription = (row.get("subscription_status") or "").strip().lower()
    if status == _ACTIVE and subscription in _LISTMONK_SUBSCRIPTION:
        status = _LISTMONK_SUBSCRIPTION[subscription]
    return status, _when(row.get("created_at")), _names(row.get("lists"))


_READERS: dict[
    str, Callable[[Row, list[str]], tuple[SubscriberStatus, datetime | None, tuple[str, ...]]]
] = {
    "substack": _substack,
    "ghost": _ghost,
    "buttondown": _buttondown,
    "mailchimp": _mailchimp,
    "listmonk": _listmonk,
}
