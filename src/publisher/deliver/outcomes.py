"""The delivery policy as a pure function: what happens to one row after one attempt.

:func:`decide` maps ``outcome x delivery x policy x now`` (and the jitter drawn for a
back-off) to a :class:`Decision`; it reads no clock, no database and no randomness.
The threads, leases and database writes that carry a decision out stay in
publisher.deliver.sender, whose docstring states the policy this function implements
(RELIABILITY §1.3; read it before changing anything here). The table in
``tests/test_outcomes.py`` has one row per branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from publisher.config import Config
from publisher.deliver.transports import Outcome, SendResult, Stage
from publisher.inbound.verp import ReturnPath, return_path
from publisher.store import Delivery, HandOver, Reply

JITTER = (0.8, 1.2)  # the back-off is multiplied by a uniform draw from this range (§1.3, 4)


@dataclass(frozen=True)
class SendPolicy:
    """The knobs of the delivery policy, read from config once."""

    from_address: str
    in_doubt_policy: str
    max_attempts: int
    retry_base_seconds: float
    max_retry_hours: float
    pause_after_rejections: int
    bounce_limit: int
    concurrency: int
    rate_per_second: float
    rate_per_hour: int
    lease_seconds: float
    claim_size: int
    throttle_base_seconds: float = 30.0  # the first cool-down (F15)
    throttle_reset_after: int = 20  # messages accepted in a row that undo one slow-down
    return_path: ReturnPath | None = None  # VERP envelope sender (issue 12); None: from_address

    def envelope_from(self, issue_id: int, subscriber_id: int) -> str:
        """The envelope sender of one delivery row: its VERP address, or ``from_address``."""
        if self.return_path is None:
            return self.from_address
        return self.return_path.address(issue_id, subscriber_id)

    @property
    def throttle_max_seconds(self) -> float:
        """The longest cool-down: the longest per-row back-off, at most an hour (F15)."""
        longest = self.retry_base_seconds * 2.0 ** (self.max_attempts - 1)
        return max(self.throttle_base_seconds, min(longest, 3600.0))

    @property
    def throttle_wait_seconds(self) -> float:
        """A longer cool-down ends the run instead: half a lease, so the job lease of
        ``publisher run``, renewed as messages move, never lapses while we wait (G6)."""
        return self.lease_seconds / 2

    @classmethod
    def from_config(cls, config: Config) -> SendPolicy:
        n, smtp = config.newsletter, config.smtp
        lease = config.schedule.lease_seconds
        # Claim only what can be sent well within the lease (each SMTP step may take
        # up to the timeout); leases are renewed too, but small claims keep the
        # in-doubt set after a crash small.
        claim = max(1, min(n.batch_size, int(lease / (3 * smtp.timeout_seconds))))
        return cls(
            from_address=n.from_address,
            in_doubt_policy=n.in_doubt_policy,
            max_attempts=n.max_attempts,
            retry_base_seconds=n.retry_base_seconds,
            max_retry_hours=n.max_retry_hours,
            pause_after_rejections=n.pause_after_rejections,
            bounce_limit=n.bounce_limit,
            concurrency=smtp.concurrency,
            rate_per_second=smtp.rate_per_second,
            rate_per_hour=smtp.rate_per_hour,
            lease_seconds=lease,
            claim_size=claim,
            return_path=return_path(config),
        )


class Action(StrEnum):
    """What the sender does with the row."""

    SENT = "sent"  # mark_sent: the server took it (§1.3, 3)
    IN_DOUBT = "in_doubt"  # mark_in_doubt: it may have reached the server (§1.3, 6)
    RETRY = "retry"  # mark_failed_temp, next try at ``retry_at`` (§1.3, 4)
    FAILED = "failed"  # mark_failed_perm: a verdict or given up (§1.3, 4-5)
    THROTTLE = "throttle"  # release untouched, every worker cools down (F1, F15)
    PAUSE = "pause"  # release untouched, pause the issue with ``detail`` (F6, D14, F13)
    HALT = "halt"  # release untouched, stop the run: the server is down (F11)
    WITHDRAWN = "withdrawn"  # the hand-over said no; the store settled the row (issue 8)


@dataclass(frozen=True)
class Rejection:
    """One more in a run of rejections (F6) or unbuildable messages (G13)."""

    last: str  # what the server (or the builder) said
    built: bool = True


@dataclass(frozen=True)
class Decision:
    action: Action
    reply: Reply | None = None  # what to record on the row (FAILED: with the give-up note)
    retry_at: datetime | None = None  # RETRY
    bounce_limit: int | None = None  # FAILED at RCPT: the subscriber's bounce count goes up
    rejected: Rejection | None = None  # counts toward ``pause_after_rejections``
    detail: str = ""  # PAUSE/HALT: the reason shown to the operator
    skipped: bool = False  # WITHDRAWN: the subscriber left, count the row as skipped

    @property
    def counted(self) -> str | None:
        """The run's tally this decision adds to, if any."""
        if self.action == Action.RETRY:
            return "failed_temp"
        if self.action == Action.FAILED:
            return "failed_perm"
        if self.action in (Action.SENT, Action.IN_DOUBT):
            return str(self.action)
        return None


