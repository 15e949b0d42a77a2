"""The scheduler, driven by an injected clock, on SQLite and PostgreSQL (A20, G3-G9, L5)."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from builders import write_config, write_post
from publisher.config import Config, load_config
from publisher.publish.build import BuildResult, build, write_site
from publisher.publish.site import Site
from publisher.schedule.runner import (
    ISSUES,
    PUBLISH,
    SEND,
    Backoff,
    Runner,
    TickSummary,
    scheduler_status,
    status_lines,
)
from publisher.store import DeliveryStatus, Issue, IssueStatus, Store, Subscriber
from sending import FakeClock, PlainComposer, add_subscribers, open_store, smtp_to
from smtp_sink import SmtpSink

pytestmark = pytest.mark.timeout(60)

SEOUL = ZoneInfo("Asia/Seoul")
BERLIN = ZoneInfo("Europe/Berlin")
LOG = "test.scheduler"


def at(zone: ZoneInfo, *args: int) -> datetime:
    """A local wall time in ``zone`` as aware UTC."""
    return datetime(*args, tzinfo=zone).astimezone(UTC)


def kst(*args: int) -> datetime:
    return at(SEOUL, *args)


MORNING = kst(2025, 6, 20, 8, 0)


class CountingBuilder:
    """``build`` that records each call and can be told to fail (G5)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail_next = 0
        self.lock = threading.Lock()

    def __call__(self, site: Site) -> BuildResult:
        with self.lock:
            if self.fail_next:
                self.fail_next -= 1
                raise RuntimeError("disk on fire")
        result = write_site(site)
        with self.lock:
            self.calls.append(tuple(p.slug for p in result.site.posts))
        return result


class FeedCheckingComposer(PlainComposer):
    """Records, for each message built, whether the feed already had the issue's posts."""

    def __init__(self, output: Path) -> None:
        super().__init__()
        self.output = output
        self.feed_had_posts: list[bool] = []

    def compose(self, issue: Issue, subscriber: Subscriber, message_id: str) -> bytes:
        feed = (self.output / "feed.xml").read_text(encoding="utf-8")
        pages = [self.output / "posts" / slug / "index.html" for slug in issue.post_slugs]
        self.feed_had_posts.append(
            all(f"/posts/{s}/" in feed for s in issue.post_slugs) and all(p.exists() for p in pages)
        )
        return super().compose(issue, subscriber, message_id)


@dataclass
class Rig:
    root: Path
    config: Config
    store: Store
    clock: FakeClock
    sink: SmtpSink
    builder: CountingBuilder = field(default_factory=CountingBuilder)
    _runner: Runner | None = None

    def runner(self, **kw: Any) -> Runner:
        kw.setdefault("composer", FeedCheckingComposer(self.config.output_path))
        kw.setdefault("builder", self.builder)
        kw.setdefault("backoff", Backoff(base=timedelta(minutes=2), cap=timedelta(minutes=30)))
        store = kw.pop("store", self.store)
        return Runner(
            self.config, store, self.clock, smtp_to(self.sink), logging.getLogger(LOG), **kw
        )

    def tick(self) -> TickSummary:
        if self._runner is None:
            self._runner = self.runner()
        return self._runner.tick()

    def post(self, slug: str, when: str, **fields: str) -> None:
        write_post(self.root, f"{slug}.md", title=f"글 {slug}", date=when, **fields)

    def issues(self) -> dict[str, Issue]:
        return {i.key: i for i in self.store.list_issues()}

    def message_ids(self) -> list[str]:
        return sorted(self.sink.message_ids())


RigFactory = Callable[..., Rig]


def rig_factory(tmp_path: Path, db_url: str, sink: SmtpSink) -> RigFactory:
    """Makes a site folder, a store on ``db_url`` and a clock; overrides go to config.toml."""

    def make(now: datetime = MORNING, **overrides: dict[str, Any]) -> Rig:
        newsletter = {"start": date(2025, 6, 1), **overrides.pop("newsletter", {})}
        schedule = {"poll_seconds": 60, "lease_seconds": 30, **overrides.pop("schedule", {})}
        # A 30 s lease needs SMTP steps of at most 10 s (config: lease >= 3 x timeout).
        smtp = {"timeout_seconds": 10, **overrides.pop("smtp", {})}
        root = write_config(
            tmp_path / "site", newsletter=newsletter, schedule=schedule, smtp=smtp, **overrides
        )
        clock = FakeClock(now)
        store = open_store(db_url, clock)
        return Rig(root, load_config(root, env={}), store, clock, sink)

    return make


