"""``publisher run``: one pass for cron, the schedule loop, SIGTERM and kill -9 (G1, G2, G5, G8)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import schedule
from click.testing import CliRunner

from builders import write_config, write_post
from conftest import REPO
from publisher.cli import main as cli_module
from publisher.cli.run import serve
from publisher.config import load_config
from publisher.deliver.transports import transport_factory
from publisher.schedule.runner import Runner
from publisher.store import DeliveryStatus, Store
from sending import OPERATOR, PlainComposer
from smtp_sink import SmtpSink

pytestmark = pytest.mark.timeout(60)


def invoke(*args: str) -> Any:
    cli_module._register_commands()
    return CliRunner().invoke(cli_module.cli, list(args))


# --- --once on the sample site (what `make run` does) ---------------------------------------------


@pytest.fixture
def sample_site(tmp_path: Path) -> Path:
    """A fresh copy of the repository's sample site: config.toml and posts/, nothing else."""
    root = tmp_path / "sample"
    root.mkdir()
    shutil.copy(REPO / "config.toml", root / "config.toml")
    shutil.copytree(REPO / "posts", root / "posts")
    return root


def test_run_once_on_a_fresh_sample_site_without_subscribers_sends_nothing(sample_site: Path):
    first = invoke("--site", str(sample_site), "run", "--once")
    assert first.exit_code == 0, first.output
    start = load_config(sample_site).newsletter.start
    assert isinstance(start, date)
    dated = [p.name[:10] for p in (sample_site / "posts").glob("2025-*.md")]  # dated file names
    mailed = sum(1 for day in dated if day >= start.isoformat())
    summary = f"site built; {len(dated)} posts published; {mailed} issue"
    assert summary in first.output and "messages: 0 sent, 0 failed, 0 in doubt" in first.output
    assert "dated before the newsletter start" in first.output  # the back catalogue is skipped
    assert "waiting: next post due 2027-01-04 09:00 KST" in first.output
    assert (sample_site / "public/index.html").exists() and (sample_site / "publisher.db").exists()
    assert not (sample_site / "outbox").exists()  # no subscribers, no mail

    again = invoke("--site", str(sample_site), "run", "--once")
    assert again.exit_code == 0, again.output
    assert "site unchanged; 0 posts published; 0 issues created; messages: 0 sent" in again.output

    status = invoke("--site", str(sample_site), "run", "--status")
    assert status.exit_code == 0, status.output
    assert "next post due: 2027-01-04 09:00 KST (how-to-read-economic-outlooks)" in status.output
    assert f"issues: {mailed} in all, 0 not done" in status.output


def test_new_makes_a_draft_that_status_lists_and_no_pass_mails_until_it_is_published(
    sample_site: Path,
):
    """Issue 8, item 2; then item 1: the post renamed after it was mailed is not mailed again."""
    site = str(sample_site)
    assert invoke("--site", site, "run", "--once").exit_code == 0  # the back catalogue
    store = Store.open(load_config(sample_site).database_url)
    store.add_subscriber("reader@example.com", OPERATOR)
    store.close()

    made = invoke("--site", site, "new", "새 소식", "--category", "세계")
    assert made.exit_code == 0, made.output
    assert "Created posts/새-소식.md, a draft: it is not published or mailed yet." in made.output
    assert "set 'draft: false' in its front matter" in made.output
    path = sample_site / "posts/새-소식.md"
    assert "\ndraft: true\n" in path.read_text(encoding="utf-8")
    status = invoke("--site", site, "run", "--status")
    assert (
        "  draft, not published: posts/새-소식.md (set 'draft: false' to publish)" in status.output
    )
    assert "  nothing to publish or mail" in status.output
    once = invoke("--site", site, "run", "--once")
    assert "0 posts published; 0 issues created; messages: 0 sent" in once.output

    path.write_text(path.read_text(encoding="utf-8").replace("draft: true", "draft: false"))
    for command in (["run", "--status"], ["status"]):
        shown = invoke("--site", site, *command)
        assert shown.exit_code == 0, shown.output
        assert "  would publish: 새-소식 (posts/새-소식.md), dated " in shown.output
        assert (
            "  would mail: issue post:새-소식 (새-소식) in the next pass to 1 recipient(s)"
        ) in shown.output
    assert not (sample_site / "outbox").exists()  # status sends nothing
    sent = invoke("--site", site, "run", "--once")
    assert "1 post published; 1 issue created; messages: 1 sent" in sent.output, sent.output

    path.rename(sample_site / "posts/새-이름.md")
    renamed = invoke("--site", site, "run", "--once")
    assert "  renamed: 새-소식 → 새-이름 (already mailed, not sent again)" in renamed.output
    assert "0 posts published; 0 issues created; messages: 0 sent" in renamed.output
    assert len(list((sample_site / "outbox").iterdir())) == 1


