"""The sending loop: per-recipient delivery rows in, mail out, nobody mailed twice.

Delivery policy (RELIABILITY §1.3; read this before changing anything here)
===========================================================================

What happens to a row after each attempt (items 3-6 and the stops below) is decided by
one pure function, :func:`publisher.deliver.outcomes.decide`, with a table of its cases
in ``tests/test_outcomes.py``; this module claims, leases, sends and records.

An issue is rendered once; its HTML, text and digest are stored on the issue row
and every message, including a resume days later, is built from that stored body
(B6). At the first send the recipients are frozen into one ``deliveries`` row per
active subscriber whose categories match (E15); the row is the only record of
what happened to that person's message. Each row moves through::

    pending -> sending -> sent | failed_temp | failed_perm | in_doubt | skipped

1. **Claim** (``pending``/``failed_temp`` and due -> ``sending``): a worker claims
   a few rows with a lease of ``[schedule].lease_seconds`` and commits before any
   SMTP command. Before each message is built the subscriber is read again; anyone
   no longer active, or whose address is on the suppression list (issue 12), is
   ``skipped`` (E16).
2. **Hand-over** (issue 8): the last look, as late as the protocol allows, the
   same for every worker: after ``RCPT TO`` was accepted and before ``DATA`` (the
   transport's ``before_data`` hook; the outbox asks just before writing the
   file), one transaction checks that the row is still this worker's, reads the
   subscriber again and, if still active, records ``handed_over_at``: from here
   on the message may reach the server. Someone who unsubscribed meanwhile (the
   CLI, the one-click endpoint, a bounce) gets ``RSET`` and a ``skipped`` row; a
   row another process took over after a lapsed lease is left alone.
   **The remaining window** is from that commit to the server's reply to the
   final ``.``: the ``DATA`` round trip, the body's transfer and the server's
   own processing, milliseconds on a healthy connection, longer on a slow
   server. An unsubscribe that lands inside it does not stop that one message
   (the server may already have it); it stops every later one.
3. **Sent**: committed right after the server's ``250`` to the final ``.``.
4. **Temporary failure** (4xx, 552 at RCPT, a connection lost before the message
   was complete, a message that could not be built for this recipient):
   ``failed_temp`` with
   ``next_attempt_at = now + retry_base_seconds * 2^(attempt-1)`` times a jitter
   of 0.8-1.2. A lost connection is retried once at once on a fresh connection
   (F14). After ``max_attempts`` attempts, or once the next try would fall past
   ``max_retry_hours`` after the first, the row becomes ``failed_perm`` (G13).
5. **Permanent failure** (5xx at RCPT): ``failed_perm``; the subscriber's bounce
   count goes up and at ``bounce_limit`` the subscriber is ``bounced`` (F4).
6. **In doubt**: only a row whose message may have reached the server: the
   connection dropped or timed out after the final ``.`` (F9, F10), or a
   ``sending`` row that was handed over outlived its lease or its process (G1).
   A row claimed but never handed over cannot be at the server: recovery makes
   it ``pending`` again with its attempt undone, under either policy (issue 8).
   What happens to an in-doubt row is ``in_doubt_policy``:

   - ``resend_once`` (default, as Mailman and listmonk PR #3222): the row is
     sent once more, with the *same* Message-ID so the copies can be matched in
     the sink and provider logs. A row is resent at most once; if the resend is
     in doubt too, it is held for the operator.
   - ``hold`` (as Ghost): the row stays ``in_doubt``; the operator decides.

   Held rows keep the issue open: it is not reported complete, nor marked
   ``done``, while any row is ``in_doubt``. ``publisher status`` lists them by
   address, with the rows that were re-sent; ``publisher send --post SLUG
   --release-held [--address ADDR]`` (:meth:`Store.release_held`) sends them
   once more with the same Message-ID, and counts that as their resend. Every
   run reports the in-doubt count. At most one message per connection can be in
   doubt (one recipient per transaction), so the set stays small.

Stops that fail nobody:

- **Circuit breaker** (F6, D14, F13): ``pause_after_rejections`` consecutive
  content rejections (5xx at DATA), one ``552`` at DATA (too big for everyone) or
  an AUTH failure pause the issue with a reason; the rows involved are not
  failed (an auth failure or a too-big message releases its row untouched).
  ``publisher send --resume`` continues.
- **A message nobody can build** (issue 8): a header other than ``To`` that
  ``publisher.deliver.message`` refuses (a title with U+2028 or U+0085 in the
  Subject, a bad ``list_id``) or a DKIM failure is the same for every recipient:
  the issue pauses with a reason naming the issue, its posts and the field, and
  the row is released untouched, so nobody is failed. A bad address (``To``) or
  any other error stays the recipient's own (G13), but ``pause_after_rejections``
  of them in a row pause the issue too. Once the post is fixed, ``publisher send
  --post SLUG --resume`` re-renders an issue nobody has a copy of yet (no row
  sent, sending or in doubt; B6 still holds) and continues.
- **Server down** (F11): the run stops; the row is released untouched.
- **Hourly limit** (persisted in the database): the run stops; the next run
  continues where the budget allows. ``rate_per_second`` is a token bucket shared
  by the ``[smtp].concurrency`` workers.
- **Throttling** (F1, F15): a ``421`` at any stage, or a 4xx whose enhanced code
  is ``4.7.x`` (``451 4.7.1``, Gmail's ``421 4.7.0``/``4.7.28``, Yahoo's
  ``421 4.7.0 [TSS04]``), is the server asking *us* to slow down, not a verdict on
  one recipient. The row goes back to ``pending`` with its attempt undone (it does
  not count toward ``max_attempts``; ``max_retry_hours`` still bounds it), and
  every worker stops sending for a cool-down: 30 s, doubling with each throttle,
  at most the longest per-row back-off (``retry_base_seconds *
  2^(max_attempts-1)``, never over an hour). Workers wait holding no claims. The
  token bucket is halved too (with no ``rate_per_second``, the recent pace is
  halved); every 20 messages accepted in a row undo one halving, and the first
  20 reset the cool-down to 30 s. Replies to messages already in flight when a
  cool-down began do not lengthen it. The cool-down's end and its length are kept
  in ``settings``, so another or a restarted process respects them. A cool-down
  longer than half of ``[schedule].lease_seconds`` ends the run (``throttled``,
  with ``next_retry_at`` at its end) instead of sleeping inside it. Other 4xx
  (greylisting's ``450 4.2.0``, ``452 4.5.3``) back off that row only (F2, F3).
- **SIGTERM/SIGINT** (G2): the CLI sets ``stop``; each worker finishes and
  records its message in flight, gives back the rows it claimed but did not
  start, and the run ends with no row left ``sending``.

Startup recovery: ``sending`` rows whose lease expired, or whose claiming
process on this host is gone, become ``in_doubt`` when they were handed over and
``pending`` when they were not (G1, issue 8); then the in-doubt policy applies.
A database error after a ``250`` leaves the row ``sending`` (and handed over);
recovery later turns it ``in_doubt`` (H3), never ``sent`` without a record,
never lost. A database error in the hand-over itself resets the transaction:
nothing was handed over, and the row comes back ``pending``.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from publisher.clock import Clock
from publisher.config import Config
from publisher.deliver.message import DkimError, HeaderError, build_message, make_message_id
from publisher.deliver.outcomes import (
    JITTER,
    Action,
    NotBuilt,
    Rejection,
    Withdrawn,
    decide,
    rejections,
)
from publisher.deliver.outcomes import SendPolicy as SendPolicy  # its home is outcomes
from publisher.deliver.tokens import Purpose, TokenSigner, preferences_url, unsubscribe_url
from publisher.deliver.transports import Outcome, SendResult, Transport, TransportFactory
from publisher.errors import PublisherError
from publisher.publish.content import Post
from publisher.publish.newsletter import RenderedIssue
from publisher.store import (
    Delivery,
    DeliveryCounts,
    DeliveryStatus,
    HandOver,
    Issue,
    IssueStatus,
    NewIssue,
    Recovery,
    Reply,
    Store,
    Subscriber,
    SubscriberStatus,
)
from publisher.store.bounces import BounceStore

RESEND_ONCE = "resend_once"
HOLD = "hold"
THROTTLE_SETTING = "sender:throttle"  # the cool-down, shared by processes (F15)


class StopReason(StrEnum):
    PAUSED = "paused"
    SERVER_DOWN = "server_down"
    RATE_LIMITED = "rate_limited"
    THROTTLED = "throttled"  # the server asked us to slow down for longer than a run waits
    INTERRUPTED = "interrupted"


# Header fields a recipient's own data goes into; an error in any other field, or in
# DKIM signing, is the same for every recipient and pauses the issue (issue 8).
RECIPIENT_FIELDS = frozenset({"To"})
_FIELD_SOURCES = {
    "Subject": "the post's title",
    "From": "[newsletter].from_address and from_name",
    "Reply-To": "[newsletter].reply_to",
    "List-Id": "[newsletter].list_id",
    "List-Unsubscribe": "[web].base_url and [newsletter].unsubscribe_mailto",
    "Message-ID": "[site].base_url",
}


class IssueBuildError(PublisherError):
    """The issue's message cannot be built for anyone: the send pauses, nobody is failed."""


