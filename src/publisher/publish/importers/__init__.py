"""Importers: another platform's export → typed ``ImportedPost`` objects → post files.

Pure: no network, no database. One module per source (``feed``, ``wordpress``,
``ghost``, ``substack``) parses an export into ``ImportedPost`` objects; ``clean``
turns their HTML into Markdown without the platform's chrome; ``plan`` decides
what to write (new, updated, unchanged) and checks every file with the strict
post reader before anything is written.

Every imported post records where it came from (``source: "wordpress:123"``) and a
digest of what the export said (``source_digest``): importing the same export
twice changes nothing, and a newer export updates exactly the posts that changed.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from email.utils import parsedate_to_datetime
from html import unescape
from pathlib import Path
from urllib.parse import unquote, urlsplit

from lxml import etree

from publisher.errors import Location, Problem, ProblemsError
from publisher.publish.content import ALIAS_REFUSED
from publisher.publish.slugs import is_valid_slug, slugify

SOURCES = ("feed", "wordpress", "ghost", "substack")


class PostImportError(ProblemsError):
    """An export could not be imported; every problem is listed with its source item."""

    title = "import"


@dataclass(frozen=True)
class Asset:
    """An image found in the export folder, copied to ``target`` (relative to the site)."""

    path: Path
    target: str


@dataclass(frozen=True)
class ImportedPost:
    """One post as the export describes it, ready to be written as a post file."""

    platform: str  # "feed", "wordpress", "ghost", "substack"
    source_id: str  # the platform's own id of the post (guid, post_id, uuid)
    item: str  # where it is in the export, for messages: "export.xml: item 3"
    title: str
    date: datetime  # aware, in the zone the export gave
    slug: str
    body: str  # Markdown
    updated: datetime | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    summary: str | None = None
    author: str | None = None
    draft: bool = False
    image: str | None = None
    aliases: tuple[str, ...] = ()  # old paths on the old site
    feed_id: str | None = None  # the old feed's entry id, kept so readers see no duplicates
    assets: tuple[Asset, ...] = ()

    @property
    def source(self) -> str:
        return f"{self.platform}:{self.source_id}"


@dataclass(frozen=True)
class Parsed:
    """What an importer found: posts, plus items it skipped on purpose (pages, revisions)."""

    posts: tuple[ImportedPost, ...]
    skipped: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class Options:
    """What the user asked for on the command line."""

    category_map: Mapping[str, str] = field(default_factory=dict)  # "" drops a name
    since: datetime | None = None
    assets_dir: str = "static/imported"  # under the site's templates folder


def map_names(post: ImportedPost, mapping: Mapping[str, str]) -> ImportedPost:
    """Apply ``--category-map a=b`` to the category and the tags (``a=`` drops ``a``)."""

    def one(name: str) -> str:
        return mapping.get(name, name).strip()

    category = one(post.category) if post.category else None
    tags = tuple(dict.fromkeys(t for t in (one(t) for t in post.tags) if t))
    return replace(post, category=category or None, tags=tags)


def slug_for(candidate: str, title: str) -> str:
    """Keep the old slug (percent-decoded, Hangul kept) when it is a good one, else from the title."""
    decoded = unicodedata.normalize("NFC", unquote(candidate)).strip().lower()
    if decoded and is_valid_slug(decoded) and not decoded.isdigit():
        return decoded
    return slugify(decoded) if decoded and not decoded.isdigit() else slugify(title) or "post"


def path_of(url: str) -> str | None:
    """The path of an old URL as an alias (``/entry/제목``), or None when there is none."""
    path = unicodedata.normalize("NFC", unquote(urlsplit(url.strip()).path))
    parts = path.strip("/").split("/")
    if (
        not path.strip("/")
        or ALIAS_REFUSED.search(path)
        or any(p in ("", ".", "..") for p in parts)
    ):
        return None  # the home page, ?p=123 links, or a path the alias rules refuse
    return path


def post_text(post: ImportedPost, *, slug: str, aliases: tuple[str, ...], feed_id: str) -> str:
    """The post file: front matter the strict reader accepts, then the Markdown body."""
    lines = ["---", f"title: {_quoted(post.title)}", f"date: {_moment(post.date)}"]
    if post.updated and post.updated != post.date:
        lines.append(f"updated: {_moment(post.updated)}")
    if post.category:
        lines.append(f"category: {_quoted(post.category)}")
    if post.tags:
        lines.append(f"tags: {_quoted(list(post.tags))}")
    lines.append(f"slug: {_quoted(slug)}")
    if post.summary:
        lines.append(f"summary: {_quoted(' '.join(post.summary.split()))}")
    if post.author:
        lines.append(f"author: {_quoted(post.author)}")
    if post.draft:
        lines.append("draft: true")
    if post.image:
        lines.append(f"image: {_quoted(post.image)}")
    if aliases:
        lines.append(f"aliases: {_quoted(list(aliases))}")
    lines.append(f"id: {_quoted(feed_id)}")
    lines.append(f"source: {_quoted(post.source)}")
    lines.append(f"source_digest: {digest(post)}")
    return "\n".join([*lines, "---", "", post.body.strip(), ""])


def digest(post: ImportedPost) -> str:
    """What the export said about this post; a newer export with other content differs."""
    data = repr(replace(post, item="", assets=())).encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:32]


def _quoted(value: object) -> str:
    # JSON strings and lists are valid YAML flow scalars (the `new` command writes them so too).
    return json.dumps(value, ensure_ascii=False)


def _moment(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


_XML_PARSER_OPTIONS = {
    "resolve_entities": False,  # no billion laughs, no external entities (XXE)
    "no_network": True,
    "huge_tree": False,
    "load_dtd": False,
    "dtd_validation": False,
    "remove_blank_text": False,
}


def parse_xml(data: bytes, shown: str) -> etree._Element:
    """Parse an export safely: no entity expansion, no DTD, no network, no huge trees."""
    parser = etree.XMLParser(**_XML_PARSER_OPTIONS)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) else None
        raise PostImportError(
            [Problem(Location(shown, line), f"not well-formed XML: {exc.msg}")]
        ) from None
    if root is None:
        raise PostImportError([Problem(Location(shown), "empty XML document")])
    if _has_entities(root):
        raise PostImportError(
            [Problem(Location(shown), "declares XML entities; exports never need them, refused")]
        )
    return root


def _has_entities(root: etree._Element) -> bool:
    doc = root.getroottree()
    dtd = doc.docinfo.internalDTD
    return dtd is not None and any(True for _ in dtd.iterentities())


_TAG_TEXT = re.compile(r"<[^>]+>")


def plain(html: str) -> str:
    """Text of a short HTML fragment (a summary or a title)."""
    return " ".join(unescape(_TAG_TEXT.sub(" ", html)).split())


_ZONE_NAMES = {"KST": "+09:00", "JST": "+09:00", "UTC": "+00:00", "GMT": "+00:00", "Z": "+00:00"}
_ISO_SPACE = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(.*)$")


def parse_date(text: str, zone: tzinfo) -> datetime:
    """A date as exports write them, aware; a date without a zone is read in ``zone``.

    RFC 822 (``Fri, 20 Jun 2025 09:00:00 +0900``, also with ``KST``), ISO 8601
    (``2025-06-20T00:00:00.000Z``), WordPress's ``2025-06-20 09:00:00``. Raises
    ValueError naming what it got.
    """
    value = " ".join(text.split())
    if not value:
        raise ValueError("no date")
    moment: datetime | None = None
    iso = _ISO_SPACE.match(value)
    try:
        if iso:
            offset = _ZONE_NAMES.get(iso[3].upper(), iso[3])
            moment = datetime.fromisoformat(f"{iso[1]}T{iso[2]}{offset}")
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            moment = datetime.fromisoformat(value)
        else:
            head, _, name = value.rpartition(" ")
            if name.upper() in _ZONE_NAMES and name.upper() not in ("UTC", "GMT"):
                value = f"{head} {_ZONE_NAMES[name.upper()].replace(':', '')}"
            moment = parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError):
        moment = None
    if moment is None:
        raise ValueError(f"not a date: {text.strip()[:60]!r}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
