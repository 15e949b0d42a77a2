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

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from publisher.config import Config
from publisher.deliver.confirmations import ConfirmationDrain, ConfirmationMailer
from publisher.deliver.sender import (
    Composer,
    MessageComposer,
    SendPolicy,
    SendReport,
    StopReason,
    new_issue,
    send_issue,
    worker_name,
)
from publisher.deliver.tokens import make_signer
from publisher.deliver.transports import TransportFactory
from publisher.errors import ContentError, PublisherError
from publisher.publish.build import BuildResult, write_site
from publisher.publish.content import Post, read_posts
from publisher.publish.newsletter import (
    RenderedIssue,
    check_issue,
    render_digest_issue,
    render_post_issue,
)
from publisher.publish.site import Site, build_site
from publisher.publish.templating import make_environment, template_dirs
from publisher.schedule.identity import Rename, find_renames, published_moment, renamed_slugs
from publisher.schedule.slots import DigestSchedule, Slot, describe
from publisher.store import (
    DeliveryCounts,
    DeliveryStatus,
    IssueStatus,
    IssueSummary,
    JobState,
    PublishedEntry,
    Store,
)
from publisher.store.signups import WebStore

Clock = Callable[[], datetime]
Builder = Callable[[Site], BuildResult]  # renders the Site already read (issue 8, 13)

PUBLISH, ISSUES, SEND = "publish", "issues", "send"
JOBS = (PUBLISH, ISSUES, SEND)

# settings keys
BUILD_KEY = "scheduler.build"  # fingerprint of the site last built
INPUTS_KEY = "scheduler.inputs"  # stat fingerprint of the input files at the last pass
OUTPUT_KEY = "scheduler.output:"  # + host and folder hash: stamp of the folder last written
# Set once every published record carries the id, title and date a rename is recognised by:
# until then a pass reads the posts even when no file changed (records made before issue 8).
IDENTITY_KEY = "scheduler.published_identity"
NEXT_DUE_KEY = "scheduler.next_due"  # "<iso instant> <slug>" of the next scheduled post
AS_OF_KEY = "scheduler.published_as_of"  # `published` is complete for posts dated <= this
DIGEST_KEY = "scheduler.digest_slot"  # local date of the last digest slot handled
ENABLED_AT_KEY = "newsletter.enabled_at"  # first tick that saw [newsletter].enabled
FAILED_INPUTS_KEY = "scheduler.failed_inputs:"  # + job name: inputs when it last failed


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
            f"{built}; {_count(len(self.published), 'post')} published; "
            f"{_count(len(self.issues_created), 'issue')} created; "
            f"messages: {self.sent} sent, {self.failed} failed, {self.in_doubt} in doubt"
            + (f"; {_count(len(self.errors), 'job')} failed" if self.errors else "")
        )


