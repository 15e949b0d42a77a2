"""A scripted SMTP sink on loopback: the test rig of RELIABILITY §3.0 and section F.

An aiosmtpd server on 127.0.0.1 whose hooks play scripted faults per recipient
address or per message ordinal, and record what they accept::

    sink.script("a@example.com", "rcpt", "450 4.2.0 greylisted")   # once, then 250 (F2)
    sink.script("b@example.com", "rcpt", "550 5.1.1 no such user", times=None)
    sink.script("c@example.com", "data", DROP)        # record, close, never reply (F9)
    sink.script("d@example.com", "data", "250 OK", sleep=3)   # slow server (F10)
    sink.at_message(3, "mail", "421 4.7.0 try later", close=True)   # F1, F15
    event = sink.data_event(2, hold=30)   # set at the 2nd DATA, reply held 30 s (G1)
    sink.handler.clock = clock   # stamps rcpt_log: each RCPT with the test clock (F15)

``received`` lists every message the server has taken (envelope, bytes and
Message-ID): a message counts as received once its DATA is complete, even if
the connection is then dropped, as a real server would have it.

aiosmtpd 1.4.6 cannot bind ``port=0``, so :func:`free_port` picks one first.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

DROP = "drop"  # close the connection without a reply


@dataclass
class Rule:
    stage: str  # "mail", "rcpt" or "data"
    reply: str  # an SMTP reply line, or DROP
    sleep: float = 0.0
    times: int | None = 1  # None: every time
    close: bool = False  # close the connection after replying


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message_id: str | None


class ScriptedHandler:
    """aiosmtpd handler; all state is guarded by a lock (the server runs in its own thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.messages = 0  # MAIL commands seen
        self.data_count = 0  # complete DATA payloads seen
        self.connections = 0
        # Not named auth_*: aiosmtpd takes handler attributes named auth_* as mechanisms.
        self.accept_login = True
        self.login_attempts = 0
        self._by_address: dict[tuple[str, str], list[Rule]] = {}
        self._by_ordinal: dict[tuple[str, int], Rule] = {}
        self._events: dict[int, tuple[threading.Event, float]] = {}
        # Every RCPT (refused ones too) with ``clock()`` at its arrival, when a clock is set.
        self.clock: Callable[[], Any] | None = None
        self.rcpt_log: list[tuple[str, Any]] = []

    # scripting ----------------------------------------------------------------------------

    def script(
        self,
        address: str,
        stage: str,
        reply: str,
        *,
        sleep: float = 0.0,
        times: int | None = 1,
        close: bool = False,
    ) -> None:
        """Answer ``reply`` at ``stage`` for ``address`` (``times`` times; None = always)."""
        with self.lock:
            rules = self._by_address.setdefault((address.lower(), stage), [])
            rules.append(Rule(stage, reply, sleep, times, close))

    def at_message(
        self, ordinal: int, stage: str, reply: str, *, sleep: float = 0.0, close: bool = False
    ) -> None:
        """Answer ``reply`` at ``stage`` of the ``ordinal``-th message (1-based, by MAIL)."""
        with self.lock:
            self._by_ordinal[(stage, ordinal)] = Rule(stage, reply, sleep, 1, close)

    def data_event(self, ordinal: int, hold: float = 0.0) -> threading.Event:
        """An event set when the ``ordinal``-th DATA is complete; the reply waits ``hold`` s."""
        event = threading.Event()
        with self.lock:
            self._events[ordinal] = (event, hold)
        return event

    # views --------------------------------------------------------------------------------

    def message_ids(self) -> list[str]:
        with self.lock:
            return [r.message_id or "" for r in self.received]

    def copies(self) -> Counter[str]:
        return Counter(self.message_ids())

    def recipients(self) -> list[str]:
        with self.lock:
            return [addr for r in self.received for addr in r.rcpt_tos]

    def rcpts(self) -> list[tuple[str, Any]]:
        """Every RCPT so far, refused or not, as (address, clock() when it arrived)."""
        with self.lock:
            return list(self.rcpt_log)

    # aiosmtpd hooks -----------------------------------------------------------------------

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str | None:
        with self.lock:
            self.messages += 1
            rule = self._by_ordinal.pop(("mail", self.messages), None)
        if rule is not None:
            status = await self._play(server, rule)
            if status is not None and not status.startswith("250"):
                return status
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str | None:
        with self.lock:
            self.rcpt_log.append((address, self.clock() if self.clock else None))
        rule = self._take(address, "rcpt") or self._take_ordinal("rcpt")
        if rule is not None:
            status = await self._play(server, rule)
            if status is not None and not status.startswith("250"):
                return status
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str | None:
        rcpt = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        rule = self._take(rcpt, "data") or self._take_ordinal("data")
        accepted = rule is None or rule.reply == DROP or rule.reply.startswith("2")
        with self.lock:
            self.data_count += 1
            ordinal = self.data_count
            if accepted:
                self.received.append(_received(envelope))
            event, hold = self._events.pop(ordinal, (None, 0.0))
        if event is not None:
            event.set()
            await asyncio.sleep(hold)
        if rule is None:
            return "250 OK: queued"
        return await self._play(server, rule)

    async def _play(self, server: Any, rule: Rule) -> str | None:
        if rule.sleep:
            await asyncio.sleep(rule.sleep)
        if rule.reply == DROP:
            server.transport.close()
            await asyncio.sleep(3600)  # cancelled by aiosmtpd when the connection is lost
            return None
        if rule.close:
            await server.push(rule.reply)
            server.transport.close()
            await asyncio.sleep(3600)
            return None
        return rule.reply

    def _take(self, address: str, stage: str) -> Rule | None:
        with self.lock:
            rules = self._by_address.get((address.lower(), stage))
            if not rules:
                return None
            rule = rules[0]
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    rules.pop(0)
            return rule

    def _take_ordinal(self, stage: str) -> Rule | None:
        with self.lock:
            return self._by_ordinal.pop((stage, self.messages), None)


def _received(envelope: Any) -> Received:
    data = bytes(envelope.original_content or envelope.content or b"")
    headers = BytesHeaderParser().parsebytes(data)
    message_id = headers.get("Message-ID")
    return Received(
        mail_from=str(envelope.mail_from),
        rcpt_tos=tuple(envelope.rcpt_tos),
        data=data,
        message_id=str(message_id).strip() if message_id else None,
    )


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (aiosmtpd 1.4.6 cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpSink:
    """A running sink: ``host``, ``port``, the handler's scripting and records."""

    def __init__(self, handler: ScriptedHandler, controller: Controller, port: int) -> None:
        self.handler = handler
        self.controller = controller
        self.host = "127.0.0.1"
        self.port = port

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handler, name)

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def stop(self) -> None:
        self.controller.stop()


def start_sink(tls: TlsFiles | None = None, *, auth: bool = False) -> SmtpSink:
    """Start a sink; with ``tls`` it offers STARTTLS (required) and AUTH after it."""
    handler = ScriptedHandler()
    port = free_port()
    kwargs: dict[str, Any] = {}
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.cert, tls.key)
        kwargs.update(tls_context=context, require_starttls=True)
    if auth:

        def authenticator(*_args: Any) -> AuthResult:
            with handler.lock:
                handler.login_attempts += 1
            return AuthResult(success=handler.accept_login, handled=False)

        kwargs.update(authenticator=authenticator, auth_require_tls=True)
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, server_hostname="sink.test", **kwargs
    )
    controller.start()
    return SmtpSink(handler, controller, port)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


def make_certificate(directory: Path) -> TlsFiles:
    """A throwaway self-signed certificate for 127.0.0.1 and localhost (§3.0)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return TlsFiles(cert, key)


def running_sink(tls: TlsFiles | None = None, *, auth: bool = False) -> Iterator[SmtpSink]:
    """Generator for fixtures: start, yield, stop."""
    sink = start_sink(tls, auth=auth)
    try:
        yield sink
    finally:
        sink.stop()
