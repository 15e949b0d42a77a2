"""VERP return paths (issue 12): the sender sets them, only genuine ones decode."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from builders import make_config
from publisher.deliver.sender import SendPolicy, send_issue
from publisher.errors import PublisherError
from publisher.inbound.verp import ReturnPath, return_path
from sending import PlainComposer, add_subscribers, make_issue, open_store, policy, smtp_to
from smtp_sink import SmtpSink

KEY = "k" * 32
PATH = ReturnPath("bounces@Blog.Example.com", KEY.encode())


def test_a_return_path_names_its_row_and_survives_case_folding() -> None:
    address = PATH.address(12, 345)
    local, _, domain = address.partition("@")
    assert local.startswith("bounces+12.345.") and domain == "blog.example.com"
    assert len(local) <= 64  # RFC 5321 section 4.5.3.1.1
    assert PATH.decode(address) == (12, 345)
    assert PATH.decode(f"<{address.upper()}>") == (12, 345)
    assert PATH.is_ours(address) and PATH.is_ours("bounces@blog.example.com")
    assert not PATH.is_ours("someone@blog.example.com")


@pytest.mark.parametrize(
    "forged",
    [
        "bounces+12.346.{mac}@blog.example.com",  # another subscriber, same MAC
        "bounces+13.345.{mac}@blog.example.com",  # another issue
        "bounces+12.345.{mac}@evil.example.net",  # another domain
        "other+12.345.{mac}@blog.example.com",  # another mailbox
        "bounces+12.345.aaaaaaaaaaaaaaaa@blog.example.com",  # a made-up MAC
        "bounces+12.345@blog.example.com",  # no MAC
        "bounces+x.345.{mac}@blog.example.com",
        "",
        "not an address",
    ],
)
def test_a_forged_or_altered_return_path_does_not_decode(forged: str) -> None:
    mac = PATH.address(12, 345).split("@")[0].rsplit(".", 1)[1]
    assert PATH.decode(forged.format(mac=mac)) is None


def test_another_key_does_not_verify() -> None:
    other = ReturnPath("bounces@blog.example.com", b"x" * 32)
    assert other.decode(PATH.address(1, 2)) is None


def test_config_needs_the_key_when_a_bounce_address_is_set(tmp_path: Path) -> None:
    assert return_path(make_config(tmp_path)) is None
    config = make_config(tmp_path, newsletter={"bounce_address": "bounces@blog.example.com"})
    with pytest.raises(PublisherError, match=r"\$PUBLISHER_BOUNCE_KEY is not set"):
        return_path(config)
    short = make_config(
        tmp_path,
        env={"PUBLISHER_BOUNCE_KEY": "short"},
        newsletter={"bounce_address": "bounces@blog.example.com"},
    )
    with pytest.raises(PublisherError, match="shorter than 16"):
        return_path(short)
    good = make_config(
        tmp_path,
        env={"PUBLISHER_BOUNCE_KEY": KEY},
        newsletter={"bounce_address": "bounces@blog.example.com"},
    )
    made = SendPolicy.from_config(good)
    assert made.return_path == ReturnPath("bounces@blog.example.com", KEY.encode())


def test_the_sender_uses_each_rows_return_path_as_mail_from(
    db_url: str, smtp_sink: SmtpSink
) -> None:
    store = open_store(db_url)
    add_subscribers(store, 2)
    issue = make_issue(store)
    p = policy(return_path=PATH)
    report = send_issue(
        store,
        issue.id,
        smtp_to(smtp_sink),
        PlainComposer(),
        p,
        rng=random.Random(1),
        clock=store.clock,
    )
    assert report.sent == 2
    by_rcpt = {r.rcpt_tos[0]: r.mail_from for r in smtp_sink.received}
    ids = {s.email: s.id for s in store.iter_subscribers()}
    for email, mail_from in by_rcpt.items():
        assert PATH.decode(mail_from) == (issue.id, ids[email])
    assert policy().envelope_from(1, 2) == "news@blog.example.com"