def test_a_manual_build_with_the_clock_back_keeps_what_the_scheduler_published(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
):
    """Issue 8, item 15: the scheduler published at 2099-01-01 10:00; the clock now says 2026."""
    monkeypatch.setenv("PUBLISHER_DATABASE_URL", db_url)
    root = write_config(tmp_path / "site", newsletter={"start": date(2099, 1, 1)})
    write_post(root, "future.md", title="미래", date="2099-01-01 09:00")
    write_post(root, "later.md", title="나중", date="2099-01-01 11:00")  # not out yet
    config = load_config(root)
    store = Store.open(config.database_url)
    moment = datetime(2099, 1, 1, 1, 0, tzinfo=UTC)  # 10:00 in Seoul
    runner = Runner(
        config,
        store,
        lambda: moment,
        transport_factory(config),
        logging.getLogger(),
        composer=PlainComposer(),
    )
    assert runner.tick().published == ["future"]
    store.close()

    built = invoke("--site", str(root), "build")
    assert built.exit_code == 0, built.output
    assert "is behind the scheduler's last pass; posts it already published stay published" in (
        built.output
    )
    assert (root / "public/posts/future/index.html").exists()
    assert not (root / "public/posts/later").exists()


# --- the schedule loop (G5, G8, L5) -----------------------------------------------------------------


class StubRunner:
    """Stands in for Runner: counts ticks, raises on the first, stops the loop on the third."""

    name = "stub"

    def __init__(self, stop: threading.Event, on_tick: Any) -> None:
        self.stop = stop
        self.ticks = 0
        self.on_tick = on_tick

    def tick(self) -> None:
        self.ticks += 1
        self.on_tick(self.ticks)


