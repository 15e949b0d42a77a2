"""The sending loop against a real SMTP sink, on SQLite and PostgreSQL (§1.3, F, G)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pytest

from publisher.deliver.sender import (
    Progress,
    RateLimiter,
    SendPolicy,
    StopReason,
    Throttle,
    dead_here,
    describe_counts,
    resume_issue,
    send_issue,
    worker_name,
)
from publisher.deliver.transports import SmtpSettings, SmtpTransport
from publisher.errors import PublisherError
from publisher.store import (
    Delivery,
    DeliveryCounts,
    DeliveryStatus,
    HandOver,
    IssueStatus,
    Store,
    SubscriberStatus,
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
from smtp_sink import DROP, SmtpSink, TlsFiles, free_port

pytestmark = pytest.mark.timeout(60)


def rows(store: Store, issue_id: int) -> dict[str, Delivery]:
    """Deliveries by subscriber address."""
    emails = {s.id: s.email for s in store.iter_subscribers()}
    return {emails[d.subscriber_id]: d for d in store.iter_deliveries(issue_id)}


def statuses(store: Store, issue_id: int) -> dict[str, DeliveryStatus]:
    return {email: d.status for email, d in rows(store, issue_id).items()}


def send(store: Store, issue_id: int, sink: SmtpSink, p: SendPolicy | None = None, **kw):
    return send_issue(
        store,
        issue_id,
        kw.pop("transports", smtp_to(sink)),
        kw.pop("composer", PlainComposer()),
        p or policy(),
        rng=random.Random(7),
        clock=kw.pop("clock", store.clock),
        **kw,
    )


class FakeSleep:
    """The injected cool-down sleep (F15): records each wait and moves the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
            self.clock.advance(seconds=seconds)


def throttled_run(db_url: str, sink: SmtpSink, subscribers: int):
    """A store on a fake clock with ``subscribers`` readers and an issue; the sink stamps
    every RCPT with that clock."""
    clock = FakeClock()
    store = open_store(db_url, clock)
    add_subscribers(store, subscribers)
    sink.handler.clock = clock
    return clock, store, make_issue(store), FakeSleep(clock)


def addresses(log: list[tuple[str, datetime]]) -> list[str]:
    return [address.partition("@")[0] for address, _ in log]


def test_rerun_mails_nobody_twice(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 5)
    issue = make_issue(store)
    first = send(store, issue.id, smtp_sink)
    second = send(store, issue.id, smtp_sink)
    assert (first.sent, first.done, second.sent) == (5, True, 0)
    assert sorted(smtp_sink.copies().values()) == [1] * 5
    assert store.get_issue(issue.id).status == IssueStatus.DONE  # type: ignore[union-attr]


def test_subscriber_added_after_snapshot_is_not_mailed_e15(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 2)
    issue = make_issue(store)
    store.snapshot(issue.id)
    store.add_subscriber("late@example.com", OPERATOR)
    send(store, issue.id, smtp_sink)
    assert "late@example.com" not in smtp_sink.recipients()


