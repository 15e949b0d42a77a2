"""``publisher web`` and ``publisher serve`` over real sockets (issue 8 items 7, 9, 10).

The app is the one ``publisher web`` composes (publisher.cli.web.open_web_app),
served by uvicorn with ``publisher web``'s own options (``UVICORN_OPTIONS``), on
loopback: slow and vanishing clients, a locked PostgreSQL table, and a spoofed
``X-Forwarded-For``. A shorter request deadline keeps the in-process tests
quick; one test runs the real command with its real deadline.
"""

from __future__ import annotations

import logging
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from builders import write_config, write_post
from publisher.cli.web import UVICORN_OPTIONS, open_web_app
from publisher.config import Config, load_config
from publisher.store import Store, Subscriber
from publisher.web.server import REQUEST_SECONDS, BoundedH11Protocol
from smtp_sink import free_port
from test_web import SECRET

SHORT = 1.5  # the request deadline of the in-process servers


class ShortDeadline(BoundedH11Protocol):
    request_seconds = SHORT


@contextmanager
def serving(config: Config, **options: Any) -> Iterator[str]:
    """``publisher web``'s app under uvicorn with its options, on loopback; yields the base URL."""
    app, close = open_web_app(config)
    port = free_port()
    settings = {**UVICORN_OPTIONS, "http": ShortDeadline, "log_config": None, **options}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}/newsletter/"
    finally:
        server.should_exit = True
        thread.join(10)
        close()


def site(root: Path, **web: Any) -> Config:
    write_config(root, web={"signups_per_ip_per_hour": 1000, **web})
    write_post(root, "a.md", category="세계")
    return load_config(root, env=SECRET)


def raw_request(port: int, head: bytes) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(head)
    return conn


def read_until_closed(conn: socket.socket, trickle: Callable[[], bytes] | None = None) -> bytes:
    """Everything the server sends until it closes; ``trickle`` gives a byte to send meanwhile."""
    received = b""
    conn.settimeout(0.5 if trickle else 10)
    while True:
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            if trickle is None:
                raise
            try:
                conn.sendall(trickle())
            except OSError:
                return received  # closed while we wrote
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def traces(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.exc_info or "Exception in ASGI" in r.getMessage()]


def port_of(url: str) -> int:
    return int(url.split(":")[2].split("/")[0])


# --- slow and vanishing clients (item 9) ---------------------------------------------------------

HEAD = b"POST /newsletter/subscribe HTTP/1.1\r\nhost: x\r\n"
FORM = b"content-type: application/x-www-form-urlencoded\r\n"


@pytest.mark.parametrize(
    ("head", "status"),
    [
        pytest.param(b"GET /newsletter/health HTTP/1.1\r\nhost: x\r\n", 408, id="headers"),
        pytest.param(HEAD + FORM + b"content-length: 500\r\n\r\nemail=", 408, id="body"),
        pytest.param(  # answered without reading the body: closed on time all the same
            b"GET /newsletter/health HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\n\r\n",
            200,
            id="body-nobody-reads",
        ),
        pytest.param(b"", 408, id="nothing"),
    ],
)
def test_a_trickling_client_is_cut_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, head: bytes, status: int
):
    with serving(site(tmp_path)) as url:
        conn = raw_request(port_of(url), head)
        started = time.monotonic()
        with conn:
            received = read_until_closed(conn, trickle=lambda: b"a")
        elapsed = time.monotonic() - started
    assert elapsed < SHORT + 2, elapsed  # was: held for as long as the client kept sending
    assert received.startswith(f"HTTP/1.1 {status} ".encode()), received[:200]
    assert traces(caplog.records) == []


def test_a_client_gone_mid_body_logs_no_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    with serving(site(tmp_path)) as url:
        for _ in range(3):
            conn = raw_request(port_of(url), HEAD + FORM + b"content-length: 1000\r\n\r\nemail=a")
            time.sleep(0.2)  # the app is reading the body now
            conn.close()
        time.sleep(0.5)
        assert httpx.get(url + "health").status_code == 200  # still serving
    assert traces(caplog.records) == []  # was: "Exception in ASGI application" (ClientDisconnect)


def test_a_prompt_client_keeps_its_connection_alive(tmp_path: Path):
    with serving(site(tmp_path)) as url, httpx.Client() as client:
        for _ in range(3):  # one connection, three requests, the deadline restarting for each
            assert client.get(url + "health").status_code == 200
            time.sleep(SHORT / 2)
        signup = client.post(url + "subscribe", data={"email": "k@example.com"})
        assert signup.status_code == 200


# --- the real command: its own deadline, and no proxy trust (items 9, 10) -------------------------