@pytest.fixture
def wall_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime]]:
    """The wall clock as ``schedule`` sees it; tests move it (freezegun is not installed)."""
    now = [datetime(2025, 6, 20, 9, 0)]

    class FakeDatetime(dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return now[0] if tz is None else now[0].replace(tzinfo=UTC).astimezone(tz)

    fake = types.ModuleType("datetime")
    fake.__dict__.update(dt.__dict__)
    fake.datetime = FakeDatetime  # type: ignore[attr-defined]
    monkeypatch.setattr(schedule, "datetime", fake)
    yield now


def test_the_loop_survives_a_failing_pass_and_a_clock_stepping_back(
    wall_clock: list[datetime], caplog: pytest.LogCaptureFixture
):
    stop = threading.Event()
    seen: list[float] = []

    def on_tick(n: int) -> None:
        seen.append(time.monotonic())
        if n == 1:
            raise RuntimeError("database went away")  # G5: logged, the loop goes on
        if n == 3:
            stop.set()

    runner = StubRunner(stop, on_tick)
    thread = threading.Thread(
        target=serve, args=(runner, 1, stop, logging.getLogger("test.run")), daemon=True
    )
    with caplog.at_level(logging.INFO, "test.run"):
        thread.start()
        deadline = time.monotonic() + 10
        while runner.ticks < 2 and time.monotonic() < deadline:
            wall_clock[0] += dt.timedelta(seconds=0.5)  # schedule's clock moves on
            time.sleep(0.1)
        stepped_back = time.monotonic()
        wall_clock[0] -= dt.timedelta(minutes=55)  # G8: schedule alone would wait 55 minutes
        thread.join(10)
    assert not thread.is_alive() and runner.ticks == 3
    assert seen[2] - stepped_back < 2.5  # the pass ran at once, with the clock frozen
    assert any("pass failed, retrying in the next one" in m for m in caplog.messages)
    assert any("the clock stepped back" in m for m in caplog.messages)


# --- processes against the SMTP sink (G1, G2) -------------------------------------------------------


SUBSCRIBERS = 5


@pytest.fixture
def smtp_site(tmp_path: Path, db_url: str, smtp_sink: SmtpSink) -> Path:
    """A site with one published post, five subscribers on ``db_url`` and SMTP to the sink."""
    root = write_config(
        tmp_path / "site",
        newsletter={"start": date(2025, 6, 1), "transport": "smtp"},
        smtp={
            "host": "127.0.0.1",
            "port": smtp_sink.port,
            "security": "none",
            "timeout_seconds": 10,
        },
        schedule={"poll_seconds": 1, "lease_seconds": 30},
    )
    root = root.resolve()
    write_post(root, "news.md", title="소식", date="2025-06-20 09:00")
    store = Store.open(db_url)
    for n in range(1, SUBSCRIBERS + 1):
        store.add_subscriber(f"reader{n}@example.com", OPERATOR)
    store.close()
    return root


def start_run(root: Path, db_url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PUBLISHER_DATABASE_URL": db_url}
    return subprocess.Popen(
        [sys.executable, "-m", "publisher", "--site", str(root), "run", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_once(root: Path, db_url: str) -> str:
    proc = start_run(root, db_url, "--once")
    out, err = proc.communicate(timeout=40)
    assert proc.returncode == 0, out + err
    return out


def deliveries(db_url: str) -> list[Any]:
    store = Store.open(db_url)
    try:
        (issue,) = store.list_issues()
        return list(store.iter_deliveries(issue.id))
    finally:
        store.close()


def test_sigterm_during_a_send_finishes_the_message_and_exits_0(
    smtp_site: Path, db_url: str, smtp_sink: SmtpSink
):
    second = smtp_sink.data_event(2, hold=1.0)
    proc = start_run(smtp_site, db_url)
    try:
        assert second.wait(30), "the scheduler never reached the second message"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "SIGTERM: finishing the message in flight, then stopping" in err
    statuses = sorted(d.status for d in deliveries(db_url))
    assert statuses == [DeliveryStatus.PENDING] * 3 + [DeliveryStatus.SENT] * 2  # G2: none in doubt

    out = run_once(smtp_site, db_url)
    assert "messages: 3 sent, 0 failed, 0 in doubt" in out
    assert all(d.status == DeliveryStatus.SENT for d in deliveries(db_url))
    assert sorted(smtp_sink.copies().values()) == [1] * SUBSCRIBERS


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_send_then_restart_skips_nobody(
    smtp_site: Path, db_url: str, smtp_sink: SmtpSink
):
    third = smtp_sink.data_event(3, hold=5.0)
    proc = start_run(smtp_site, db_url)
    try:
        assert third.wait(30), "the scheduler never reached the third message"
        proc.kill()  # SIGKILL after the 3rd DATA, before its reply (G1)
    finally:
        proc.kill()
        proc.communicate(timeout=10)

    run_once(smtp_site, db_url)  # startup recovery: dead claimer's row in doubt, resent once
    rows = deliveries(db_url)
    assert all(d.status == DeliveryStatus.SENT for d in rows)  # nobody skipped
    copies = smtp_sink.copies()
    assert sorted(d.message_id for d in rows) == sorted(copies)  # everyone got it
    duplicated = {m for m, n in copies.items() if n > 1}
    assert max(copies.values()) <= 2
    assert duplicated == {d.message_id for d in rows if d.resent}  # duplicates only in doubt
    assert len(duplicated) == 1