@pytest.fixture
def make_rig(tmp_path: Path, db_url: str, smtp_sink: SmtpSink) -> RigFactory:
    """Rigs on SQLite and on PostgreSQL."""
    return rig_factory(tmp_path, db_url, smtp_sink)


@pytest.fixture
def make_sqlite_rig(tmp_path: Path, smtp_sink: SmtpSink) -> RigFactory:
    """Rigs on SQLite only, for tests of time logic with hundreds of ticks."""
    return rig_factory(tmp_path, f"sqlite:///{tmp_path / 'publisher.db'}", smtp_sink)


# --- publish, then mail, once (A20) -------------------------------------------------------------


def test_a_scheduled_post_goes_live_then_is_mailed_once(make_rig: RigFactory):
    rig = make_rig()
    rig.post("old", "2025-05-20 09:00")  # before the newsletter start: never mailed
    rig.post("news", "2025-06-20 09:00")
    add_subscribers(rig.store, 3)

    first = rig.tick()
    assert first.built and first.published == ["old"]
    assert not (rig.config.output_path / "posts/news").exists()
    assert "next post due 2025-06-20 09:00 KST: news" in first.waiting
    assert rig.issues() == {} and rig.message_ids() == []

    rig.clock.now = kst(2025, 6, 20, 9, 0)
    due = rig.tick()
    assert due.built and due.published == ["news"]
    assert due.issues_created == ["post:news"]
    assert (due.sent, due.failed, due.in_doubt) == (3, 0, 0)
    issue = rig.issues()["post:news"]
    assert issue.status == IssueStatus.DONE
    composer = rig._runner.composer()  # type: ignore[union-attr]
    assert isinstance(composer, FeedCheckingComposer)
    assert composer.feed_had_posts == [True, True, True]  # page and feeds first (A20)

    for minutes in (1, 2, 60):
        rig.clock.now = kst(2025, 6, 20, 9, 0) + timedelta(minutes=minutes)
        again = rig.tick()
        assert not again.built and again.published == [] and again.issues_created == []
        assert again.sent == 0
    assert len(rig.builder.calls) == 2
    assert rig.message_ids() == [f"<issue-{issue.id}.{n}@blog.example.com>" for n in (1, 2, 3)]


def test_without_a_start_the_back_catalogue_is_never_mailed(make_rig: RigFactory):
    rig = make_rig(newsletter={"start": ""})
    for n in range(1, 4):
        rig.post(f"old-{n}", f"2025-06-1{n} 09:00")
    add_subscribers(rig.store, 2)
    first = rig.tick()
    assert first.published == ["old-1", "old-2", "old-3"] and first.issues_created == []
    assert rig.store.posts_without_issue() == []

    rig.post("backdated", "2025-06-20 07:30")  # written later, dated before enabling (08:00)
    rig.clock.now = kst(2025, 6, 20, 8, 30)
    second = rig.tick()
    assert second.published == ["backdated"] and second.issues_created == []
    rig.post("next", "2025-06-20 10:00")
    rig.clock.now = kst(2025, 6, 20, 10, 0)
    third = rig.tick()
    assert third.issues_created == ["post:next"] and third.sent == 2
    assert set(rig.issues()) == {"post:next"}


def test_posts_published_while_the_newsletter_is_off_are_not_mailed_later(
    make_rig: RigFactory, tmp_path: Path
):
    rig = make_rig(newsletter={"enabled": False})
    rig.post("quiet", "2025-06-19 09:00")
    rig.tick()
    write_config(
        rig.root,
        newsletter={"enabled": True, "start": date(2025, 6, 1)},
        schedule={"lease_seconds": 30},
        smtp={"timeout_seconds": 10},
    )
    on = reload_config(rig)
    rig.post("loud", "2025-06-20 09:00")
    rig.clock.now = kst(2025, 6, 20, 9, 0)
    summary = on.tick()
    assert summary.issues_created == ["post:loud"]
    assert set(rig.issues()) == {"post:loud"}


