"""RSS 2.0 and Atom feeds that carry full content (Tistory, Naver Blog, Medium, Blogger, WordPress).

RSS: ``content:encoded`` when present, else ``description`` (Tistory puts the whole
article there, related-posts block and all). The first ``<category>`` is the
category and the others are tags, as Tistory writes them (Naver Blog's ``<tag>a,b</tag>``
adds tags). Atom: ``content`` (or
``summary``), ``category/@term``, ``published``/``updated``. The item's ``guid``/``id``
is its source id and stays its feed id, so readers of the old feed see no duplicates.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, tzinfo
from pathlib import Path
from typing import NoReturn
from urllib.parse import unquote, urlsplit

from lxml import etree

from publisher.errors import Location, Problem
from publisher.publish.importers import (
    ImportedPost,
    Parsed,
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
DC_DATE = "{http://purl.org/dc/elements/1.1/}date"
ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"
SUMMARY_LIMIT = 500


def parse(file: Path, zone: tzinfo, finder: AssetFinder) -> Parsed:
    """Every item of an RSS 2.0 or Atom file."""
    root = parse_xml(file.read_bytes(), str(file))
    reader: Callable[[etree._Element, str, tzinfo, AssetFinder], ImportedPost]
    if root.tag == f"{ATOM}feed":
        entries = root.findall(f"{ATOM}entry")
        reader = _atom_entry
    elif root.tag == "rss" and root.find("channel") is not None:
        entries = root.findall("channel/item")
        reader = _rss_item
    else:
        where = Location(str(file), root.sourceline)
        problem = Problem(where, f"not an RSS 2.0 or Atom feed (root element <{root.tag}>)")
        return Parsed((), (), (problem,))
    posts, problems = [], []
    for number, entry in enumerate(entries, start=1):
        item = f"{file.name}:{entry.sourceline}: item {number}"
        try:
            posts.append(reader(entry, item, zone, finder))
        except ValueError as exc:
            problems.append(Problem(Location(file.name, entry.sourceline), f"item {number}: {exc}"))
    return Parsed(tuple(posts), (), tuple(problems))


def _text(element: etree._Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _rss_item(item: etree._Element, where: str, zone: tzinfo, finder: AssetFinder) -> ImportedPost:
    title = plain(_text(item.find("title")))
    link = _text(item.find("link"))
    guid = _text(item.find("guid")) or link
    if not title:
        raise ValueError("has no <title>; give it one in the feed")
    if not guid:
        raise ValueError(f"'{title}' has neither <guid> nor <link>, so it cannot be matched later")
    when = _text(item.find("pubDate")) or _text(item.find(DC_DATE))
    description = _text(item.find("description"))
    encoded = _text(item.find(CONTENT))
    html = encoded or description
    names = [_text(c) for c in item.findall("category") if _text(c)]
    # Naver Blog: <tag>경제,환율</tag> beside its one <category>.
    names += [t.strip() for t in _text(item.find("tag")).split(",") if t.strip()]
    summary = plain(description) if encoded and description else ""
    return _post(
        where,
        guid=guid,
        link=link,
        title=title,
        date=parse_date(when, zone) if when else _no_date(title),
        html=html,
        names=names,
        author=_text(item.find(DC_CREATOR)) or _text(item.find("author")) or None,
        summary=summary,
        image=_rss_image(item),
        finder=finder,
    )


def _rss_image(item: etree._Element) -> str | None:
    for enclosure in item.findall("enclosure"):
        if enclosure.get("type", "").startswith("image/"):
            return str(enclosure.get("url") or "") or None
    for tag in ("thumbnail", "content"):
        media = item.find(MEDIA + tag)
        if media is not None and media.get("url"):
            return str(media.get("url"))
    return None


def _atom_entry(
    entry: etree._Element, where: str, zone: tzinfo, finder: AssetFinder
) -> ImportedPost:
    title = plain(_text(entry.find(f"{ATOM}title")))
    link = ""
    for candidate in entry.findall(f"{ATOM}link"):
        if candidate.get("rel", "alternate") == "alternate":
            link = candidate.get("href", "")
            break
    guid = _text(entry.find(f"{ATOM}id")) or link
    if not title:
        raise ValueError("has no <title>; give it one in the feed")
    if not guid:
        raise ValueError(f"'{title}' has neither <id> nor a link, so it cannot be matched later")
    published = _text(entry.find(f"{ATOM}published")) or _text(entry.find(f"{ATOM}updated"))
    updated = _text(entry.find(f"{ATOM}updated"))
    content = _text(entry.find(f"{ATOM}content"))
    summary = _text(entry.find(f"{ATOM}summary"))
    names = [c.get("term", "") for c in entry.findall(f"{ATOM}category") if c.get("term")]
    post = _post(
        where,
        guid=guid,
        link=link,
        title=title,
        date=parse_date(published, zone) if published else _no_date(title),
        html=content or summary,
        names=names,
        author=_text(entry.find(f"{ATOM}author/{ATOM}name")) or None,
        summary=plain(summary) if content and summary else "",
        image=None,
        finder=finder,
    )
    if updated:
        moment = parse_date(updated, zone)
        if moment > post.date:
            post = replace(post, updated=moment)
    return post


def _no_date(title: str) -> NoReturn:
    raise ValueError(f"'{title}' has no date (<pubDate>, <published> or <updated>)")


def _post(
    where: str,
    *,
    guid: str,
    link: str,
    title: str,
    date: datetime,
    html: str,
    names: list[str],
    author: str | None,
    summary: str,
    image: str | None,
    finder: AssetFinder,
) -> ImportedPost:
    if not html.strip():
        raise ValueError(f"'{title}' has no content (<content:encoded>, <description>, <content>)")
    segment = unquote(urlsplit(link).path.rstrip("/").rsplit("/", 1)[-1]) if link else ""
    segment = re.sub(r"\.(html?|php|aspx?)$", "", segment)
    aliases = [path_of(link)]
    if guid.startswith(("http://", "https://")) and urlsplit(guid).netloc == urlsplit(link).netloc:
        aliases.append(path_of(guid))  # Tistory: /entry/제목 and /123 both reach the post
    body = html_to_markdown(html, finder)
    return ImportedPost(
        platform="feed",
        source_id=guid,
        item=where,
        title=title,
        date=date,
        slug=slug_for(segment, title),
        body=body,
        category=names[0] if names else None,
        tags=tuple(names[1:]),
        summary=summary if summary and len(summary) <= SUMMARY_LIMIT else None,
        author=author,
        image=image_field(finder, image),
        aliases=tuple(dict.fromkeys(a for a in aliases if a)),
        feed_id=guid,
        assets=finder.take(),
    )
