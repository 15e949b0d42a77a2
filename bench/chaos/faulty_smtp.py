"""A faulty SMTP server on loopback for the chaos run (issue 14).

An aiosmtpd server whose replies play a random mix of faults drawn from a seed:
``421 4.7.0`` throttling (a bounded number, each costs the sender a 30 s
cool-down), ``451 4.3.0`` and ``452 4.5.3`` at RCPT or after DATA, ``550 5.1.1``
for a fixed set of addresses, connections dropped before DATA (at RCPT) and after
the message was received but before the reply (accepted, never acknowledged: in
doubt), slow replies, and a disconnect every K messages of a connection.

The decision for one recipient's n-th RCPT depends only on (seed, address, n), so
a seed replays the same faults per recipient whatever the timing. It records every
message it accepted: recipient, Message-ID, List-Unsubscribe URL, when DATA
started, when the reply went out (None when it never did), and the connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


@dataclass(frozen=True)
class FaultRates:
    """Probabilities per RCPT (one recipient per transaction); ``throttles`` is a count."""

    bad_addresses: float = 0.003  # 550 5.1.1 on every attempt
    rcpt_451: float = 0.01
    rcpt_452: float = 0.01
    drop_before_data: float = 0.005
    slow_rcpt: float = 0.01
    data_451: float = 0.005
    drop_after_data: float = 0.004  # accepted, never acknowledged: in doubt
    slow_data: float = 0.01
    slow_seconds: tuple[float, float] = (0.2, 1.2)  # below the sender's timeout
    throttles: int = 1  # 421 4.7.0 at MAIL, then close

    def scaled(self, factor: float) -> FaultRates:
        """Every probability times ``factor`` (0: a well-behaved server but for 550s)."""
        names = ("rcpt_451", "rcpt_452", "drop_before_data", "slow_rcpt", "data_451")
        names += ("drop_after_data", "slow_data")
        return dataclasses.replace(self, **{k: getattr(self, k) * factor for k in names})


@dataclass
class Accepted:
    rcpt: str
    message_id: str
    unsubscribe_url: str | None
    data_started: float  # time.time() when the DATA command arrived
    acked_at: float | None  # when the 250 was written; None: dropped without a reply
    connection: int


@dataclass
class _Conn:
    number: int
    messages: int = 0  # MAIL commands on this connection
    quit: bool = False
    accepted: list[int] = field(default_factory=list)  # indexes into ``accepted``


class FaultyHandler:
    """aiosmtpd handler; state shared with the chaos driver is guarded by ``lock``."""

    def __init__(self, seed: int, rates: FaultRates) -> None:
        self.seed = seed
        self.rates = rates
        self.lock = threading.Lock()
        self.accepted: list[Accepted] = []
        self.rcpt_attempts: dict[str, int] = {}
        self.connections: list[_Conn] = []
        # (address, when its slow RCPT reply is due): transactions the driver may race
        self.in_flight: deque[tuple[str, float]] = deque(maxlen=50)
        self.faults: dict[str, int] = {}
        rng = random.Random(seed)
        self.disconnect_every = rng.randint(5, 15)
        self._throttle_at = set(rng.sample(range(50, 2000), rates.throttles))
        self._mails = 0

    # views for the driver ---------------------------------------------------------------------

    def accepted_count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def snapshot(self) -> list[Accepted]:
        with self.lock:
            return list(self.accepted)

    def take_in_flight(self, margin: float = 0.4) -> str | None:
        """An address whose RCPT is being answered slowly, its reply still ``margin`` s away."""
        now = time.time()
        with self.lock:
            while self.in_flight:
                address, due = self.in_flight.pop()
                if due > now + margin:
                    return address
        return None

    def is_bad(self, address: str) -> bool:
        return _fraction(self.seed, address, "bad") < self.rates.bad_addresses

    # helpers ---------------------------------------------------------------------------------

    def _conn(self, session: Any) -> _Conn:
        conn: _Conn | None = getattr(session, "chaos_conn", None)
        if conn is None:
            with self.lock:
                conn = _Conn(len(self.connections))
                self.connections.append(conn)
            session.chaos_conn = conn
        return conn

    def _fault(self, name: str) -> None:
        with self.lock:
            self.faults[name] = self.faults.get(name, 0) + 1

    def _plan(self, envelope: Any) -> str:
        plan: str = getattr(envelope, "chaos_plan", "")
        return plan

    # aiosmtpd hooks --------------------------------------------------------------------------

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str | None:
        conn = self._conn(session)
        conn.messages += 1
        with self.lock:
            self._mails += 1
            throttle = self._mails in self._throttle_at
        if throttle:
            self._fault("421 throttle")
            await server.push("421 4.7.0 Try again later, closing connection")
            return await _drop(server)
        if conn.messages > 1 and conn.messages % self.disconnect_every == 0:
            self._fault(f"disconnect every {self.disconnect_every}")
            return await _drop(server)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str | None:
        key = address.lower()
        with self.lock:
            n = self.rcpt_attempts.get(key, 0) + 1
            self.rcpt_attempts[key] = n
        if self.is_bad(key):
            self._fault("550 at RCPT")
            return "550 5.1.1 No such user"
        r = self.rates
        roll = _fraction(self.seed, key, f"rcpt:{n}")
        edges = (
            ("451 at RCPT", r.rcpt_451),
            ("452 at RCPT", r.rcpt_452),
            ("drop before DATA", r.drop_before_data),
            ("slow RCPT", r.slow_rcpt),
        )
        fault = _pick(roll, edges)
        if fault == "451 at RCPT":
            self._fault(fault)
            return "451 4.3.0 Temporary local problem"
        if fault == "452 at RCPT":
            self._fault(fault)
            return "452 4.5.3 Too many recipients"
        if fault == "drop before DATA":
            self._fault(fault)
            return await _drop(server)
        if fault == "slow RCPT":
            self._fault(fault)
            seconds = self._slow(key, n)
            with self.lock:
                self.in_flight.append((key, time.time() + seconds))
            await asyncio.sleep(seconds)
        roll = _fraction(self.seed, key, f"data:{n}")
        envelope.chaos_plan = _pick(
            roll,
            (
                ("451 after DATA", r.data_451),
                ("drop after DATA", r.drop_after_data),
                ("slow DATA reply", r.slow_data),
            ),
        )
        envelope.chaos_attempt = n
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str | None:
        conn = self._conn(session)
        plan = self._plan(envelope)
        rcpt = envelope.rcpt_tos[0].lower() if envelope.rcpt_tos else ""
        if plan == "451 after DATA":
            self._fault(plan)
            return "451 4.3.0 Temporary failure, try again"
        data = bytes(envelope.original_content or envelope.content or b"")
        headers = BytesHeaderParser().parsebytes(data)
        record = Accepted(
            rcpt=rcpt,
            message_id=str(headers.get("Message-ID", "")).strip(),
            unsubscribe_url=_https_unsubscribe(str(headers.get("List-Unsubscribe", ""))),
            data_started=float(getattr(session, "chaos_data_started", time.time())),
            acked_at=None,
            connection=conn.number,
        )
        with self.lock:
            self.accepted.append(record)
            conn.accepted.append(len(self.accepted) - 1)
        if plan == "drop after DATA":
            self._fault(plan)
            return await _drop(server)
        if plan == "slow DATA reply":
            self._fault(plan)
            await asyncio.sleep(self._slow(rcpt, getattr(envelope, "chaos_attempt", 0)))
        record.acked_at = time.time()
        return "250 OK: queued"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self._conn(session).quit = True
        return "221 Bye"

    def _slow(self, address: str, n: int) -> float:
        low, high = self.rates.slow_seconds
        return low + (high - low) * _fraction(self.seed, address, f"slow:{n}")


class _ChaosSMTP(SMTP):
    """Stamps when the DATA command arrives: the moment the message is handed over."""

    async def smtp_DATA(self, arg: str) -> None:
        if self.session is not None:
            self.session.chaos_data_started = time.time()
        await super().smtp_DATA(arg)


class _ChaosController(Controller):
    def factory(self) -> SMTP:
        return _ChaosSMTP(self.handler, **self.SMTP_kwargs)


async def _drop(server: Any) -> None:
    server.transport.close()
    await asyncio.sleep(3600)  # cancelled by aiosmtpd when the connection is lost
    return None


def _fraction(seed: int, address: str, what: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{address}:{what}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _pick(roll: float, edges: tuple[tuple[str, float], ...]) -> str:
    total = 0.0
    for name, p in edges:
        total += p
        if roll < total:
            return name
    return ""


def _https_unsubscribe(header: str) -> str | None:
    for part in header.split(","):
        part = part.strip().strip("<>")
        if part.startswith("http"):
            return part
    return None


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (aiosmtpd 1.4.6 cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FaultyServer:
    def __init__(self, seed: int, rates: FaultRates) -> None:
        self.handler = FaultyHandler(seed, rates)
        self.port = free_port()
        self.controller = _ChaosController(
            self.handler, hostname="127.0.0.1", port=self.port, server_hostname="chaos.test"
        )

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
