"""``publisher import`` (posts from another platform) and ``publisher rename``.

Thin: parse the export with the source's importer, plan the writes (every file is
checked by the strict post reader first), then write all of it or nothing.
"""

from __future__ import annotations

import os
import tempfile
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import click

from publisher.config import Config, load_config
from publisher.errors import ContentError, PublisherError
from publisher.publish.content import Post, read_post, read_posts
from publisher.publish.importers import (
    SOURCES,
    Options,
    Parsed,
    PostImportError,
    feed,
    ghost,
    parse_date,
    substack,
    wordpress,
)
from publisher.publish.importers.plan import AssetFinder, Plan, apply, plan_import
from publisher.publish.rename import Rename, renamed_text
from publisher.publish.site import build_site, post_path
from publisher.publish.slugs import is_valid_slug, slug_from_filename, slug_key


def _parse(source: str, file: Path, config: Config, options: Options) -> Parsed:
    zone = config.site.timezone
    if (source == "substack") != file.is_dir():
        wanted = "the unzipped export folder" if source == "substack" else "a file, not a folder"
        raise PublisherError(f"{file}: `import {source}` takes {wanted}")
    finder = AssetFinder(file if file.is_dir() else file.parent, source, options.assets_dir)
    readers = {
        "feed": feed.parse,
        "wordpress": wordpress.parse,
        "ghost": ghost.parse,
        "substack": substack.parse,
    }
    parsed = readers[source](file, zone, finder)
    if finder.missing:
        click.secho(
            f"warning: {len(finder.missing)} images have no address of their own and are not in "
            f"{finder.root} (first: {finder.missing[0]}); put the export's image folder beside "
            "it and import again, or they stay broken links",
            fg="yellow",
            err=True,
        )
    return parsed


