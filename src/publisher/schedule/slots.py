"""Digest slots: when a daily or weekly digest is due, in the site's time zone.

A slot is one local calendar day (``daily``), or one local ``digest_weekday``
(``weekly``), at ``[newsletter].digest_time``. Its key is the local date,
``digest:2025-06-16``, which is unique in the ``issues`` table, so one slot gives
at most one issue whatever the clock does (G8): a clock stepping back 55 minutes
finds the same slot, already done.

Slots are computed with zoneinfo from the wall time, never by adding 24 hours to
the previous slot, so they stay at 08:00 local across DST changes (G9). The two
DST rules, decided here once and tested for Europe/Berlin on the 2025 transition
days:

- **Spring forward** (the wall time does not exist, e.g. 02:30 in Europe/Berlin
  on 2025-03-30, when 02:00 CET jumps to 03:00 CEST): the slot is the first valid
  instant after it, the transition itself (03:00 CEST = 01:00 UTC). zoneinfo
  alone would silently pick 03:30 CEST (A8); cron-like "run it as soon as the
  time exists" is what an editor expects.
- **Fall back** (the wall time happens twice, e.g. 02:30 on 2025-10-26): the
  first occurrence (``fold=0``, CEST). The second 02:30 is the same local date,
  so the same key: the digest goes out once.

Pure: no clock of its own (``now`` is passed in), no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from publisher.config import WEEKDAYS, Cadence


@dataclass(frozen=True)
class Slot:
    """One digest slot: its local date and the UTC instant it becomes due."""

    day: date
    instant: datetime  # aware UTC

    @property
    def key(self) -> str:
        return f"digest:{self.day.isoformat()}"


@dataclass(frozen=True)
class DigestSchedule:
    """When digests are due: cadence, local time, weekday (weekly only), zone."""

    cadence: Cadence  # daily or weekly
    at: time
    weekday: str  # "monday" ... ; ignored for daily
    zone: ZoneInfo

    def is_slot_day(self, day: date) -> bool:
        return self.cadence == Cadence.DAILY or day.weekday() == WEEKDAYS.index(self.weekday)

    def slot(self, day: date) -> Slot:
        return Slot(day, slot_instant(day, self.at, self.zone))

    def latest(self, now: datetime) -> Slot:
        """The last slot due at or before ``now``."""
        today = now.astimezone(self.zone).date()
        for back in range(-1, 15):
            day = today - timedelta(days=back)
            if self.is_slot_day(day):
                slot = self.slot(day)
                if slot.instant <= now:
                    return slot
        raise AssertionError("unreachable: a slot day occurs every week")

    def following(self, now: datetime) -> Slot:
        """The first slot due strictly after ``now``."""
        today = now.astimezone(self.zone).date()
        for ahead in range(-1, 15):
            day = today + timedelta(days=ahead)
            if self.is_slot_day(day):
                slot = self.slot(day)
                if slot.instant > now:
                    return slot
        raise AssertionError("unreachable: a slot day occurs every week")


def slot_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall time ``at`` on ``day`` in ``zone``, by the DST rules above."""
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0)  # fall back: the first occurrence
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    return _gap_end(wall, zone)


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The transition instant of the DST gap that swallows ``wall`` (spring forward).

    In a gap zoneinfo reads ``fold=1`` with the new offset (an instant before the
    transition) and ``fold=0`` with the old one (an instant after it); the
    transition lies between, found to the second by bisection.
    """
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    new_offset = after.astimezone(zone).utcoffset()
    low, high = before, after  # offset(low) != new_offset == offset(high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == new_offset:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def describe(slot: Slot, zone: ZoneInfo) -> str:
    """``Monday 2025-06-16 08:00 KST``: how logs and status show a slot."""
    local = slot.instant.astimezone(zone)
    return f"{local:%A %Y-%m-%d %H:%M %Z}"