def reload_config(rig: Rig) -> Rig:
    """The rig with config.toml re-read (what a restart after editing it does)."""
    rig.config = load_config(rig.root, env={})
    rig._runner = None
    return rig


# --- digests -------------------------------------------------------------------------------------


WEEKLY = {"cadence": "weekly", "digest_weekday": "monday", "digest_time": "08:00"}


def test_a_weekly_digest_on_monday_0800_seoul_has_the_weeks_posts(make_rig: RigFactory):
    rig = make_rig(now=kst(2025, 6, 9, 9, 0), newsletter=WEEKLY)
    rig.post("old", "2025-05-20 09:00")
    for slug, when in [
        ("tue", "2025-06-10 09:00"),
        ("thu", "2025-06-12 09:00"),
        ("sun", "2025-06-15 20:00"),
        ("mon-after", "2025-06-16 09:00"),
    ]:
        rig.post(slug, when)
    add_subscribers(rig.store, 2)
    rig.tick()
    for moment in (kst(2025, 6, 10, 9), kst(2025, 6, 12, 9), kst(2025, 6, 15, 20)):
        rig.clock.now = moment
        summary = rig.tick()
        assert summary.issues_created == [] and summary.sent == 0
    assert "digest waits until Monday 2025-06-16 08:00 KST (3 posts queued)" in summary.waiting
    rig.clock.now = kst(2025, 6, 16, 7, 59)
    assert rig.tick().issues_created == []

    rig.clock.now = kst(2025, 6, 16, 8, 0)
    monday = rig.tick()
    assert monday.issues_created == ["digest:2025-06-16"] and monday.sent == 2
    digest = rig.issues()["digest:2025-06-16"]
    assert digest.post_slugs == ("tue", "thu", "sun")
    assert digest.subject == "테스트 블로그 · 2025.06.16"

    rig.clock.now = kst(2025, 6, 16, 9, 0)  # published after the slot: next week's digest
    later = rig.tick()
    assert later.published == ["mon-after"] and later.issues_created == []
    assert set(rig.issues()) == {"digest:2025-06-16"} and len(rig.message_ids()) == 2


def test_an_empty_digest_is_not_sent(make_rig: RigFactory, caplog: pytest.LogCaptureFixture):
    rig = make_rig(now=kst(2025, 6, 9, 9, 0), newsletter=WEEKLY)
    rig.post("old", "2025-05-20 09:00")
    add_subscribers(rig.store, 2)
    rig.tick()
    rig.clock.now = kst(2025, 6, 16, 8, 0)
    with caplog.at_level(logging.INFO, LOG):
        summary = rig.tick()
    assert summary.issues_created == [] and rig.issues() == {} and rig.message_ids() == []
    assert "digest of 2025-06-16: no new posts, nothing to send" in caplog.messages


def test_a_digest_missed_while_down_for_three_weeks_is_sent_once(make_rig: RigFactory):
    rig = make_rig(now=kst(2025, 6, 9, 9, 0), newsletter=WEEKLY)
    posts = [("w1", "2025-06-11 09:00"), ("w2", "2025-06-18 09:00"), ("w3", "2025-06-25 09:00")]
    for slug, when in posts:
        rig.post(slug, when)
    add_subscribers(rig.store, 2)
    rig.tick()
    rig.clock.now = kst(2025, 7, 1, 10, 0)  # back up on Tuesday, three Mondays later
    back = rig.tick()
    assert back.published == ["w1", "w2", "w3"]
    assert back.issues_created == ["digest:2025-06-30"] and back.sent == 2
    assert rig.issues()["digest:2025-06-30"].post_slugs == ("w1", "w2", "w3")
    for hours in (1, 24, 24 * 6 - 2):
        rig.clock.now = kst(2025, 7, 1, 10, 0) + timedelta(hours=hours)
        assert rig.tick().issues_created == []
    assert set(rig.issues()) == {"digest:2025-06-30"} and len(rig.message_ids()) == 2


