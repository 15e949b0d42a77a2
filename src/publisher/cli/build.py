"""Commands of the publish half: build, new, serve."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
import webbrowser
from datetime import UTC, datetime
from pathlib import Path

import click

from publisher.config import Config, load_config
from publisher.errors import PublisherError
from publisher.publish.build import BuildResult, build
from publisher.publish.slugs import slugify


def _root(ctx: click.Context) -> Path:
    return Path(ctx.obj.root)


def _progress(message: str) -> None:
    click.echo(f"  … {message}", err=True)


def report_build(result: BuildResult, config: Config) -> None:
    """Print what a build made, warnings, and when the next scheduled post is due."""
    for warning in result.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    site = result.site
    try:
        shown = result.output.relative_to(config.root)
    except ValueError:
        shown = result.output
    click.echo(
        f"Built {len(site.posts)} posts, {result.pages} pages and {result.feeds} feeds "
        f"({result.written.files} files, {result.written.bytes / 1024:,.0f} KB) into {shown}/ "
        f"in {result.seconds:.2f} s."
    )
    drafts = sum(1 for p in site.hidden if p.draft)
    if drafts:
        click.echo(f"{drafts} draft(s) not published (use --drafts to preview them).")
    if site.next_due is not None:
        due = site.next_due.date.astimezone(config.site.timezone)
        click.echo(
            f"Next scheduled post: '{site.next_due.title}' ({site.next_due.source}) "
            f"becomes due at {due:%Y-%m-%d %H:%M %Z}."
        )


@click.command("build")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: [build].output_dir).",
)
@click.option("--drafts", is_flag=True, help="Also publish drafts and future posts (preview only).")
@click.pass_context
def build_command(ctx: click.Context, output: Path | None, drafts: bool) -> None:
    """Build the blog and feeds into the output folder, atomically.

    \b
    Example:
        publisher build
        publisher --site mysite build --output /tmp/preview --drafts
    """
    config = load_config(_root(ctx))
    try:
        result = build(
            config, datetime.now(UTC), include_drafts=drafts, output=output, progress=_progress
        )
    except OSError as exc:
        # Anything the build could not read or write (a template folder, the output's
        # parent): say which file and why; the output was not swapped (G10).
        where = f"{exc.filename}: " if exc.filename else ""
        raise PublisherError(
            f"{where}{exc.strerror or exc}; nothing was written",
            hint="Check that the file exists and can be read, then build again.",
        ) from None
    report_build(result, config)


@click.command("new")
@click.argument("title")
@click.option("--category", default="", help="Category of the post, e.g. 세계.")
@click.option("--tags", default="", help="Comma-separated tags, e.g. 'AI,반도체'.")
@click.option("--slug", default="", help="Slug (default: from the title, Hangul kept).")
@click.option(
    "--date", "date_text", default="", help="Publish date, e.g. '2025-06-20 09:00' (default: now)."
)
@click.option("--draft", is_flag=True, help="Mark the post as a draft.")
@click.pass_context
def new_command(
    ctx: click.Context, title: str, category: str, tags: str, slug: str, date_text: str, draft: bool
) -> None:
    """Create a new post file with front matter.

    \b
    Example:
        publisher new "미중 기술 격차 분석" --category 세계 --tags AI,반도체
    """
    config = load_config(_root(ctx))
    slug = slug or slugify(title)
    if not slug:
        raise PublisherError("the title gives an empty slug", hint="Pass --slug.")
    path = config.posts_path / f"{slug}.md"
    if path.exists():
        raise PublisherError(
            f"{path.relative_to(config.root)} already exists", hint="Choose another --slug."
        )
    moment = date_text or datetime.now(config.site.timezone).strftime("%Y-%m-%d %H:%M")
    lines = ["---", f"title: {json.dumps(title, ensure_ascii=False)}", f"date: {moment}"]
    if category:
        lines.append(f"category: {json.dumps(category, ensure_ascii=False)}")
    tag_list = [t.strip() for t in tags.split(",") if t.strip()]
    if tag_list:
        lines.append(f"tags: {json.dumps(tag_list, ensure_ascii=False)}")
    if draft:
        lines.append("draft: true")
    lines += ["---", "", "여기에 본문을 씁니다.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    click.echo(f"Created {path.relative_to(config.root)}")


LIVE_RELOAD = (
    "<script>(function(){var v=null;setInterval(function(){fetch('/__build').then(function(r)"
    "{return r.text()}).then(function(t){if(v!==null&&t!==v){location.reload()}v=t})"
    ".catch(function(){})},700)})();</script>"
)


def _open_later(url: str) -> None:
    time.sleep(0.8)  # let the server bind first
    webbrowser.open(url)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port."
)
@click.option(
    "--drafts/--no-drafts", default=True, show_default=True, help="Show drafts and future posts."
)
@click.option(
    "--open/--no-open", "open_browser", default=True, show_default=True, help="Open a browser."
)
@click.pass_context
def serve_command(
    ctx: click.Context, host: str, port: int, drafts: bool, open_browser: bool
) -> None:
    """Preview the site locally; rebuild on every change and reload the browser.

    \b
    Example:
        publisher serve --port 8000
    """
    _run_preview(ctx, host, port, drafts=drafts, open_path="" if open_browser else None)


def _run_preview(
    ctx: click.Context, host: str, port: int, *, drafts: bool, open_path: str | None
) -> None:
    """Serve the preview build (and rebuild on change); open ``open_path`` in a browser."""
    from publisher.cli.web import preview_routes
    from publisher.preview.server import PreviewServer

    config = load_config(_root(ctx))
    base_url = f"http://{host}:{port}/"
    config = dataclasses.replace(
        config,
        site=dataclasses.replace(config.site, base_url=base_url),
        web=dataclasses.replace(config.web, base_url=None),  # the service is mounted here too
    )
    routes, close_web = preview_routes(config)
    server = PreviewServer(
        config, drafts=drafts, live_reload=LIVE_RELOAD, log=_progress, routes=routes
    )
    server.rebuild()
    watcher = threading.Thread(target=server.watch, daemon=True)
    watcher.start()
    click.echo(f"Serving {base_url} (Ctrl-C to stop); watching posts, templates and config.toml.")
    if open_path is not None:
        click.echo(f"Opening {base_url}{open_path}")
        threading.Thread(target=_open_later, args=(base_url + open_path,), daemon=True).start()
    try:
        server.serve(host, port)
    finally:
        server.stop()
        close_web()
    sys.exit(0)


@click.command("preview")
@click.argument("post")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port."
)
@click.option(
    "--open/--no-open", "open_browser", default=True, show_default=True, help="Open a browser."
)
@click.pass_context
def preview_command(
    ctx: click.Context, post: str, host: str, port: int, open_browser: bool
) -> None:
    """Show a post's page, feed entry, email HTML and plain text side by side in a browser.

    POST is a slug or the post's file path. Drafts and scheduled posts work too.

    \b
    Example:
        publisher preview us-china-tech-gap
        publisher preview posts/2025-06-20-us-china-tech-gap.md --port 8001
    """
    _run_preview(
        ctx, host, port, drafts=True, open_path=f"__preview/{post}" if open_browser else None
    )


@click.command("config")
@click.option(
    "--reference", is_flag=True, help="Print the configuration reference (Markdown) instead."
)
@click.pass_context
def config_command(ctx: click.Context, reference: bool) -> None:
    """Check config.toml and show the settings in force.

    \b
    Example:
        publisher config
        publisher config --reference > reference.md
    """
    from publisher.config import SETTINGS, reference_markdown

    if reference:
        click.echo(reference_markdown(), nl=False)
        return
    config = load_config(_root(ctx))
    for setting in SETTINGS:
        section = getattr(config, setting.section)
        value = getattr(section, setting.key)
        click.echo(f"{setting.name} = {value!s}")
    click.echo(f"database = {config.database_url}")
    click.echo("config.toml is valid.")