class Composer(Protocol):
    """Builds one subscriber's message from the stored issue (publisher.deliver.message in production)."""

    def message_id(self, issue: Issue, subscriber: Subscriber) -> str: ...

    def compose(self, issue: Issue, subscriber: Subscriber, message_id: str) -> bytes: ...


class MessageComposer:
    """The production composer: publisher.deliver.message with signed per-subscriber links."""

    def __init__(self, config: Config, signer: TokenSigner, clock: Clock) -> None:
        self.config = config
        self.signer = signer
        self.clock = clock

    def message_id(self, issue: Issue, subscriber: Subscriber) -> str:
        return make_message_id(issue.id, subscriber.id, self.config)

    def compose(self, issue: Issue, subscriber: Subscriber, message_id: str) -> bytes:
        """One subscriber's message; :class:`IssueBuildError` when nobody's can be built."""
        # Signed over state_version: a later status change retires these links (S2),
        # but unsubscribe tokens never expire by age (S10).
        unsubscribe = self.signer.sign(Purpose.UNSUBSCRIBE, subscriber.id, subscriber.state_version)
        preferences = self.signer.sign(Purpose.PREFERENCES, subscriber.id, subscriber.state_version)
        try:
            return build_message(
                self.config,
                rendered_issue(issue),
                to_address=subscriber.email,
                unsubscribe_url=unsubscribe_url(self.config, unsubscribe),
                preferences_url=preferences_url(self.config, preferences),
                message_id=message_id,
                date=self.clock(),
            )
        except HeaderError as exc:
            if exc.field in RECIPIENT_FIELDS:
                raise  # this recipient's address: the row fails, the issue goes on (G13)
            source = _FIELD_SOURCES.get(exc.field, "the issue or [newsletter] settings")
            if exc.field == "Subject" and not issue.key.startswith("post:"):
                source = "the digest's title"
            raise issue_build_error(issue, f"{exc.message} (it comes from {source})") from exc
        except DkimError as exc:
            raise issue_build_error(issue, f"{exc.message} (check [dkim])") from exc


