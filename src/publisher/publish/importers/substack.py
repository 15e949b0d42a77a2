"""Substack exports (Settings → Exports): a folder with ``posts.csv`` and ``posts/*.html``.

``posts.csv`` columns: ``post_id`` (``123456.my-slug``), ``post_date`` (ISO, UTC),
``is_published``, ``email_sent_at``, ``inbox_sent_at``, ``type``, ``audience``,
``title``, ``subtitle`` (the summary), ``podcast_url``. The body is
``posts/<post_id>.html`` (no title, no chrome but share/subscribe buttons, which the
cleaner removes). The export has no tags, categories or authors. The old URL is
``/p/<slug>``. Unpublished drafts without a date are skipped and reported.
"""

from __future__ import annotations

import csv
from datetime import tzinfo
from pathlib import Path

from publisher.errors import Location, Problem
from publisher.publish.importers import ImportedPost, Parsed, PostImportError, parse_date, slug_for
from publisher.publish.importers.clean import html_to_markdown
from publisher.publish.importers.plan import AssetFinder

REQUIRED = ("post_id", "post_date", "is_published", "title")


def parse(folder: Path, zone: tzinfo, finder: AssetFinder) -> Parsed:
    table = folder / "posts.csv"
    if not folder.is_dir() or not table.is_file():
        raise PostImportError(
            [Problem(Location(str(folder)), "not a Substack export folder (no posts.csv in it)")]
        )
    reader = csv.DictReader(table.read_text(encoding="utf-8-sig").splitlines(keepends=True))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise PostImportError(
            [Problem(Location(str(table), 1), f"missing columns: {', '.join(missing)}")]
        )
    posts, problems, skipped = [], [], []
    for row in reader:
        where = f"posts.csv:{reader.line_num}"
        published = (row.get("is_published") or "").strip().lower() == "true"
        if not (row.get("post_date") or "").strip() and not published:
            skipped.append(f"{where}: draft '{row.get('title', '')}' has no date")
            continue
        try:
            posts.append(_post(folder, row, where, published, zone, finder))
        except ValueError as exc:
            problems.append(Problem(Location(where), str(exc)))
    return Parsed(tuple(posts), tuple(skipped), tuple(problems))


def _post(
    folder: Path,
    row: dict[str, str],
    where: str,
    published: bool,
    zone: tzinfo,
    finder: AssetFinder,
) -> ImportedPost:
    post_id = (row.get("post_id") or "").strip()
    title = (row.get("title") or "").strip()
    if not post_id or "/" in post_id or post_id.startswith("."):
        raise ValueError(f"bad post_id {post_id!r}")
    if not title:
        raise ValueError(f"post {post_id} has no title")
    body_file = folder / "posts" / f"{post_id}.html"
    if not body_file.is_file():
        raise ValueError(f"'{title}': posts/{post_id}.html is missing from the export")
    number, _, slug = post_id.partition(".")
    date = parse_date(row.get("post_date") or "", zone)
    return ImportedPost(
        platform="substack",
        source_id=number or post_id,
        item=f"{where} ({post_id})",
        title=title,
        date=date,
        slug=slug_for(slug, title),
        body=html_to_markdown(body_file.read_text(encoding="utf-8"), finder),
        summary=(row.get("subtitle") or "").strip() or None,
        draft=not published,
        aliases=(f"/p/{slug}",) if slug else (),
        assets=finder.take(),
    )
