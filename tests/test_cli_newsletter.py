"""The newsletter commands end to end: CSV import, send, status, and process faults (G1, G2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from builders import write_config, write_post
from publisher.cli import main as cli_module
from publisher.store import ConsentMethod, DeliveryStatus, Store, SubscriberStatus
from sending import open_store
from smtp_sink import SmtpSink

pytestmark = pytest.mark.timeout(90)
SECRET = "test-secret-key-0123456789abcdef"


def make_site(root: Path, sink: SmtpSink | None = None, **overrides: dict) -> Path:
    newsletter: dict = {"transport": "outbox"}
    smtp: dict = {}
    if sink is not None:
        newsletter = {"transport": "smtp"}
        smtp = {"host": sink.host, "port": sink.port, "security": "none", "timeout_seconds": 2}
    newsletter.update(overrides.pop("newsletter", {}))
    write_config(root, newsletter=newsletter, smtp=smtp, **overrides)
    write_post(root, "hello.md", title="안녕하세요", body="첫 글의 본문입니다.", category="세계")
    write_post(root, "later.md", title="나중 글", date="2999-01-01 09:00")
    return root


def run(root: Path, db_url: str, *args: str, monkeypatch, capsys) -> tuple[int, str, str]:
    """Run ``publisher --site ROOT ARGS`` in-process through main(): exit code, out, err."""
    monkeypatch.setenv("PUBLISHER_DATABASE_URL", db_url)
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", SECRET)
    monkeypatch.setattr("sys.argv", ["publisher", "--site", str(root), *args])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.fixture
def cli(tmp_path: Path, db_url: str, monkeypatch, capsys):
    def invoke(*args: str, site: Path | None = None) -> tuple[int, str, str]:
        return run(site or tmp_path, db_url, *args, monkeypatch=monkeypatch, capsys=capsys)

    return invoke


def test_import_with_a_bad_row_imports_nothing(tmp_path: Path, db_url: str, cli):
    make_site(tmp_path)
    csv = tmp_path / "readers.csv"
    csv.write_text(
        "\ufeffEmail,categories\n"
        "a@example.com,세계;경제\n"
        "not-an-address,\n"
        "b@example.com,\n"
        "c@@example.com,\n",
        encoding="utf-8",
    )
    code, _, err = cli("subscribers", "import", str(csv))
    assert code == 1
    assert "error: 2 import problems:" in err
    assert f"{csv}:3: invalid email address 'not-an-address'" in err
    assert f"{csv}:5: invalid email address 'c@@example.com'" in err
    assert "hint: Nothing was imported" in err
    assert open_store(db_url).count_subscribers() == 0

    code, out, _ = cli("subscribers", "import", str(csv), "--skip-invalid")
    assert code == 0 and "imported 2 subscribers from readers.csv" in out
    found = open_store(db_url).find_subscriber("a@example.com")
    assert found is not None and found.categories == ("경제", "세계")
    assert found.consent is not None
    assert (found.consent.method, found.consent.source) == (ConsentMethod.IMPORT, "readers.csv")


def test_add_list_remove_export(tmp_path: Path, db_url: str, cli):
    make_site(tmp_path)
    code, _, err = cli("subscribers", "add", "a@example.com", "bad@")
    assert code == 1 and "Nothing was added" in err
    assert cli("subscribers", "add", "a@example.com", "B@Example.com", "--category", "세계")[0] == 0
    assert cli("subscribers", "remove", "a@example.com")[1] == "unsubscribed a@example.com\n"
    assert cli("subscribers", "list", "--status", "active")[1] == "b@example.com\tactive\t세계\n"
    export = tmp_path / "out.csv"
    assert cli("subscribers", "export", str(export))[0] == 0
    lines = export.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("email,status,categories,created_at")
    assert [line.split(",")[:2] for line in lines[1:]] == [
        ["a@example.com", "unsubscribed"],
        ["b@example.com", "active"],
    ]


def test_send_dry_run_test_to_send_and_status(
    tmp_path: Path, db_url: str, cli, smtp_sink: SmtpSink
):
    make_site(tmp_path, smtp_sink)
    cli("subscribers", "add", "a@example.com", "b@example.com")
    code, out, _ = cli("send", "--post", "hello", "--dry-run")
    assert code == 0 and "would send to 2 subscribers" in out
    code, out, _ = cli("send", "--post", "posts/hello.md", "--test-to", "me@example.com")
    assert code == 0 and "test message sent to me@example.com" in out
    assert smtp_sink.recipients() == ["me@example.com"]
    assert open_store(db_url).list_issues() == []  # a test send leaves no records

    code, out, err = cli("send", "--post", "hello")
    assert code == 0, err
    assert "issue complete" in out
    code, out, _ = cli("send", "--post", "hello")
    assert code == 0 and "this run sent 0" in out
    assert Counter(smtp_sink.recipients()) == Counter(
        {"me@example.com": 1, "a@example.com": 1, "b@example.com": 1}
    )
    code, out, _ = cli("status")
    assert "post:hello [done] 안녕하세요\n  sent 2\n" in out
    assert "newsletter: per_post" in out  # the scheduler's lines come first
    assert cli("run", "--once")[0] == 0
    assert "next post due: 2999-01-01 09:00 KST (later)" in cli("status")[1]


def test_send_refuses_a_post_mailed_before_it_was_renamed(
    tmp_path: Path, db_url: str, cli, smtp_sink: SmtpSink
):
    """Issue 8, item 1: `mv` then `publisher send --post NEW` must not mail the list again."""
    make_site(tmp_path, smtp_sink)
    cli("subscribers", "add", "a@example.com")
    assert cli("send", "--post", "hello")[0] == 0
    assert cli("run", "--once")[0] == 0  # the scheduler records what is published
    (tmp_path / "posts/hello.md").rename(tmp_path / "posts/hi.md")
    for extra in ((), ("--dry-run",)):
        code, _, err = cli("send", "--post", "hi", *extra)
        assert code == 1
        assert (
            "posts/hi.md was already mailed as issue post:hello (the post was renamed since); "
            "it is not sent again"
        ) in err
    assert smtp_sink.recipients() == ["a@example.com"]
    code, out, _ = cli("run", "--once")
    assert code == 0 and "renamed: hello → hi (already mailed, not sent again)" in out
    assert cli("send", "--post", "hi")[0] == 1  # and after the scheduler recorded the rename
    assert smtp_sink.recipients() == ["a@example.com"]


def test_send_refuses_a_scheduled_post(tmp_path: Path, cli):
    make_site(tmp_path)
    code, _, err = cli("send", "--post", "later")
    assert code == 1 and "posts/later.md is scheduled for 2999-01-01" in err
    code, _, err = cli("send", "--post", "nope")
    assert code == 1 and "no post with slug or path 'nope'" in err


def test_status_highlights_in_doubt(tmp_path: Path, db_url: str, cli, smtp_sink: SmtpSink):
    make_site(tmp_path, smtp_sink, newsletter={"in_doubt_policy": "hold"})
    cli("subscribers", "add", "a@example.com", "b@example.com")
    smtp_sink.script("a@example.com", "data", "drop")
    code, out, _ = cli("send", "--post", "hello")
    assert code == 0 and "1 messages are in doubt" in out
    assert "issue complete" not in out  # held rows keep it open (issue 8)
    assert "1 messages in doubt are held for you" in out
    assert "publisher send --post hello --release-held" in out
    status = cli("status")[1]
    assert "post:hello [sending]" in status and "IN DOUBT: 1" in status
    assert "    in doubt: a@example.com\n" in status
    assert "release: publisher send --post hello --release-held [--address ADDR]" in status
    code, out, err = cli("send", "--post", "hello", "--release-held", "--address", "b@example.com")
    assert code == 0 and "no message in doubt for b@example.com, nothing to release" in err
    assert "issue not complete" in out and smtp_sink.recipients().count("b@example.com") == 1
    code, out, _ = cli("send", "--post", "hello", "--release-held", "--address", "A@example.com")
    assert code == 0, out
    assert "1 held messages released" in out and "issue complete" in out
    status = cli("status")[1]
    assert "    re-sent (same Message-ID): a@example.com (sent)" in status
    assert "IN DOUBT" not in status and "post:hello [done]" in status
    assert Counter(smtp_sink.recipients()) == {"a@example.com": 2, "b@example.com": 1}


def test_address_needs_release_held(tmp_path: Path, cli):
    make_site(tmp_path)
    code, _, err = cli("send", "--post", "hello", "--address", "a@example.com")
    assert code == 2 and "--address goes with --release-held" in err


def test_issue_that_cannot_be_built_pauses_then_resumes_once_fixed(
    tmp_path: Path, db_url: str, cli, smtp_sink: SmtpSink
):
    """Issue 8 item 3, sender side: an issue stored with a title the message builder
    refuses (as an older post reader let through) pauses and mails nobody."""
    from publisher.store import NewIssue

    make_site(tmp_path, smtp_sink)
    cli("subscribers", "add", "a@example.com", "b@example.com")
    bad = NewIssue(
        "post:hello", ("hello",), ("세계",), "안녕\u2028하세요", "", "<p>x</p>", "x", "0" * 64
    )
    open_store(db_url).create_issue(bad)
    code, out, err = cli("send", "--post", "hello")
    assert code == 1
    assert (
        "error: issue paused: issue post:hello (posts: hello): the message cannot be built" in err
    )
    assert "Subject: contains a control character or line separator" in err
    assert smtp_sink.messages == 0
    status = cli("status")[1]
    assert "post:hello [paused]" in status and "pending 2" in status
    assert "paused: issue post:hello (posts: hello): the message cannot be built" in status
    code, _, err = cli("send", "--post", "hello")
    assert code == 1 and "is paused" in err
    # The post on disk is fine: --resume re-renders the issue, since nobody got a copy.
    code, out, err = cli("send", "--post", "hello", "--resume")
    assert code == 0, err
    assert "nobody had been mailed; the issue is re-rendered from the post" in out
    assert "issue complete" in out
    assert sorted(smtp_sink.recipients()) == ["a@example.com", "b@example.com"]
    issue = open_store(db_url).find_issue("post:hello")
    assert issue is not None and issue.subject == "안녕하세요"


# --- process faults: the real CLI in a subprocess ---------------------------------------------


def start_sender(root: Path, db_url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PUBLISHER_DATABASE_URL": db_url, "PUBLISHER_SECRET_KEY": SECRET}
    return subprocess.Popen(
        [sys.executable, "-m", "publisher", "--site", str(root), "send", "--post", "hello"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def prepared_site(root: Path, db_url: str, sink: SmtpSink, readers: int) -> Store:
    make_site(root, sink)
    store = open_store(db_url)
    for i in range(1, readers + 1):
        store.add_subscriber(f"reader{i}@example.com", _operator())
    return store


def _operator():
    from sending import OPERATOR

    return OPERATOR


@pytest.mark.slow
@pytest.mark.parametrize("nth", [1, 4, 8])
def test_kill_9_mid_send_then_restart_g1(tmp_path: Path, db_url: str, smtp_sink: SmtpSink, nth):
    store = prepared_site(tmp_path, db_url, smtp_sink, readers=8)
    reached = smtp_sink.data_event(nth, hold=30)  # the nth message is in the reply window
    proc = start_sender(tmp_path, db_url)
    assert reached.wait(30), proc.communicate(timeout=5)
    proc.kill()
    proc.communicate(timeout=10)
    restart = start_sender(tmp_path, db_url)
    _, err = restart.communicate(timeout=60)
    assert restart.returncode == 0, err

    issue = store.list_issues()[0]
    rows = {d.message_id: d for d in store.iter_deliveries(issue.id)}
    copies = Counter(smtp_sink.message_ids())
    assert len(rows) == 8
    assert set(copies) == set(rows)  # nobody skipped, nothing unknown sent
    assert {d.status for d in rows.values()} == {DeliveryStatus.SENT}
    duplicated = {mid for mid, n in copies.items() if n > 1}
    assert duplicated == {f"<issue-{issue.id}.{nth}@blog.example.com>"}
    assert max(copies.values()) == 2
    assert all(rows[mid].resent for mid in duplicated)  # every duplicate was an in-doubt row
    # Rows the killed run had claimed but not started were never in doubt (issue 8).
    assert {mid for mid, d in rows.items() if d.resent} == duplicated
    assert "in doubt" in err  # the restart reported the recovery


@pytest.mark.slow
def test_sigterm_finishes_the_message_in_flight_and_exits_0_g2(
    tmp_path: Path, db_url: str, smtp_sink: SmtpSink
):
    store = prepared_site(tmp_path, db_url, smtp_sink, readers=6)
    reached = smtp_sink.data_event(3, hold=1.0)
    proc = start_sender(tmp_path, db_url)
    assert reached.wait(30), proc.communicate(timeout=5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "SIGTERM: finishing the message in flight" in err
    assert "stopped: stopped by a signal" in out
    issue = store.list_issues()[0]
    counts = store.counts(issue.id)
    assert counts[DeliveryStatus.SENT] == 3
    assert counts[DeliveryStatus.PENDING] == 3
    assert counts[DeliveryStatus.SENDING] == counts[DeliveryStatus.IN_DOUBT] == 0
    again = start_sender(tmp_path, db_url)
    again.communicate(timeout=60)
    assert again.returncode == 0
    assert sorted(Counter(smtp_sink.message_ids()).values()) == [1] * 6
    assert store.count_subscribers(SubscriberStatus.ACTIVE) == 6


def test_summaries_say_where_mail_went_and_warn_of_unused_smtp(
    tmp_path: Path, db_url: str, cli, smtp_sink: SmtpSink, monkeypatch
):
    """Issue 8, item 18: with transport = "outbox" a set $PUBLISHER_SMTP_URL is ignored;
    say so, and name the destination in every send and run summary."""
    site = make_site(tmp_path / "outbox-site")
    outbox = (site / "outbox").resolve()
    monkeypatch.setenv("PUBLISHER_SMTP_URL", f"smtp://{smtp_sink.host}:{smtp_sink.port}")
    cli("subscribers", "add", "a@example.com", site=site)
    code, out, err = cli("send", "--post", "hello", "--dry-run", site=site)
    assert code == 0 and f"mail would go to the outbox folder {outbox}/" in out
    code, out, err = cli("send", "--post", "hello", site=site)
    assert code == 0, err
    assert f"mail went to the outbox folder {outbox}/ (one .eml file per message)" in out
    assert (
        "warning: $PUBLISHER_SMTP_URL is set but unused: [newsletter].transport "
        f'is "outbox", so mail is written to {outbox}/ and not sent; set transport = "smtp"'
    ) in err
    assert len(list(outbox.glob("*.eml"))) == 1 and smtp_sink.recipients() == []
    code, out, err = cli("run", "--once", site=site)
    assert code == 0, err
    summary = out.splitlines()[0]
    assert summary.startswith("site built;")
    assert summary.endswith(f"; mail to the outbox folder {outbox}/ (one .eml file per message)")
    assert "$PUBLISHER_SMTP_URL is set but unused" in err

    monkeypatch.delenv("PUBLISHER_SMTP_URL")
    site = make_site(tmp_path / "smtp-site", smtp_sink)
    cli("subscribers", "add", "b@example.com", site=site)
    code, out, err = cli("send", "--post", "hello", site=site)
    assert code == 0, err
    assert f"mail went to SMTP server {smtp_sink.host}:{smtp_sink.port} (none)" in out
    assert "unused" not in err
    code, out, _ = cli("send", "--post", "hello", "--test-to", "me@example.com", site=site)
    assert f"test message sent to me@example.com via SMTP server {smtp_sink.host}:" in out
