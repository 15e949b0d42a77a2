"""``publisher import`` (posts from another platform) and ``publisher rename``.

Thin: parse the export with the source's importer, plan the writes (every file is
checked by the strict post reader first), then write all of it or nothing.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from publisher.config import Config, load_config
from publisher.errors import PublisherError
from publisher.publish.importers import (
    SOURCES,
    Options,
    Parsed,
    PostImportError,
    parse_date,
)
from publisher.publish.importers.plan import AssetFinder, Plan, apply, plan_import


def _parse(source: str, file: Path, config: Config, options: Options) -> Parsed:
    zone = config.site.timezone
    finder = AssetFinder(file if file.is_dir() else file.parent, source, options.assets_dir)
    if source == "feed":
        from publisher.publish.importers import feed

        return feed.parse(file, zone, finder)
    if source == "wordpress":
        from publisher.publish.importers import wordpress

        return wordpress.parse(file, zone, finder)
    if source == "ghost":
        from publisher.publish.importers import ghost

        return ghost.parse(file, zone, finder)
    if source == "substack":
        from publisher.publish.importers import substack

        return substack.parse(file, zone, finder)
    raise PublisherError(f"unknown source {source!r}")


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
        publisher import feed tistory-rss.xml --dry-run
        publisher import wordpress export.xml --category-map Uncategorized=
        publisher import substack ./substack-export --since 2024-01-01
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
    _report(plan, dry_run)
    if not dry_run:
        apply(config, plan)
        _summary(plan, config)


def _report(plan: Plan, dry_run: bool) -> None:
    verb = "would write" if dry_run else "writing"
    for write in plan.writes:
        click.echo(f"{verb} {write.relative} ({write.action}) from {write.post.item}")
        if dry_run:
            click.echo("  " + write.text.split("\n---\n", 1)[0].replace("\n", "\n  "))
    for asset in plan.assets:
        click.echo(f"{'would copy' if dry_run else 'copying'} {asset.path} → {asset.target}")
    for skipped in plan.skipped:
        click.echo(f"skipped {skipped}")


def _summary(plan: Plan, config: Config) -> None:
    new = sum(1 for w in plan.writes if w.action == "new")
    updated = len(plan.writes) - new
    click.echo(
        f"Imported {new} new and {updated} updated posts into {config.build.posts_dir}/ "
        f"({len(plan.unchanged)} unchanged, {len(plan.skipped)} skipped, "
        f"{len(plan.assets)} images copied into {config.build.templates_dir}/static/imported/)."
    )
    if not plan.writes:
        click.echo("Nothing changed: every post matches an earlier import.")


__all__ = ["import_command"]