@dataclass
class _Pass:
    """Per-tick state: the moment, the summary, the site once read."""

    now: datetime
    summary: TickSummary
    site: Site | None = None
    renames: list[Rename] = field(default_factory=list)  # found when the site was read


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
        composer: Composer | None = None,
        stop: threading.Event | None = None,
        builder: Builder | None = None,
        backoff: Backoff | None = None,
        name: str | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.transports = transport_factory
        self.log = log
        self.stop = stop or threading.Event()
        self.builder: Builder = builder or write_site
        self.backoff = backoff or Backoff.from_config(config)
        self.name = name or worker_name()
        self.lease = timedelta(seconds=config.schedule.lease_seconds)
        self._composer = composer
        self._confirmations: ConfirmationDrain | None = None
        self._said: dict[str, str] = {}
        self._nothing_queued: tuple[str | None, tuple[str, ...]] | None = None
        self.digests = digest_schedule(config)

    # the tick -------------------------------------------------------------------------------

    def tick(self) -> TickSummary:
        """One idempotent pass: publish, then issues, then send."""
        now = self.clock()
        run = _Pass(now, TickSummary(at=now))
        states = {s.name: s for s in self.store.job_states()}
        self._free_dead_claims(states)
        self._job(run, PUBLISH, states.get(PUBLISH), self._publish)
        self._job(run, ISSUES, states.get(ISSUES), self._issues)
        self._job(run, SEND, states.get(SEND), self._send)
        return run.summary

    def _job(
        self, run: _Pass, name: str, state: JobState | None, work: Callable[[_Pass], None]
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
        self._said.pop(f"job:{name}", None)

    def _record_failure(
        self, run: _Pass, name: str, state: JobState | None, exc: Exception
    ) -> None:
        failures = (state.failures if state else 0) + 1
        retry_at = self.clock() + self.backoff.delay(failures)
        error = _describe_error(exc)
        self.store.finish_job(name, self.name, error=error, next_run_at=retry_at)
        if name in (PUBLISH, ISSUES):
            self.store.set_setting(FAILED_INPUTS_KEY + name, inputs_fingerprint(self.config))
        when = self._local(retry_at)
        self.log.error(
            "%s failed (%s in a row): %s; next try at %s or when a post changes",
            name,
            failures,
            error,
            when,
            exc_info=not isinstance(exc, PublisherError),
        )
        run.summary.errors.append(f"{name}: {error}")

    def _inputs_changed_since_failure(self, name: str, state: JobState | None) -> bool:
        if name not in (PUBLISH, ISSUES) or state is None or state.next_run_at is None:
            return False
        if state.next_run_at <= self.clock():
            return False
        failed_with = self.store.get_setting(FAILED_INPUTS_KEY + name)
        return failed_with is not None and failed_with != inputs_fingerprint(self.config)

    def _explain_skip(self, run: _Pass, name: str, state: JobState | None) -> None:
        now = self.clock()
        if state is not None and state.next_run_at is not None and state.next_run_at > now:
            why = (
                f"{name} waits until {self._local(state.next_run_at)} after "
                f"{_count(state.failures, 'failure')}: {state.last_error}"
            )
        else:
            holder = state.claimed_by if state is not None else None
            why = f"{name} is being done by another scheduler ({holder or 'unknown'})"
        self._waiting(run, f"job:{name}", why)

    def _free_dead_claims(self, states: dict[str, JobState]) -> None:
        """A job held by a process of this host that no longer exists is free at once (G1)."""
        for state in states.values():
            holder = state.claimed_by
            if holder and _dead_here(holder) and self.store.release_job(state.name, holder):
                self.log.warning(
                    "%s was held by %s, which is gone; taking it over", state.name, holder
                )

    # 1. publish -------------------------------------------------------------------------------

    def _publish(self, run: _Pass) -> None:
        inputs = inputs_fingerprint(self.config)
        if self._nothing_new(inputs, run.now):
            self._advance_as_of(run.now)
            self._note_next_post(run, _parse_next_due(self.store.get_setting(NEXT_DUE_KEY)))
            return
        site = self._site(run)
        # Of the posts as read: the very bytes the pages are rendered from (issue 8, 13).
        fingerprint = site_fingerprint(site)
        if fingerprint != self.store.get_setting(BUILD_KEY) or not self._output_ours():
            result = self.builder(site)
            self.store.set_setting(output_key(self.config), output_stamp(self.config))
            run.summary.built = True
            self.log.info(
                "built %s, %s pages and %s feeds into %s in %.2f s",
                _count(len(site.posts), "post"),
                result.pages,
                result.feeds,
                result.output,
                result.seconds,
            )
        self._record_published(run, site)
        self.store.set_setting(BUILD_KEY, fingerprint)
        self.store.set_setting(INPUTS_KEY, inputs)
        self.store.set_setting(NEXT_DUE_KEY, _next_due_value(site))
        self._advance_as_of(site.now)
        self._note_next_post(run, _parse_next_due(_next_due_value(site)))

    def _nothing_new(self, inputs: str, now: datetime) -> bool:
        """No input file changed and no scheduled post became due: nothing to read."""
        if self.store.get_setting(INPUTS_KEY) != inputs or not self._output_ours():
            return False
        if self.store.get_setting(BUILD_KEY) is None or not self.store.get_setting(IDENTITY_KEY):
            return False
        due = _parse_next_due(self.store.get_setting(NEXT_DUE_KEY))
        return due is None or due[0] > now

    def _output_ours(self) -> bool:
        """The output folder is the one this scheduler wrote last.

        A manual ``publisher build`` (say, after the clock was set back, or with
        ``--drafts``) swaps in another folder; the next pass then rebuilds it (item 15).
        """
        stamp = self.store.get_setting(output_key(self.config))
        return self.config.output_path.is_dir() and stamp in (None, output_stamp(self.config))

    def _site(self, run: _Pass) -> Site:
        """The public site at this tick, read once (G8: published posts stay published)."""
        if run.site is None:
            result = read_posts(self.config)
            if result.problems:
                raise ContentError(result.problems, hint="Fix the posts above; nothing changed.")
            records = self.store.published_posts()
            run.renames = find_renames(result.posts, records)
            known = renamed_slugs(records, run.renames)
            moment = published_moment(run.now, result.posts, known, self._as_of())
            run.site = build_site(self.config, result.posts, moment)
        return run.site

    def _record_published(self, run: _Pass, site: Site) -> None:
        """Record the public posts and the renames found; a renamed post is not new."""
        oldest_first = sorted(site.posts, key=lambda p: (p.date, p.slug))
        entries = [PublishedEntry(p.slug, p.digest, p.id, p.title, p.date) for p in oldest_first]
        renames = [(r.old, r.new) for r in run.renames]
        fresh = self.store.record_published_many(entries, run.now, renames=renames)
        self.store.set_setting(IDENTITY_KEY, "1")
        for rename in run.renames:
            line = rename.line(mailed=bool(self.store.issues_with_post(rename.new)))
            run.summary.renamed.append(line)
            self.log.info("%s (recognised by its %s)", line, rename.by)
        self._log_published(run, site, fresh)

    def _as_of(self) -> datetime | None:
        value = self.store.get_setting(AS_OF_KEY)
        return datetime.fromisoformat(value) if value else None

    def _advance_as_of(self, moment: datetime) -> None:
        as_of = self._as_of()
        if as_of is None or moment > as_of:
            self.store.set_setting(AS_OF_KEY, moment.isoformat())

    def _log_published(self, run: _Pass, site: Site, fresh: Sequence[str]) -> None:
        by_slug = {p.slug: p for p in site.posts}
        for slug in fresh:
            post = by_slug[slug]
            run.summary.published.append(slug)
            self.log.info(
                "published '%s' (%s), dated %s", post.title, post.source, self._local(post.date)
            )

    def _note_next_post(self, run: _Pass, due: tuple[datetime, str] | None) -> None:
        if due is not None:
            self._waiting(run, "next-post", f"next post due {self._local(due[0])}: {due[1]}")

    # 2. issues --------------------------------------------------------------------------------

    def _issues(self, run: _Pass) -> None:
        if not self.config.newsletter.enabled:
            self._skip_while_disabled()
            return
        start = self.newsletter_start(run.now)
        if self.digests is None:
            self._post_issues(run, self._queued(run, start))
        else:
            self._digest(run, self.digests, start)

    def _queued(self, run: _Pass, start: datetime) -> list[Post]:
        """Published posts waiting for an issue, oldest first.

        Posts withdrawn after publishing stay pending but are not public; while
        the public site (its fingerprint) and the pending list stay the same,
        the posts are not read again just to find that out.
        """
        pending = self.store.posts_without_issue()
        if not pending:
            return []
        idle_key = (self.store.get_setting(BUILD_KEY), tuple(pending))
        if idle_key == self._nothing_queued:
            return []
        queued = self._eligible(self._site(run), pending, start)
        self._nothing_queued = None if queued else idle_key
        return queued

    def newsletter_start(self, now: datetime) -> datetime:
        """``[newsletter].start`` as an instant, or the moment first seen enabled (recorded)."""
        configured = self.config.newsletter.start
        if configured is not None:
            return start_instant(configured, self.config)
        value = self.store.get_setting(ENABLED_AT_KEY)
        if value is None:
            value = self.store.setting_or_create(ENABLED_AT_KEY, now.isoformat)
            self.log.info("newsletter enabled; posts dated from %s on will be mailed", value)
        return datetime.fromisoformat(value)

    def _skip_while_disabled(self) -> None:
        pending = self.store.posts_without_issue()
        if pending:
            self.store.mark_issues_created(pending)
            self.log.info(
                "newsletter disabled: %s published without an issue (never mailed later): %s",
                _count(len(pending), "post"),
                ", ".join(pending),
            )

    def _eligible(self, site: Site, pending: Sequence[str], start: datetime) -> list[Post]:
        """Pending posts that are public now and dated from the start; the others handled."""
        by_slug = {p.slug: p for p in site.posts}
        public = [by_slug[s] for s in pending if s in by_slug]  # withdrawn posts wait
        back = [p.slug for p in public if p.date < start]
        if back:
            self.store.mark_issues_created(back)
            self.log.info(
                "%s dated before the newsletter start %s, not mailed: %s",
                _count(len(back), "post"),
                self._local(start),
                ", ".join(back),
            )
        return sorted((p for p in public if p.date >= start), key=lambda p: (p.date, p.slug))

    def _post_issues(self, run: _Pass, posts: Sequence[Post]) -> None:
        """One issue per post; a post that fails to render does not hold up the others."""
        errors: list[Exception] = []
        for post in posts:
            try:
                self._create_issue(run, render_post_issue(self._site(run), post), [post])
            except PublisherError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def _digest(self, run: _Pass, schedule: DigestSchedule, start: datetime) -> None:
        """The digest of the latest slot, once; posts are only read when a slot is due."""
        slot = schedule.latest(run.now)
        handled = self.store.get_setting(DIGEST_KEY)
        if handled is not None and date.fromisoformat(handled) >= slot.day:
            pending = self.store.posts_without_issue()
            if pending:
                following = describe(schedule.following(run.now), schedule.zone)
                why = f"digest waits until {following} ({_count(len(pending), 'post')} queued)"
                self._waiting(run, "digest", why)
            return
        as_of = self._as_of()
        if as_of is None or as_of < slot.instant:
            why = f"digest of {slot.day} waits for a publish pass after {self._local(slot.instant)}"
            self._waiting(run, "digest", why)
            return
        self._make_digest(run, slot, self._queued(run, start))
        self.store.set_setting(DIGEST_KEY, slot.day.isoformat())

    def _make_digest(self, run: _Pass, slot: Slot, queued: Sequence[Post]) -> None:
        existing = self.store.find_issue(slot.key)
        if existing is not None:  # made before a crash; finish the bookkeeping (G3)
            self.store.mark_issues_created(list(existing.post_slugs))
            return
        posts = [p for p in queued if p.date <= slot.instant]
        if not posts:
            self.log.info("digest of %s: no new posts, nothing to send", slot.day)
            return
        title = digest_title(self.config, slot)
        rendered = render_digest_issue(self._site(run), posts, slot.key, title)
        self._create_issue(run, rendered, posts)

    def _create_issue(self, run: _Pass, rendered: RenderedIssue, posts: Sequence[Post]) -> None:
        for warning in check_issue(rendered, self.config):
            self.log.warning("%s", warning)
        issue, created = self.store.create_issue(new_issue(rendered, tuple(posts)))
        self.store.mark_issues_created([p.slug for p in posts])
        if created:
            run.summary.issues_created.append(issue.key)
            self.log.info(
                "issue %s created: %s, %s", issue.id, issue.key, _count(len(posts), "post")
            )

    # 3. send ----------------------------------------------------------------------------------

    def _send(self, run: _Pass) -> None:
        self._send_confirmations(run)
        policy = SendPolicy.from_config(self.config)
        for issue in self.store.open_issues():
            if self.stop.is_set():
                self._waiting(run, "send", "stopping: the remaining issues wait for the next run")
                return
            if issue.status == IssueStatus.PAUSED:
                self._waiting(run, f"issue:{issue.id}", _paused(issue.id, issue.pause_reason))
                continue
            report = self._send_one(run, issue, policy)
            if report is not None and report.stop in (
                StopReason.SERVER_DOWN,
                StopReason.RATE_LIMITED,
                StopReason.THROTTLED,  # F15: the cool-down is the server's, not the issue's
            ):
                return  # the same for every issue; the next tick tries again

    def _send_confirmations(self, run: _Pass) -> None:
        """Confirmation mails a web process queued; first, since a visitor waits for them."""
        try:
            drain = self._confirmation_drain()
            report = None if drain is None else drain.run(self.stop)
        except PublisherError as exc:  # never holds back the newsletter; the rows wait
            self._waiting(run, "confirmations", f"confirmation mails wait: {exc.message}")
            return
        if report is not None and (report.sent or report.retrying or report.failed):
            self.log.info(
                "confirmation mails: %s sent, %s to retry, %s failed",
                report.sent,
                report.retrying,
                report.failed,
            )

    def _confirmation_drain(self) -> ConfirmationDrain | None:
        if self._confirmations is None:
            if not WebStore(self.store).has_queued():
                return None  # publisher web never queued anything on this database
            mailer = ConfirmationMailer(
                self.config, make_environment(self.config), self.transports, self.clock
            )
            signer = make_signer(self.config, self.store, self.clock, warn=self.log.warning)
            web_store = WebStore.open(self.store)
            self._confirmations = ConfirmationDrain(
                self.config, web_store, signer, mailer, name=self.name
            )
        return self._confirmations

    def _send_one(self, run: _Pass, issue: IssueSummary, policy: SendPolicy) -> SendReport | None:
        renew = _LeaseKeeper(self.store, SEND, self.name, self.lease)
        try:
            report = send_issue(
                self.store,
                issue.id,
                self.transports,
                self.composer(),
                policy,
                stop=self.stop,
                progress=lambda _progress: renew(),
                name=self.name,
            )
        except PublisherError as exc:  # paused meanwhile by another process
            self._waiting(run, f"issue:{issue.id}", f"issue {issue.id}: {exc}")
            return None
        self._account(run, issue, report)
        return report

    def _account(self, run: _Pass, issue: IssueSummary, report: SendReport) -> None:
        s = run.summary
        s.sent += report.sent
        s.failed += report.failed_temp + report.failed_perm
        s.in_doubt += report.in_doubt
        s.skipped += report.skipped
        if report.sent or report.failed_temp or report.failed_perm or report.in_doubt:
            self.log.info(
                "issue %s (%s): %s sent, %s failed, %s in doubt, %s skipped this run",
                issue.id,
                issue.key,
                report.sent,
                report.failed_temp + report.failed_perm,
                report.in_doubt,
                report.skipped,
            )
        if report.recovered:
            self.log.warning(
                "issue %s: %s left sending by a crashed run, now in doubt (G1)",
                issue.id,
                _count(report.recovered, "message"),
            )
        self._log_issue_state(run, issue, report)

    def _log_issue_state(self, run: _Pass, issue: IssueSummary, report: SendReport) -> None:
        counts = report.counts
        if report.done:
            self.log.info("issue %s (%s) done: %s", issue.id, issue.key, _tally(counts))
            return
        if report.stop == StopReason.PAUSED:
            why = _paused(issue.id, report.detail)
        elif report.stop is not None:
            why = f"issue {issue.id} stopped ({report.stop}): {report.detail}"
        elif report.next_retry_at is not None:
            why = f"issue {issue.id}: retries due at {self._local(report.next_retry_at)}"
        elif report.held:  # issue 8: not complete while the operator has rows to decide on
            why = (
                f"issue {issue.id}: {_count(report.held, 'message')} in doubt held for the "
                "operator (publisher status; publisher send --release-held)"
            )
        else:
            why = f"issue {issue.id}: {_tally(counts)}"
        self._waiting(run, f"issue:{issue.id}", why)

    def composer(self) -> Composer:
        if self._composer is None:
            self._composer = default_composer(self.config, self.store, self.clock, self.log)
        return self._composer

    # helpers ----------------------------------------------------------------------------------

    def _waiting(self, run: _Pass, topic: str, why: str) -> None:
        """Say why something waits: in the summary always, in the log when it changes."""
        run.summary.waiting.append(why)
        if self._said.get(topic) != why:
            self._said[topic] = why
            self.log.info("%s", why)

    def _local(self, moment: datetime) -> str:
        return f"{moment.astimezone(self.config.site.timezone):%Y-%m-%d %H:%M %Z}"


class _LeaseKeeper:
    """Renews a job's lease during a long send, at most every third of the lease (G6)."""

    def __init__(self, store: Store, job: str, worker: str, lease: timedelta) -> None:
        self.store, self.job, self.worker, self.lease = store, job, worker, lease
        self._last = time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self._last >= self.lease.total_seconds() / 3:
            self._last = time.monotonic()
            self.store.claim_job(self.job, self.worker, self.lease, ignore_backoff=True)


# --- pure helpers ------------------------------------------------------------------------------


def digest_schedule(config: Config) -> DigestSchedule | None:
    """The digest slots of ``config``, or None for ``per_post``."""
    n = config.newsletter
    if n.cadence == "per_post":
        return None
    return DigestSchedule(n.cadence, n.digest_time, n.digest_weekday, config.site.timezone)


def start_instant(value: datetime | date, config: Config) -> datetime:
    """``[newsletter].start`` as an instant: dates and zone-less times in the site zone."""
    zone = config.site.timezone
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=zone)
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def digest_title(config: Config, slot: Slot) -> str:
    """Subject of a digest: the site title and the slot's local date."""
    return f"{config.site.title} · {slot.day.strftime(config.site.date_format)}"


