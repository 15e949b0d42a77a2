"""publisher.schedule.state: the typed state reads and writes the settings rows exactly as
the scheduler stored them before it was typed, so existing databases keep working."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from publisher.schedule.state import NextDue, SchedulerState, output_key
from sending import open_store

KST = timezone(timedelta(hours=9))


def test_state_written_in_the_old_format_reads_typed(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    # As the scheduler wrote these rows with raw set_setting calls before the typed state.
    store.set_setting("scheduler.build", "abc123")
    store.set_setting("scheduler.inputs", "def456")
    store.set_setting("scheduler.published_identity", "1")
    store.set_setting("scheduler.next_due", "2025-06-21T09:00:00+09:00 second-post")
    store.set_setting("scheduler.published_as_of", "2025-06-20T08:00:00+00:00")
    store.set_setting("scheduler.digest_slot", "2025-06-19")
    store.set_setting("newsletter.enabled_at", "2025-06-01T00:00:00+00:00")
    store.set_setting("scheduler.failed_inputs:publish", "ghi789")
    store.set_setting(output_key(tmp_path / "public"), "123 456")

    state = SchedulerState(store)
    assert state.build_fingerprint == "abc123"
    assert state.inputs == "def456"
    assert state.identity_complete
    assert state.next_due == NextDue(datetime(2025, 6, 21, 9, tzinfo=KST), "second-post")
    assert state.published_as_of == datetime(2025, 6, 20, 8, tzinfo=UTC)
    assert state.digest_slot == date(2025, 6, 19)
    assert state.enabled_at == datetime(2025, 6, 1, tzinfo=UTC)
    assert state.failed_inputs("publish") == "ghi789"
    assert state.failed_inputs("issues") is None
    assert state.output_stamp(tmp_path / "public") == "123 456"
    assert state.output_stamp(tmp_path / "elsewhere") is None


def test_typed_writes_store_the_old_format(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    state = SchedulerState(store)
    state.next_due = NextDue(datetime(2025, 6, 21, 9, tzinfo=KST), "second-post")
    state.digest_slot = date(2025, 6, 19)
    state.advance_published_as_of(datetime(2025, 6, 20, 8, tzinfo=UTC))
    state.advance_published_as_of(datetime(2025, 6, 19, 8, tzinfo=UTC))  # never backwards
    state.mark_identity_complete()
    state.set_failed_inputs("issues", "xyz")
    state.set_output_stamp(tmp_path / "public", "1 2")
    assert store.get_setting("scheduler.next_due") == "2025-06-21T09:00:00+09:00 second-post"
    assert store.get_setting("scheduler.digest_slot") == "2025-06-19"
    assert store.get_setting("scheduler.published_as_of") == "2025-06-20T08:00:00+00:00"
    assert store.get_setting("scheduler.published_identity") == "1"
    assert store.get_setting("scheduler.failed_inputs:issues") == "xyz"
    assert store.get_setting(output_key(tmp_path / "public")) == "1 2"
    assert output_key(tmp_path / "public").startswith("scheduler.output:")
    state.next_due = None  # no scheduled post: stored as the empty string, as before
    assert store.get_setting("scheduler.next_due") == ""
    assert state.next_due is None


def test_enabled_at_is_recorded_once(db_url: str) -> None:
    store = open_store(db_url)
    state = SchedulerState(store)
    said: list[str] = []
    first = state.enabled_at_or_record(datetime(2025, 6, 1, tzinfo=UTC), said.append)
    again = state.enabled_at_or_record(datetime(2025, 7, 1, tzinfo=UTC), said.append)
    assert first == again == datetime(2025, 6, 1, tzinfo=UTC)
    assert said == ["2025-06-01T00:00:00+00:00"]
    assert store.get_setting("newsletter.enabled_at") == "2025-06-01T00:00:00+00:00"