def issue_build_error(issue: Issue, problem: str) -> IssueBuildError:
    """The pause reason for an issue whose message cannot be built: issue, posts, field."""
    posts = ", ".join(issue.post_slugs) or "none"
    first = issue.post_slugs[0] if issue.post_slugs else "SLUG"
    # The hint is part of the message: the message is what the pause stores and shows.
    return IssueBuildError(
        f"issue {issue.key} (posts: {posts}): the message cannot be built for anyone: "
        f"{problem}; nobody was mailed. Fix it, then run "
        f"`publisher send --post {first} --resume`"
    )


def rendered_issue(issue: Issue) -> RenderedIssue:
    """The stored body of an issue, as rendered once (B6)."""
    return RenderedIssue(
        key=issue.key,
        subject=issue.subject,
        preheader=issue.preheader,
        html=issue.html,
        text=issue.text,
        digest=issue.digest,
    )


def new_issue(rendered: RenderedIssue, posts: tuple[Post, ...]) -> NewIssue:
    """What to store for a freshly rendered issue about ``posts``."""
    return NewIssue(
        key=rendered.key,
        post_slugs=tuple(p.slug for p in posts),
        categories=tuple(sorted({p.category for p in posts if p.category})),
        subject=rendered.subject,
        preheader=rendered.preheader,
        html=rendered.html,
        text=rendered.text,
        digest=rendered.digest,
    )


