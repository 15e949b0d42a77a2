"""Digest slots in the site time zone, across the 2025 DST transitions (G9, A8)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from publisher.config import Cadence
from publisher.schedule.slots import DigestSchedule, Slot, describe, slot_instant

BERLIN = ZoneInfo("Europe/Berlin")
SEOUL = ZoneInfo("Asia/Seoul")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "at", "expected"),
    [
        # An ordinary day: 08:00 CET = 07:00 UTC, 08:00 CEST = 06:00 UTC.
        (date(2025, 3, 29), time(8, 0), utc(2025, 3, 29, 7, 0)),
        (date(2025, 3, 30), time(8, 0), utc(2025, 3, 30, 6, 0)),
        # G9 spring forward: 02:00-02:59 do not exist; the first valid instant after
        # is the transition, 03:00 CEST. (zoneinfo alone says 03:30 CEST, A8.)
        (date(2025, 3, 30), time(2, 30), utc(2025, 3, 30, 1, 0)),
        (date(2025, 3, 30), time(2, 0), utc(2025, 3, 30, 1, 0)),
        (date(2025, 3, 30), time(3, 0), utc(2025, 3, 30, 1, 0)),
        (date(2025, 3, 30), time(1, 59), utc(2025, 3, 30, 0, 59)),
        # G9 fall back: 02:30 happens twice; the first (CEST) counts.
        (date(2025, 10, 26), time(2, 30), utc(2025, 10, 26, 0, 30)),
        (date(2025, 10, 26), time(8, 0), utc(2025, 10, 26, 7, 0)),
    ],
)
def test_slot_instant_in_berlin_follows_the_dst_rules(day: date, at: time, expected: datetime):
    assert slot_instant(day, at, BERLIN) == expected


def test_slot_instant_in_seoul_is_always_utc_plus_9():
    for day in (date(2025, 3, 30), date(2025, 10, 26), date(2025, 6, 16)):
        eight_utc = datetime.combine(day, time(8, 0), tzinfo=UTC)
        assert slot_instant(day, time(8, 0), SEOUL) == eight_utc - timedelta(hours=9)


def test_weekly_latest_and_following_around_monday_0800_seoul():
    weekly = DigestSchedule(Cadence.WEEKLY, time(8, 0), "monday", SEOUL)
    monday_slot = Slot(date(2025, 6, 16), utc(2025, 6, 15, 23, 0))
    assert weekly.latest(utc(2025, 6, 15, 23, 0)) == monday_slot
    assert weekly.latest(utc(2025, 6, 15, 22, 59)).day == date(2025, 6, 9)
    assert weekly.following(utc(2025, 6, 15, 22, 59)) == monday_slot
    assert weekly.following(utc(2025, 6, 15, 23, 0)).day == date(2025, 6, 23)
    assert monday_slot.key == "digest:2025-06-16"
    assert describe(monday_slot, SEOUL) == "Monday 2025-06-16 08:00 KST"


def slots_seen(schedule: DigestSchedule, start: datetime, end: datetime) -> list[Slot]:
    """Every distinct latest slot a clock ticking each minute from start to end sees."""
    seen: list[Slot] = []
    now = start
    while now <= end:
        slot = schedule.latest(now)
        if not seen or seen[-1] != slot:
            seen.append(slot)
        now += timedelta(minutes=1)
    return seen


@pytest.mark.parametrize(
    ("zone", "at", "days"),
    [
        (BERLIN, time(2, 30), (date(2025, 3, 29), date(2025, 3, 31))),
        (BERLIN, time(8, 0), (date(2025, 3, 29), date(2025, 3, 31))),
        (BERLIN, time(2, 30), (date(2025, 10, 25), date(2025, 10, 27))),
        (BERLIN, time(0, 0), (date(2025, 10, 25), date(2025, 10, 27))),
        (SEOUL, time(8, 0), (date(2025, 3, 29), date(2025, 3, 31))),
    ],
)
def test_a_daily_digest_is_neither_skipped_nor_repeated_on_transition_days(
    zone: ZoneInfo, at: time, days: tuple[date, date]
):
    daily = DigestSchedule(Cadence.DAILY, at, "monday", zone)
    first, last = days
    start = datetime.combine(first, time(0, 0), tzinfo=zone).astimezone(UTC) - timedelta(hours=2)
    end = datetime.combine(last, time(23, 59), tzinfo=zone).astimezone(UTC)
    seen = slots_seen(daily, start, end)
    keys = [s.day for s in seen]
    assert keys == sorted(set(keys))  # each local date once, in order
    expected = [first - timedelta(days=1) + timedelta(days=i) for i in range(4)]
    assert keys == expected  # the day before the first (until its slot), then every day
    instants = [s.instant for s in seen]
    assert instants == sorted(instants)


def test_the_clock_stepping_back_55_minutes_finds_the_same_slot():
    daily = DigestSchedule(Cadence.DAILY, time(8, 0), "monday", SEOUL)
    after = utc(2025, 6, 16, 23, 10)  # 08:10 KST on the 17th
    assert daily.latest(after).day == date(2025, 6, 17)
    assert daily.latest(after - timedelta(minutes=55)).day == date(2025, 6, 16)  # not a new slot