def wait_for_health(url: str, process: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(url + "health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process is None or process.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)


def consent_source(config: Config, address: str) -> str:
    store = Store.open(config.database_url)
    try:
        deadline = time.monotonic() + 10
        while True:
            found: Subscriber | None = store.find_subscriber(address)
            if found is not None:
                return found.consent.source
            assert time.monotonic() < deadline, f"{address} was never stored"
            time.sleep(0.1)
    finally:
        store.close()


def test_publisher_web_cuts_off_a_byte_every_two_seconds_and_ignores_spoofed_xff(tmp_path: Path):
    port = free_port()
    config = site(tmp_path, port=port)
    process = subprocess.Popen(
        [sys.executable, "-m", "publisher", "--site", str(tmp_path), "web", "--host", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"PATH": "/usr/bin:/bin", **SECRET},
    )
    url = f"http://127.0.0.1:{port}/newsletter/"
    try:
        wait_for_health(url, process)
        slow = raw_request(port, HEAD + FORM + b"content-length: 100\r\n\r\n")
        started = time.monotonic()
        with ThreadPoolExecutor(1) as pool:
            trickled = pool.submit(read_until_closed, slow, lambda: (time.sleep(1.5), b"e")[1])
            spoofed = {"x-forwarded-for": "198.51.100.66"}
            signup = httpx.post(url + "subscribe", data={"email": "x@example.com"}, headers=spoofed)
            assert signup.status_code == 200
            gone = raw_request(port, HEAD + FORM + b"content-length: 1000\r\n\r\nemail=")
            gone.close()  # mid-body
            received = trickled.result(timeout=REQUEST_SECONDS + 10)
        assert time.monotonic() - started < REQUEST_SECONDS + 4
        assert received.startswith(b"HTTP/1.1 408 ")
        slow.close()
        # No [web].trusted_proxies: the header is the visitor's word, not an address (E6).
        assert consent_source(config, "x@example.com") == "web signup from 127.0.0.1"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "Traceback" not in output and "Exception in ASGI" not in output, output


def test_publisher_serve_ignores_a_spoofed_forwarded_for(tmp_path: Path):
    """uvicorn's default trusts X-Forwarded-For from loopback; the preview must not (item 10)."""
    port = free_port()
    config = site(tmp_path, trusted_proxies=["127.0.0.1"])  # for publisher web, not the preview
    command = [sys.executable, "-m", "publisher", "--site", str(tmp_path), "serve"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--no-open"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env={"PATH": "/usr/bin:/bin", **SECRET},
    )
    url = f"http://127.0.0.1:{port}/newsletter/"
    try:
        wait_for_health(url, process)
        spoofed = {"x-forwarded-for": "198.51.100.66"}
        signup = httpx.post(url + "subscribe", data={"email": "p@example.com"}, headers=spoofed)
        assert signup.status_code == 200
        assert consent_source(config, "p@example.com") == "web signup from 127.0.0.1"
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- a locked PostgreSQL table (item 7) ----------------------------------------------------------


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    """A fresh schema in the run's PostgreSQL database (as conftest's db_url makes)."""
    base: str = request.getfixturevalue("postgres_database")
    schema = f"t_{secrets.token_hex(5)}"
    with psycopg.connect(base.replace("+psycopg", "")) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.mark.postgres
def test_a_locked_postgresql_table_answers_503_not_a_hang(tmp_path: Path, pg_url: str):
    write_config(tmp_path, web={"signups_per_ip_per_hour": 1000})
    config = load_config(tmp_path, env={**SECRET, "PUBLISHER_DATABASE_URL": pg_url})
    with serving(config) as url:
        assert httpx.post(url + "subscribe", data={"email": "a@example.com"}).status_code == 200
        base, _, options = pg_url.replace("+psycopg", "").partition("?options=")
        locker = psycopg.connect(base, options=options.replace("%3D", "="))
        try:
            locker.execute("LOCK TABLE subscribers, web_counts IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with ThreadPoolExecutor(20) as pool:  # more than the pool has connections
                signups = [
                    pool.submit(
                        httpx.post,
                        url + "subscribe",
                        data={"email": f"b{i}@example.com"},
                        timeout=30,
                    )
                    for i in range(20)
                ]
                time.sleep(0.3)
                health = httpx.get(url + "health", timeout=30)
                health_seconds = time.monotonic() - started
                answers = [s.result() for s in signups]
            elapsed = time.monotonic() - started
        finally:
            locker.close()
        assert health.status_code in (200, 503) and health_seconds < 5, health_seconds
        assert {a.status_code for a in answers} == {503}
        assert {a.headers.get("retry-after") for a in answers} == {"5"}
        assert elapsed < 15, elapsed  # was: every request waited for the lock, forever
        assert httpx.post(url + "subscribe", data={"email": "c@example.com"}).status_code == 200