@dataclass(frozen=True)
class Progress:
    """Counts of this run so far, for a progress line."""

    sent: int
    failed: int
    in_doubt: int
    skipped: int
    total: int


@dataclass(frozen=True)
class SendReport:
    issue_id: int
    sent: int  # this run
    failed_temp: int
    failed_perm: int
    in_doubt: int
    skipped: int
    throttled: int  # rows given back untouched because the server throttled (F15)
    recovered: int  # sending rows found in doubt at startup (they were handed over)
    resent: int  # in-doubt rows queued for their one resend
    counts: DeliveryCounts  # the whole issue after this run
    stop: StopReason | None
    detail: str
    next_retry_at: datetime | None
    done: bool
    reclaimed: int = 0  # abandoned claims never handed over: pending again at startup
    withdrawn: int = 0  # of ``skipped``: unsubscribed while their message was being handed over

    @property
    def held(self) -> int:
        """In-doubt rows left for the operator (``publisher send --release-held``)."""
        return self.counts[DeliveryStatus.IN_DOUBT]


class RateLimiter:
    """A token bucket shared by the workers; halved while the server throttles (F15).

    ``per_second`` is the configured rate (0: no limit). :meth:`slow_down` halves
    the rate in force, or with no limit the pace of the last few slots;
    :meth:`speed_up` undoes one halving, the last one restoring ``per_second``.
    """

    PACE_SLOTS = 20  # slots that measure the pace when no rate is configured
    UNKNOWN_PACE = 1.0  # messages per second assumed before two slots were taken
    SLOWEST = 1 / 60  # never slower than a message a minute

    def __init__(self, per_second: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._next = monotonic()
        self._rate = per_second  # in force now; 0: no limit
        self._halvings = 0
        self._recent: deque[float] = deque(maxlen=self.PACE_SLOTS)

    @property
    def rate(self) -> float:
        """Messages per second in force now; 0 for no limit."""
        with self._lock:
            return self._rate

    def wait(self, stop: threading.Event) -> bool:
        """Wait for a slot; False when ``stop`` was set meanwhile."""
        with self._lock:
            now = self._monotonic()
            slot = now
            if self._rate > 0:
                slot = max(self._next, now)
                self._next = slot + 1.0 / self._rate
            self._recent.append(slot)
        delay = slot - now
        return not stop.wait(delay) if delay > 0 else not stop.is_set()

    def slow_down(self) -> None:
        """Halve the rate in force (F15). Slots already queued are forgiven: the
        cool-down that comes with a slow-down spaces the next message enough."""
        with self._lock:
            current = self._rate if self._rate > 0 else self._pace()
            self._rate = max(current / 2, self.SLOWEST)
            self._halvings += 1
            self._next = self._monotonic()

    def speed_up(self) -> None:
        """Undo one halving; undoing the last restores the configured rate."""
        with self._lock:
            if self._halvings == 0:
                return
            self._halvings -= 1
            self._rate = self.per_second if self._halvings == 0 else self._rate * 2

    def _pace(self) -> float:
        if len(self._recent) >= 2 and self._recent[-1] > self._recent[0]:
            return (len(self._recent) - 1) / (self._recent[-1] - self._recent[0])
        return self.UNKNOWN_PACE


class Throttle:
    """The cool-down all workers observe after a throttling reply (F1, F15).

    Thread-safe. Its end, length and cause live in ``settings`` under
    :data:`THROTTLE_SETTING`, written only when they change and read before each
    claim, so other and restarted processes respect it.
    """

    MAX_LEVEL = 16

    def __init__(
        self, store: Store, policy: SendPolicy, limiter: RateLimiter, clock: Clock
    ) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy
        self.limiter = limiter
        self._lock = threading.Lock()
        self._not_before: datetime | None = None
        self._level = 0  # throttles since the last reset; the next cool-down doubles with it
        self._said = ""
        self._accepted = 0  # messages accepted since the last throttle
        self.refresh()

    def refresh(self) -> None:
        """Adopt a later cool-down another process (or an earlier run) stored."""
        stored = _load_throttle(self.store.get_setting(THROTTLE_SETTING))
        if stored is None:
            return
        not_before, level, said = stored
        with self._lock:
            if self._not_before is None or not_before > self._not_before:
                self._not_before, self._said = not_before, said
            self._level = max(self._level, level)

    def remaining(self) -> float:
        """Seconds until sending may resume; 0 when not cooling down."""
        with self._lock:
            not_before = self._not_before
        if not_before is None:
            return 0.0
        return max((not_before - self.clock()).total_seconds(), 0.0)

    @property
    def not_before(self) -> datetime | None:
        with self._lock:
            return self._not_before

    def throttled(self, said: str) -> None:
        """A throttling reply: everyone waits longer, then sends slower."""
        now = self.clock()
        with self._lock:
            if self._not_before is not None and now < self._not_before:
                return  # in flight when the cool-down began: the server already told us
            if self._quiet_since_long(now):
                self._level = 0  # an old throttle: start again from the base
            seconds = self.policy.throttle_base_seconds * 2**self._level
            seconds = min(seconds, self.policy.throttle_max_seconds)
            self._level = min(self._level + 1, self.MAX_LEVEL)
            self._not_before = now + timedelta(seconds=seconds)
            self._said, self._accepted = said, 0
            state = self._dump()
        self.store.set_setting(THROTTLE_SETTING, state)
        self.limiter.slow_down()

    def _quiet_since_long(self, now: datetime) -> bool:
        if self._not_before is None:
            return False
        return (now - self._not_before).total_seconds() > self.policy.throttle_max_seconds

    def accepted(self) -> None:
        """A message was accepted: every ``throttle_reset_after`` in a row undo one
        halving of the rate; the first ones also reset the cool-down to its base."""
        with self._lock:
            self._accepted += 1
            if self._accepted % self.policy.throttle_reset_after:
                return
            reset, self._level = self._level > 0, 0
            state = self._dump()
        self.limiter.speed_up()
        if reset:
            self.store.set_setting(THROTTLE_SETTING, state)

    def describe(self) -> str:
        with self._lock:
            when, said = self._not_before, self._said or "throttled"
        resume = f"; resuming at {when:%Y-%m-%d %H:%M} UTC" if when else ""
        return f"the mail server asked us to slow down ({said}){resume}"

    def _dump(self) -> str:
        when = self._not_before.isoformat() if self._not_before else None
        return json.dumps({"not_before": when, "level": self._level, "said": self._said})


def _load_throttle(value: str | None) -> tuple[datetime, int, str] | None:
    """The stored cool-down; None when there is none or it cannot be read."""
    try:
        data = json.loads(value or "null")
        not_before = datetime.fromisoformat(data["not_before"])
        return not_before, int(data.get("level", 0)), str(data.get("said", ""))
    except (TypeError, ValueError, KeyError):
        return None


def worker_name() -> str:
    """``host:pid:random``; recovery uses host and pid to spot dead claimers (G1)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def send_issue(
    store: Store,
    issue_id: int,
    transports: TransportFactory,
    composer: Composer,
    policy: SendPolicy,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    rng: random.Random | None = None,
    name: str | None = None,
    sleep: Callable[[float], object] | None = None,
    clock: Clock,
) -> SendReport:
    """Send (or resume) one issue until nothing is due, then report. Safe to rerun.

    ``sleep(seconds)`` waits out a cool-down (F15); by default a wait that a signal
    cuts short. Tests pass one that moves their clock. ``clock`` is the time every
    decision is made at (publisher.wiring passes the system clock; tests their own).
    """
    issue = _sendable(store, issue_id)
    store.snapshot(issue.id)
    recovery = recover(store)
    run = _Run(store, issue, transports, composer, policy, stop, progress, rng, name, sleep, clock)
    resent = run.requeue_in_doubt()
    run.work()
    if not run.halted():
        # Messages that went in doubt during this run get their one resend now.
        again = run.requeue_in_doubt()
        if again:
            resent += again
            run.work()
    return run.report(recovery, resent)


def _sendable(store: Store, issue_id: int) -> Issue:
    issue = store.get_issue(issue_id)
    if issue is None:
        raise PublisherError(f"no issue with id {issue_id}")
    if issue.status == IssueStatus.PAUSED:
        raise PublisherError(
            f"issue {issue.key} is paused: {issue.pause_reason}",
            hint="Fix the cause, then run `publisher send --post ... --resume`.",
        )
    return issue


def resume_issue(store: Store, issue_id: int) -> None:
    """Lift a pause; the next send continues where the issue stopped."""
    store.set_issue_status(issue_id, IssueStatus.SENDING)


def recover(store: Store) -> Recovery:
    """Startup recovery (G1): expired leases and rows of dead local processes. Rows that
    were handed over become in doubt; rows claimed but never handed over, pending."""
    recovered = store.recover_expired_leases()
    for claimant in store.claimants():
        if dead_here(claimant):
            recovered += store.recover_claims(claimant)
    return recovered


def dead_here(worker: str) -> bool:
    """True when ``worker`` (``host:pid:...``, :func:`worker_name`) is a process of this host
    that is gone (G1). Another host's, this process's, or one we may not signal is not."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def describe_counts(
    counts: DeliveryCounts, *, label_first: bool = False, empty: str = "no recipients"
) -> str:
    """An issue's deliveries by status, zeros left out: ``3 sent, 1 in_doubt``; with
    ``label_first`` (``publisher send`` and ``status``) ``sent 3, in_doubt 1``."""
    parts = [
        f"{status.value} {counts[status]}" if label_first else f"{counts[status]} {status.value}"
        for status in DeliveryStatus
        if counts[status]
    ]
    return ", ".join(parts) or empty