def _category_map(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip():
            raise click.BadParameter(f"{pair!r}: expected OLD=NEW, e.g. 'IT·과학=기술'")
        mapping[old.strip()] = new.strip()
    return mapping


def _since(text: str | None, config: Config) -> datetime | None:
    if not text:
        return None
    try:
        return parse_date(text, config.site.timezone)
    except ValueError as exc:
        raise click.BadParameter(f"--since: {exc}; e.g. 2024-01-01") from None


@click.command("import")
@click.argument("source", type=click.Choice(SOURCES))
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would be written; write nothing.")
@click.option(
    "--category-map",
    "category_map",
    multiple=True,
    metavar="OLD=NEW",
    help="Rename a category or tag (repeat); OLD= drops it.",
)
@click.option("--since", "since_text", metavar="DATE", help="Only posts dated on or after DATE.")
@click.pass_context
def import_command(
    ctx: click.Context,
    source: str,
    files: tuple[Path, ...],
    dry_run: bool,
    category_map: tuple[str, ...],
    since_text: str | None,
) -> None:
    """Import posts from another platform's export into posts/, keeping their old URLs.

    SOURCE is feed (any RSS 2.0 or Atom file with full content: Tistory, Naver Blog,
    Medium, Blogger), wordpress (a WXR export), ghost (a JSON export) or substack
    (the export folder with posts.csv and posts/). Each post becomes a Markdown file
    with its old path in `aliases`, so old links redirect. Images found in the
    export folder are copied; others keep their URL. Every file is checked first:
    one problem and nothing is written. Importing again changes nothing; a newer
    export updates the posts that changed.

    \b
    Example:
        publisher import feed examples/import/tistory-rss.xml --dry-run
        publisher import wordpress examples/import/wordpress.xml --category-map 경제=세계 --dry-run
        publisher import ghost examples/import/ghost.json --dry-run
        publisher import substack examples/import/substack --since 2025-06-21 --dry-run
    """
    config = load_config(Path(ctx.obj.root))
    options = Options(category_map=_category_map(category_map), since=_since(since_text, config))
    parsed = Parsed(())
    for file in files:
        click.echo(f"reading {file}", err=True)
        found = _parse(source, file, config, options)
        parsed = Parsed(
            (*parsed.posts, *found.posts),
            (*parsed.skipped, *found.skipped),
            (*parsed.problems, *found.problems),
        )
    click.echo(f"found {len(parsed.posts)} posts; checking them", err=True)
    plan = plan_import(config, parsed, options)
    if plan.problems:
        raise PostImportError(plan.problems, hint="Nothing was written; fix the export or the map.")
    _report(plan, dry_run, config)
    if not dry_run:
        apply(config, plan)
    _summary(plan, config, dry_run)


def _report(plan: Plan, dry_run: bool, config: Config) -> None:
    verb = "would write" if dry_run else "writing"
    for write in plan.writes:
        click.echo(f"{verb} {write.relative} ({write.action}) from {write.post.item}")
        if dry_run:
            click.echo("  " + write.text.split("\n---\n", 1)[0].replace("\n", "\n  "))
    for asset in plan.assets:
        target = f"{config.build.templates_dir}/{asset.target}"
        click.echo(f"{'would copy' if dry_run else 'copying'} {asset.path} → {target}")
    for skipped in plan.skipped:
        click.echo(f"skipped {skipped}")


def _summary(plan: Plan, config: Config, dry_run: bool) -> None:
    new = sum(1 for w in plan.writes if w.action == "new")
    updated = len(plan.writes) - new
    verb, copied = ("Would import", "to copy") if dry_run else ("Imported", "copied")
    click.echo(
        f"{verb} {new} new and {updated} updated posts into {config.build.posts_dir}/ "
        f"({len(plan.unchanged)} unchanged, {len(plan.skipped)} skipped, {len(plan.assets)} "
        f"images {copied} into {config.build.templates_dir}/static/imported/)."
    )
    if not plan.writes and plan.unchanged:
        click.echo("Nothing changed: every post matches an earlier import.")
    elif not plan.writes:
        click.echo("Nothing to import: the export holds no posts (see 'skipped' above).")


@click.command("rename")
@click.argument("old")
@click.argument("new")
@click.pass_context
def rename_command(ctx: click.Context, old: str, new: str) -> None:
    """Change a post's slug; its old URL keeps working and its feed entry keeps its id.

    OLD is the post's slug or file path; NEW is the new slug. A post that is
    already public gets its old page path added to `aliases` (the build writes a
    redirect there) and, if it has no `id` yet, `id` set to its old permalink, so
    feed readers do not see it as new. A file named after the slug is renamed too.

    \b
    Example:
        publisher rename what-is-hbm hbm-basics
    """
    config = load_config(Path(ctx.obj.root))
    now = datetime.now(UTC)
    result = read_posts(config)
    if result.problems:
        raise ContentError(result.problems, hint="Fix the posts above first; nothing was renamed.")
    post = _find_post(result.posts, old, config)
    new = unicodedata.normalize("NFC", new.strip())
    if not is_valid_slug(new):
        raise PublisherError(
            f"{new!r} is not a slug", hint="Use lower-case letters, digits and inner hyphens."
        )
    for other in result.posts:
        if other is not post and slug_key(other.slug) == slug_key(new):
            raise PublisherError(f"slug '{new}' is already the slug of {other.source}")
    public = post.is_published(now)
    site = build_site(config, result.posts, now)
    current_id = getattr(post, "id", None) or post.extra.get("id")
    change = Rename(
        new_slug=new,
        add_alias=f"/{post_path(post)}" if public else None,
        pin_id=site.url(post_path(post)) if public and not current_id else None,
    )
    path = config.root / post.source
    text = renamed_text(path.read_text(encoding="utf-8-sig"), change, post.aliases, current_id)
    target = _renamed_path(path, post.slug, new)
    _check_renamed(text, target, config)
    _write_renamed(path, target, text)
    click.echo(f"renamed {post.source}: slug {post.slug} → {new}")
    if target != path:
        click.echo(f"moved {post.source} → {target.relative_to(config.root).as_posix()}")
    if change.add_alias:
        click.echo(f"{change.add_alias} now redirects to /posts/{new}/ (added to aliases)")
    if change.pin_id:
        click.echo(f"feed id kept: id set to {change.pin_id}")


def _find_post(posts: tuple[Post, ...], ref: str, config: Config) -> Post:
    for post in posts:
        if slug_key(post.slug) == slug_key(ref) or post.source == ref:
            return post
        if (config.root / post.source).resolve() == (Path.cwd() / ref).resolve():
            return post
    raise PublisherError(f"no post with slug or file {ref!r}", hint="See the slugs in posts/.")


def _renamed_path(path: Path, old_slug: str, new_slug: str) -> Path:
    """``2025-06-20-old.md`` → ``2025-06-20-new.md``; other names stay."""
    stem = path.stem
    if slug_from_filename(stem) != old_slug or not stem.endswith(old_slug):
        return path
    return path.with_name(stem[: len(stem) - len(old_slug)] + new_slug + path.suffix)


def _check_renamed(text: str, target: Path, config: Config) -> None:
    with tempfile.TemporaryDirectory(prefix="publisher-rename-") as scratch:
        probe = Path(scratch) / target.name
        probe.write_text(text, encoding="utf-8")
        source = target.relative_to(config.root).as_posix()
        _, found = read_post(probe, source, config)
    if found.problems:
        raise ContentError(found.problems, hint="Nothing was renamed.")


def _write_renamed(path: Path, target: Path, text: str) -> None:
    if target != path and target.exists():
        raise PublisherError(f"{target} already exists", hint="Nothing was renamed.")
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".rename-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temp, path)  # the new text under the old name first: valid at every step
    if target != path:
        os.rename(path, target)
