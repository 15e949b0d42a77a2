"""Reports through the pipe (`publisher inbound` in a subprocess) and the LMTP/SMTP listener."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import reports
from builders import write_config
from inbound_world import UNSUBSCRIBE, VERP_KEY, World, sent_world
from publisher.deliver.tokens import Purpose, make_signer
from publisher.inbound.listener import Listener
from publisher.store.bounces import BounceStore
from sending import open_store

pytestmark = pytest.mark.timeout(120)
SECRET = "s" * 32


def site(root: Path, db_url: str) -> dict[str, str]:
    write_config(
        root,
        newsletter={
            "from_address": "news@blog.example.com",
            "bounce_address": "bounces@blog.example.com",
            "unsubscribe_mailto": UNSUBSCRIBE,
            "bounce_limit": 1,
        },
        inbound={"max_message_bytes": 200_000},
    )
    return {
        **os.environ,
        "PUBLISHER_DATABASE_URL": db_url,
        "PUBLISHER_BOUNCE_KEY": VERP_KEY,
        "PUBLISHER_SECRET_KEY": SECRET,
    }


def pipe(
    root: Path, env: dict[str, str], raw: bytes, *recipients: str
) -> subprocess.CompletedProcess[bytes]:
    args = [sys.executable, "-m", "publisher", "--site", str(root), "inbound"]
    for r in recipients:
        args += ["--recipient", r]
    return subprocess.run(args, input=raw, env=env, capture_output=True, timeout=60)


def world_at(tmp_path: Path, db_url: str) -> tuple[World, dict[str, str]]:
    env = site(tmp_path / "site", db_url)
    return sent_world(open_store(db_url), tmp_path), env


def test_the_pipe_applies_reports_and_exits_0(tmp_path: Path, db_url: str) -> None:
    world, env = world_at(tmp_path, db_url)
    root = tmp_path / "site"
    done = pipe(root, env, reports.exim_bounce(world.verp(0), world.email(0)), world.verp(0))
    assert done.returncode == 0, done.stderr
    assert b"hard 5.0.0" in done.stderr and b"subscriber is bounced" in done.stderr
    assert world.status(0) == "bounced"
    # The same report again: counted once, still exit 0.
    again = pipe(root, env, reports.exim_bounce(world.verp(0), world.email(0)), world.verp(0))
    assert again.returncode == 0 and b"duplicate" in again.stderr
    # Junk, an auto-reply and a huge message: ignored with a line, exit 0, no traceback.
    for raw in (b"\xff\x00junk", reports.auto_reply(world.verp(1)), b"X" * 300_000):
        ignored = pipe(root, env, raw, world.verp(1))
        assert ignored.returncode == 0 and b"ignored" in ignored.stderr
        assert b"Traceback" not in ignored.stderr
    assert world.status(1) == "active"
    assert len(BounceStore(world.store).events()) == 1


def test_the_pipe_unsubscribes_by_mail(tmp_path: Path, db_url: str) -> None:
    world, env = world_at(tmp_path, db_url)
    from builders import make_config

    config = make_config(tmp_path / "site", env={"PUBLISHER_SECRET_KEY": SECRET})
    signer = make_signer(config, world.store, world.store.clock)
    token = signer.sign(Purpose.UNSUBSCRIBE, world.subscribers[2].id, 1)
    raw = reports.unsubscribe_mail(UNSUBSCRIBE, f"unsubscribe {token}")
    done = pipe(tmp_path / "site", env, raw, UNSUBSCRIBE)
    assert done.returncode == 0, done.stderr
    assert world.status(2) == "unsubscribed"


def test_the_pipe_exits_75_when_the_database_is_unavailable(tmp_path: Path) -> None:
    env = site(tmp_path / "site", "sqlite:////nonexistent-dir/publisher.db")
    done = pipe(
        tmp_path / "site", env, reports.postfix_bounce("bounces@blog.example.com", "a@b.cd")
    )
    assert done.returncode == 75, done.stderr
    assert b"the MTA will retry" in done.stderr and b"Traceback" not in done.stderr


def crlf(raw: bytes) -> bytes:
    """SMTP lines end in CRLF; smtplib sends bytes as they are."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("lmtp", [True, False], ids=["lmtp", "smtp"])
def test_the_listener_takes_reports_and_refuses_relaying(
    tmp_path: Path, db_url: str, lmtp: bool
) -> None:
    world = sent_world(open_store(db_url), tmp_path)
    handler = world.handler
    port = free_port()
    listener = Listener(
        handler.mail,
        handler.settings.accepts,
        host="127.0.0.1",
        port=port,
        lmtp=lmtp,
        max_bytes=100_000,
    )
    listener.start()
    try:
        client = (
            smtplib.LMTP("127.0.0.1", port) if lmtp else smtplib.SMTP("127.0.0.1", port, timeout=10)
        )
        with client:
            client.sendmail(
                "", [world.verp(1)], crlf(reports.outlook_bounce(world.verp(1), world.email(1)))
            )
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                client.sendmail("", ["someone@example.org"], b"Subject: relay me\r\n\r\nhi\r\n")
            assert refused.value.recipients["someone@example.org"][0] == 550
            with pytest.raises(smtplib.SMTPException) as too_big:
                client.sendmail(
                    "", [world.verp(2)], b"Subject: big\r\n\r\n" + (b"x" * 99 + b"\r\n") * 2000
                )
            assert "552" in str(too_big.value) or "size" in str(too_big.value).lower()
    finally:
        listener.stop()
    assert world.status(1) == "bounced"
    assert world.status(2) == "active"


def test_the_listener_answers_451_when_the_database_fails(tmp_path: Path, db_url: str) -> None:
    from publisher.store import StoreError

    def broken(raw: bytes, to: list[str], source: str):  # type: ignore[no-untyped-def]
        raise StoreError("database x: unable to open")

    port = free_port()
    listener = Listener(broken, lambda a: True, host="127.0.0.1", port=port)
    listener.start()
    try:
        with (
            smtplib.LMTP("127.0.0.1", port) as client,
            pytest.raises(smtplib.SMTPDataError) as info,
        ):
            client.sendmail("", ["bounces@blog.example.com"], b"Subject: x\r\n\r\nx\r\n")
        assert info.value.smtp_code == 451
    finally:
        listener.stop()


def test_publisher_inbound_listen_runs_until_sigterm(tmp_path: Path, db_url: str) -> None:
    world, env = world_at(tmp_path, db_url)
    port = free_port()
    args = [sys.executable, "-m", "publisher", "--site", str(tmp_path / "site"), "inbound"]
    process = subprocess.Popen(
        [*args, "--listen", f"127.0.0.1:{port}"], env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = smtplib.LMTP("127.0.0.1", port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with client:
            raw = crlf(reports.yahoo_no_user(world.verp(3), world.email(3)))
            client.sendmail("", [world.verp(3)], raw)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert b"LMTP listening" in err
    assert world.status(3) == "bounced"
