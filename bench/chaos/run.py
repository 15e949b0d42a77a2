"""Chaos run for sending (issue 14): one issue to N subscribers through a faulty server.

    .venv/bin/python bench/chaos/run.py --subscribers 20000 --seed 7 [--database postgresql]

A throwaway site is written to a temporary folder, N subscribers are imported with
``publisher subscribers import``, and ``publisher send --post posts/chaos.md`` mails
one post through the faulty SMTP server of ``faulty_smtp.py`` on loopback. From the
seed, while the send runs, the driver:

- kills the sender with SIGKILL at random moments and restarts it (``--resume``);
- starts a second sender on the same issue, concurrently;
- on PostgreSQL terminates every connection to the database once
  (``pg_terminate_backend``); on SQLite holds the write lock (``BEGIN IMMEDIATE``)
  for 2-7 s, around the store's 5 s busy timeout;
- unsubscribes random subscribers with ``publisher subscribers remove``, some
  through the one-click endpoint of ``publisher web`` (the List-Unsubscribe URL of
  a message the server received), and some while their transaction is held at a
  slow RCPT (through the store, as ``remove`` does, to be quick enough; ``--no-race``
  leaves those out).

Senders are restarted until the issue is done or ``--time-limit`` passes. Then
what the server accepted is compared with the delivery table (read through the
store) and one line per invariant is printed. The exit status is 1 when one
breaks; the seed is printed for a replay.

Only the CLI and the store's public reads are used, not sender internals.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faulty_smtp import Accepted, FaultRates, FaultyServer, free_port

from publisher.store import DeliveryStatus, IssueStatus, Store, SubscriberStatus

SECRET = "chaos-secret-key-0123456789abcdef"
PG_ADMIN = os.environ.get(
    "PUBLISHER_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
POST = "posts/chaos.md"
UNFINISHED = {DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.FAILED_TEMP}
KILL_WINDOW = 2.0  # a copy acknowledged this long before a kill was in flight at it


@dataclass
class Unsubscribe:
    address: str
    how: str  # cli, one-click, in-flight
    started: float
    done: float | None = None
    ok: bool = False


@dataclass
class Log:
    kills: list[float] = field(default_factory=list)
    db_faults: list[tuple[float, float]] = field(default_factory=list)
    unsubscribes: list[Unsubscribe] = field(default_factory=list)
    starts: int = 0
    exits: Counter[int] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


# --- the site ---------------------------------------------------------------------------------


def write_site(
    root: Path, smtp_port: int, web_port: int, rng: random.Random, concurrency: int | None
) -> None:
    (root / "posts").mkdir(parents=True)
    concurrency = concurrency or rng.choice((1, 2, 3))
    (root / "config.toml").write_text(
        f"""[site]
title = "Chaos"
base_url = "https://blog.example.com/"
author = "Chaos"
author_email = "editor@blog.example.com"
description = "chaos run"
timezone = "UTC"

[newsletter]
start = 2025-01-01
from_address = "news@blog.example.com"
transport = "smtp"
retry_base_seconds = 1
max_attempts = 6
max_retry_hours = 1

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout_seconds = 3
concurrency = {concurrency}
messages_per_connection = 20

[schedule]
lease_seconds = 60