def test_category_filter(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    store.add_subscriber("all@example.com", OPERATOR)
    store.add_subscriber("world@example.com", OPERATOR, categories=["세계"])
    store.add_subscriber("econ@example.com", OPERATOR, categories=["경제"])
    send(store, make_issue(store, "post:w", ("세계",)).id, smtp_sink)
    send(store, make_issue(store, "post:none").id, smtp_sink)
    assert sorted(smtp_sink.recipients()) == [
        "all@example.com",
        "all@example.com",
        "world@example.com",
    ]


@pytest.mark.parametrize(
    ("reply", "enhanced"),
    [("451 4.2.0 greylisted", "4.2.0"), ("451 greylisted, come back later", None)],
)
def test_451_is_retried_after_backoff_f2(
    db_url: str, smtp_sink: SmtpSink, reply: str, enhanced: str | None
):
    clock = FakeClock()
    store = open_store(db_url, clock)
    add_subscribers(store, 3)
    issue = make_issue(store)
    smtp_sink.script("reader2@example.com", "rcpt", reply)
    sleep = FakeSleep(clock)
    report = send(store, issue.id, smtp_sink, sleep=sleep)
    row = rows(store, issue.id)["reader2@example.com"]
    assert (report.sent, report.failed_temp, report.done) == (2, 1, False)
    assert (report.stop, report.throttled, sleep.waits) == (None, 0, [])  # not F15: no pause
    assert (row.status, row.last_code, row.last_enhanced_code) == (
        DeliveryStatus.FAILED_TEMP,
        451,
        enhanced,
    )
    assert timedelta(seconds=48) <= row.next_attempt_at - clock.now <= timedelta(seconds=72)
    assert report.next_retry_at == row.next_attempt_at
    # Not due yet: a rerun sends nothing.
    assert send(store, issue.id, smtp_sink).sent == 0
    clock.advance(seconds=73)
    again = send(store, issue.id, smtp_sink)
    assert (again.sent, again.done) == (1, True)
    assert rows(store, issue.id)["reader2@example.com"].attempt == 2
    assert sorted(smtp_sink.copies().values()) == [1, 1, 1]


def test_temporary_failures_become_permanent_after_max_attempts_g13(
    db_url: str, smtp_sink: SmtpSink
):
    clock = FakeClock()
    store = open_store(db_url, clock)
    add_subscribers(store, 2)
    issue = make_issue(store)
    composer = PlainComposer(fail_for={"reader1@example.com"})
    p = policy(max_attempts=2)
    send(store, issue.id, smtp_sink, p, composer=composer)
    clock.advance(hours=1)
    report = send(store, issue.id, smtp_sink, p, composer=composer)
    row = rows(store, issue.id)["reader1@example.com"]
    assert row.status == DeliveryStatus.FAILED_PERM
    assert "gave up after 2 attempts" in (row.last_reply or "")
    assert "template blew up" in (row.last_reply or "")
    assert report.done and smtp_sink.recipients() == ["reader2@example.com"]


def test_550_is_permanent_and_counts_bounces_f4(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 2)
    smtp_sink.script("reader1@example.com", "rcpt", "550 5.1.1 no such user", times=None)
    p = policy(bounce_limit=2)
    for n in (1, 2):
        issue = make_issue(store, f"post:p{n}")
        send(store, issue.id, smtp_sink, p)
        row = rows(store, issue.id)["reader1@example.com"]
        assert (row.status, row.last_enhanced_code) == (DeliveryStatus.FAILED_PERM, "5.1.1")
    bounced = store.find_subscriber("reader1@example.com")
    assert bounced is not None
    assert (bounced.status, bounced.bounce_count) == (SubscriberStatus.BOUNCED, 2)
    third = make_issue(store, "post:p3")
    send(store, third.id, smtp_sink, p)
    assert "reader1@example.com" not in rows(store, third.id)


def test_552_at_data_pauses_the_issue_d14(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 4)
    issue = make_issue(store)
    smtp_sink.script("reader2@example.com", "data", "552 5.3.4 message too big")
    report = send(store, issue.id, smtp_sink)
    assert report.stop == StopReason.PAUSED
    paused = store.get_issue(issue.id)
    assert paused is not None and paused.status == IssueStatus.PAUSED
    assert "too big" in (paused.pause_reason or "")
    assert statuses(store, issue.id) == {
        "reader1@example.com": DeliveryStatus.SENT,
        "reader2@example.com": DeliveryStatus.PENDING,
        "reader3@example.com": DeliveryStatus.PENDING,
        "reader4@example.com": DeliveryStatus.PENDING,
    }
    with pytest.raises(PublisherError, match="is paused"):
        send(store, issue.id, smtp_sink)
    resume_issue(store, issue.id)
    assert send(store, issue.id, smtp_sink).done


def test_consecutive_content_rejections_pause_f6(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 5)
    issue = make_issue(store)
    for i in (1, 2, 3):
        smtp_sink.script(f"reader{i}@example.com", "data", "554 5.7.1 spam detected")
    report = send(store, issue.id, smtp_sink, policy(pause_after_rejections=3))
    assert report.stop == StopReason.PAUSED
    assert "3 consecutive messages were rejected" in report.detail
    got = statuses(store, issue.id)
    assert [got[f"reader{i}@example.com"] for i in (1, 2, 3)] == [DeliveryStatus.FAILED_TEMP] * 3
    assert [got[f"reader{i}@example.com"] for i in (4, 5)] == [DeliveryStatus.PENDING] * 2
    assert smtp_sink.received == []


def test_drop_after_data_resend_once_keeps_message_id_f9(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 2)
    issue = make_issue(store)
    smtp_sink.script("reader1@example.com", "data", DROP)
    report = send(store, issue.id, smtp_sink)
    row = rows(store, issue.id)["reader1@example.com"]
    assert (report.in_doubt, report.resent, report.done) == (1, 1, True)
    assert (row.status, row.resent) == (DeliveryStatus.SENT, True)
    assert smtp_sink.copies()[row.message_id or ""] == 2  # same Message-ID both times
    assert send(store, issue.id, smtp_sink).sent == 0
    assert len(smtp_sink.received) == 3


def test_drop_after_data_hold_keeps_it_in_doubt(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 2)
    issue = make_issue(store)
    smtp_sink.script("reader1@example.com", "data", DROP)
    p = policy(in_doubt_policy="hold")
    report = send(store, issue.id, smtp_sink, p)
    assert (report.in_doubt, report.resent, report.counts[DeliveryStatus.IN_DOUBT]) == (1, 0, 1)
    # Held rows are for the operator: the issue is not complete while they wait (issue 8).
    assert (report.done, report.held, report.stop) == (False, 1, None)
    again = send(store, issue.id, smtp_sink, p)
    assert (again.done, again.sent) == (False, 0)
    assert rows(store, issue.id)["reader1@example.com"].status == DeliveryStatus.IN_DOUBT
    assert sorted(smtp_sink.copies().values()) == [1, 1]
    assert store.get_issue(issue.id).status == IssueStatus.SENDING  # type: ignore[union-attr]
    # The operator releases it: sent once more, with the same Message-ID.
    assert store.release_held(issue.id, "reader1@example.com") == 1
    released = send(store, issue.id, smtp_sink, p)
    assert (released.sent, released.done, released.held) == (1, True, 0)
    row = rows(store, issue.id)["reader1@example.com"]
    assert (row.status, row.resent) == (DeliveryStatus.SENT, True)
    assert smtp_sink.copies()[row.message_id or ""] == 2
    assert store.get_issue(issue.id).status == IssueStatus.DONE  # type: ignore[union-attr]


def test_resend_that_is_in_doubt_again_is_held(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 1)
    issue = make_issue(store)
    smtp_sink.script("reader1@example.com", "data", DROP, times=None)
    send(store, issue.id, smtp_sink)
    report = send(store, issue.id, smtp_sink)
    row = rows(store, issue.id)["reader1@example.com"]
    assert (row.status, row.resent) == (DeliveryStatus.IN_DOUBT, True)
    assert smtp_sink.copies()[row.message_id or ""] == 2  # at most one resend
    assert (report.done, report.held) == (False, 1)  # held for the operator (issue 8)
    flagged = store.flagged_deliveries(issue.id)
    assert [(f.email, f.status, f.resent) for f in flagged] == [
        ("reader1@example.com", DeliveryStatus.IN_DOUBT, True)
    ]


def test_slow_server_timeout_during_data_is_in_doubt_f10(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 2)
    issue = make_issue(store)
    smtp_sink.script("reader1@example.com", "data", "250 OK", sleep=1.2)
    smtp_sink.script("reader2@example.com", "rcpt", "250 OK", sleep=1.2, times=2)
    transports = smtp_to(smtp_sink, timeout=0.3)
    send(store, issue.id, smtp_sink, policy(in_doubt_policy="hold"), transports=transports)
    got = rows(store, issue.id)
    assert got["reader1@example.com"].status == DeliveryStatus.IN_DOUBT
    # Before DATA a timeout is temporary (retried once at once, then backed off).
    assert got["reader2@example.com"].status == DeliveryStatus.FAILED_TEMP


def test_drop_on_nth_message_reconnects_and_others_are_sent_f14(db_url: str, smtp_sink: SmtpSink):
    clock = FakeClock()
    store = open_store(db_url, clock)
    add_subscribers(store, 5)
    issue = make_issue(store)
    smtp_sink.at_message(3, "mail", DROP)
    sleep = FakeSleep(clock)
    report = send(store, issue.id, smtp_sink, sleep=sleep)
    assert (report.sent, report.done, sleep.waits) == (5, True, [])  # retried at once
    assert sorted(smtp_sink.copies().values()) == [1] * 5
    assert smtp_sink.connections == 2


def test_421_on_nth_message_reconnects_after_a_cool_down_f1(db_url: str, smtp_sink: SmtpSink):
    clock, store, issue, sleep = throttled_run(db_url, smtp_sink, 5)
    smtp_sink.at_message(3, "mail", "421 4.7.0 closing connection", close=True)
    report = send(store, issue.id, smtp_sink, sleep=sleep)
    assert (report.sent, report.throttled, report.done, sleep.waits) == (5, 1, True, [30.0])
    assert sorted(smtp_sink.copies().values()) == [1] * 5
    assert smtp_sink.connections == 2
    assert rows(store, issue.id)["reader3@example.com"].attempt == 1  # the 421 did not count
    assert [t for _, t in smtp_sink.rcpts()[2:]] == [clock.now] * 3  # all after the cool-down


@pytest.mark.parametrize("concurrency", [1, 3])
def test_rate_limit_reply_pauses_every_worker_f15(
    db_url: str, smtp_sink: SmtpSink, concurrency: int
):
    clock, store, issue, sleep = throttled_run(db_url, smtp_sink, 12)
    smtp_sink.script("reader2@example.com", "rcpt", "451 4.7.1 rate limited, slow down")
    start = clock.now
    report = send(store, issue.id, smtp_sink, policy(concurrency=concurrency), sleep=sleep)
    assert (report.sent, report.throttled, report.failed_temp) == (12, 1, 0)
    assert (report.done, report.stop) == (True, None)
    log = smtp_sink.rcpts()
    refused = addresses(log).index("reader2")
    resume = start + timedelta(seconds=30)
    during = [a for a, t in log[refused + 1 :] if t < resume]
    # Nobody starts a message during the cool-down; only messages already in flight
    # on the other workers may reach the server.
    assert len(during) <= concurrency - 1
    assert sleep.waits and sleep.waits[0] == 30.0
    row = rows(store, issue.id)["reader2@example.com"]
    assert (row.status, row.attempt) == (DeliveryStatus.SENT, 1)  # the 451 did not count
    assert sorted(smtp_sink.copies().values()) == [1] * 12


def test_repeated_throttling_ends_the_run_with_rows_intact_f15(db_url: str, smtp_sink: SmtpSink):
    clock, store, issue, sleep = throttled_run(db_url, smtp_sink, 3)
    smtp_sink.script("reader1@example.com", "rcpt", "451 4.7.1 slow down", times=4)
    report = send(store, issue.id, smtp_sink, sleep=sleep)
    # 30, 60 and 120 s are waited out; 240 s is more than half the 300 s lease.
    assert sleep.waits == [30.0, 60.0, 120.0]
    resume = clock.now + timedelta(seconds=240)
    assert (report.stop, report.sent, report.throttled, report.done) == (
        StopReason.THROTTLED,
        0,
        4,
        False,
    )
    assert report.next_retry_at == resume
    assert "slow down (451 4.7.1 slow down)" in report.detail
    assert f"resuming at {resume:%Y-%m-%d %H:%M} UTC" in report.detail
    assert set(statuses(store, issue.id).values()) == {DeliveryStatus.PENDING}
    assert {d.attempt for d in store.iter_deliveries(issue.id)} == {0}
    assert addresses(smtp_sink.rcpts()) == ["reader1"] * 4 and smtp_sink.received == []
    # A restarted process respects the stored cool-down without asking the server.
    restarted = open_store(db_url, clock)
    again = send(restarted, issue.id, smtp_sink, sleep=sleep)
    assert (again.stop, again.next_retry_at, len(smtp_sink.rcpts())) == (
        StopReason.THROTTLED,
        resume,
        4,
    )
    clock.advance(seconds=240)
    final = send(restarted, issue.id, smtp_sink, sleep=sleep)
    assert (final.sent, final.done) == (3, True)
    assert rows(restarted, issue.id)["reader1@example.com"].attempt == 1


def test_cool_down_resets_after_accepted_messages_f15(db_url: str, smtp_sink: SmtpSink):
    _clock, store, issue, sleep = throttled_run(db_url, smtp_sink, 6)
    smtp_sink.script("reader2@example.com", "rcpt", "451 4.7.1 slow down")
    smtp_sink.script("reader5@example.com", "rcpt", "421 4.7.28 unusual rate of mail")
    report = send(store, issue.id, smtp_sink, policy(throttle_reset_after=2), sleep=sleep)
    assert (report.sent, report.throttled, report.done) == (6, 2, True)
    assert sleep.waits == [30.0, 30.0]  # not 60: reader2 and reader3 went through between


def test_throttle_long_after_the_last_one_starts_from_the_base_f15(db_url: str):
    clock = FakeClock()
    store = open_store(db_url, clock)
    p = policy()
    throttle = Throttle(store, p, RateLimiter(0), store.clock)
    for _ in range(3):
        throttle.throttled("451 4.7.1 slow down")
        clock.advance(seconds=throttle.remaining())
    throttle.throttled("again")  # the fourth in a row: 240 s
    assert throttle.remaining() == 240.0
    clock.advance(seconds=240 + p.throttle_max_seconds + 1)
    later = Throttle(
        store, p, RateLimiter(0), store.clock
    )  # another process reads the stored level
    later.throttled("much later")
    assert later.remaining() == 30.0


def test_throttled_row_past_max_retry_hours_gives_up_g13(db_url: str, smtp_sink: SmtpSink):
    clock, store, issue, sleep = throttled_run(db_url, smtp_sink, 1)
    store.snapshot(issue.id)
    claimed = store.claim(issue.id, "elsewhere:1:x/0", 1, timedelta(seconds=1))
    store.release("elsewhere:1:x/0", [claimed[0].id])  # first tried long ago
    clock.advance(hours=73)
    smtp_sink.script("reader1@example.com", "rcpt", "451 4.7.1 slow down")
    report = send(store, issue.id, smtp_sink, sleep=sleep)
    row = rows(store, issue.id)["reader1@example.com"]
    assert (report.failed_perm, report.throttled, row.status) == (1, 0, DeliveryStatus.FAILED_PERM)
    assert "gave up" in (row.last_reply or "")


def test_auth_failure_pauses_and_fails_no_row_f13(
    db_url: str, smtp_tls_sink: SmtpSink, tls_files: TlsFiles
):
    import ssl

    store = open_store(db_url)
    add_subscribers(store, 3)
    issue = make_issue(store)
    smtp_tls_sink.handler.accept_login = False
    s = SmtpSettings(
        smtp_tls_sink.host, smtp_tls_sink.port, "starttls", "u", "bad", 2.0, 20, "x.example"
    )
    context = ssl.create_default_context(cafile=str(tls_files.cert))
    report = send(store, issue.id, smtp_tls_sink, transports=lambda: SmtpTransport(s, context))
    assert report.stop == StopReason.PAUSED and "authentication failed" in report.detail
    assert set(statuses(store, issue.id).values()) == {DeliveryStatus.PENDING}
    assert {d.attempt for d in store.iter_deliveries(issue.id)} == {0}


def test_server_down_leaves_rows_untouched_f11(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 3)
    issue = make_issue(store)
    down = SmtpSettings("127.0.0.1", free_port(), "none", "", None, 1.0, 20, "x.example")
    report = send(store, issue.id, smtp_sink, transports=lambda: SmtpTransport(down))
    assert report.stop == StopReason.SERVER_DOWN
    assert "ConnectionRefusedError" in report.detail
    assert set(statuses(store, issue.id).values()) == {DeliveryStatus.PENDING}
    assert {d.attempt for d in store.iter_deliveries(issue.id)} == {0}
    got = store.get_issue(issue.id)
    assert got is not None and got.status == IssueStatus.SENDING


def test_unsubscribe_during_send_skips_later_message_e16(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 3)
    issue = make_issue(store)
    held = smtp_sink.data_event(1, hold=0.5)
    thread = threading.Thread(target=send, args=(store, issue.id, smtp_sink))
    thread.start()
    assert held.wait(10)
    store.unsubscribe("reader3@example.com")  # while the sink holds the first DATA
    thread.join(20)
    got = rows(store, issue.id)["reader3@example.com"]
    assert got.status == DeliveryStatus.SKIPPED
    assert "unsubscribed" in (got.last_reply or "")
    assert "reader3@example.com" not in smtp_sink.recipients()


def test_two_senders_each_message_id_once_g4(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 30)
    issue = make_issue(store)
    barrier = threading.Barrier(2)
    reports = []

    def sender(name: str) -> None:
        own = open_store(db_url)  # its own engine and connections, like another process
        barrier.wait()
        reports.append(send(own, issue.id, smtp_sink, policy(concurrency=2), name=name))
        own.close()

    threads = [threading.Thread(target=sender, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(r.sent for r in reports) == 30
    assert sorted(smtp_sink.copies().values()) == [1] * 30


def test_stop_event_finishes_in_flight_message_and_releases_the_rest_g2(
    db_url: str, smtp_sink: SmtpSink
):
    store = open_store(db_url)
    add_subscribers(store, 6)
    issue = make_issue(store)
    stop = threading.Event()
    held = smtp_sink.data_event(2, hold=0.4)
    result = []
    thread = threading.Thread(
        target=lambda: result.append(send(store, issue.id, smtp_sink, stop=stop))
    )
    thread.start()
    assert held.wait(10)
    stop.set()
    thread.join(20)
    report = result[0]
    assert (report.stop, report.sent) == (StopReason.INTERRUPTED, 2)
    counts = store.counts(issue.id)
    assert (counts[DeliveryStatus.SENT], counts[DeliveryStatus.PENDING]) == (2, 4)
    assert counts[DeliveryStatus.SENDING] == counts[DeliveryStatus.IN_DOUBT] == 0
    assert send(store, issue.id, smtp_sink).sent == 4
    assert sorted(smtp_sink.copies().values()) == [1] * 6


def test_expired_lease_is_in_doubt_then_resent_once_g1(db_url: str, smtp_sink: SmtpSink):
    clock = FakeClock()
    store = open_store(db_url, clock)
    add_subscribers(store, 2)
    issue = make_issue(store)
    store.snapshot(issue.id)
    # A sender on another machine claimed a row, started its DATA and vanished.
    crashed = store.claim(issue.id, "elsewhere:1:dead/0", 1, timedelta(seconds=300))
    assert store.hand_over(crashed[0].id, "elsewhere:1:dead/0") == HandOver.GO
    assert send(store, issue.id, smtp_sink, policy(in_doubt_policy="hold")).sent == 1
    assert store.get_delivery(crashed[0].id).status == DeliveryStatus.SENDING  # type: ignore[union-attr]
    clock.advance(seconds=301)
    report = send(store, issue.id, smtp_sink)
    assert (report.recovered, report.resent, report.sent, report.done) == (1, 1, 1, True)
    assert store.get_delivery(crashed[0].id).resent  # type: ignore[union-attr]


@pytest.mark.parametrize("in_doubt_policy", ["hold", "resend_once"])
def test_claim_abandoned_before_any_smtp_command_is_pending_not_in_doubt(
    db_url: str, smtp_sink: SmtpSink, in_doubt_policy: str
):
    """Issue 8 item 5: a claim that never reached DATA cannot be at the server."""
    clock = FakeClock()
    store = open_store(db_url, clock)
    add_subscribers(store, 3)
    issue = make_issue(store)
    store.snapshot(issue.id)
    abandoned = store.claim(issue.id, "elsewhere:1:dead/0", 2, timedelta(seconds=300))
    in_flight = store.claim(issue.id, "elsewhere:1:dead/1", 1, timedelta(seconds=300))
    assert store.hand_over(in_flight[0].id, "elsewhere:1:dead/1") == HandOver.GO
    clock.advance(seconds=301)
    p = policy(in_doubt_policy=in_doubt_policy)
    report = send(store, issue.id, smtp_sink, p)
    got = rows(store, issue.id)
    assert (report.recovered, report.reclaimed) == (1, 2)
    for row in abandoned:  # back to pending, then sent once, not counted as a resend
        done = store.get_delivery(row.id)
        assert done is not None
        assert (done.status, done.resent, done.attempt) == (DeliveryStatus.SENT, False, 1)
    doubtful = got["reader3@example.com"]
    if in_doubt_policy == "hold":
        assert doubtful.status == DeliveryStatus.IN_DOUBT
        assert (report.sent, report.done, report.held) == (2, False, 1)
        assert store.release_held(issue.id) == 1
        released = send(store, issue.id, smtp_sink, p)
        assert (released.sent, released.done) == (1, True)
    else:
        assert (report.sent, report.resent, report.done) == (3, 1, True)
    final = store.get_delivery(in_flight[0].id)
    assert final is not None and (final.status, final.resent) == (DeliveryStatus.SENT, True)
    assert sorted(smtp_sink.copies().values()) == [1, 1, 1]  # the crashed DATA never arrived


@pytest.mark.parametrize("handed_over", [True, False])
def test_rows_of_a_dead_local_process_are_recovered_at_once(
    db_url: str, smtp_sink: SmtpSink, handed_over: bool
):
    import socket
    import subprocess

    store = open_store(db_url)
    add_subscribers(store, 1)
    issue = make_issue(store)
    store.snapshot(issue.id)
    child = subprocess.Popen(["true"])
    child.wait()  # a pid that is certainly gone
    worker = f"{socket.gethostname()}:{child.pid}:abc/0"
    claimed = store.claim(issue.id, worker, 1, timedelta(hours=1))
    if handed_over:
        store.hand_over(claimed[0].id, worker)
    report = send(store, issue.id, smtp_sink, policy(in_doubt_policy="hold"))
    if handed_over:
        assert (report.recovered, report.counts[DeliveryStatus.IN_DOUBT]) == (1, 1)
        assert smtp_sink.received == []
    else:
        assert (report.recovered, report.reclaimed, report.sent, report.done) == (0, 1, 1, True)


def test_hourly_limit_is_persisted_across_restarts(db_url: str, smtp_sink: SmtpSink):
    clock = FakeClock()
    store = open_store(db_url, clock)
    add_subscribers(store, 3)
    issue = make_issue(store)
    p = policy(rate_per_hour=2)
    first = send(store, issue.id, smtp_sink, p)
    assert (first.sent, first.stop) == (2, StopReason.RATE_LIMITED)
    restarted = open_store(db_url, clock)
    assert send(restarted, issue.id, smtp_sink, p).sent == 0
    clock.advance(hours=1, minutes=1)
    assert send(restarted, issue.id, smtp_sink, p).sent == 1
    assert store.counts(issue.id)[DeliveryStatus.PENDING] == 0


def test_progress_is_reported(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 3)
    issue = make_issue(store)
    seen: list[Progress] = []
    send(store, issue.id, smtp_sink, progress=seen.append)
    assert seen[-1] == Progress(sent=3, failed=0, in_doubt=0, skipped=0, total=3)


def test_rate_limiter_spaces_messages():
    limiter = RateLimiter(4, monotonic=lambda: 0.0)  # time stands still: slots queue up
    waits: list[float] = []

    class Recorder(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout or 0.0)
            return False

    stop = Recorder()
    assert all(limiter.wait(stop) for _ in range(3))
    assert waits == [0.25, 0.5]


def test_rate_limiter_halves_and_recovers_f15():
    limiter = RateLimiter(4, monotonic=lambda: 0.0)
    limiter.slow_down()
    limiter.slow_down()
    assert limiter.rate == 1.0
    limiter.speed_up()
    assert limiter.rate == 2.0
    limiter.speed_up()
    limiter.speed_up()  # nothing left to undo
    assert limiter.rate == 4.0


def test_rate_limiter_without_a_rate_halves_the_recent_pace_f15():
    now = [0.0]
    limiter = RateLimiter(0, monotonic=lambda: now[0])
    stop = threading.Event()
    for i in range(5):
        now[0] = i * 0.1  # ten messages a second
        assert limiter.wait(stop)
    limiter.slow_down()
    assert limiter.rate == pytest.approx(5.0)
    limiter.speed_up()
    assert limiter.rate == 0  # no limit again


def test_250_whose_write_fails_is_in_doubt_never_lost_h3(db_url: str, smtp_sink: SmtpSink):
    from publisher.store import StoreError

    clock = FakeClock()
    store = open_store(db_url, clock)
    add_subscribers(store, 2)
    issue = make_issue(store)

    def broken(*args, **kwargs):
        raise StoreError("database gone")

    real = store.mark_sent
    store.mark_sent = broken  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="database gone"):
        send(store, issue.id, smtp_sink)
    store.mark_sent = real  # type: ignore[method-assign]
    got = statuses(store, issue.id)
    # The accepted message stays claimed; the other was given back untouched.
    assert got == {
        "reader1@example.com": DeliveryStatus.SENDING,
        "reader2@example.com": DeliveryStatus.PENDING,
    }
    clock.advance(seconds=301)
    report = send(store, issue.id, smtp_sink, policy(in_doubt_policy="hold"))
    assert report.recovered == 1
    assert statuses(store, issue.id)["reader1@example.com"] == DeliveryStatus.IN_DOUBT
    assert smtp_sink.copies()["<issue-1.1@blog.example.com>"] == 1


# --- issue 8: the last check before DATA, and messages nobody can build --------------------


def wait_for(condition, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_unsubscribe_while_rcpt_is_in_progress_withdraws_the_message_e16(
    db_url: str, smtp_sink: SmtpSink, concurrency: int
):
    store = open_store(db_url)
    add_subscribers(store, 4)
    issue = make_issue(store)
    smtp_sink.script("reader2@example.com", "rcpt", "250 OK", sleep=1.0)  # a slow server
    result: list = []
    p = policy(concurrency=concurrency, claim_size=1)
    thread = threading.Thread(target=lambda: result.append(send(store, issue.id, smtp_sink, p)))
    thread.start()
    wait_for(lambda: "reader2@example.com" in [a for a, _ in smtp_sink.rcpts()])
    open_store(db_url).unsubscribe("reader2@example.com")  # another process, during RCPT
    thread.join(20)
    report = result[0]
    row = rows(store, issue.id)["reader2@example.com"]
    assert row.status == DeliveryStatus.SKIPPED
    assert "unsubscribed (E16, checked before DATA)" in (row.last_reply or "")
    assert "reader2@example.com" not in smtp_sink.recipients()
    assert smtp_sink.data_count == 3  # no DATA was ever sent for reader2
    assert (report.sent, report.skipped, report.withdrawn, report.done) == (3, 1, 1, True)
    assert smtp_sink.connections == concurrency  # RSET kept the connection usable


def test_row_taken_over_meanwhile_is_not_sent(db_url: str, smtp_sink: SmtpSink):
    """A worker whose lease lapsed (another process recovered and re-claimed the row)
    must not hand the message over too (G4)."""
    clock = FakeClock()
    store = open_store(db_url, clock)
    add_subscribers(store, 1)
    issue = make_issue(store)
    store.snapshot(issue.id)
    first = store.claim(issue.id, "a:1:x/0", 1, timedelta(seconds=10))
    clock.advance(seconds=11)
    assert store.recover_expired_leases().released == 1
    assert store.claim(issue.id, "b:2:y/0", 1, timedelta(seconds=10))
    assert store.hand_over(first[0].id, "a:1:x/0") == HandOver.LOST
    assert store.hand_over(first[0].id, "b:2:y/0") == HandOver.GO


def bad_title_issue(store: Store, bad: str):
    from publisher.store import NewIssue

    new = NewIssue(
        key="post:hello",
        post_slugs=("hello",),
        categories=(),
        subject=f"첫 줄{bad}둘째 줄",
        preheader="미리보기",
        html="<p>본문</p>",
        text="본문",
        digest="d" * 64,
    )
    issue, _ = store.create_issue(new)
    return issue, new


@pytest.mark.parametrize("bad", ["\u2028", "\u0085"])
def test_issue_whose_message_cannot_be_built_pauses_and_fails_nobody(
    db_url: str, smtp_sink: SmtpSink, tmp_path, bad: str
):
    import dataclasses

    from builders import make_config
    from publisher.deliver.sender import MessageComposer
    from publisher.deliver.tokens import TokenSigner

    clock = FakeClock()
    store = open_store(db_url, clock)
    add_subscribers(store, 3)
    issue, new = bad_title_issue(store, bad)  # stored as an older reader let it through
    composer = MessageComposer(make_config(tmp_path), TokenSigner([b"k" * 32], clock), clock)
    p = policy(concurrency=2)
    report = send(store, issue.id, smtp_sink, p, composer=composer)
    assert (report.stop, report.sent, report.failed_temp, report.failed_perm) == (
        StopReason.PAUSED,
        0,
        0,
        0,
    )
    paused = store.get_issue(issue.id)
    assert paused is not None and paused.status == IssueStatus.PAUSED
    reason = paused.pause_reason or ""
    assert reason.startswith("issue post:hello (posts: hello): the message cannot be built")
    assert "Subject: contains a control character or line separator" in reason
    assert "(it comes from the post's title); nobody was mailed. Fix it, then run " in reason
    assert reason.endswith("`publisher send --post hello --resume`")
    assert smtp_sink.messages == 0 and smtp_sink.received == []
    assert set(statuses(store, issue.id).values()) == {DeliveryStatus.PENDING}
    assert {d.attempt for d in store.iter_deliveries(issue.id)} == {0}
    # The post is fixed; nobody had a copy, so the stored body may be replaced (B6).
    assert store.replace_issue_body(issue.id, dataclasses.replace(new, subject="고친 제목"))
    resume_issue(store, issue.id)
    again = send(store, issue.id, smtp_sink, p, composer=composer)
    assert (again.sent, again.done) == (3, True)
    assert sorted(smtp_sink.copies().values()) == [1, 1, 1]


def test_a_run_of_messages_that_cannot_be_built_pauses(db_url: str, smtp_sink: SmtpSink):
    store = open_store(db_url)
    add_subscribers(store, 5)
    issue = make_issue(store)
    everyone = {f"reader{i}@example.com" for i in range(1, 6)}
    p = policy(pause_after_rejections=3)
    report = send(store, issue.id, smtp_sink, p, composer=PlainComposer(fail_for=everyone))
    assert report.stop == StopReason.PAUSED
    assert "3 consecutive messages could not be built" in report.detail
    assert "template blew up" in report.detail
    got = statuses(store, issue.id)
    assert [got[f"reader{i}@example.com"] for i in (1, 2, 3)] == [DeliveryStatus.FAILED_TEMP] * 3
    assert [got[f"reader{i}@example.com"] for i in (4, 5)] == [DeliveryStatus.PENDING] * 2


def test_issue_body_is_not_replaced_once_someone_may_have_it_b6(db_url: str, smtp_sink: SmtpSink):
    import dataclasses

    from publisher.store import NewIssue

    store = open_store(db_url)
    add_subscribers(store, 2)
    issue = make_issue(store)
    fresh = NewIssue(issue.key, issue.post_slugs, (), "새 제목", "", "<p>새</p>", "새", "e" * 64)
    assert not store.replace_issue_body(issue.id, dataclasses.replace(fresh, key="post:other"))
    smtp_sink.script("reader2@example.com", "rcpt", "451 4.2.0 later")
    send(store, issue.id, smtp_sink)
    assert not store.replace_issue_body(issue.id, fresh)  # reader1 has the stored body
    assert store.get_issue(issue.id).subject == "안녕하세요"  # type: ignore[union-attr]


# --- one home each: the dead-process check and the count line (issue 9) ------------------------


def test_dead_here_knows_only_gone_processes_of_this_host() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    assert dead_here(f"{host}:{gone.pid}:abc")
    assert not dead_here(worker_name())  # this process
    assert not dead_here(f"{host}:{os.getppid()}:abc")  # alive
    assert not dead_here(f"elsewhere.example:{gone.pid}:abc")  # another host's: not ours to judge
    assert not dead_here(f"{host}:not-a-pid:abc")


def test_describe_counts_in_both_orders() -> None:
    counts = DeliveryCounts({DeliveryStatus.IN_DOUBT: 1, DeliveryStatus.SENT: 3})
    assert describe_counts(counts) == "3 sent, 1 in_doubt"  # the scheduler's log and status
    assert describe_counts(counts, label_first=True) == "sent 3, in_doubt 1"  # publisher status
    assert describe_counts(DeliveryCounts()) == "no recipients"
    assert describe_counts(DeliveryCounts(), empty="no deliveries") == "no deliveries"