def site_fingerprint(site: Site) -> str:
    """What the built output depends on: public posts, configuration, templates."""
    digest = hashlib.sha256(repr(site.config).encode())
    for directory in template_dirs(site.config):
        for path in _files(directory):
            digest.update(f"{path.relative_to(directory)}\0".encode() + path.read_bytes())
    for post in sorted(site.posts, key=lambda p: p.slug):
        digest.update(f"\0{post.slug}\0{post.digest}".encode())
    return digest.hexdigest()


def inputs_fingerprint(config: Config) -> str:
    """A cheap fingerprint of every input file (name, size, mtime): changed means re-read."""
    digest = hashlib.sha256()
    config_file = config.root / "config.toml"
    folders = [config.posts_path, *template_dirs(config)]
    for path in [config_file, *(f for d in folders for f in _files(d))]:
        try:
            info = path.stat()
        except FileNotFoundError:
            digest.update(f"{path}\0missing\n".encode())
            continue
        digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ino}\n".encode())
    return digest.hexdigest()


def output_key(config: Config) -> str:
    """The settings key of this host's output folder (a scheduler elsewhere has its own)."""
    where = f"{socket.gethostname()}\0{config.output_path.resolve()}".encode()
    return OUTPUT_KEY + hashlib.sha256(where).hexdigest()[:32]