@pytest.mark.parametrize(
    ("zone", "first_day", "digest_time"),
    [
        (BERLIN, (2025, 3, 29), "02:30"),  # spring forward: 02:30 does not exist on the 30th
        (BERLIN, (2025, 10, 25), "02:30"),  # fall back: 02:30 happens twice on the 26th
        (SEOUL, (2025, 3, 29), "08:00"),
    ],
)
def test_a_daily_digest_across_dst_days_is_neither_skipped_nor_repeated(
    make_sqlite_rig: RigFactory, zone: ZoneInfo, first_day: tuple[int, int, int], digest_time: str
):
    y, m, d = first_day
    start = at(zone, y, m, d, 0, 0)
    site = {"timezone": zone.key}
    newsletter = {"cadence": "daily", "digest_time": digest_time, "start": date(y, m, d)}
    rig = make_sqlite_rig(now=start, site=site, newsletter=newsletter)
    for day in range(3):  # a post every evening
        when = start + timedelta(days=day, hours=20)
        rig.post(f"p{day}", f"{when.astimezone(zone):%Y-%m-%d %H:%M}")
    add_subscribers(rig.store, 1)
    moment = start
    while moment < start + timedelta(days=3, hours=12):
        rig.clock.now = moment
        rig.tick()
        moment += timedelta(minutes=30)  # a pass every half hour, wall clock or not
    issues = rig.issues()
    days = [(date(y, m, d) + timedelta(days=n)).isoformat() for n in (1, 2, 3)]
    assert sorted(issues) == [f"digest:{day}" for day in days]
    assert [issues[f"digest:{day}"].post_slugs for day in days] == [("p0",), ("p1",), ("p2",)]
    assert len(rig.message_ids()) == 3 == len(set(rig.message_ids()))


# --- clock jumps (G8) ------------------------------------------------------------------------------


def test_the_clock_stepping_back_55_minutes_repeats_nothing(make_rig: RigFactory):
    daily = {"cadence": "daily", "digest_time": "09:30"}
    rig = make_rig(now=kst(2025, 6, 20, 8, 0), newsletter=daily)
    rig.post("news", "2025-06-20 09:00")
    add_subscribers(rig.store, 2)
    rig.tick()
    rig.clock.now = kst(2025, 6, 20, 9, 40)
    sent = rig.tick()
    assert sent.published == ["news"] and sent.issues_created == ["digest:2025-06-20"]
    page = rig.config.output_path / "posts/news/index.html"

    rig.clock.now = kst(2025, 6, 20, 8, 45)  # 55 minutes back
    rig.post("news", "2025-06-20 09:00", summary="고침")  # an edit: rebuilt at the earlier time
    back = rig.tick()
    assert back.built and back.published == [] and back.issues_created == [] and back.sent == 0
    assert page.exists()  # a published post stays published (no flapping)
    rig.clock.now = kst(2025, 6, 20, 9, 40)
    assert rig.tick().issues_created == []
    assert len(rig.message_ids()) == 2 and len(rig.builder.calls) == 3


# --- failures (G5, L5) ----------------------------------------------------------------------------


def test_a_job_that_raises_once_is_logged_recorded_and_retried_with_backoff(
    make_rig: RigFactory, caplog: pytest.LogCaptureFixture
):
    rig = make_rig(now=kst(2025, 6, 20, 9, 0))
    rig.post("news", "2025-06-20 09:00")
    add_subscribers(rig.store, 1)
    rig.builder.fail_next = 1
    with caplog.at_level(logging.INFO, LOG):
        failed = rig.tick()
    assert failed.errors == ["publish: RuntimeError: disk on fire"]
    assert any(
        "publish failed (1 in a row): RuntimeError: disk on fire" in m for m in caplog.messages
    )
    state = {s.name: s for s in rig.store.job_states()}[PUBLISH]
    assert state.last_error == "RuntimeError: disk on fire" and state.failures == 1
    assert state.next_run_at == kst(2025, 6, 20, 9, 2) and state.claimed_by is None

    for seconds in (0, 60, 119):  # not rerun every tick (L5)
        rig.clock.now = kst(2025, 6, 20, 9, 0) + timedelta(seconds=seconds)
        waiting = rig.tick()
        assert waiting.errors == [] and not waiting.built
    assert rig.builder.calls == []
    assert any(w.startswith("publish waits until 2025-06-20 09:02 KST") for w in waiting.waiting)

    rig.clock.now = kst(2025, 6, 20, 9, 2)
    retried = rig.tick()
    assert retried.built and retried.issues_created == ["post:news"] and retried.sent == 1
    state = {s.name: s for s in rig.store.job_states()}[PUBLISH]
    assert state.last_error is None and state.failures == 0 and state.next_run_at is None