@dataclass(frozen=True)
class NotBuilt:
    """The message could not be built: ``everyone`` for an issue-wide fault (issue 8),
    else this recipient's own (G13); ``text`` says why."""

    text: str
    everyone: bool = False


@dataclass(frozen=True)
class Withdrawn:
    """The last look before DATA said no (issue 8): the verdicts of each try."""

    verdicts: tuple[HandOver, ...]


def decide(
    outcome: SendResult | NotBuilt | Withdrawn,
    delivery: Delivery,
    policy: SendPolicy,
    now: datetime,
    jitter: float = 1.0,
) -> Decision:
    """The delivery policy for one attempt at ``delivery`` (§1.3). ``jitter`` is drawn from
    :data:`JITTER` by the caller, so that this function is pure."""
    if isinstance(outcome, Withdrawn):
        return Decision(Action.WITHDRAWN, skipped=HandOver.SKIPPED in outcome.verdicts)
    if isinstance(outcome, NotBuilt):
        if outcome.everyone:
            return Decision(Action.PAUSE, detail=outcome.text)
        reply = Reply(text=outcome.text)
        unbuilt = Rejection(said(reply), built=False)
        return _retry_or_give_up(delivery, reply, policy, now, jitter, unbuilt)
    reply = Reply(outcome.code, outcome.enhanced_code, outcome.reply)
    kind = outcome.outcome
    if outcome.throttled:
        deadline = _deadline(delivery, policy, now)
        if now >= deadline:  # G13 still bounds the row
            return _retry_or_give_up(delivery, reply, policy, now, jitter)
        return Decision(Action.THROTTLE, reply=reply, detail=said(reply))
    if kind == Outcome.SENT:
        return Decision(Action.SENT, reply=reply)
    if kind == Outcome.IN_DOUBT:
        return Decision(Action.IN_DOUBT, reply=reply)
    if kind == Outcome.TEMPORARY:
        return _retry_or_give_up(delivery, reply, policy, now, jitter)
    if kind == Outcome.PERMANENT:
        bounce = policy.bounce_limit if outcome.stage == Stage.RCPT else None
        # A refused sender address (5xx at MAIL) is the same for everyone.
        refused = Rejection(said(reply)) if outcome.stage == Stage.MAIL else None
        return Decision(Action.FAILED, reply=reply, bounce_limit=bounce, rejected=refused)
    if kind == Outcome.CONTENT_REJECTED:
        return _retry_or_give_up(delivery, reply, policy, now, jitter, Rejection(said(reply)))
    # Too big, auth failed, server down: nobody's fault but ours; the row is released.
    if kind == Outcome.TOO_BIG:
        detail = (
            f"the server refused the message as too big ({said(reply)}); shorten the issue (D14)"
        )
        return Decision(Action.PAUSE, reply=reply, detail=detail)
    if kind == Outcome.AUTH_FAILED:
        detail = f"SMTP authentication failed ({said(reply)}); check [smtp] username and password"
        return Decision(Action.PAUSE, reply=reply, detail=detail)
    return Decision(Action.HALT, reply=reply, detail=f"mail server unavailable: {said(reply)}")


def rejections(streak: int, policy: SendPolicy, last: Rejection, issue_key: str) -> str:
    """The pause reason once ``streak`` consecutive rejections reach
    ``pause_after_rejections`` (F6, G13), else ``""``."""
    limit = policy.pause_after_rejections
    if streak < limit:
        return ""
    if not last.built:
        return (
            f"issue {issue_key}: {limit} consecutive messages could not be built "
            f"(last: {last.last}); check the issue"
        )
    return (
        f"{limit} consecutive messages were rejected "
        f"(last: {last.last}); check the content and the sender (F6)"
    )


def _retry_or_give_up(
    delivery: Delivery,
    reply: Reply,
    policy: SendPolicy,
    now: datetime,
    jitter: float,
    rejected: Rejection | None = None,
) -> Decision:
    """Back off ``retry_base_seconds * 2^(attempt-1) * jitter``, or give up after
    ``max_attempts`` or past ``max_retry_hours`` after the first try (G13)."""
    base = policy.retry_base_seconds * 2 ** max(delivery.attempt - 1, 0)
    retry_at = now + timedelta(seconds=base * jitter)
    if delivery.attempt >= policy.max_attempts or retry_at > _deadline(delivery, policy, now):
        note = f"gave up after {delivery.attempt} attempts: {said(reply)}"
        given_up = Reply(reply.code, reply.enhanced_code, note)
        return Decision(Action.FAILED, reply=given_up, rejected=rejected)
    return Decision(Action.RETRY, reply=reply, retry_at=retry_at, rejected=rejected)


def _deadline(delivery: Delivery, policy: SendPolicy, now: datetime) -> datetime:
    return (delivery.first_attempt_at or now) + timedelta(hours=policy.max_retry_hours)


def said(reply: Reply) -> str:
    """The server's reply in one line: code and text, or ``no reply``."""
    parts = [str(reply.code) if reply.code else "", reply.text]
    return " ".join(p for p in parts if p) or "no reply"
