"""Thousands of random requests against the subscription service: never a 5xx, never a traceback.

Issue 8 item 6: a fuzzer found three 500s (an archive id past the database's
integer, a multipart boundary over 256 characters, an unknown category while a
post could not be read). This is that fuzzer, seeded so a failure repeats:
random methods, paths (every route, with real and broken tokens), query
strings, headers, urlencoded and multipart bodies, oversized and malformed
values. The bulk goes through Starlette's TestClient, a sample over real
sockets to ``publisher web``'s uvicorn (including requests no HTTP client would
send). The only 5xx allowed is a deliberate 503 with ``Retry-After``.
"""

from __future__ import annotations

import random
import socket
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from builders import write_config, write_post
from publisher.cli.web import open_web_app
from publisher.config import Config, load_config
from publisher.deliver.tokens import Purpose, TokenSigner, load_keys
from publisher.store import Consent, ConsentMethod, IssueStatus, NewIssue, Store
from publisher.web.app import WebService
from test_web import SECRET
from test_web_server import port_of, serving

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

SEED = 20250601
BULK = 2000  # requests through the TestClient
SOCKET_SAMPLE = 200  # requests over real sockets
TIME_LIMIT = 90.0  # seconds for the bulk; the count is what normally ends it
BASE = "https://blog.example.com/newsletter/"

METHODS = ["GET", "HEAD", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
FIELDS = ["email", "website", "categories", "csrf", "action", "List-Unsubscribe", "next", ""]
NASTY = [
    "",
    " ",
    "\x00",
    "\r\nBcc: x@evil.test",
    "=?utf-8?q?x?=",
    "a" * 5000,
    "\ud800",
    "\u202e",
    "\u2028",
    "%",
    "%ff%fe",
    "../../etc/passwd",
    "//evil.test",
    "javascript:alert(1)",
    "세계",
    "기술",
    "없는 카테고리",
    "reader@example.com",
    "READER@EXAMPLE.COM",
    "a@b",
    "@",
    "x@" + "a" * 300 + ".com",
    "save",
    "unsubscribe",
    "List-Unsubscribe=One-Click",
    "99999999999999999999",
    "-1",
    "0",
    "1e9",
]
CONTENT_TYPES = [
    None,
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "application/x-www-form-urlencoded; charset=latin-1",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=x",
    "text/plain",
    "application/json",
    "multipart/mixed; boundary=x",
    ";;;",
    "application/x-www-form-urlencoded; charset=\x7f",
]


@dataclass
class Fuzzer:
    rng: random.Random
    tokens: list[str]
    csrf: list[str]

    def text(self) -> str:
        roll = self.rng.random()
        if roll < 0.4:
            return self.rng.choice(NASTY)
        if roll < 0.7:
            return self.rng.choice([*self.tokens, *self.csrf, "x"])
        alphabet = "abc@.%+-_=&;/?#\\'\"<> \t가나\u00e9\x01"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(0, 40)))

    def path(self) -> str:
        token = self.rng.choice([*self.tokens, self.text(), "", "x" * 3000])
        number = self.rng.choice(["1", "2", "0", "007", "2147483648", "9" * 30, "-1", "1.5"])
        choices = [
            "",
            "subscribe",
            "subscribe/",
            f"confirm/{token}",
            f"unsubscribe/{token}",
            f"preferences/{token}",
            "archive",
            "archive/",
            f"archive/{number}",
            "health",
            "health/",
            "confirm/",
            f"{self.text()}",
            f"{token}/{token}",
        ]
        path = self.rng.choice(choices)
        return "".join(c if c.isprintable() and c not in "?# " else "%20" for c in path)

    def query(self) -> str:
        if self.rng.random() < 0.6:
            return ""
        pairs = [f"{self.rng.choice(FIELDS)}={self.text()}" for _ in range(self.rng.randint(1, 4))]
        encoded = "&".join(pairs)
        return "?" + "".join(c if c.isprintable() and c not in "# " else "%01" for c in encoded)

    def fields(self) -> list[tuple[str, str]]:
        count = self.rng.choice([0, 1, 2, 3, 4, 8, 70])
        return [(self.rng.choice(FIELDS), self.text()) for _ in range(count)]

    def body(self) -> tuple[bytes, dict[str, str]]:
        kind = self.rng.random()
        headers: dict[str, str] = {}
        if kind < 0.35:
            data = "&".join(f"{k}={v}" for k, v in self.fields())
            body = data.encode("utf-8", "surrogatepass")
            content_type = "application/x-www-form-urlencoded"
        elif kind < 0.6:
            boundary = self.rng.choice(["x", "b" * 70, "b" * 71, "b" * 300, "--", "a b", "가"])
            parts = b"".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode(
                    "utf-8", "surrogatepass"
                )
                for k, v in self.fields()
            )
            tail = self.rng.choice([f"--{boundary}--\r\n", "", f"--{boundary}", "--"])
            body = parts + tail.encode()
            content_type = f"multipart/form-data; boundary={boundary}"
        elif kind < 0.75:
            body = self.rng.randbytes(self.rng.choice([1, 10, 100, 70_000]))
            content_type = self.rng.choice(CONTENT_TYPES) or ""
        elif kind < 0.8:
            body = b"email=" + b"a" * 70_000
            content_type = "application/x-www-form-urlencoded"
        else:
            body, content_type = b"", self.rng.choice(CONTENT_TYPES) or ""
        if self.rng.random() < 0.15:
            content_type = self.rng.choice(CONTENT_TYPES) or ""
        if content_type:
            headers["content-type"] = _ascii(content_type)
        return body, headers

    def headers(self) -> dict[str, str]:
        extra: dict[str, str] = {}
        for name in self.rng.sample(
            ["x-forwarded-for", "cookie", "accept", "origin", "referer", "accept-language"],
            self.rng.randint(0, 3),
        ):
            extra[name] = _ascii(self.text())
        return extra

    def request(self) -> tuple[str, str, bytes, dict[str, str]]:
        method = self.rng.choice(METHODS)
        body, headers = self.body() if method != "GET" or self.rng.random() < 0.1 else (b"", {})
        return method, self.path() + self.query(), body, {**self.headers(), **headers}