def test_backoff_doubles_and_is_capped():
    backoff = Backoff(base=timedelta(minutes=2), cap=timedelta(minutes=30))
    assert [backoff.delay(n).total_seconds() / 60 for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_fixing_a_broken_post_is_picked_up_at_once(make_rig: RigFactory):
    rig = make_rig(now=kst(2025, 6, 20, 9, 0))
    rig.post("news", "2025-06-20 09:00")
    (rig.root / "posts/broken.md").write_text("---\ntitle: x\ndate: yesterday\n---\n", "utf-8")
    failed = rig.tick()
    assert failed.errors and failed.errors[0].startswith("publish: 2 content problems:")
    (rig.root / "posts/broken.md").unlink()
    rig.clock.now += timedelta(seconds=60)  # well inside the back-off
    assert rig.tick().published == ["news"]


def test_issues_created_but_not_sent_go_out_at_the_next_start(make_rig: RigFactory):
    """G3, G7: a crash between creating the issue and sending it; the restart sends."""
    rig = make_rig(now=kst(2025, 6, 20, 9, 5))
    rig.post("news", "2025-06-20 09:00")
    add_subscribers(rig.store, 2)
    stopped = threading.Event()
    stopped.set()
    crashed = rig.runner(stop=stopped).tick()
    assert crashed.issues_created == ["post:news"] and crashed.sent == 0
    assert rig.issues()["post:news"].status == IssueStatus.DRAFT
    restarted = rig.runner().tick()
    assert restarted.sent == 2 and rig.issues()["post:news"].status == IssueStatus.DONE


def test_a_paused_issue_is_skipped_with_its_reason(make_rig: RigFactory):
    rig = make_rig(now=kst(2025, 6, 20, 9, 5))
    rig.post("news", "2025-06-20 09:00")
    add_subscribers(rig.store, 2)
    stopped = threading.Event()
    stopped.set()
    rig.runner(stop=stopped).tick()
    issue = rig.issues()["post:news"]
    rig.store.set_issue_status(issue.id, IssueStatus.PAUSED, "too big (D14)")
    summary = rig.tick()
    assert summary.sent == 0
    assert f"issue {issue.id} paused: too big (D14) (publisher send --resume)" in summary.waiting


def test_held_in_doubt_rows_keep_the_issue_open_and_say_so(make_rig: RigFactory):
    """Issue 8: with in_doubt_policy = "hold" the issue is not done while rows are held."""
    rig = make_rig(now=kst(2025, 6, 20, 9, 5), newsletter={"in_doubt_policy": "hold"})
    rig.post("news", "2025-06-20 09:00")
    add_subscribers(rig.store, 2)
    rig.sink.script("reader1@example.com", "data", "drop")
    summary = rig.tick()
    issue = rig.issues()["post:news"]
    assert (summary.sent, summary.in_doubt, issue.status) == (1, 1, IssueStatus.SENDING)
    held = f"issue {issue.id}: 1 message in doubt held for the operator"
    assert any(w.startswith(held) for w in summary.waiting), summary.waiting
    assert rig.store.release_held(issue.id) == 1
    rig.clock.now += timedelta(minutes=1)
    assert rig.tick().sent == 1 and rig.issues()["post:news"].status == IssueStatus.DONE


# --- two schedulers (G4, G6) -----------------------------------------------------------------------


def test_two_schedulers_in_threads_publish_and_send_once(make_rig: RigFactory, db_url: str):
    rig = make_rig(now=kst(2025, 6, 20, 8, 0))
    for n in range(3):
        rig.post(f"news-{n}", f"2025-06-20 09:0{n}")
    add_subscribers(rig.store, 4)
    runners = [rig.runner(store=open_store(db_url, rig.clock)) for _ in range(2)]
    barrier = threading.Barrier(2)
    summaries: list[TickSummary] = []

    def run(runner: Runner) -> None:
        barrier.wait()
        for _ in range(4):
            summaries.append(runner.tick())

    rig.clock.now = kst(2025, 6, 20, 9, 5)
    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # A scheduler that found a job busy left it to the other; one more pass each
    # finishes whatever the other had not reached yet.
    summaries.extend(runner.tick() for runner in runners)
    assert len(rig.builder.calls) == 1  # one build, by whichever scheduler came first
    assert sorted(s for t in summaries for s in t.published) == ["news-0", "news-1", "news-2"]
    assert sum(len(t.issues_created) for t in summaries) == 3
    assert [t.errors for t in summaries if t.errors] == []
    ids = rig.message_ids()
    assert len(ids) == 12 == len(set(ids))  # each Message-ID received once


def _process_scheduler(root: str, db_url: str, port: int, barrier: Any, out: Any) -> None:
    """A scheduler in its own process (spawned): tick three times after the barrier."""
    from publisher.deliver.transports import SmtpSettings, SmtpTransport

    config = load_config(Path(root), env={})
    store = Store.open(db_url, clock=lambda: kst(2025, 6, 20, 9, 5))
    settings = SmtpSettings("127.0.0.1", port, "none", "", None, 5.0, 20, "blog.example.com")
    runner = Runner(
        config,
        store,
        lambda: kst(2025, 6, 20, 9, 5),
        lambda: SmtpTransport(settings),
        logging.getLogger(LOG),
        composer=PlainComposer(),
    )
    barrier.wait()
    for _ in range(3):
        summary = runner.tick()
        out.put((summary.built, summary.published, summary.issues_created, summary.sent))
    store.close()


@pytest.mark.slow
def test_two_scheduler_processes_behind_a_barrier_publish_and_send_once(
    make_rig: RigFactory, db_url: str
):
    rig = make_rig(now=kst(2025, 6, 20, 8, 0))
    for n in range(2):
        rig.post(f"news-{n}", f"2025-06-20 09:0{n}")
    add_subscribers(rig.store, 3)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    out = context.Queue()
    args = (str(rig.root), db_url, rig.sink.port, barrier, out)
    procs = [context.Process(target=_process_scheduler, args=args) for _ in range(2)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=40) for _ in range(6)]
    for proc in procs:
        proc.join(20)
        assert proc.exitcode == 0
    assert not rig.tick().built  # finishes what a busy job left over; nothing to rebuild
    assert sum(1 for built, *_ in results if built) == 1
    assert sorted(s for _, published, _, _ in results for s in published) == ["news-0", "news-1"]
    assert sum(len(created) for *_, created, _ in results) == 2
    ids = rig.message_ids()
    assert len(ids) == 6 == len(set(ids))
    assert rig.store.counts(rig.issues()["post:news-0"].id)[DeliveryStatus.SENT] == 3


