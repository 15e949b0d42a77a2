"""Job 1, ``publish``: build the site when it changed and record the newly public posts.

See publisher.schedule.runner for the whole design: the fingerprint of the posts
as read decides a rebuild; the output is written before ``published`` is, so the
page and the feeds are out before any mail (A20); a renamed post moves its record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from publisher.publish.build import BuildResult
from publisher.publish.site import Site
from publisher.schedule.context import JobContext, Pass, count
from publisher.schedule.site_source import (
    inputs_fingerprint,
    output_stamp,
    pass_site,
    site_fingerprint,
)
from publisher.schedule.state import NextDue
from publisher.store import PublishedEntry

Builder = Callable[[Site], BuildResult]  # renders the Site already read (issue 8, 13)


class PublishJob:
    def __init__(self, ctx: JobContext, builder: Builder) -> None:
        self.ctx = ctx
        self.builder = builder

    def __call__(self, run: Pass) -> None:
        ctx, state = self.ctx, self.ctx.state
        inputs = inputs_fingerprint(ctx.config)
        if self._nothing_new(inputs, run.now):
            state.advance_published_as_of(run.now)
            self._note_next_post(run, state.next_due)
            return
        site = pass_site(ctx, run)
        # Of the posts as read: the very bytes the pages are rendered from (issue 8, 13).
        fingerprint = site_fingerprint(site)
        if fingerprint != state.build_fingerprint or not self._output_ours():
            result = self.builder(site)
            state.set_output_stamp(ctx.config.output_path, output_stamp(ctx.config))
            run.summary.built = True
            ctx.log.info(
                "built %s, %s pages and %s feeds into %s in %.2f s",
                count(len(site.posts), "post"),
                result.pages,
                result.feeds,
                result.output,
                result.seconds,
            )
        self._record_published(run, site)
        state.build_fingerprint = fingerprint
        state.inputs = inputs
        due = _next_due(site)
        state.next_due = due
        state.advance_published_as_of(site.now)
        self._note_next_post(run, due)

    def _nothing_new(self, inputs: str, now: datetime) -> bool:
        """No input file changed and no scheduled post became due: nothing to read."""
        state = self.ctx.state
        if state.inputs != inputs or not self._output_ours():
            return False
        if state.build_fingerprint is None or not state.identity_complete:
            return False
        due = state.next_due
        return due is None or due.at > now

    def _output_ours(self) -> bool:
        """The output folder is the one this scheduler wrote last.

        A manual ``publisher build`` (say, after the clock was set back, or with
        ``--drafts``) swaps in another folder; the next pass then rebuilds it (item 15).
        """
        config = self.ctx.config
        stamp = self.ctx.state.output_stamp(config.output_path)
        return config.output_path.is_dir() and stamp in (None, output_stamp(config))

    def _record_published(self, run: Pass, site: Site) -> None:
        """Record the public posts and the renames found; a renamed post is not new."""
        ctx = self.ctx
        oldest_first = sorted(site.posts, key=lambda p: (p.date, p.slug))
        entries = [PublishedEntry(p.slug, p.digest, p.id, p.title, p.date) for p in oldest_first]
        renames = [(r.old, r.new) for r in run.renames]
        fresh = ctx.store.record_published_many(entries, run.now, renames=renames)
        ctx.state.mark_identity_complete()
        for rename in run.renames:
            line = rename.line(mailed=bool(ctx.store.issues_with_post(rename.new)))
            run.summary.renamed.append(line)
            ctx.log.info("%s (recognised by its %s)", line, rename.by)
        self._log_published(run, site, fresh)

    def _log_published(self, run: Pass, site: Site, fresh: Sequence[str]) -> None:
        by_slug = {p.slug: p for p in site.posts}
        for slug in fresh:
            post = by_slug[slug]
            run.summary.published.append(slug)
            self.ctx.log.info(
                "published '%s' (%s), dated %s", post.title, post.source, self.ctx.local(post.date)
            )

    def _note_next_post(self, run: Pass, due: NextDue | None) -> None:
        if due is not None:
            why = f"next post due {self.ctx.local(due.at)}: {due.slug}"
            self.ctx.waiting(run, "next-post", why)


def _next_due(site: Site) -> NextDue | None:
    post = site.next_due
    return None if post is None else NextDue(post.date, post.slug)
