"""The suppression list (issue 12): the CLI, the sender, sign-ups, imports; status reports."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest

from publisher.deliver.sender import send_issue
from publisher.store import DeliveryStatus, SubscriberStatus
from publisher.store.bounces import (
    BounceEvent,
    BouncePolicy,
    BounceStore,
    EventKind,
    SuppressionReason,
)
from publisher.store.quotas import Quota
from publisher.store.signups import ConfirmOutcome, WebStore
from sending import PlainComposer, add_subscribers, make_issue, open_store, policy, smtp_to
from smtp_sink import SmtpSink
from test_cli_newsletter import make_site, run

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def cli(tmp_path: Path, db_url: str, monkeypatch, capsys):  # type: ignore[no-untyped-def]
    make_site(tmp_path)

    def invoke(*args: str) -> tuple[int, str, str]:
        return run(tmp_path, db_url, *args, monkeypatch=monkeypatch, capsys=capsys)

    return invoke


def test_suppressions_commands(tmp_path: Path, db_url: str, cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("suppressions", "add", "Spam@Example.com", "--note", "by phone")[1] == (
        "spam@example.com: suppressed\n"
    )
    assert "already suppressed" in cli("suppressions", "add", "spam@example.com")[1]
    code, _, err = cli("suppressions", "add", "not-an-address")
    assert code == 1 and "invalid email address" in err
    source = tmp_path / "list.csv"
    source.write_text("email,note\nA@example.com,x\n\nspam@example.com,y\n", encoding="utf-8")
    assert cli("suppressions", "import", str(source))[1] == "1 suppressed, 1 already on the list\n"
    bad = tmp_path / "bad.csv"
    bad.write_text("email\nok@example.com\nbroken\n", encoding="utf-8")
    code, _, err = cli("suppressions", "import", str(bad))
    assert code == 1 and f"{bad}:3:" in err and "Nothing was imported" in err
    listed = cli("suppressions", "list")[1].splitlines()
    assert [line.split("\t")[:3] for line in listed] == [
        ["a@example.com", "import", f"import:{source}"],
        ["spam@example.com", "operator", "cli"],
    ]
    out = tmp_path / "out.csv"
    cli("suppressions", "export", str(out))
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "email,reason,source,detail,created_at"
    assert lines[2].startswith("spam@example.com,operator,cli,by phone,")
    assert "removed" in cli("suppressions", "remove", "spam@example.com")[1]
    assert "was not suppressed" in cli("suppressions", "remove", "spam@example.com")[1]


def test_imports_and_adds_never_undo_a_suppression(tmp_path: Path, db_url: str, cli) -> None:  # type: ignore[no-untyped-def]
    cli("suppressions", "add", "gone@example.com")
    readers = tmp_path / "readers.csv"
    readers.write_text("email\ngone@example.com\nnew@example.com\n", encoding="utf-8")
    out = cli("subscribers", "import", str(readers))[1]
    assert "imported 1 subscribers" in out and "1 suppressed addresses skipped" in out
    assert "is suppressed; not added" in cli("subscribers", "add", "gone@example.com")[1]
    store = open_store(db_url)
    assert store.find_subscriber("gone@example.com") is None


def test_the_sender_skips_suppressed_addresses_and_reports_them(
    db_url: str, smtp_sink: SmtpSink
) -> None:
    store = open_store(db_url)
    add_subscribers(store, 3)
    BounceStore(store).suppress("reader2@example.com", SuppressionReason.OPERATOR, "test")
    issue = make_issue(store)
    report = send_issue(
        store,
        issue.id,
        smtp_to(smtp_sink),
        PlainComposer(),
        policy(),
        rng=random.Random(1),
        clock=store.clock,
    )
    assert (report.sent, report.skipped) == (2, 1)
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == [
        "reader1@example.com",
        "reader3@example.com",
    ]
    skipped = [d for d in store.iter_deliveries(issue.id) if d.status == DeliveryStatus.SKIPPED]
    assert [d.last_reply for d in skipped] == ["address is suppressed (operator)"]


def test_signups_and_confirmations_honour_the_list(db_url: str) -> None:
    store = open_store(db_url)
    web = WebStore.open(store)
    quotas = [Quota("global", 100, timedelta(hours=1))]
    bounces = BounceStore(store)
    bounces.suppress("blocked@example.com", SuppressionReason.COMPLAINT, "test")
    result = web.signup("blocked@example.com", [], source="t", text_version="1", quotas=quotas)
    assert result.send is False
    assert web.confirm(result.subscriber_id, result.state_version, "t") == ConfirmOutcome.INVALID
    # A complaint after signing up: the pending link no longer confirms.
    other = web.signup("later@example.com", [], source="t", text_version="1", quotas=quotas)
    assert other.send is True
    bounces.suppress("later@example.com", SuppressionReason.COMPLAINT, "test")
    assert web.confirm(other.subscriber_id, other.state_version, "t") == ConfirmOutcome.INVALID
    found = store.find_subscriber("later@example.com")
    assert found is not None and found.status == SubscriberStatus.PENDING


def test_status_shows_reports_and_warns_on_complaints(tmp_path: Path, db_url: str, cli) -> None:  # type: ignore[no-untyped-def]
    store = open_store(db_url)
    add_subscribers(store, 4)
    issue = make_issue(store)
    store.snapshot(issue.id)
    from publisher.store import Reply

    rows = store.claim(issue.id, "w", 10, timedelta(minutes=5))
    for row in rows:
        store.mark_sent(row.id, Reply(250, None, "ok"), f"<m{row.id}@x>")
    bounces = BounceStore(store)
    p = BouncePolicy(3, 5, 30)
    for kind, row in ((EventKind.HARD, rows[0]), (EventKind.COMPLAINT, rows[1])):
        event = BounceEvent(kind, row.subscriber_id, row.id, issue.id, "5.1.1", "d", "pipe", "r")
        bounces.record(event, p)
    out = cli("status")[1]
    assert (
        "  reports: bounces 1 hard, 0 soft; complaints 1 (25.00% of 4 delivered); "
        "unsubscribed by mail 0"
    ) in out
    assert "WARNING: complaint rate 25.00% reached 0.3%, Gmail's and Yahoo's limit" in out