[web]
base_url = "http://127.0.0.1:{web_port}/"
port = {web_port}
""",
        encoding="utf-8",
    )
    (root / POST).write_text(
        "---\ntitle: 혼돈 속의 발송\ndate: 2025-06-20 09:00\n---\n본문입니다. Chaos body.\n",
        encoding="utf-8",
    )


def addresses(n: int) -> list[str]:
    return [f"reader{i}@example.com" for i in range(1, n + 1)]


# --- databases --------------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, root: Path, seed: int) -> Any:
    if kind == "sqlite":
        yield f"sqlite:///{root / 'chaos.db'}"
        return
    import psycopg

    name = f"publisher_chaos_{os.getpid()}_{seed}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    info = admin.info
    try:
        yield f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def db_fault(kind: str, url: str, rng: random.Random, log: Log) -> None:
    """PostgreSQL: terminate every connection once. SQLite: hold the write lock 2-7 s."""
    start = time.time()
    if kind == "sqlite":
        hold = rng.uniform(2.0, 7.0)
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN IMMEDIATE")
            time.sleep(hold)
            conn.execute("COMMIT")
        finally:
            conn.close()
        log.notes.append(f"held the SQLite write lock for {hold:.1f} s")
    else:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            ).fetchall()
        log.notes.append(f"terminated {len(rows)} PostgreSQL connections")
    log.db_faults.append((start, time.time()))


# --- processes --------------------------------------------------------------------------------


class Cli:
    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.env = {**os.environ, "PUBLISHER_DATABASE_URL": url, "PUBLISHER_SECRET_KEY": SECRET}
        self.logs = root / "logs"
        self.logs.mkdir()
        self.count = 0
        self.procs: list[subprocess.Popen[bytes]] = []

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "publisher", "--site", str(self.root), *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.argv(*args), env=self.env, capture_output=True, text=True, timeout=300
        )
        if check and done.returncode != 0:
            raise SystemExit(f"publisher {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self.count += 1
        out = (self.logs / f"{self.count:03d}-{args[0]}.log").open("wb")
        proc = subprocess.Popen(self.argv(*args), env=self.env, stdout=out, stderr=out)
        self.procs.append(proc)
        return proc

    def kill_all(self) -> None:
        """Every process still running (an interrupted run leaves none behind)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def sender(self) -> subprocess.Popen[bytes]:
        return self.start("send", "--post", POST, "--resume")


