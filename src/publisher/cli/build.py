"""Commands of the publish half: build, new, serve."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
import uuid
import webbrowser
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import click

from publisher.config import Config, load_config
from publisher.errors import PublisherError
from publisher.publish.build import BuildResult, build, load_site, write_site
from publisher.publish.site import Site
from publisher.publish.slugs import slugify
from publisher.publish.templating import compile_all, make_environment


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

    Posts the scheduler has published stay published even if the clock is now
    behind them (it was set back): a manual build never takes a post down.

    \b
    Example:
        publisher build
        publisher build --output /tmp/preview --drafts
    """
    config = load_config(_root(ctx))
    try:
        if drafts:
            result = build(
                config, datetime.now(UTC), include_drafts=True, output=output, progress=_progress
            )
        else:
            started = time.perf_counter()
            compile_all(make_environment(config))
            _progress("reading posts")
            site, warnings = load_site(config, datetime.now(UTC))
            site = _keep_published(config, site)
            result = write_site(
                site, output=output, progress=_progress, warnings=warnings, started=started
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


def _keep_published(config: Config, site: Site) -> Site:
    """The site with every post the scheduler published still public (issue 8, item 15)."""
    # Imported here: only a build next to a scheduler's database needs the scheduler's rule.
    from publisher.schedule.runner import keep_published
    from publisher.store import Store, StoreError, utc_now

    if not _database_exists(config.database_url):
        return site  # no scheduler ever ran here: nothing was published by it
    try:
        # A short retry: a database that is down must not hold a build up for long.
        store = Store.open(config.database_url, clock=utc_now, retry_seconds=3.0)
        try:
            kept = keep_published(store, site)
        finally:
            store.close()
    except StoreError as exc:
        click.secho(
            f"warning: {exc.message}; built at the current clock, so a post the scheduler "
            "published but dated later than now would be missing until its next pass",
            fg="yellow",
            err=True,
        )
        return site
    if kept is not site:
        click.echo(
            f"The clock ({site.now:%Y-%m-%d %H:%M} UTC) is behind the scheduler's last pass; "
            "posts it already published stay published."
        )
    return kept


def _database_exists(url: str) -> bool:
    """False for a SQLite file that does not exist yet (opening it would create it)."""
    from sqlalchemy.engine import make_url

    from publisher.store import normalize_url

    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return parsed.get_backend_name() != "sqlite"
    return Path(parsed.database).exists()


@click.command("new")
@click.argument("title")
@click.option("--category", default="", help="Category of the post, e.g. 세계.")
@click.option("--tags", default="", help="Comma-separated tags, e.g. 'AI,반도체'.")
@click.option("--slug", default="", help="Slug (default: from the title, Hangul kept).")
@click.option(
    "--date", "date_text", default="", help="Publish date, e.g. '2025-06-20 09:00' (default: now)."
)
@click.option(
    "--draft/--no-draft",
    default=True,
    show_default=True,
    help="Write 'draft: true' (nothing is published or mailed until you set it to false).",
)
@click.pass_context
def new_command(
    ctx: click.Context, title: str, category: str, tags: str, slug: str, date_text: str, draft: bool
) -> None:
    """Create a new post file: a draft with a fresh 'id' and a placeholder body.

    The post stays a draft, neither published nor mailed by `publisher run`, until
    you set 'draft: false' in its front matter. Its 'id' keeps it the same post
    (for the newsletter and the feeds) if you rename the file or change its slug.

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
    lines = [
        "---",
        f"id: {uuid.uuid4()}",  # random: two posts never share one (issue 8, item 1)
        f"title: {json.dumps(title, ensure_ascii=False)}",
        f"date: {moment}",
    ]
    if category:
        lines.append(f"category: {json.dumps(category, ensure_ascii=False)}")
    tag_list = [t.strip() for t in tags.split(",") if t.strip()]
    if tag_list:
        lines.append(f"tags: {json.dumps(tag_list, ensure_ascii=False)}")
    lines.append(f"draft: {'true' if draft else 'false'}")
    lines += ["---", "", "여기에 본문을 씁니다.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    shown = path.relative_to(config.root)
    if draft:
        click.echo(f"Created {shown}, a draft: it is not published or mailed yet.")
        click.echo(
            "To publish it, write the article and set 'draft: false' in its front matter; "
            "`publisher run` then publishes it at its date and mails it."
        )
    else:
        click.echo(f"Created {shown}; `publisher run` publishes and mails it at {moment}.")


LIVE_RELOAD = (
    "<script>(function(){var v=null;setInterval(function(){fetch('/__build').then(function(r)"
    "{return r.text()}).then(function(t){if(v!==null&&t!==v){location.reload()}v=t})"
    ".catch(function(){})},700)})();</script>"
)


# Console browsers webbrowser may pick (it registers them whenever TERM is set): opened
# from `serve`, they take over the terminal the server logs to (issue 8, item 17).
TEXT_BROWSERS = frozenset(
    {"lynx", "w3m", "links", "links2", "elinks", "www-browser", "browsh", "netrik", "edbrowse"}
)


def graphical_browser(
    env: Mapping[str, str] | None = None,
    platform: str = sys.platform,
    find: Callable[[], webbrowser.BaseBrowser] = webbrowser.get,
) -> webbrowser.BaseBrowser | None:
    """The browser to open pages in, or None when none can be shown.

    macOS and Windows always have a display; elsewhere only with ``DISPLAY`` or
    ``WAYLAND_DISPLAY`` set. Never a text-mode browser, whatever webbrowser chose.
    """
    env = os.environ if env is None else env
    if platform not in ("darwin", "win32") and not (
        env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")
    ):
        return None
    try:
        browser = find()
    except webbrowser.Error:
        return None
    name = os.path.basename(str(getattr(browser, "name", "") or "")).lower()
    return None if name in TEXT_BROWSERS else browser


def _open_later(browser: webbrowser.BaseBrowser, url: str) -> None:
    time.sleep(0.3)  # the socket listens already; let uvicorn start accepting
    browser.open(url)


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
    from publisher.preview.server import PreviewServer, listen

    config = load_config(_root(ctx))
    base_url = f"http://{host}:{port}/"
    config = dataclasses.replace(
        config,
        site=dataclasses.replace(config.site, base_url=base_url),
        web=dataclasses.replace(config.web, base_url=None),  # the service is mounted here too
    )
    with listen(host, port) as listener:  # first: a busy port fails before any work
        routes, close_web = preview_routes(config)
        server = PreviewServer(
            config, drafts=drafts, live_reload=LIVE_RELOAD, log=_progress, routes=routes
        )
        server.rebuild()
        threading.Thread(target=server.watch, daemon=True).start()
        click.echo(
            f"Serving {base_url} (Ctrl-C to stop); watching posts, templates and config.toml."
        )
        _show(base_url + (open_path or ""), open_browser=open_path is not None)
        try:
            server.serve(listener)
        finally:
            server.stop()
            close_web()
    sys.exit(0)


def _show(url: str, *, open_browser: bool) -> None:
    """Open ``url`` in a browser that can be shown, else print it to open by hand."""
    browser = graphical_browser() if open_browser else None
    if browser is None:
        click.echo(f"Open {url} in a browser.")
        return
    click.echo(f"Opening {url}")
    threading.Thread(target=_open_later, args=(browser, url), daemon=True).start()


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
    """Check config.toml and print the settings in force, as TOML.

    The output is valid TOML with every default and derived value filled in
    (the service URL, List-Id, From name, the database URL with the environment
    applied), so it can be read back as a config.toml.

    \b
    Example:
        publisher config
        publisher config --reference > reference.md
    """
    from publisher.config import reference_markdown, settings_toml, smtp_unused_warning

    if reference:
        click.echo(reference_markdown(), nl=False)
        return
    config = load_config(_root(ctx))
    click.echo(settings_toml(config), nl=False)
    warning = smtp_unused_warning(config)
    if warning:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"{config.source} is valid.", err=True)