def _ascii(value: str) -> str:
    """What an HTTP client lets through in a header: printable ASCII (raw sockets send the rest)."""
    return "".join(c for c in value if " " <= c <= "~").strip() or "x"  # h11: no edge spaces


def bad(status: int, headers: Any, text: str) -> bool:
    if "Traceback" in text or 'File "' in text:
        return True
    if status == 503:
        return "retry-after" not in {k.lower() for k in headers}
    return status >= 500


@pytest.fixture
def fuzz_site(tmp_path: Path, db_url: str) -> Iterator[tuple[Config, Starlette, Fuzzer]]:
    """``publisher web``'s app on SQLite, then PostgreSQL (archive ids overflow differently)."""
    write_config(tmp_path, web={"signups_per_ip_per_hour": 100_000})
    write_post(tmp_path, "a.md", category="세계")
    write_post(tmp_path, "b.md", category="기술")
    config = load_config(tmp_path, env={**SECRET, "PUBLISHER_DATABASE_URL": db_url})
    app, close = open_web_app(config)
    try:
        service: WebService = app.state.web
        yield config, app, fuzzer_for(config, service.store, service)
    finally:
        close()


def fuzzer_for(config: Config, store: Store, service: WebService) -> Fuzzer:
    signer = TokenSigner(load_keys(config, store), store.clock)
    tokens, csrf = [], []
    for n, status in enumerate(("active", "pending", "unsubscribed")):
        subscriber, _ = store.add_subscriber(f"s{n}@example.com", Consent(ConsentMethod.OPERATOR))
        for purpose in (Purpose.CONFIRM, Purpose.UNSUBSCRIBE, Purpose.PREFERENCES):
            token = signer.sign(purpose, subscriber.id, subscriber.state_version)
            tokens += [token, token[:-3], token + "A", token.upper()]
            csrf.append(service.csrf.token(purpose, token))
        del status
    issue, _ = store.create_issue(
        NewIssue("k", ("a",), ("세계",), "제목", "", "<p>x</p>", "x", "d" * 64)
    )
    store.set_issue_status(issue.id, IssueStatus.DONE)
    return Fuzzer(random.Random(SEED), tokens, csrf)


def test_random_requests_never_get_a_5xx_or_a_traceback(fuzz_site):
    _config, app, fuzzer = fuzz_site
    failures: list[str] = []
    statuses: dict[int, int] = {}
    started = time.monotonic()
    sent = 0
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        while sent < BULK and time.monotonic() - started < TIME_LIMIT:
            method, target, body, headers = fuzzer.request()
            response = client.request(method, BASE + target, content=body, headers=headers)
            sent += 1
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if bad(response.status_code, response.headers, response.text):
                failures.append(f"{method} {target[:120]!r} {headers} -> {response.status_code}")
    assert failures == [], failures[:5]
    assert sent >= 500, f"only {sent} requests in {TIME_LIMIT} s"
    assert {200, 400, 404, 405} <= set(statuses), statuses  # the fuzzer reaches every kind


RAW = [
    b"GET /newsletter/health HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n",
    b"POST /newsletter/subscribe HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n"
    b"content-length: 6\r\n\r\nemail=",
    b"POST /newsletter/subscribe HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
    b"content-type: application/x-www-form-urlencoded\r\n\r\nzz\r\nemail\r\n0\r\n\r\n",
    b"GET /newsletter/\xff\xfe HTTP/1.1\r\nhost: x\r\n\r\n",
    b"GET /newsletter/%ff%fe HTTP/1.1\r\nhost: x\r\n\r\n",
    b"GET /newsletter/health HTTP/1.1\r\nhost: x\r\nx-bad\x00: 1\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /newsletter/health HTTP/9.9\r\nhost: x\r\n\r\n",
    b"GET /newsletter/health HTTP/1.1\r\nhost: x\r\nx: " + b"a" * 20_000 + b"\r\n\r\n",
    b"POST /newsletter/unsubscribe/x HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n"
    b"content-type: multipart/form-data; boundary=" + b"b" * 300 + b"\r\n\r\n--b",
]


def raw_status(port: int, request: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    if not received:
        return 0, b""  # closed without an answer: not a 5xx
    return int(received.split(b" ", 2)[1]), received


def test_a_sample_over_real_sockets(fuzz_site):
    config, _app, bulk = fuzz_site
    failures: list[str] = []
    with serving(config) as url:
        port = port_of(url)
        service_fuzzer = Fuzzer(random.Random(SEED + 1), bulk.tokens, bulk.csrf)
        with httpx.Client(timeout=10) as client:
            for _ in range(SOCKET_SAMPLE):
                method, target, body, headers = service_fuzzer.request()
                response = client.request(method, url + target, content=body, headers=headers)
                if bad(response.status_code, response.headers, response.text):
                    failures.append(f"{method} {target[:120]!r} -> {response.status_code}")
        for request in RAW:
            status, received = raw_status(port, request)
            if bad(status, {"retry-after"} if b"retry-after" in received.lower() else {}, ""):
                failures.append(f"{request[:60]!r} -> {status}")
            if b"Traceback" in received:
                failures.append(f"{request[:60]!r} -> traceback")
    assert failures == [], failures[:5]