def test_a_job_held_by_a_live_scheduler_is_left_alone(make_rig: RigFactory):
    rig = make_rig(now=kst(2025, 6, 20, 9, 0))
    rig.post("news", "2025-06-20 09:00")
    assert rig.store.claim_job(PUBLISH, "elsewhere:1:x", timedelta(seconds=30))
    summary = rig.tick()
    assert not summary.built
    assert "publish is being done by another scheduler (elsewhere:1:x)" in summary.waiting
    rig.clock.now += timedelta(seconds=31)  # its lease ran out: taken over
    assert rig.tick().built


# --- status ----------------------------------------------------------------------------------------


def test_status_shows_next_post_digest_jobs_and_issues(make_rig: RigFactory):
    rig = make_rig(now=kst(2025, 6, 20, 9, 5), newsletter=WEEKLY)
    rig.post("news", "2025-06-20 09:00")
    rig.post("later", "2025-06-27 09:00")
    rig.builder.fail_next = 1
    rig.tick()
    lines = status_lines(rig.config, scheduler_status(rig.config, rig.store, rig.clock))
    assert lines[0] == "now: 2025-06-20 09:05 KST"
    assert "newsletter: weekly, posts dated from 2025-06-01 00:00 KST" in lines
    assert "next digest: Monday 2025-06-23 08:00 KST" in lines
    assert (
        "job publish: last run 2025-06-20 09:05 KST, 1 failure in a row, next try "
        "2025-06-20 09:07 KST: RuntimeError: disk on fire"
    ) in lines
    assert "issues: 0 in all, 0 not done" in lines
    rig.clock.now = kst(2025, 6, 20, 9, 7)
    rig.tick()
    lines = status_lines(rig.config, scheduler_status(rig.config, rig.store, rig.clock))
    assert "next post due: 2025-06-27 09:00 KST (later)" in lines
    assert {ISSUES, SEND} <= {s.name for s in rig.store.job_states()}


