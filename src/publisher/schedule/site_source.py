"""The posts as a scheduler pass sees them: read once per pass, and the fingerprints that
say whether they need reading at all.

``pass_site`` is the one place a pass reads posts (issue 8, 13): the publish job
renders that ``Site`` and the issues job mails from it, so each file is read at
most once per tick. ``inputs_fingerprint`` (name, size, mtime) says whether any
input changed; ``site_fingerprint`` (the bytes read) whether the output must be
rebuilt; ``output_stamp`` whether the output folder is still the one written last.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from publisher.config import Config
from publisher.errors import ContentError
from publisher.publish.content import read_posts
from publisher.publish.site import Site, build_site
from publisher.publish.templating import template_dirs
from publisher.schedule.context import JobContext, Pass
from publisher.schedule.identity import find_renames, published_moment, renamed_slugs
from publisher.schedule.state import SchedulerState
from publisher.store import Store


def pass_site(ctx: JobContext, run: Pass) -> Site:
    """The public site at this tick, read once (G8: published posts stay published)."""
    if run.site is None:
        result = read_posts(ctx.config)
        if result.problems:
            raise ContentError(result.problems, hint="Fix the posts above; nothing changed.")
        records = ctx.store.published_posts()
        run.renames = find_renames(result.posts, records)
        known = renamed_slugs(records, run.renames)
        moment = published_moment(run.now, result.posts, known, ctx.state.published_as_of)
        run.site = build_site(ctx.config, result.posts, moment)
    return run.site


def keep_published(store: Store, site: Site) -> Site:
    """``site``, or the same posts at a later moment when the clock stepped back past posts
    the scheduler already published (issue 8, item 15): ``publisher build`` uses it so that
    a manual build never takes down a post that is out, and maybe mailed."""
    records = store.published_posts()
    posts = (*site.posts, *site.hidden)
    known = renamed_slugs(records, find_renames(posts, records))
    as_of = SchedulerState(store).published_as_of
    moment = published_moment(site.now, posts, known, as_of)
    return site if moment == site.now else build_site(site.config, posts, moment)


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


def output_stamp(config: Config) -> str:
    """The output folder's identity: every build swaps in a new folder (a new inode)."""
    try:
        info = config.output_path.stat()
    except FileNotFoundError:
        return "missing"
    return f"{info.st_ino} {info.st_mtime_ns}"


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file())
