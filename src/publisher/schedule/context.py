"""What every job of a tick shares: the tick's summary and moment, and the runner's tools.

A job (publisher.schedule.publish_job, issues_job, send_job) gets one
:class:`JobContext` when the runner is made and one :class:`Pass` per tick; it
never sees the runner itself, so the framework (publisher.schedule.runner) and
the jobs depend on this module and not on each other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from publisher.config import Config
from publisher.publish.site import Site
from publisher.schedule.identity import Rename
from publisher.schedule.state import SchedulerState
from publisher.store import Store

Clock = Callable[[], datetime]


@dataclass
class TickSummary:
    """What one tick did, for logs and ``publisher run --once``."""

    at: datetime
    built: bool = False
    published: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)  # "renamed: OLD → NEW (...)" lines
    issues_created: list[str] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    in_doubt: int = 0
    skipped: int = 0
    waiting: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        built = "site built" if self.built else "site unchanged"
        return (
            f"{built}; {count(len(self.published), 'post')} published; "
            f"{count(len(self.issues_created), 'issue')} created; "
            f"messages: {self.sent} sent, {self.failed} failed, {self.in_doubt} in doubt"
            + (f"; {count(len(self.errors), 'job')} failed" if self.errors else "")
        )


@dataclass
class Pass:
    """Per-tick state: the moment, the summary, the site once read."""

    now: datetime
    summary: TickSummary
    site: Site | None = None
    renames: list[Rename] = field(default_factory=list)  # found when the site was read


@dataclass
class JobContext:
    """The runner's configuration, store, clock and log, as the jobs use them."""

    config: Config
    store: Store
    state: SchedulerState
    clock: Clock
    log: logging.Logger
    stop: threading.Event
    name: str  # this worker, as it claims jobs and rows
    _said: dict[str, str] = field(default_factory=dict)

    def waiting(self, run: Pass, topic: str, why: str) -> None:
        """Say why something waits: in the summary always, in the log when it changes."""
        run.summary.waiting.append(why)
        if self._said.get(topic) != why:
            self._said[topic] = why
            self.log.info("%s", why)

    def forget(self, topic: str) -> None:
        """``topic`` no longer waits: say it again when it next does."""
        self._said.pop(topic, None)

    def local(self, moment: datetime) -> str:
        return f"{moment.astimezone(self.config.site.timezone):%Y-%m-%d %H:%M %Z}"


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def paused(issue_id: int, reason: str | None) -> str:
    return f"issue {issue_id} paused: {reason or 'no reason given'} (publisher send --resume)"