# --- renamed posts are not mailed again (issue 8, item 1) -----------------------------------------


def _mail_one(rig: Rig, name: str, **fields: str) -> Issue:
    write_post(rig.root, name, title="원래 제목", date="2025-06-20 09:00", **fields)
    add_subscribers(rig.store, 2)
    rig.clock.now = kst(2025, 6, 20, 9, 0)
    first = rig.tick()
    assert len(first.issues_created) == 1 and first.sent == 2
    return rig.issues()[first.issues_created[0]]


def test_a_mailed_post_whose_file_is_renamed_is_not_mailed_again(make_rig: RigFactory):
    rig = make_rig()
    issue = _mail_one(rig, "2025-06-20-original.md")
    posts = rig.root / "posts"
    (posts / "2025-06-20-original.md").rename(posts / "2025-06-20-renamed.md")  # the slug changes

    rig.clock.now += timedelta(minutes=5)
    again = rig.tick()
    assert again.renamed == ["renamed: original → renamed (already mailed, not sent again)"]
    assert again.built and again.published == [] and again.issues_created == []
    assert again.sent == 0 and len(rig.message_ids()) == 2
    assert list(rig.issues()) == [issue.key]
    assert rig.issues()[issue.key].post_slugs == ("renamed",)  # the issue follows the record
    assert [p.slug for p in rig.store.published_posts()] == ["renamed"]
    assert (rig.config.output_path / "posts/renamed/index.html").exists()

    rig.clock.now += timedelta(minutes=5)
    assert rig.tick().renamed == []  # said once


@pytest.mark.parametrize(
    "before, after",
    [
        # an explicit id: the title, the slug and the text may all change
        (
            {"id": "post-7f3c"},
            {"id": "post-7f3c", "title": "새 제목", "slug": "new-slug", "body": "고친 본문"},
        ),
        # no id: the slug and the text change, the date and the title do not
        ({"slug": "first-slug"}, {"slug": "second-slug", "body": "고친 본문"}),
    ],
    ids=["id", "date-and-title"],
)
def test_a_mailed_post_with_a_new_slug_and_text_is_recognised(
    make_rig: RigFactory, before: dict[str, str], after: dict[str, str]
):
    rig = make_rig()
    _mail_one(rig, "a.md", **before)
    (rig.root / "posts/a.md").unlink()
    fields = {"title": "원래 제목", "date": "2025-06-20 09:00", **after}
    write_post(rig.root, "b.md", **fields)

    rig.clock.now += timedelta(minutes=5)
    again = rig.tick()
    old, new = before.get("slug", "a"), after["slug"]
    assert again.renamed == [f"renamed: {old} → {new} (already mailed, not sent again)"]
    assert again.issues_created == [] and again.sent == 0 and len(rig.message_ids()) == 2
    assert len(rig.issues()) == 1


def test_a_different_id_is_a_different_post_even_with_the_same_title_and_date(
    make_rig: RigFactory,
):
    rig = make_rig()
    _mail_one(rig, "a.md", id="one")
    (rig.root / "posts/a.md").unlink()
    write_post(rig.root, "b.md", title="원래 제목", date="2025-06-20 09:00", id="two")
    rig.clock.now += timedelta(minutes=5)
    again = rig.tick()
    assert again.renamed == [] and again.issues_created == ["post:b"] and again.sent == 2


