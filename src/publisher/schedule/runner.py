"""The scheduler: publish and mail every post on time, exactly once, across restarts.

Design
======

All state lives in the database; the ``schedule`` library (``publisher run``,
publisher.cli.run) is only a trigger that calls :meth:`Runner.tick` every
``[schedule].poll_seconds``, and ``publisher run --once`` calls it once from
cron. A tick is one idempotent pass: running it twice, in two processes at once,
after a crash or after the clock jumped, does no more than running it once.

A tick runs three **jobs**, in this order, each under a claim in the ``jobs``
table (``Store.claim_job``: one ``UPDATE`` with a lease of
``[schedule].lease_seconds``), so two schedulers on one database (a double
start, cron plus a service) never do the same job at the same time (G4, G6):

1. ``publish``: read the posts (each file once) and compute the public set at
   ``clock()``. Its fingerprint (public slugs and the digests of the bytes read,
   the configuration, the templates) is kept in ``settings``; when it differs, or
   the output folder is missing or not the one this scheduler wrote last (a manual
   build replaced it), ``write_site`` renders that same ``Site`` and writes pages
   and feeds atomically (G10, G11; issue 8, 13) and only then are the new public
   posts recorded in ``published``. A post under a new slug that is a published
   post renamed (publisher.schedule.identity: same ``id``, content, or date and
   title) moves its record instead, so it is not published or mailed again
   (issue 8, 1). The newsletter only ever looks at ``published``, so the page
   and the feeds are out before any mail (A20). When
   no input file changed and no post has become due, the posts are not even read.
2. ``issues``: newly published posts dated at or after the newsletter start
   become issues, rendered once and stored (B6). ``per_post``: one issue per
   post, key ``post:<slug>``. ``daily``/``weekly``: at each digest slot
   (publisher.schedule.slots) one digest of the published posts dated up to the slot that
   no issue has mailed yet, key ``digest:<local date>``; an empty digest is not
   sent; after downtime only the latest slot is made, so a digest missed while
   down goes out once, not once per missed slot. A digest for slot S waits until
   a publish pass at or after S has recorded the posts (``published_as_of``);
   between slots the posts are not read at all.
3. ``send``: every issue not done goes to publisher.deliver.sender, which claims
   delivery rows one by one (§1.3) and owns the delivery policy (what happens to a
   message in doubt after a crash is written in its docstring). Paused issues are
   skipped with their reason. SIGTERM sets ``stop``: the message in flight is
   finished and recorded, then the tick ends (G2). Before the issues, the same
   job sends the double opt-in mails the web service queued and has not sent
   (``confirmation_mails``, publisher.deliver.confirmations: claims with a lease, so the web
   worker and the scheduler never send one row twice at once, G4), so a signup
   made just before ``publisher web`` crashed is confirmed without waiting for
   the web service to restart (G1). Databases the web service never used are
   left alone (nothing queued).

Startup reconciliation is the same tick: issues created but not sent, retries
that fell due while the process was down and ``sending`` rows of a dead process
are all found in the database (G1, G3, G7). A job held by a dead process on this
host (``host:pid:...`` whose pid is gone) is freed at once instead of waiting
for its lease.

**Newsletter start** (the back catalogue is never mailed): ``[newsletter].start``,
or, when empty, the moment the scheduler first saw the newsletter enabled,
recorded once in ``settings`` (``newsletter.enabled_at``). Posts that go public
while the newsletter is disabled are marked handled and never mailed later.

**Failures** (G5, L5): a job that raises is logged, recorded in ``jobs``
(``last_error``) with ``next_run_at`` pushed back exponentially
(2 x poll_seconds, doubling, at most an hour), and the tick goes on with the next
job; ``schedule`` never sees the exception, so it neither dies nor reruns the
job every tick. A failed ``publish`` or ``issues`` job is retried early when an
input file changes, so fixing a broken post takes effect at the next tick.

**Time** (G8, G9): decisions compare instants from the database with
``clock()``, never "time since the last tick". A post once published stays
published when the clock steps back (the build uses at least the date of the
newest post already published); digest slots are computed with zoneinfo in the
site time zone and keyed by local date, so a repeated hour (fall back) or a
clock stepping back cannot repeat a digest, and a skipped hour (spring forward)
cannot skip one (publisher.schedule.slots has the rule).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from publisher.config import Config
from publisher.deliver.sender import Composer, dead_here, worker_name
from publisher.deliver.transports import TransportFactory
from publisher.errors import PublisherError
from publisher.publish.build import write_site
from publisher.schedule.context import Clock, JobContext, Pass, TickSummary, count
from publisher.schedule.issues_job import IssuesJob
from publisher.schedule.publish_job import Builder, PublishJob
from publisher.schedule.send_job import SEND, SendJob
from publisher.schedule.site_source import inputs_fingerprint, keep_published
from publisher.schedule.state import SchedulerState
from publisher.schedule.status import scheduler_status, status_lines
from publisher.store import JobState, Store

__all__ = [
    "ISSUES",
    "PUBLISH",
    "SEND",
    "Backoff",
    "Builder",
    "Clock",
    "Runner",
    "TickSummary",
    "keep_published",
    "scheduler_status",
    "status_lines",
]

PUBLISH, ISSUES = "publish", "issues"
# Jobs whose failure is retried early when an input file changes.
_INPUT_JOBS = frozenset({PUBLISH, ISSUES})


@dataclass(frozen=True)
class Backoff:
    """Delay before a failed job runs again: ``base * 2^(failures-1)``, at most ``cap`` (G5)."""

    base: timedelta
    cap: timedelta = timedelta(hours=1)

    @classmethod
    def from_config(cls, config: Config) -> Backoff:
        # Twice the poll interval: a failing job always skips at least one tick (L5).
        return cls(base=timedelta(seconds=2 * config.schedule.poll_seconds))

    def delay(self, failures: int) -> timedelta:
        delay: timedelta = self.base * 2 ** max(failures - 1, 0)
        return min(delay, self.cap)


class Runner:
    """Runs the publish, issues and send jobs; see the module docstring."""

    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Clock,
        transport_factory: TransportFactory,
        log: logging.Logger,
        *,
        composer: Composer,  # built by the composition root (publisher.wiring)
        stop: threading.Event | None = None,
        builder: Builder | None = None,
        backoff: Backoff | None = None,
        name: str | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.log = log
        self.stop = stop or threading.Event()
        self.backoff = backoff or Backoff.from_config(config)
        self.name = name or worker_name()
        self.lease = timedelta(seconds=config.schedule.lease_seconds)
        self.state = SchedulerState(store)
        self.ctx = JobContext(config, store, self.state, clock, log, self.stop, self.name)
        self.issues = IssuesJob(self.ctx)
        self.sender = SendJob(self.ctx, transport_factory, self.lease, composer)
        self.jobs: tuple[tuple[str, Callable[[Pass], None]], ...] = (
            (PUBLISH, PublishJob(self.ctx, builder or write_site)),
            (ISSUES, self.issues),
            (SEND, self.sender),
        )

    def composer(self) -> Composer:
        return self.sender.composer()

    def tick(self) -> TickSummary:
        """One idempotent pass: publish, then issues, then send."""
        now = self.clock()
        run = Pass(now, TickSummary(at=now))
        states = {s.name: s for s in self.store.job_states()}
        self._free_dead_claims(states)
        for name, work in self.jobs:
            self._job(run, name, states.get(name), work)
        return run.summary

    def _job(
        self, run: Pass, name: str, state: JobState | None, work: Callable[[Pass], None]
    ) -> None:
        early = self._inputs_changed_since_failure(name, state)
        if not self.store.claim_job(name, self.name, self.lease, ignore_backoff=early):
            self._explain_skip(run, name, state)
            return
        try:
            work(run)
        except Exception as exc:  # G5: recorded and backed off; the loop goes on
            self._record_failure(run, name, state, exc)
            return
        self.store.finish_job(name, self.name, error=None, next_run_at=None)
        self.ctx.forget(f"job:{name}")

    def _record_failure(self, run: Pass, name: str, state: JobState | None, exc: Exception) -> None:
        failures = (state.failures if state else 0) + 1
        retry_at = self.clock() + self.backoff.delay(failures)
        error = _describe_error(exc)
        self.store.finish_job(name, self.name, error=error, next_run_at=retry_at)
        if name in _INPUT_JOBS:
            self.state.set_failed_inputs(name, inputs_fingerprint(self.config))
        self.log.error(
            "%s failed (%s in a row): %s; next try at %s or when a post changes",
            name,
            failures,
            error,
            self.ctx.local(retry_at),
            exc_info=not isinstance(exc, PublisherError),
        )
        run.summary.errors.append(f"{name}: {error}")

    def _inputs_changed_since_failure(self, name: str, state: JobState | None) -> bool:
        if name not in _INPUT_JOBS or state is None or state.next_run_at is None:
            return False
        if state.next_run_at <= self.clock():
            return False
        failed_with = self.state.failed_inputs(name)
        return failed_with is not None and failed_with != inputs_fingerprint(self.config)

    def _explain_skip(self, run: Pass, name: str, state: JobState | None) -> None:
        now = self.clock()
        if state is not None and state.next_run_at is not None and state.next_run_at > now:
            why = (
                f"{name} waits until {self.ctx.local(state.next_run_at)} after "
                f"{count(state.failures, 'failure')}: {state.last_error}"
            )
        else:
            holder = state.claimed_by if state is not None else None
            why = f"{name} is being done by another scheduler ({holder or 'unknown'})"
        self.ctx.waiting(run, f"job:{name}", why)

    def _free_dead_claims(self, states: dict[str, JobState]) -> None:
        """A job held by a process of this host that no longer exists is free at once (G1)."""
        for state in states.values():
            holder = state.claimed_by
            if holder and dead_here(holder) and self.store.release_job(state.name, holder):
                self.log.warning(
                    "%s was held by %s, which is gone; taking it over", state.name, holder
                )


def _describe_error(exc: Exception) -> str:
    if isinstance(exc, PublisherError):
        return exc.message
    return f"{exc.__class__.__name__}: {exc}"
