"""Job 3, ``send``: the queued confirmation mails, then every issue not done.

Each issue goes to publisher.deliver.sender, which claims delivery rows one by
one and owns the delivery policy (its docstring). This job only decides the
order, skips paused issues with their reason, keeps the job's lease alive during
a long send, and stops for the tick when the server is down or throttles (F15).
"""

from __future__ import annotations

import time
from datetime import timedelta

from publisher.deliver.confirmations import ConfirmationDrain, ConfirmationMailer
from publisher.deliver.sender import (
    Composer,
    SendPolicy,
    SendReport,
    StopReason,
    describe_counts,
    send_issue,
)
from publisher.deliver.tokens import make_signer
from publisher.deliver.transports import TransportFactory
from publisher.errors import PublisherError
from publisher.publish.templating import make_environment
from publisher.schedule.context import JobContext, Pass, count, paused
from publisher.store import IssueStatus, IssueSummary, Store
from publisher.store.signups import WebStore

SEND = "send"

# The server's state, the same for every issue: the next tick tries again.
_STOP_THE_TICK = frozenset({StopReason.SERVER_DOWN, StopReason.RATE_LIMITED, StopReason.THROTTLED})


class SendJob:
    def __init__(
        self,
        ctx: JobContext,
        transports: TransportFactory,
        lease: timedelta,
        composer: Composer,
    ) -> None:
        self.ctx = ctx
        self.transports = transports
        self.lease = lease
        self._composer = composer
        self._confirmations: ConfirmationDrain | None = None

    def __call__(self, run: Pass) -> None:
        ctx = self.ctx
        self._send_confirmations(run)
        policy = SendPolicy.from_config(ctx.config)
        for issue in ctx.store.open_issues():
            if ctx.stop.is_set():
                ctx.waiting(run, "send", "stopping: the remaining issues wait for the next run")
                return
            if issue.status == IssueStatus.PAUSED:
                ctx.waiting(run, f"issue:{issue.id}", paused(issue.id, issue.pause_reason))
                continue
            report = self._send_one(run, issue, policy)
            # F15: a cool-down is the server's, not the issue's
            if report is not None and report.stop in _STOP_THE_TICK:
                return

    def composer(self) -> Composer:
        return self._composer

    def _send_confirmations(self, run: Pass) -> None:
        """Confirmation mails a web process queued; first, since a visitor waits for them."""
        try:
            drain = self._confirmation_drain()
            report = None if drain is None else drain.run(self.ctx.stop)
        except PublisherError as exc:  # never holds back the newsletter; the rows wait
            self.ctx.waiting(run, "confirmations", f"confirmation mails wait: {exc.message}")
            return
        if report is not None and (report.sent or report.retrying or report.failed):
            self.ctx.log.info(
                "confirmation mails: %s sent, %s to retry, %s failed",
                report.sent,
                report.retrying,
                report.failed,
            )

    def _confirmation_drain(self) -> ConfirmationDrain | None:
        if self._confirmations is None:
            ctx = self.ctx
            if not WebStore(ctx.store).has_queued():
                return None  # publisher web never queued anything on this database
            mailer = ConfirmationMailer(
                ctx.config, make_environment(ctx.config), self.transports, ctx.clock
            )
            signer = make_signer(ctx.config, ctx.store, ctx.clock, warn=ctx.log.warning)
            web_store = WebStore.open(ctx.store)
            self._confirmations = ConfirmationDrain(
                ctx.config, web_store, signer, mailer, clock=ctx.clock, name=ctx.name
            )
        return self._confirmations

    def _send_one(self, run: Pass, issue: IssueSummary, policy: SendPolicy) -> SendReport | None:
        ctx = self.ctx
        renew = LeaseKeeper(ctx.store, SEND, ctx.name, self.lease)
        try:
            report = send_issue(
                ctx.store,
                issue.id,
                self.transports,
                self.composer(),
                policy,
                stop=ctx.stop,
                progress=lambda _progress: renew(),
                name=ctx.name,
                clock=ctx.clock,
            )
        except PublisherError as exc:  # paused meanwhile by another process
            ctx.waiting(run, f"issue:{issue.id}", f"issue {issue.id}: {exc}")
            return None
        self._account(run, issue, report)
        return report

    def _account(self, run: Pass, issue: IssueSummary, report: SendReport) -> None:
        s, log = run.summary, self.ctx.log
        s.sent += report.sent
        s.failed += report.failed_temp + report.failed_perm
        s.in_doubt += report.in_doubt
        s.skipped += report.skipped
        if report.sent or report.failed_temp or report.failed_perm or report.in_doubt:
            log.info(
                "issue %s (%s): %s sent, %s failed, %s in doubt, %s skipped this run",
                issue.id,
                issue.key,
                report.sent,
                report.failed_temp + report.failed_perm,
                report.in_doubt,
                report.skipped,
            )
        if report.recovered:
            log.warning(
                "issue %s: %s left sending by a crashed run, now in doubt (G1)",
                issue.id,
                count(report.recovered, "message"),
            )
        self._log_issue_state(run, issue, report)

    def _log_issue_state(self, run: Pass, issue: IssueSummary, report: SendReport) -> None:
        counts = report.counts
        if report.done:
            self.ctx.log.info(
                "issue %s (%s) done: %s", issue.id, issue.key, describe_counts(counts)
            )
            return
        if report.stop == StopReason.PAUSED:
            why = paused(issue.id, report.detail)
        elif report.stop is not None:
            why = f"issue {issue.id} stopped ({report.stop}): {report.detail}"
        elif report.next_retry_at is not None:
            why = f"issue {issue.id}: retries due at {self.ctx.local(report.next_retry_at)}"
        elif report.held:  # issue 8: not complete while the operator has rows to decide on
            why = (
                f"issue {issue.id}: {count(report.held, 'message')} in doubt held for the "
                "operator (publisher status; publisher send --release-held)"
            )
        else:
            why = f"issue {issue.id}: {describe_counts(counts)}"
        self.ctx.waiting(run, f"issue:{issue.id}", why)


class LeaseKeeper:
    """Renews a job's lease during a long send, at most every third of the lease (G6)."""

    def __init__(self, store: Store, job: str, worker: str, lease: timedelta) -> None:
        self.store, self.job, self.worker, self.lease = store, job, worker, lease
        self._last = time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self._last >= self.lease.total_seconds() / 3:
            self._last = time.monotonic()
            self.store.claim_job(self.job, self.worker, self.lease, ignore_backoff=True)
