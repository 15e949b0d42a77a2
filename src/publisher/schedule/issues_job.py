"""Job 2, ``issues``: newly published posts become issues, rendered once and stored (B6).

``per_post`` makes one issue per post; ``daily``/``weekly`` one digest per slot
(publisher.schedule.slots). The rules (newsletter start, back catalogue, a digest
waiting for a publish pass) are in publisher.schedule.runner's docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from publisher.config import Cadence, Config
from publisher.deliver.sender import new_issue
from publisher.errors import PublisherError
from publisher.publish.content import Post
from publisher.publish.newsletter import (
    RenderedIssue,
    check_issue,
    render_digest_issue,
    render_post_issue,
)
from publisher.publish.site import Site
from publisher.schedule.context import JobContext, Pass, count
from publisher.schedule.site_source import pass_site
from publisher.schedule.slots import DigestSchedule, Slot, describe


class IssuesJob:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.digests = digest_schedule(ctx.config)
        self._nothing_queued: tuple[str | None, tuple[str, ...]] | None = None

    def __call__(self, run: Pass) -> None:
        if not self.ctx.config.newsletter.enabled:
            self._skip_while_disabled()
            return
        start = self.newsletter_start(run.now)
        if self.digests is None:
            self._post_issues(run, self._queued(run, start))
        else:
            self._digest(run, self.digests, start)

    def _queued(self, run: Pass, start: datetime) -> list[Post]:
        """Published posts waiting for an issue, oldest first.

        Posts withdrawn after publishing stay pending but are not public; while
        the public site (its fingerprint) and the pending list stay the same,
        the posts are not read again just to find that out.
        """
        pending = self.ctx.store.posts_without_issue()
        if not pending:
            return []
        idle_key = (self.ctx.state.build_fingerprint, tuple(pending))
        if idle_key == self._nothing_queued:
            return []
        queued = self._eligible(pass_site(self.ctx, run), pending, start)
        self._nothing_queued = None if queued else idle_key
        return queued

    def newsletter_start(self, now: datetime) -> datetime:
        """``[newsletter].start`` as an instant, or the moment first seen enabled (recorded)."""
        config = self.ctx.config
        if config.newsletter.start is not None:
            return start_instant(config.newsletter.start, config)

        def said(value: str) -> None:
            self.ctx.log.info("newsletter enabled; posts dated from %s on will be mailed", value)

        return self.ctx.state.enabled_at_or_record(now, said)

    def _skip_while_disabled(self) -> None:
        pending = self.ctx.store.posts_without_issue()
        if pending:
            self.ctx.store.mark_issues_created(pending)
            self.ctx.log.info(
                "newsletter disabled: %s published without an issue (never mailed later): %s",
                count(len(pending), "post"),
                ", ".join(pending),
            )

    def _eligible(self, site: Site, pending: Sequence[str], start: datetime) -> list[Post]:
        """Pending posts that are public now and dated from the start; the others handled."""
        by_slug = {p.slug: p for p in site.posts}
        public = [by_slug[s] for s in pending if s in by_slug]  # withdrawn posts wait
        back = [p.slug for p in public if p.date < start]
        if back:
            self.ctx.store.mark_issues_created(back)
            self.ctx.log.info(
                "%s dated before the newsletter start %s, not mailed: %s",
                count(len(back), "post"),
                self.ctx.local(start),
                ", ".join(back),
            )
        return sorted((p for p in public if p.date >= start), key=lambda p: (p.date, p.slug))

    def _post_issues(self, run: Pass, posts: Sequence[Post]) -> None:
        """One issue per post; a post that fails to render does not hold up the others."""
        errors: list[Exception] = []
        for post in posts:
            try:
                rendered = render_post_issue(pass_site(self.ctx, run), post)
                self._create_issue(run, rendered, [post])
            except PublisherError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def _digest(self, run: Pass, schedule: DigestSchedule, start: datetime) -> None:
        """The digest of the latest slot, once; posts are only read when a slot is due."""
        ctx = self.ctx
        slot = schedule.latest(run.now)
        handled = ctx.state.digest_slot
        if handled is not None and handled >= slot.day:
            pending = ctx.store.posts_without_issue()
            if pending:
                following = describe(schedule.following(run.now), schedule.zone)
                why = f"digest waits until {following} ({count(len(pending), 'post')} queued)"
                ctx.waiting(run, "digest", why)
            return
        as_of = ctx.state.published_as_of
        if as_of is None or as_of < slot.instant:
            why = f"digest of {slot.day} waits for a publish pass after {ctx.local(slot.instant)}"
            ctx.waiting(run, "digest", why)
            return
        self._make_digest(run, slot, self._queued(run, start))
        ctx.state.digest_slot = slot.day

    def _make_digest(self, run: Pass, slot: Slot, queued: Sequence[Post]) -> None:
        store = self.ctx.store
        existing = store.find_issue(slot.key)
        if existing is not None:  # made before a crash; finish the bookkeeping (G3)
            store.mark_issues_created(list(existing.post_slugs))
            return
        posts = [p for p in queued if p.date <= slot.instant]
        if not posts:
            self.ctx.log.info("digest of %s: no new posts, nothing to send", slot.day)
            return
        title = digest_title(self.ctx.config, slot)
        rendered = render_digest_issue(pass_site(self.ctx, run), posts, slot.key, title)
        self._create_issue(run, rendered, posts)

    def _create_issue(self, run: Pass, rendered: RenderedIssue, posts: Sequence[Post]) -> None:
        ctx = self.ctx
        for warning in check_issue(rendered, ctx.config):
            ctx.log.warning("%s", warning)
        issue, created = ctx.store.create_issue(new_issue(rendered, tuple(posts)))
        ctx.store.mark_issues_created([p.slug for p in posts])
        if created:
            run.summary.issues_created.append(issue.key)
            ctx.log.info("issue %s created: %s, %s", issue.id, issue.key, count(len(posts), "post"))


def digest_schedule(config: Config) -> DigestSchedule | None:
    """The digest slots of ``config``, or None for ``per_post``."""
    n = config.newsletter
    if n.cadence == Cadence.PER_POST:
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
