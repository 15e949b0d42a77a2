"""What the next scheduler pass would publish and mail, for ``publisher status`` (issue 8, item 2).

Read-only: the posts are read and the database is asked, nothing is written or
sent. The answer follows the scheduler's own rules (publisher.schedule.runner and
publisher.schedule.identity): the public set at the pass's moment, renamed posts
recognised, the newsletter start, per-post issues or the next digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from publisher.config import Config
from publisher.publish.content import Post, read_posts
from publisher.publish.site import build_site
from publisher.schedule.context import Clock
from publisher.schedule.identity import Rename, find_renames, published_moment, renamed_slugs
from publisher.schedule.issues_job import digest_schedule, start_instant
from publisher.schedule.slots import describe
from publisher.schedule.state import SchedulerState
from publisher.store import Store


@dataclass(frozen=True)
class Mailing:
    """An issue the next pass (or the next digest slot) would create and send."""

    key: str
    posts: tuple[Post, ...]
    recipients: int
    when: str  # "in the next pass" or "at <the digest slot>"


@dataclass(frozen=True)
class NextPass:
    problems: int  # posts that cannot be read: the pass would fail and publish nothing
    publish: tuple[Post, ...]  # newly public, oldest first
    renames: tuple[tuple[Rename, bool], ...]  # and whether an issue carried it
    mail: tuple[Mailing, ...]
    drafts: tuple[Post, ...]


def next_pass(config: Config, store: Store, clock: Clock) -> NextPass:
    """What one pass at ``clock()`` would do with the posts as they are now."""
    now = clock()
    result = read_posts(config)
    if result.problems:
        return NextPass(len(result.problems), (), (), (), ())
    records = store.published_posts()
    renames = find_renames(result.posts, records)
    known = renamed_slugs(records, renames)
    moment = published_moment(now, result.posts, known, SchedulerState(store).published_as_of)
    site = build_site(config, result.posts, moment)
    fresh = tuple(sorted((p for p in site.posts if p.slug not in known), key=_oldest_first))
    moved = {r.old: r.new for r in renames}
    pending = {moved.get(r.slug, r.slug) for r in records if not r.issue_created}
    pending.update(p.slug for p in fresh)
    queued = [p for p in site.posts if p.slug in pending]
    drafts = tuple(p for p in site.hidden if p.draft)
    mail = _mailings(config, store, now, sorted(queued, key=_oldest_first))
    mailed = tuple((r, bool(store.issues_with_post(r.old))) for r in renames)
    return NextPass(0, fresh, mailed, mail, drafts)


def _mailings(
    config: Config, store: Store, now: datetime, queued: list[Post]
) -> tuple[Mailing, ...]:
    if not config.newsletter.enabled:
        return ()
    start = _start(config, store)
    if start is None:
        return ()  # the first pass records "now" as the start: nothing already out is mailed
    posts = [p for p in queued if p.date >= start]
    schedule = digest_schedule(config)
    if schedule is None:
        return tuple(
            Mailing(f"post:{p.slug}", (p,), _recipients(store, (p,)), "in the next pass")
            for p in posts
        )
    slot, when = schedule.latest(now), "in the next pass"
    handled = SchedulerState(store).digest_slot
    if handled is not None and handled >= slot.day:
        slot = schedule.following(now)
        when = f"at {describe(slot, schedule.zone)}"
    due = tuple(p for p in posts if p.date <= slot.instant)
    if not due:
        return ()
    return (Mailing(slot.key, due, _recipients(store, due), when),)


def _start(config: Config, store: Store) -> datetime | None:
    if config.newsletter.start is not None:
        return start_instant(config.newsletter.start, config)
    return SchedulerState(store).enabled_at


def _recipients(store: Store, posts: tuple[Post, ...]) -> int:
    # As the sender picks them (publisher.deliver.sender.new_issue): the posts' categories.
    return store.count_recipients(sorted({p.category for p in posts if p.category}))


def next_pass_lines(config: Config, plan: NextPass) -> list[str]:
    """``plan`` as lines for a terminal, times in the site time zone."""
    zone = config.site.timezone

    def local(moment: datetime) -> str:
        return f"{moment.astimezone(zone):%Y-%m-%d %H:%M %Z}"

    if plan.problems:
        return [
            f"next pass: fails, {plan.problems} problem(s) in the posts (`publisher build` "
            "lists them); nothing is published or mailed until they are fixed"
        ]
    lines = ["next pass (nothing is sent by this command):"]
    for post in plan.publish:
        lines.append(f"  would publish: {post.slug} ({post.source}), dated {local(post.date)}")
    for rename, mailed in plan.renames:
        lines.append(f"  would record {rename.line(mailed=mailed)}")
    for mailing in plan.mail:
        slugs = ", ".join(p.slug for p in mailing.posts)
        lines.append(
            f"  would mail: issue {mailing.key} ({slugs}) {mailing.when} "
            f"to {mailing.recipients} recipient(s)"
        )
    if not (plan.publish or plan.renames or plan.mail):
        lines.append("  nothing to publish or mail")
    for post in plan.drafts:
        lines.append(f"  draft, not published: {post.source} (set 'draft: false' to publish)")
    return lines


def _oldest_first(post: Post) -> tuple[datetime, str]:
    return (post.date, post.slug)