def output_stamp(config: Config) -> str:
    """The output folder's identity: every build swaps in a new folder (a new inode)."""
    try:
        info = config.output_path.stat()
    except FileNotFoundError:
        return "missing"
    return f"{info.st_ino} {info.st_mtime_ns}"


def keep_published(store: Store, site: Site) -> Site:
    """``site``, or the same posts at a later moment when the clock stepped back past posts
    the scheduler already published (issue 8, item 15): ``publisher build`` uses it so that
    a manual build never takes down a post that is out, and maybe mailed."""
    records = store.published_posts()
    posts = (*site.posts, *site.hidden)
    known = renamed_slugs(records, find_renames(posts, records))
    as_of = store.get_setting(AS_OF_KEY)
    moment = published_moment(
        site.now, posts, known, datetime.fromisoformat(as_of) if as_of else None
    )
    return site if moment == site.now else build_site(site.config, posts, moment)


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file())


def _next_due_value(site: Site) -> str:
    post = site.next_due
    return "" if post is None else f"{post.date.isoformat()} {post.slug}"


def _parse_next_due(value: str | None) -> tuple[datetime, str] | None:
    if not value:
        return None
    moment, _, slug = value.partition(" ")
    return datetime.fromisoformat(moment), slug


def _dead_here(worker: str) -> bool:
    """True when ``worker`` (``host:pid:...``) is a process of this host that is gone."""
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