def test_records_made_before_post_ids_are_completed_at_the_next_pass(make_rig: RigFactory):
    """A database upgraded from before issue 8: its records have no title or date yet."""
    rig = make_rig()
    _mail_one(rig, "a.md", slug="first-slug")
    with rig.store.engine.begin() as conn:
        conn.execute(text("UPDATE published SET title = NULL, post_date = NULL"))
        conn.execute(text("DELETE FROM settings WHERE key = 'scheduler.published_identity'"))
    rig.clock.now += timedelta(minutes=5)
    assert rig.tick().renamed == []  # no file changed, yet the posts are read once
    assert [r.title for r in rig.store.published_posts()] == ["원래 제목"]

    write_post(rig.root, "a.md", title="원래 제목", date="2025-06-20 09:00", slug="second-slug")
    rig.clock.now += timedelta(minutes=5)
    again = rig.tick()
    assert again.renamed == ["renamed: first-slug → second-slug (already mailed, not sent again)"]
    assert again.sent == 0 and len(rig.issues()) == 1


# --- one read per pass, and the pages are made from it (issue 8, item 13) -------------------------


def test_a_pass_reads_each_post_once(make_rig: RigFactory):
    import sys

    rig = make_rig()
    rig.post("one", "2025-06-19 09:00")
    rig.post("two", "2025-06-19 10:00")
    opened: list[str] = []
    watching = [True]

    def hook(event: str, args: tuple[object, ...]) -> None:
        # Every open of a post file, by whatever API: the audit event sees them all.
        if watching and event == "open" and str(args[0]).endswith(".md"):
            opened.append(Path(str(args[0])).name)

    sys.addaudithook(hook)
    try:
        assert rig.tick().built
    finally:
        watching.clear()  # audit hooks cannot be removed; this one goes quiet
    assert sorted(opened) == ["one.md", "two.md"]


def test_a_post_saved_while_the_pass_reads_it_is_rendered_again_next_pass(
    make_rig: RigFactory, monkeypatch: pytest.MonkeyPatch
):
    """An editor saves right after the reader took the text (every read of the text, but not
    the read that follows it): the page must end up with what the file finally holds, not
    stay stale for good because the fingerprint took the newer digest (issue 8, 13)."""
    rig = make_rig()
    version = [1]

    def save(n: int) -> Path:
        return write_post(rig.root, "news.md", date="2025-06-19 09:00", body=f"판 {n}" + "!" * n)

    path = save(1)
    from publisher.publish import content

    real_read_bytes = content._read_bytes
    reads = [0]

    def read_then_save(where: Path, *args: Any) -> bytes | None:
        data = real_read_bytes(where, *args)
        if where == path:
            reads[0] += 1
            if reads[0] % 2 == 1:
                version[0] += 1
                save(version[0])
        return data

    monkeypatch.setattr(content, "_read_bytes", read_then_save)
    assert rig.tick().built
    monkeypatch.undo()
    page = rig.config.output_path / "posts/news/index.html"
    assert "판 1!" in page.read_text(encoding="utf-8")  # what was read is what was rendered
    rig.clock.now += timedelta(minutes=1)
    assert rig.tick().built
    assert f"판 {version[0]}" + "!" * version[0] in page.read_text(encoding="utf-8")


# --- a manual build after the clock went back (issue 8, item 15) ----------------------------------


def test_the_scheduler_restores_a_post_a_manual_build_took_down(make_rig: RigFactory):
    rig = make_rig()
    rig.post("news", "2025-06-20 09:00")
    rig.clock.now = kst(2025, 6, 20, 9, 30)
    assert rig.tick().published == ["news"]
    page = rig.config.output_path / "posts/news/index.html"
    build(rig.config, kst(2025, 6, 20, 8, 0))  # a build with the clock an hour and a half back
    assert not page.exists()

    rig.clock.now += timedelta(minutes=1)
    restored = rig.tick()
    assert restored.built and restored.published == [] and restored.sent == 0
    assert page.exists()
    rig.clock.now += timedelta(minutes=1)
    assert not rig.tick().built  # its own output: not rebuilt again