class _Run:
    """One run over one issue: shared state of the workers, guarded by a lock."""

    def __init__(
        self,
        store: Store,
        issue: Issue,
        transports: TransportFactory,
        composer: Composer,
        policy: SendPolicy,
        stop: threading.Event | None,
        progress: Callable[[Progress], None] | None,
        rng: random.Random | None,
        name: str | None,
        sleep: Callable[[float], object] | None,
        clock: Clock,
    ) -> None:
        self.store = store
        self.clock = clock
        self.issue = issue
        self.transports = transports
        self.composer = composer
        self.policy = policy
        self.stop = stop or threading.Event()
        self.progress = progress
        self.rng = rng or random.Random()  # jitter only, not a secret
        self.name = name or worker_name()
        self.limiter = RateLimiter(policy.rate_per_second)
        self.throttle = Throttle(store, policy, self.limiter, clock)
        self.suppressions = BounceStore(store)  # issue 12: never mail a suppressed address
        self.sleep = sleep or self._nap
        self.lease = timedelta(seconds=policy.lease_seconds)
        self.total = store.counts(issue.id).total
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._reason: StopReason | None = None
        self._detail = ""
        self._streak = 0
        kinds = (
            "sent",
            "failed_temp",
            "failed_perm",
            "in_doubt",
            "skipped",
            "throttled",
            "withdrawn",
        )
        self._tally = {k: 0 for k in kinds}
        self._errors: list[BaseException] = []

    # control --------------------------------------------------------------------------------

    def halted(self) -> bool:
        if self.stop.is_set() and self._reason is None:
            self._set_halt(StopReason.INTERRUPTED, "stopped by a signal; run again to continue")
        return self._halt.is_set()

    def _set_halt(self, reason: StopReason, detail: str) -> None:
        with self._lock:
            if self._reason is None:
                self._reason, self._detail = reason, detail
        self._halt.set()

    def pause(self, detail: str) -> None:
        self.store.set_issue_status(self.issue.id, IssueStatus.PAUSED, detail)
        self._set_halt(StopReason.PAUSED, detail)

    def requeue_in_doubt(self) -> int:
        if self.policy.in_doubt_policy != RESEND_ONCE:
            return 0
        return self.store.requeue_in_doubt(self.issue.id)

    # workers --------------------------------------------------------------------------------

    def work(self) -> None:
        """Run the workers until nothing is due or the run halts; re-raise worker errors."""
        threads = [
            threading.Thread(target=self._worker, args=(i,), name=f"sender-{i}", daemon=True)
            for i in range(self.policy.concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # keep the main thread free for signal handlers (G2)
        if self._errors:
            raise self._errors[0]

    def _worker(self, index: int) -> None:
        worker = f"{self.name}/{index}"
        transport = self.transports()
        try:
            while not self.halted() and self._cool_down():
                batch = self.store.claim(self.issue.id, worker, self.policy.claim_size, self.lease)
                if not batch:
                    return
                self._send_batch(transport, worker, batch)
        except BaseException as exc:  # recorded and re-raised by work()
            self._errors.append(exc)
            self._set_halt(StopReason.INTERRUPTED, f"error: {exc}")
        finally:
            transport.close()

    def _send_batch(self, transport: Transport, worker: str, batch: list[Delivery]) -> None:
        rows = list(batch)
        lease_until = self.clock() + self.lease
        try:
            while rows:
                if self.halted() or not self._rate_slot():
                    return
                if self.clock() + self.lease / 2 > lease_until:
                    held = self.store.renew_lease(worker, [r.id for r in rows], self.lease)
                    rows = [r for r in rows if r.id in held]
                    lease_until = self.clock() + self.lease
                    if not rows:
                        return
                self._deliver(transport, worker, rows.pop(0))
        finally:
            # Claimed but never started: back to pending, untouched (G2).
            self.store.release(worker, [r.id for r in rows])

    def _cool_down(self) -> bool:
        """Wait out a cool-down, holding no claims (F15); False when the run ends instead."""
        self.throttle.refresh()
        while (left := self.throttle.remaining()) > 0:
            if left > self.policy.throttle_wait_seconds:
                self._set_halt(StopReason.THROTTLED, self.throttle.describe())
                return False
            self.sleep(left)
            if self.halted():
                return False
        return True

    def _nap(self, seconds: float) -> None:
        """The default cool-down sleep; a signal (G2) or another worker's halt wakes it."""
        end = time.monotonic() + seconds
        while not self.stop.is_set() and not self._halt.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(left, 1.0))

    def _rate_slot(self) -> bool:
        # F15: while cooling down, give the rows back; the worker loop waits it out.
        if self.throttle.remaining() > 0 or not self.limiter.wait(self.stop):
            return False
        if self.throttle.remaining() > 0:
            return False  # throttled while this worker waited for its slot
        if self.policy.rate_per_hour <= 0:
            return True
        wait = self.store.reserve_send_slot(self.policy.rate_per_hour)
        if wait:
            resume = self.clock() + wait
            self._set_halt(
                StopReason.RATE_LIMITED,
                f"hourly limit of {self.policy.rate_per_hour} messages reached; "
                f"run again after {resume:%Y-%m-%d %H:%M} UTC",
            )
            return False
        return True

    # one message ----------------------------------------------------------------------------

    def _deliver(self, transport: Transport, worker: str, row: Delivery) -> None:
        subscriber = self.store.get_subscriber(row.subscriber_id)
        suppressed = self.suppressions.suppressed(subscriber.email) if subscriber else None
        if subscriber is None or subscriber.status != SubscriberStatus.ACTIVE or suppressed:
            status = subscriber.status if subscriber else "removed"
            why = f"address is suppressed ({suppressed.reason})" if suppressed else None
            self.store.mark_skipped(row.id, worker, why or f"subscriber is {status} (E16)")
            self._count("skipped")
            return
        message_id = row.message_id or self.composer.message_id(self.issue, subscriber)
        try:
            data = self.composer.compose(self.issue, subscriber, message_id)
        except IssueBuildError as exc:  # the same for everyone: pause, fail nobody (issue 8)
            self._apply(worker, row, NotBuilt(exc.message, everyone=True), message_id)
            return
        except Exception as exc:  # G13: one poison recipient must not stop the issue ...
            text = f"could not build the message: {exc.__class__.__name__}: {exc}"
            self._apply(worker, row, NotBuilt(text), message_id)  # ... but a run of them pauses it
            return
        verdicts: list[HandOver] = []

        def before_data() -> bool:
            # The last look before DATA (E16, issue 8): after RCPT was accepted.
            verdicts.append(self.store.hand_over(row.id, worker))
            return verdicts[-1] == HandOver.GO

        envelope = self.policy.envelope_from(self.issue.id, subscriber.id)  # VERP (issue 12)
        result = transport.send(envelope, subscriber.email, data, before_data)
        if _retry_at_once(result) and not _withdrawn(verdicts):
            # F14: the connection dropped before the message was complete; a fresh
            # connection gets one immediate retry (never after a 421: F1, F15).
            result = transport.send(envelope, subscriber.email, data, before_data)
        if _withdrawn(verdicts):
            self._apply(worker, row, Withdrawn(tuple(verdicts)), message_id)
            return
        self._apply(worker, row, result, message_id)

    def _apply(
        self,
        worker: str,
        row: Delivery,
        outcome: SendResult | NotBuilt | Withdrawn,
        message_id: str,
    ) -> None:
        """Carry out the policy's decision (publisher.deliver.outcomes) on the row."""
        decision = decide(outcome, row, self.policy, self.clock(), self.rng.uniform(*JITTER))
        action, reply = decision.action, decision.reply or Reply()
        if action == Action.THROTTLE:
            # F1, F15: tell the other workers first: the database write below can wait on
            # a lock, and every message started meanwhile would hit the throttling server too.
            self.throttle.throttled(decision.detail)
            self.store.release(worker, [row.id])  # pending again, this attempt undone
            with self._lock:
                self._tally["throttled"] += 1  # not progress: nobody's message moved
        elif action == Action.SENT:
            self.store.mark_sent(row.id, reply, message_id)
            self._streak_reset()
            self.throttle.accepted()
        elif action == Action.IN_DOUBT:
            self.store.mark_in_doubt(row.id, worker, reply, message_id)
        elif action == Action.RETRY:
            assert decision.retry_at is not None
            self.store.mark_failed_temp(row.id, worker, reply, message_id, decision.retry_at)
        elif action == Action.FAILED:
            bounce = decision.bounce_limit
            self.store.mark_failed_perm(row.id, worker, reply, message_id, bounce_limit=bounce)
        elif action == Action.WITHDRAWN:
            # The last check said no; the store already settled the row (or another has it).
            if decision.skipped:
                self._count("skipped")
                with self._lock:
                    self._tally["withdrawn"] += 1
        else:  # too big, auth failed, server down, unbuildable: the row is released untouched
            self.store.release(worker, [row.id])
            if action == Action.PAUSE:
                self.pause(decision.detail)
            else:
                self._set_halt(StopReason.SERVER_DOWN, decision.detail)
        if decision.counted is not None:
            self._count(decision.counted)
        if decision.rejected is not None:
            self._rejected(decision.rejected)

    def _rejected(self, rejected: Rejection) -> None:
        with self._lock:
            self._streak += 1
            streak = self._streak
        reason = rejections(streak, self.policy, rejected, self.issue.key)
        if reason:
            self.pause(reason)

    def _streak_reset(self) -> None:
        with self._lock:
            self._streak = 0

    def _count(self, key: str) -> None:
        with self._lock:
            self._tally[key] += 1
            t = dict(self._tally)
        if self.progress is not None:
            failed = t["failed_temp"] + t["failed_perm"]
            self.progress(Progress(t["sent"], failed, t["in_doubt"], t["skipped"], self.total))

    # report -----------------------------------------------------------------------------------

    def report(self, recovery: Recovery, resent: int) -> SendReport:
        counts = self.store.counts(self.issue.id)
        # Held in-doubt rows are the operator's to decide: the issue is not complete (issue 8).
        held = counts[DeliveryStatus.IN_DOUBT]
        done = not self.halted() and counts.unfinished == 0 and held == 0
        if done:
            self.store.set_issue_status(self.issue.id, IssueStatus.DONE)
        retry_at = None if done else self.store.next_retry_at(self.issue.id)
        resume = self.throttle.not_before
        if self._reason == StopReason.THROTTLED and resume is not None:
            retry_at = resume if retry_at is None else max(retry_at, resume)
        return SendReport(
            issue_id=self.issue.id,
            sent=self._tally["sent"],
            failed_temp=self._tally["failed_temp"],
            failed_perm=self._tally["failed_perm"],
            in_doubt=self._tally["in_doubt"],
            skipped=self._tally["skipped"],
            throttled=self._tally["throttled"],
            recovered=recovery.in_doubt,
            resent=resent,
            counts=counts,
            stop=self._reason,
            detail=self._detail,
            next_retry_at=retry_at,
            done=done,
            reclaimed=recovery.released,
            withdrawn=self._tally["withdrawn"],
        )


def _retry_at_once(result: SendResult) -> bool:
    """F14: the connection dropped before the message was complete, and not after a 421."""
    return result.outcome == Outcome.TEMPORARY and result.connection_lost and not result.throttled


def _withdrawn(verdicts: list[HandOver]) -> bool:
    return any(v != HandOver.GO for v in verdicts)
