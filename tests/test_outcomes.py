"""The delivery policy as a pure function (publisher.deliver.outcomes): one row per branch.

Each row is an attempt at a delivery (attempt number, first attempt hours ago), what the
transport said, and the decision expected; no clock, database or server is involved. The
sender tests (tests/test_sender.py) check that the decisions are carried out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from publisher.deliver.outcomes import (
    Action,
    Decision,
    NotBuilt,
    Rejection,
    Withdrawn,
    decide,
    rejections,
)
from publisher.deliver.transports import Outcome, SendResult, Stage
from publisher.store import Delivery, DeliveryStatus, HandOver, Reply
from sending import policy

NOW = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)
POLICY = policy(max_attempts=5, retry_base_seconds=60, max_retry_hours=72, bounce_limit=3)


def row(attempt: int = 1, first_hours_ago: float | None = 0.0) -> Delivery:
    first = None if first_hours_ago is None else NOW - timedelta(hours=first_hours_ago)
    return Delivery(
        id=1,
        issue_id=1,
        subscriber_id=1,
        status=DeliveryStatus.SENDING,
        attempt=attempt,
        next_attempt_at=NOW,
        first_attempt_at=first,
        claimed_by="host:1:abc",
        lease_until=NOW + timedelta(minutes=5),
        last_code=None,
        last_enhanced_code=None,
        last_reply=None,
        message_id=None,
        sent_at=None,
        resent=False,
    )


def smtp(
    outcome: Outcome,
    stage: Stage,
    code: int | None,
    text: str,
    enhanced: str | None = None,
    **flags: bool,
) -> SendResult:
    return SendResult(outcome, stage, code, enhanced, text, **flags)


def reply(code: int | None, text: str, enhanced: str | None = None) -> Reply:
    return Reply(code, enhanced, text)


FIRST_TRY = row()


@dataclass(frozen=True)
class Case:
    name: str
    outcome: SendResult | NotBuilt | Withdrawn
    expected: Decision
    delivery: Delivery = FIRST_TRY
    jitter: float = 1.0


GREYLISTED = smtp(Outcome.TEMPORARY, Stage.RCPT, 450, "greylisted", "4.2.0")
REJECTED = smtp(Outcome.CONTENT_REJECTED, Stage.END, 554, "spam", "5.7.1")
THROTTLED = smtp(Outcome.TEMPORARY, Stage.RCPT, 421, "slow down", "4.7.0", throttled=True)
BUILD = "could not build the message: ValueError: boom"

CASES = [
    Case(
        "sent",
        smtp(Outcome.SENT, Stage.END, 250, "ok"),
        Decision(Action.SENT, reply=reply(250, "ok")),
    ),
    Case(
        "in doubt after the final dot",
        smtp(Outcome.IN_DOUBT, Stage.END, None, "timed out"),
        Decision(Action.IN_DOUBT, reply=reply(None, "timed out")),
    ),
    Case(
        "temporary, first attempt: base back-off",
        GREYLISTED,
        Decision(
            Action.RETRY,
            reply=reply(450, "greylisted", "4.2.0"),
            retry_at=NOW + timedelta(seconds=60),
        ),
    ),
    Case(
        "temporary, third attempt, low jitter: 60 * 2^2 * 0.8",
        GREYLISTED,
        Decision(
            Action.RETRY,
            reply=reply(450, "greylisted", "4.2.0"),
            retry_at=NOW + timedelta(seconds=192),
        ),
        delivery=row(attempt=3),
        jitter=0.8,
    ),
    Case(
        "temporary, high jitter",
        GREYLISTED,
        Decision(
            Action.RETRY,
            reply=reply(450, "greylisted", "4.2.0"),
            retry_at=NOW + timedelta(seconds=72),
        ),
        jitter=1.2,
    ),
    Case(
        "temporary, attempt 0 (never tried) backs off like the first",
        GREYLISTED,
        Decision(
            Action.RETRY,
            reply=reply(450, "greylisted", "4.2.0"),
            retry_at=NOW + timedelta(seconds=60),
        ),
        delivery=row(attempt=0, first_hours_ago=None),
    ),
    Case(
        "temporary at max_attempts: given up",
        GREYLISTED,
        Decision(
            Action.FAILED, reply=reply(450, "gave up after 5 attempts: 450 greylisted", "4.2.0")
        ),
        delivery=row(attempt=5),
    ),
    Case(
        "temporary, next try past max_retry_hours: given up",
        GREYLISTED,
        Decision(
            Action.FAILED, reply=reply(450, "gave up after 2 attempts: 450 greylisted", "4.2.0")
        ),
        delivery=row(attempt=2, first_hours_ago=71.99),
    ),
    Case(
        "permanent at RCPT: failed, bounce counted",
        smtp(Outcome.PERMANENT, Stage.RCPT, 550, "no such user", "5.1.1"),
        Decision(Action.FAILED, reply=reply(550, "no such user", "5.1.1"), bounce_limit=3),
    ),
    Case(
        "permanent at MAIL: failed, no bounce, a rejection for everyone",
        smtp(Outcome.PERMANENT, Stage.MAIL, 553, "sender refused"),
        Decision(
            Action.FAILED,
            reply=reply(553, "sender refused"),
            rejected=Rejection("553 sender refused"),
        ),
    ),
    Case(
        "content rejected: back off and count the rejection",
        REJECTED,
        Decision(
            Action.RETRY,
            reply=reply(554, "spam", "5.7.1"),
            retry_at=NOW + timedelta(seconds=60),
            rejected=Rejection("554 spam"),
        ),
    ),
    Case(
        "content rejected at max_attempts: given up, still a rejection",
        REJECTED,
        Decision(
            Action.FAILED,
            reply=reply(554, "gave up after 5 attempts: 554 spam", "5.7.1"),
            rejected=Rejection("554 spam"),
        ),
        delivery=row(attempt=5),
    ),
    Case(
        "throttled: released, everyone cools down",
        THROTTLED,
        Decision(Action.THROTTLE, reply=reply(421, "slow down", "4.7.0"), detail="421 slow down"),
        delivery=row(attempt=5),  # not counted toward max_attempts
    ),
    Case(
        "throttled past max_retry_hours: back to the back-off rules, given up",
        THROTTLED,
        Decision(
            Action.FAILED,
            reply=reply(421, "gave up after 1 attempts: 421 slow down", "4.7.0"),
        ),
        delivery=row(attempt=1, first_hours_ago=72),
    ),
    Case(
        "too big: paused, released",
        smtp(Outcome.TOO_BIG, Stage.END, 552, "too big"),
        Decision(
            Action.PAUSE,
            reply=reply(552, "too big"),
            detail="the server refused the message as too big (552 too big); "
            "shorten the issue (D14)",
        ),
    ),
    Case(
        "auth failed: paused, released",
        smtp(Outcome.AUTH_FAILED, Stage.CONNECT, 535, "bad credentials"),
        Decision(
            Action.PAUSE,
            reply=reply(535, "bad credentials"),
            detail="SMTP authentication failed (535 bad credentials); "
            "check [smtp] username and password",
        ),
    ),
    Case(
        "server down: the run halts, released",
        smtp(Outcome.SERVER_DOWN, Stage.CONNECT, None, ""),
        Decision(Action.HALT, reply=reply(None, ""), detail="mail server unavailable: no reply"),
    ),
    Case(
        "withdrawn: the subscriber left before DATA",
        Withdrawn((HandOver.SKIPPED,)),
        Decision(Action.WITHDRAWN, skipped=True),
    ),
    Case(
        "withdrawn: another process took the row",
        Withdrawn((HandOver.GO, HandOver.LOST)),
        Decision(Action.WITHDRAWN),
    ),
    Case(
        "not built for this recipient: back off, counted as unbuilt",
        NotBuilt(BUILD),
        Decision(
            Action.RETRY,
            reply=Reply(text=BUILD),
            retry_at=NOW + timedelta(seconds=60),
            rejected=Rejection(BUILD, built=False),
        ),
    ),
    Case(
        "not built for anyone: paused, released",
        NotBuilt("issue post:hello: bad Subject", everyone=True),
        Decision(Action.PAUSE, detail="issue post:hello: bad Subject"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide(case: Case) -> None:
    assert decide(case.outcome, case.delivery, POLICY, NOW, case.jitter) == case.expected


def test_every_action_has_a_row() -> None:
    assert {c.expected.action for c in CASES} == set(Action)


@pytest.mark.parametrize(
    ("streak", "last", "expected"),
    [
        (4, Rejection("554 spam"), ""),
        (
            5,
            Rejection("554 spam"),
            "5 consecutive messages were rejected (last: 554 spam); "
            "check the content and the sender (F6)",
        ),
        (
            6,
            Rejection("boom", built=False),
            "issue post:hello: 5 consecutive messages could not be built (last: boom); "
            "check the issue",
        ),
    ],
)
def test_pause_after_rejections(streak: int, last: Rejection, expected: str) -> None:
    assert rejections(streak, policy(pause_after_rejections=5), last, "post:hello") == expected


@pytest.mark.parametrize(
    ("action", "tally"),
    [
        (Action.SENT, "sent"),
        (Action.IN_DOUBT, "in_doubt"),
        (Action.RETRY, "failed_temp"),
        (Action.FAILED, "failed_perm"),
        (Action.THROTTLE, None),
        (Action.PAUSE, None),
        (Action.HALT, None),
        (Action.WITHDRAWN, None),
    ],
)
def test_what_a_decision_counts_as(action: Action, tally: str | None) -> None:
    assert Decision(action).counted == tally
