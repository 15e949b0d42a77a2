"""What the scheduler will do next, for ``publisher run --status`` and ``publisher status``.

Read from the database only: no posts are read (publisher.schedule.next_pass
reads them to say what the next pass would publish and mail).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from publisher.config import Config
from publisher.deliver.sender import describe_counts
from publisher.schedule.context import Clock, count
from publisher.schedule.issues_job import digest_schedule, start_instant
from publisher.schedule.slots import Slot, describe
from publisher.schedule.state import SchedulerState
from publisher.store import DeliveryCounts, IssueStatus, IssueSummary, JobState, Store


@dataclass(frozen=True)
class IssueProgress:
    issue: IssueSummary
    counts: DeliveryCounts
    next_retry_at: datetime | None


@dataclass(frozen=True)
class SchedulerStatus:
    """What the scheduler will do next, read from the database only (no posts are read)."""

    now: datetime
    next_post: tuple[datetime, str] | None  # due instant and slug, as of the last pass
    newsletter_start: datetime | None
    next_digest: Slot | None
    jobs: tuple[JobState, ...]
    issues: tuple[IssueProgress, ...]  # not done yet
    issues_total: int


def scheduler_status(config: Config, store: Store, clock: Clock) -> SchedulerStatus:
    """The scheduler's state for ``publisher run --status`` (and ``publisher status``)."""
    now = clock()
    state = SchedulerState(store)
    schedule = digest_schedule(config)
    start: datetime | None = None
    if config.newsletter.start is not None:
        start = start_instant(config.newsletter.start, config)
    else:
        start = state.enabled_at
    issues = tuple(
        IssueProgress(i, store.counts(i.id), store.next_retry_at(i.id)) for i in store.open_issues()
    )
    due = state.next_due
    return SchedulerStatus(
        now=now,
        next_post=None if due is None else (due.at, due.slug),
        newsletter_start=start,
        next_digest=schedule.following(now) if schedule is not None else None,
        jobs=tuple(store.job_states()),
        issues=issues,
        issues_total=store.issue_count(),
    )


def status_lines(config: Config, status: SchedulerStatus) -> list[str]:
    """``status`` as lines for a terminal, times in the site time zone."""
    zone = config.site.timezone

    def local(moment: datetime | None) -> str:
        return "-" if moment is None else f"{moment.astimezone(zone):%Y-%m-%d %H:%M %Z}"

    n = config.newsletter
    lines = [f"now: {local(status.now)}"]
    post = status.next_post
    lines.append(f"next post due: {local(post[0])} ({post[1]})" if post else "next post due: none")
    if not n.enabled:
        lines.append("newsletter: disabled")
    else:
        start = local(status.newsletter_start) if status.newsletter_start else "at the first run"
        lines.append(f"newsletter: {n.cadence}, posts dated from {start}")
    if status.next_digest is not None:
        lines.append(f"next digest: {describe(status.next_digest, zone)}")
    for job in status.jobs:
        lines.append(_job_line(job, local))
    lines.append(f"issues: {status.issues_total} in all, {len(status.issues)} not done")
    for progress in status.issues:
        lines.append(_issue_line(progress, local))
    return lines


def _job_line(job: JobState, local: Callable[[datetime | None], str]) -> str:
    text = f"job {job.name}: last run {local(job.last_run_at)}"
    if job.claimed_by:
        text += f", running in {job.claimed_by} until {local(job.lease_until)}"
    if job.last_error:
        text += (
            f", {count(job.failures, 'failure')} in a row, next try {local(job.next_run_at)}: "
            f"{job.last_error}"
        )
    return text


def _issue_line(progress: IssueProgress, local: Callable[[datetime | None], str]) -> str:
    issue = progress.issue
    text = f"  issue {issue.id} {issue.key} [{issue.status}]: {describe_counts(progress.counts)}"
    if issue.status == IssueStatus.PAUSED:
        text += f"; paused: {issue.pause_reason}"
    elif progress.next_retry_at is not None:
        text += f"; next attempt {local(progress.next_retry_at)}"
    return text