class Unsubscriber(threading.Thread):
    """Runs the planned unsubscribes one by one, off the driver's loop."""

    def __init__(self, cli: Cli, store: Store, server: FaultyServer, log: Log) -> None:
        super().__init__(daemon=True)
        self.cli, self.store, self.server, self.log = cli, store, server, log
        self.queue: list[tuple[str, str, str]] = []
        self.cond = threading.Condition()
        self.closed = False

    def add(self, how: str, address: str, url: str) -> None:
        with self.cond:
            self.queue.append((how, address, url))
            self.cond.notify()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()
        self.join()

    def run(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.closed:
                    self.cond.wait()
                if not self.queue:
                    return
                how, address, url = self.queue.pop(0)
            self._one(how, address, url)

    def _one(self, how: str, address: str, url: str) -> None:
        record = Unsubscribe(address, how, time.time())
        try:
            if how == "cli":
                done = self.cli.run("subscribers", "remove", address, check=False)
                record.ok = done.returncode == 0 and "unsubscribed" in done.stdout
            elif how == "in-flight":
                address = self._racing() or address
                record.address, record.started = address, time.time()
                record.ok = self.store.unsubscribe(address) is not None
            else:
                request = urllib.request.Request(
                    url, data=b"List-Unsubscribe=One-Click", method="POST"
                )
                request.add_header("Content-Type", "application/x-www-form-urlencoded")
                with urllib.request.urlopen(request, timeout=10) as response:
                    record.ok = response.status == 200
        except Exception as exc:
            self.log.notes.append(f"unsubscribe {address} ({how}) failed: {exc}")
        record.done = time.time()
        self.log.unsubscribes.append(record)

    def _racing(self) -> str | None:
        """Wait up to 5 s for a transaction held at a slow RCPT, to race it."""
        for _ in range(100):
            address = self.server.handler.take_in_flight()
            if address:
                return address
            time.sleep(0.05)
        return None


def wait_for_web(port: int, deadline: float, web: subprocess.Popen[bytes], log: Path) -> None:
    while time.time() < deadline and web.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
    raise SystemExit("publisher web did not start; " + log.name + ":\n" + "\n".join(tail))


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Plan:
    kills: list[float]
    second_sender: float
    db_fault: float
    unsubscribes: list[tuple[float, str]]


def make_plan(rng: random.Random, n: int, kills: int, race: bool) -> Plan:
    count = max(6, n // 400)
    hows = ["cli", "one-click", "in-flight"] if race else ["cli", "one-click", "cli"]
    return Plan(
        kills=sorted(rng.uniform(0.03, 0.9) for _ in range(kills)),
        second_sender=rng.uniform(0.1, 0.5),
        db_fault=rng.uniform(0.2, 0.8),
        unsubscribes=sorted((rng.uniform(0.02, 0.95), hows[i % 3]) for i in range(count)),
    )


def chaos(args: argparse.Namespace, root: Path) -> int:
    rng = random.Random(args.seed)
    rates = FaultRates(throttles=args.throttles).scaled(args.fault_scale)
    server = FaultyServer(args.seed, rates)
    server.start()
    web_port = free_port()
    write_site(root, server.port, web_port, rng, args.concurrency)
    n = args.subscribers
    everyone = addresses(n)
    (root / "readers.csv").write_text("email\n" + "\n".join(everyone) + "\n", encoding="utf-8")
    with database(args.database, root, args.seed) as url:
        cli = Cli(root, url)
        cli.run("migrate")
        cli.run("subscribers", "import", str(root / "readers.csv"))
        store = Store.open(url)
        log = Log()
        web = cli.start("web")
        wait_for_web(web_port, time.time() + 30, web, cli.logs / f"{cli.count:03d}-web.log")
        unsubscriber = Unsubscriber(cli, store, server, log)
        unsubscriber.start()
        began = time.time()
        try:
            finished = drive(args, cli, store, server, rng, log, unsubscriber, url, began)
        finally:
            unsubscriber.close()
            web.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                web.wait(timeout=30)
            cli.kill_all()
        elapsed = time.time() - began
        status = cli.run("status", check=False).stdout
        ok = report(args, store, server, log, everyone, finished, elapsed, status)
        store.close()
    server.stop()
    return 0 if ok else 1


def drive(
    args: argparse.Namespace,
    cli: Cli,
    store: Store,
    server: FaultyServer,
    rng: random.Random,
    log: Log,
    unsubscriber: Unsubscriber,
    url: str,
    began: float,
) -> bool:
    n = args.subscribers
    plan = make_plan(rng, n, args.kills, args.race)
    everyone = addresses(n)
    primary: subprocess.Popen[bytes] | None = None
    second: subprocess.Popen[bytes] | None = None
    fault: threading.Thread | None = None
    kill_at: float | None = None
    while True:
        progress = server.handler.accepted_count() / n
        now = time.time()
        if now - began > args.time_limit:
            log.notes.append(f"time limit of {args.time_limit} s reached")
            for proc in (primary, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
            return False
        if plan.kills and progress >= plan.kills[0] and kill_at is None:
            plan.kills.pop(0)
            kill_at = now + rng.uniform(0.0, 0.5)
        if kill_at is not None and now >= kill_at:
            kill_at = None
            running = [p for p in (primary, second) if p is not None and p.poll() is None]
            if running:
                victim = rng.choice(running)
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                log.kills.append(time.time())
        if plan.second_sender <= progress and second is None:
            second = cli.sender()
            log.starts += 1
        if plan.db_fault <= progress and fault is None:
            fault = threading.Thread(target=db_fault, args=(args.database, url, rng, log))
            fault.start()
        while plan.unsubscribes and plan.unsubscribes[0][0] <= progress:
            _, how = plan.unsubscribes.pop(0)
            unsubscriber.add(*pick_unsubscribe(how, rng, everyone, server))
        if primary is None or primary.poll() is not None:
            if primary is not None:
                log.exits[primary.returncode] += 1
            if primary is not None and second_done(second) and issue_done(store):
                if fault is not None:
                    fault.join()
                return True
            if primary is not None and primary.returncode == 0:
                time.sleep(0.3)  # waiting for retries: do not spin
            primary = cli.sender()
            log.starts += 1
        time.sleep(0.05)


def second_done(second: subprocess.Popen[bytes] | None) -> bool:
    return second is None or second.poll() is not None


def pick_unsubscribe(
    how: str, rng: random.Random, everyone: list[str], server: FaultyServer
) -> tuple[str, str, str]:
    """(how, address, one-click URL or '') for the next unsubscribe."""
    if how == "in-flight":
        return how, rng.choice(everyone), ""  # the unsubscriber picks a racing one
    if how == "one-click":
        received = [a for a in server.handler.snapshot() if a.unsubscribe_url]
        if received:
            chosen = rng.choice(received)
            return how, chosen.rcpt, chosen.unsubscribe_url or ""
    return "cli", rng.choice(everyone), ""


def issue_done(store: Store) -> bool:
    for _ in range(5):
        try:
            issues = store.list_issues()
            if not issues:
                return False
            issue = issues[0]
            return issue.status == IssueStatus.DONE and store.counts(issue.id).unfinished == 0
        except Exception:  # the connection was terminated by the fault
            time.sleep(0.5)
    return False


# --- the verdict ------------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    store: Store,
    server: FaultyServer,
    log: Log,
    everyone: list[str],
    finished: bool,
    elapsed: float,
    status: str,
) -> bool:
    issue = store.list_issues()[0]
    rows = {d.subscriber_id: d for d in store.iter_deliveries(issue.id)}
    subscribers = {s.email: s for s in store.iter_subscribers()}
    copies: dict[str, list[Accepted]] = defaultdict(list)
    for record in server.handler.snapshot():
        copies[record.rcpt].append(record)
    unsub_done = {u.address: u.done for u in log.unsubscribes if u.ok and u.done is not None}
    verdicts: list[tuple[bool, str]] = []

    # 1. every active subscriber: once, or in doubt, or failed permanently with a reason
    once = in_doubt = failed = 0
    bad1: list[str] = []
    for email in everyone:
        s = subscribers[email]
        if s.status != SubscriberStatus.ACTIVE:
            continue
        row = rows.get(s.id)
        got = len(copies.get(email, []))
        if row is None:
            bad1.append(f"{email}: no delivery row")
        elif row.status == DeliveryStatus.IN_DOUBT:
            in_doubt += 1
        elif row.status == DeliveryStatus.FAILED_PERM and row.last_reply:
            failed += 1
        elif row.status == DeliveryStatus.SENT and (got == 1 or (got == 2 and row.resent)):
            once += 1
        else:
            bad1.append(f"{email}: {row.status}, {got} copies, reply {row.last_reply!r}")
    verdicts.append(
        (
            not bad1,
            f"every active subscriber once / in doubt / failed with a reason: {once} sent, "
            f"{in_doubt} in doubt, {failed} failed permanently, {len(bad1)} otherwise",
        )
    )

    # 2. nobody got a message handed over after their unsubscribe was recorded
    late: list[str] = []
    for email, done in unsub_done.items():
        for record in copies.get(email, []):
            if record.data_started > done:
                late.append(f"{email}: DATA {record.data_started - done:.3f} s after unsubscribe")
    verdicts.append(
        (
            not late,
            f"no message after an unsubscribe was recorded: {len(unsub_done)} addresses unsubscribed "
            f"({_hows(log)}), {len(late)} messages after",
        )
    )

    # 3. every duplicate: unacknowledged or in flight at a kill/fault, and listed in doubt
    dups = unexplained = 0
    bad3: list[str] = []
    windows = [(k - KILL_WINDOW, k + 0.5) for k in log.kills]
    windows += [(a - KILL_WINDOW, b + KILL_WINDOW) for a, b in log.db_faults]
    by_email = {s.id: e for e, s in subscribers.items()}
    for email, got in copies.items():
        if len(got) < 2:
            continue
        dups += 1
        row = rows.get(subscribers[email].id) if email in subscribers else None
        earlier = got[:-1]
        explained = all(
            r.acked_at is None or any(a <= r.acked_at <= b for a, b in windows) for r in earlier
        )
        listed = row is not None and (row.resent or row.status == DeliveryStatus.IN_DOUBT)
        same_id = len({r.message_id for r in got}) == 1
        if not (explained and listed and same_id and len(got) <= 2):
            unexplained += 1
            bad3.append(
                f"{email}: {len(got)} copies, row {row.status if row else None} "
                f"resent={row.resent if row else None}, acked "
                f"{[round(r.acked_at - got[0].data_started, 3) if r.acked_at else None for r in got]}"
            )
    verdicts.append(
        (
            not bad3,
            f"every duplicate unacknowledged or in flight at a kill, and listed in doubt: "
            f"{dups} duplicated, {unexplained} unexplained",
        )
    )

    # 4. nothing silently lost: sent rows were received, no row unfinished, no stray mail
    lost: list[str] = []
    for sid, row in rows.items():
        email = by_email.get(sid, f"#{sid}")
        got = copies.get(email, [])
        if row.status == DeliveryStatus.SENT and not any(
            r.message_id == row.message_id for r in got
        ):
            lost.append(f"{email}: sent but the server has no {row.message_id}")
        if row.status in UNFINISHED:
            lost.append(f"{email}: still {row.status}")
        if row.status == DeliveryStatus.SKIPPED and subscribers[email].status == "active":
            lost.append(f"{email}: skipped while active")
    strays = [e for e in copies if e not in subscribers or subscribers[e].id not in rows]
    lost += [f"{e}: mail for no delivery row" for e in strays]
    verdicts.append(
        (
            not lost and finished,
            f"nothing silently lost: {len(rows)} rows, {len(lost)} lost or unfinished"
            + ("" if finished else ", issue NOT finished"),
        )
    )

    counts = Counter(str(r.status) for r in rows.values())
    print(
        f"chaos run: {args.subscribers} subscribers, seed {args.seed}, {args.database}, "
        f"{elapsed:.1f} s, {log.starts} sender starts, {len(log.kills)} kills, "
        f"exits {dict(log.exits)}"
    )
    print(f"faults served: {dict(sorted(server.handler.faults.items()))}")
    print(f"deliveries: {dict(sorted(counts.items()))}; " + "; ".join(log.notes))
    for line in status.splitlines():
        if "IN DOUBT" in line or "paused" in line:
            print(f"status: {line.strip()}")
    ok = True
    for passed, line in verdicts:
        print(f"{'PASS' if passed else 'FAIL'} {line}")
        ok = ok and passed
    for detail in (bad1 + late + bad3 + lost)[:20]:
        print(f"  {detail}")
    if not ok:
        print(
            f"replay (seed {args.seed}): .venv/bin/python bench/chaos/run.py {' '.join(args.argv)}"
        )
    return ok


def _hows(log: Log) -> str:
    c = Counter(u.how for u in log.unsubscribes if u.ok)
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs during the send")
    parser.add_argument(
        "--throttles", type=int, default=1, help="421 replies (each costs a 30 s cool-down)"
    )
    parser.add_argument(
        "--fault-scale", type=float, default=1.0, help="multiply every fault probability"
    )
    parser.add_argument(
        "--concurrency", type=int, help="[smtp].concurrency (default: 1-3 from the seed)"
    )
    parser.add_argument(
        "--no-race",
        dest="race",
        action="store_false",
        help="no unsubscribes racing a transaction held at a slow RCPT",
    )
    parser.add_argument("--time-limit", type=float, default=1800, help="seconds")
    parser.add_argument("--keep", type=Path, help="keep the site, logs and SQLite DB here")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)  # clean up (senders, the PG database) on SIGTERM
    print(f"chaos seed {args.seed} ({datetime.now(UTC):%H:%M:%S} UTC)", flush=True)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return chaos(args, args.keep / f"seed-{args.seed}-{args.database}")
    with tempfile.TemporaryDirectory(prefix="publisher-chaos-") as tmp:
        return chaos(args, Path(tmp) / "site")


if __name__ == "__main__":
    raise SystemExit(main())
