"""The publish pipeline, top to bottom.

load config → read posts → index them into a ``Site`` → render pages and feeds
into an ``OutputTree`` → write it atomically. Pure until the last step: no
network, no database. Content problems in all posts are collected and reported
together before anything is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from publisher.config import Config
from publisher.errors import ContentError, Problem
from publisher.publish.content import read_posts
from publisher.publish.feeds import render_feeds
from publisher.publish.render import render_pages
from publisher.publish.site import Site, build_site
from publisher.publish.templating import compile_all, make_environment
from publisher.publish.writer import OutputTree, WriteSummary, commit

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    site: Site
    written: WriteSummary
    pages: int
    feeds: int
    seconds: float
    warnings: tuple[Problem, ...]
    output: Path


def load_site(
    config: Config, now: datetime, *, include_drafts: bool = False
) -> tuple[Site, tuple[Problem, ...]]:
    """Read every post and index the public site at ``now``; raise ContentError on any problem."""
    result = read_posts(config)
    if result.problems:
        raise ContentError(result.problems, hint="Fix the posts above; nothing was written.")
    return build_site(config, result.posts, now, include_drafts=include_drafts), result.warnings


def render_site(site: Site, progress: Progress | None = None) -> tuple[OutputTree, int, int]:
    """Every output file of ``site``: returns the tree, the page count and the feed count."""
    tree = OutputTree()
    render_pages(
        site, tree, progress=(lambda n: progress(f"rendered {n} posts")) if progress else None
    )
    pages = len(tree)
    feeds = render_feeds(site)
    for path, data in sorted(feeds.items()):
        tree.add(path, data, owner="feeds")
    return tree, pages, len(feeds)


def build(
    config: Config,
    now: datetime,
    *,
    include_drafts: bool = False,
    output: Path | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Build the site into ``output`` (default: the configured output folder)."""
    started = time.perf_counter()
    compile_all(make_environment(config))
    say = progress or (lambda _message: None)
    say("reading posts")
    site, warnings = load_site(config, now, include_drafts=include_drafts)
    return write_site(site, output=output, progress=progress, warnings=warnings, started=started)


def write_site(
    site: Site,
    *,
    output: Path | None = None,
    progress: Progress | None = None,
    warnings: tuple[Problem, ...] = (),
    started: float | None = None,
) -> BuildResult:
    """Render ``site`` as read and write it atomically: the posts are not read again.

    The scheduler reads the posts once per pass and passes the ``Site`` here, so
    the pages are made from exactly the bytes it fingerprints (issue 8, 13).
    """
    if started is None:
        started = time.perf_counter()
        compile_all(make_environment(site.config))
    say = progress or (lambda _message: None)
    say(f"read {len(site.posts)} public posts ({len(site.hidden)} hidden)")
    tree, pages, feeds = render_site(site, progress)
    target = output or site.config.output_path
    say(f"writing {len(tree)} files")
    written = commit(tree, target)
    return BuildResult(
        site=site,
        written=written,
        pages=pages,
        feeds=feeds,
        seconds=time.perf_counter() - started,
        warnings=warnings,
        output=target,
    )