def _describe_error(exc: Exception) -> str:
    if isinstance(exc, PublisherError):
        return exc.message
    return f"{exc.__class__.__name__}: {exc}"


def _paused(issue_id: int, reason: str | None) -> str:
    return f"issue {issue_id} paused: {reason or 'no reason given'} (publisher send --resume)"


def _tally(counts: DeliveryCounts) -> str:
    parts = [f"{counts[s]} {s}" for s in DeliveryStatus if counts[s]]
    return ", ".join(parts) if parts else "no recipients"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def default_composer(config: Config, store: Store, clock: Clock, log: logging.Logger) -> Composer:
    """The composer ``publisher send`` uses: signed per-subscriber links, headers, DKIM."""
    return MessageComposer(config, make_signer(config, store, clock, warn=log.warning), clock)


# --- status --------------------------------------------------------------------------------------


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
    schedule = digest_schedule(config)
    start: datetime | None = None
    if config.newsletter.start is not None:
        start = start_instant(config.newsletter.start, config)
    elif (enabled_at := store.get_setting(ENABLED_AT_KEY)) is not None:
        start = datetime.fromisoformat(enabled_at)
    issues = tuple(
        IssueProgress(i, store.counts(i.id), store.next_retry_at(i.id)) for i in store.open_issues()
    )
    return SchedulerStatus(
        now=now,
        next_post=_parse_next_due(store.get_setting(NEXT_DUE_KEY)),
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
            f", {_count(job.failures, 'failure')} in a row, next try {local(job.next_run_at)}: "
            f"{job.last_error}"
        )
    return text


def _issue_line(progress: IssueProgress, local: Callable[[datetime | None], str]) -> str:
    issue = progress.issue
    text = f"  issue {issue.id} {issue.key} [{issue.status}]: {_tally(progress.counts)}"
    if issue.status == IssueStatus.PAUSED:
        text += f"; paused: {issue.pause_reason}"
    elif progress.next_retry_at is not None:
        text += f"; next attempt {local(progress.next_retry_at)}"
    return text
