"""WordPress WXR exports (Tools → Export → All content): posts, categories, tags, authors.

WXR is RSS 2.0 plus the ``wp:`` namespace (1.0, 1.1 or 1.2, found from the file).
Per item: ``wp:post_type`` (only ``post`` is imported; pages, revisions, attachments
and menu items are skipped and counted), ``wp:status`` (publish/future → published,
draft/pending/private → draft, trash skipped), ``wp:post_date`` in the blog's zone
with ``wp:post_date_gmt`` giving the offset, ``wp:post_name`` (percent-encoded for
Hangul), ``category`` with ``domain="category"``/``"post_tag"``, ``dc:creator`` (an
author login, shown by its ``wp:author_display_name``), ``excerpt:encoded`` and the
``_thumbnail_id`` attachment as the image; ``_wp_old_slug`` values (WordPress
redirected those itself) become aliases too. Classic-editor content has no ``<p>``:
blank lines separate paragraphs there (what WordPress's ``wpautop`` does).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from urllib.parse import unquote

from lxml import etree

from publisher.errors import Location, Problem
from publisher.publish.importers import (
    ImportedPost,
    Parsed,
    PostImportError,
    parse_date,
    parse_xml,
    path_of,
    plain,
    slug_for,
)
from publisher.publish.importers.clean import html_to_markdown
from publisher.publish.importers.plan import AssetFinder, image_field

CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
DC_CREATOR = "{http://purl.org/dc/elements/1.1/}creator"
_STATUS_DRAFT = {"draft": True, "pending": True, "private": True, "publish": False, "future": False}
_BLOCK_START = re.compile(r"^\s*<(p|div|h[1-6]|ul|ol|li|table|pre|blockquote|figure|hr)\b", re.I)
_SHORTCODE = re.compile(r"\[/?(caption|embed|gallery|audio|video)\b[^\]]*\]")


def parse(file: Path, zone: tzinfo, finder: AssetFinder) -> Parsed:
    root = parse_xml(file.read_bytes(), str(file))
    wp = _wp_namespace(root, file)
    channel = root.find("channel")
    assert channel is not None
    authors = {
        _text(a.find(f"{wp}author_login")): _text(a.find(f"{wp}author_display_name"))
        for a in channel.findall(f"{wp}author")
    }
    attachments = {
        _text(i.find(f"{wp}post_id")): _text(i.find(f"{wp}attachment_url"))
        for i in channel.findall("item")
        if _text(i.find(f"{wp}post_type")) == "attachment"
    }
    skipped: Counter[str] = Counter()
    posts, problems = [], []
    for number, item in enumerate(channel.findall("item"), start=1):
        kind = _text(item.find(f"{wp}post_type"))
        status = _text(item.find(f"{wp}status"))
        if kind != "post" or status not in _STATUS_DRAFT:
            skipped[f"{kind or 'item'} ({status})" if kind == "post" else kind or "item"] += 1
            continue
        where = f"{file.name}:{item.sourceline}: item {number}"
        try:
            posts.append(_post(item, wp, where, zone, finder, authors, attachments))
        except ValueError as exc:
            problems.append(Problem(Location(file.name, item.sourceline), f"item {number}: {exc}"))
    notes = tuple(
        f"{count} × {kind} (only posts are imported)" for kind, count in sorted(skipped.items())
    )
    return Parsed(tuple(posts), notes, tuple(problems))


def _wp_namespace(root: etree._Element, file: Path) -> str:
    for prefix, uri in (root.nsmap or {}).items():
        if prefix == "wp" and uri:
            return "{" + str(uri) + "}"
    raise PostImportError(
        [
            Problem(
                Location(str(file)), "not a WordPress export (no xmlns:wp); for a feed use `feed`"
            )
        ]
    )


def _text(element: etree._Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _post(
    item: etree._Element,
    wp: str,
    where: str,
    zone: tzinfo,
    finder: AssetFinder,
    authors: dict[str, str],
    attachments: dict[str, str],
) -> ImportedPost:
    title = plain(_text(item.find("title")))
    post_id = _text(item.find(f"{wp}post_id"))
    if not title:
        raise ValueError(f"post {post_id or '?'} has no title")
    if not post_id:
        raise ValueError(f"'{title}' has no wp:post_id")
    local = _text(item.find(f"{wp}post_date"))
    gmt = _text(item.find(f"{wp}post_date_gmt"))
    date = _blog_date(local, gmt, zone, title)
    categories = [_text(c) for c in item.findall("category") if c.get("domain") == "category"]
    tags = [_text(c) for c in item.findall("category") if c.get("domain") == "post_tag"]
    login = _text(item.find(DC_CREATOR))
    excerpt = plain(_text(item.find(wp[:-1] + "excerpt/}encoded")))
    thumbnail, old_slugs = "", []
    for meta in item.findall(f"{wp}postmeta"):
        key, value = _text(meta.find(f"{wp}meta_key")), _text(meta.find(f"{wp}meta_value"))
        if key == "_thumbnail_id":
            thumbnail = attachments.get(value, "")
        elif key == "_wp_old_slug" and value:
            old_slugs.append(value)  # WordPress redirected these itself; so do we
    link = _text(item.find("link"))
    alias = path_of(link) if "?" not in link else None
    aliases = [alias] if alias else []
    if alias:
        name = _text(item.find(f"{wp}post_name"))
        for old in old_slugs:
            head, found, tail = alias.rpartition(unquote(name))
            renamed = path_of(head + unquote(old) + tail) if name and found else None
            if renamed and renamed != alias:
                aliases.append(renamed)
    html = _autop(_SHORTCODE.sub("", _text(item.find(CONTENT))))
    if not html.strip():
        raise ValueError(f"'{title}' has no content")
    body = html_to_markdown(html, finder)
    return ImportedPost(
        platform="wordpress",
        source_id=post_id,
        item=where,
        title=title,
        date=date,
        slug=slug_for(_text(item.find(f"{wp}post_name")), title),
        body=body,
        category=categories[0] if categories else None,
        tags=tuple([*categories[1:], *tags]),
        summary=excerpt or None,
        author=authors.get(login) or login or None,
        draft=_STATUS_DRAFT[_text(item.find(f"{wp}status"))],
        image=image_field(finder, thumbnail or None),
        aliases=tuple(dict.fromkeys(aliases)),
        feed_id=_text(item.find("guid")) or None,
        assets=finder.take(),
    )


def _blog_date(local: str, gmt: str, zone: tzinfo, title: str) -> datetime:
    """The post date with the blog's offset (``post_date`` − ``post_date_gmt``)."""
    if not local or local.startswith("0000"):
        raise ValueError(f"'{title}' has no wp:post_date")
    naive = parse_date(local, UTC).replace(tzinfo=None)
    if gmt and not gmt.startswith("0000"):
        utc = parse_date(gmt, UTC).replace(tzinfo=None)
        offset = timedelta(minutes=round((naive - utc).total_seconds() / 60))
        if abs(offset) < timedelta(hours=15):
            return naive.replace(tzinfo=timezone(offset))
    return naive.replace(tzinfo=zone)  # drafts have no GMT date: read in [site].timezone


def _autop(html: str) -> str:
    """Classic-editor text: blank lines are paragraphs and single newlines are breaks.

    Block-editor content (``<!-- wp:paragraph -->``) already has its ``<p>`` tags.
    """
    if "<!-- wp:" in html:
        return html
    blocks = [b.strip() for b in re.split(r"\n\s*\n", html.replace("\r\n", "\n")) if b.strip()]
    return "\n".join(
        b if _BLOCK_START.match(b) else "<p>" + b.replace("\n", "<br>\n") + "</p>" for b in blocks
    )
