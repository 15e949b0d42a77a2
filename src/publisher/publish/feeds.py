"""RSS 2.0 and Atom (RFC 4287) feeds of the site and of each category.

Pure: no I/O, no clock. Every timestamp comes from the posts (RELIABILITY C8),
so two renders of the same site are byte-identical, and a rebuild that changes
no post changes no feed.

Made with feedgen, pinned ``==1.0.0`` because its traps (RELIABILITY L8) are
worked around here for exactly that version:

- ``add_entry()`` prepends; entries are added with ``order="append"`` (C7).
- ``updated``/``lastBuildDate`` and every entry's ``updated`` default to
  ``now()``; all are set explicitly (C8).
- Entry links lose ``rel``/``type`` (feedgen #135); restored by post-processing
  the XML with lxml (C6).
- The RSS channel ``<link>`` is the *last* ``link()`` call, so ``self`` is
  added first and ``alternate`` last (C3).
- ``type="CDATA"`` breaks Atom and ``]]>`` breaks CDATA; content is always
  escaped text with ``type="html"`` (C12).
- XML-illegal characters and naive datetimes raise a ``ValueError`` naming no
  post; the former are stripped, the latter reported with the post's file (C1, C2).
- The generator element carries feedgen's version; it names Publisher instead,
  so a library upgrade alone does not change the bytes.

Entry ids (RSS ``guid``, Atom ``id``; C4) never change once a reader has the
entry, or it is delivered again as new. A post without ``id`` in its front
matter keeps today's id, its permalink (``isPermaLink="true"``). A post with an
``id`` keeps its entry id across a change of slug (issue 8 item 1, issue 11):
an id that is already an absolute URI (``urn:uuid:…``, ``tag:…``, an old
blog's permalink) is used as it is, so moving in keeps the old feed ids; a
UUID (what ``publisher new`` writes) becomes ``urn:uuid:<uuid>``; any other id
``urn:uuid:`` of a name-based UUID (RFC 9562 v5) of it. Those are not links:
``isPermaLink="false"``.

An empty feed (no public posts yet) has no entry to take its ``updated`` from;
it uses the fixed ``EMPTY_FEED_UPDATED`` (2000-01-01T00:00:00Z), never
``now()``. Not the Unix epoch: the W3C validator flags dates before 1990 as
``ImplausibleDate``.
"""

from __future__ import annotations

import dataclasses
import html
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from feedgen.feed import FeedGenerator
from lxml import etree

from publisher.errors import Location, Problem, ProblemsError
from publisher.publish import markup
from publisher.publish.content import Post
from publisher.publish.site import Site, Taxonomy, post_path, sort_key

EMPTY_FEED_UPDATED = datetime(2000, 1, 1, tzinfo=UTC)
GENERATOR = "Publisher"
RSS_DOCS = "https://www.rssboard.org/rss-specification"
ATOM_NS = "http://www.w3.org/2005/Atom"
# Namespace of the name-based UUIDs made from ids that are neither a UUID nor a URI. Fixed
# forever: changing it would change every such entry id.
ID_NAMESPACE = uuid.UUID("5b0f4a51-6a43-4c1e-9a3e-7d2f0c8b1e64")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S")

# XML 1.0 §2.2 Char: tab, LF, CR and U+0020 upwards, minus surrogates and
# U+FFFE/U+FFFF. Anything else makes lxml raise (C2).
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class FeedError(ProblemsError):
    """A post could not be put into a feed; names the post's file."""

    title = "feed"


@dataclass(frozen=True)
class FeedFormat:
    """One serialization: its file name in a channel's folder and its media type."""

    filename: str
    media_type: str


RSS = FeedFormat("feed.xml", "application/rss+xml")
ATOM = FeedFormat("atom.xml", "application/atom+xml")


@dataclass(frozen=True)
class Channel:
    """What one feed is about: a title, the page it mirrors and its newest posts."""

    title: str
    description: str
    path: str  # site-relative folder of the feed files and of the HTML page: "" or "category/세계/"
    posts: tuple[Post, ...]  # newest first, at most [feeds].max_items


def render_feeds(site: Site) -> dict[str, bytes]:
    """Every feed file of the site: site-relative path -> bytes."""
    files: dict[str, bytes] = {}
    for channel in channels(site):
        for feed_format in (RSS, ATOM):
            files[channel.path + feed_format.filename] = render_feed(site, channel, feed_format)
    return files


def feed_entry_xml(site: Site, post: Post) -> str:
    """The Atom ``<entry>`` of one post, exactly as the feeds carry it (for a preview page)."""
    channel = dataclasses.replace(site_channel(site), posts=(post,))
    entry = feed_root(site, channel, ATOM).find(f"{{{ATOM_NS}}}entry")
    text: str = etree.tostring(entry, encoding="unicode", pretty_print=True)
    return text


def channels(site: Site) -> list[Channel]:
    """The site channel, then one per category when [feeds].per_category is on."""
    result = [site_channel(site)]
    if site.config.feeds.per_category:
        result += [category_channel(site, taxonomy) for taxonomy in site.categories]
    return result


def site_channel(site: Site) -> Channel:
    title = site.config.site.title
    return Channel(title, _description(site, title), "", newest(site, site.posts))


def category_channel(site: Site, taxonomy: Taxonomy) -> Channel:
    # "<site> – <category>": feed readers list autodiscovered feeds by title.
    title = f"{site.config.site.title} – {taxonomy.name}"
    return Channel(title, _description(site, title), taxonomy.path, newest(site, taxonomy.posts))


def _description(site: Site, title: str) -> str:
    # RSS requires a non-empty channel description; feedgen refuses to render without one.
    return site.config.site.description or title


def newest(site: Site, posts: Iterable[Post]) -> tuple[Post, ...]:
    """The [feeds].max_items newest posts, newest first (C7, C11)."""
    return tuple(sorted(posts, key=sort_key)[: site.config.feeds.max_items])


def entry_updated(post: Post) -> datetime:
    return post.updated or post.date


def feed_updated(posts: Sequence[Post]) -> datetime:
    """The latest entry update; a fixed date for an empty feed, never now() (C8)."""
    return max((entry_updated(p) for p in posts), default=EMPTY_FEED_UPDATED)


def render_feed(site: Site, channel: Channel, feed_format: FeedFormat) -> bytes:
    """One feed file: pretty-printed UTF-8 XML with a declaration."""
    root = feed_root(site, channel, feed_format)
    data: bytes = etree.tostring(
        root.getroottree(), encoding="UTF-8", xml_declaration=True, pretty_print=True
    )
    return data


def feed_root(site: Site, channel: Channel, feed_format: FeedFormat) -> Any:
    """The feed as an lxml element, with feedgen's output repaired (L8)."""
    generator = _generator(site, channel, feed_format)
    raw = generator.atom_str() if feed_format is ATOM else generator.rss_str()
    root = _parse(raw)
    _restore_entry_link_attributes(root)
    return root


def _generator(site: Site, channel: Channel, feed_format: FeedFormat) -> Any:
    generator = FeedGenerator()
    # dc:creator names per-post authors in RSS, whose <author> must be an email address.
    generator.load_extension("dc", atom=False, rss=True)
    # Entries first: a bad post date is then reported with its file, not as the feed's date (C1).
    for post in channel.posts:
        entry = generator.add_entry(order="append")  # the default prepends (L8, C7)
        try:
            _describe_entry(entry, site, post)
        except ValueError as exc:
            problem = Problem(Location(post.source), f"cannot be put in a feed: {exc}")
            raise FeedError([problem]) from None
    _describe_feed(generator, site, channel, feed_format)
    return generator


def _describe_feed(generator: Any, site: Site, channel: Channel, feed_format: FeedFormat) -> None:
    config = site.config.site
    self_url = site.url(channel.path + feed_format.filename)
    generator.id(self_url)  # Atom only: absolute and unique per feed (C4)
    generator.title(xml_text(channel.title))
    generator.description(xml_text(channel.description))
    # self first, alternate last: feedgen takes the RSS channel <link> from the last call (L8, C3).
    generator.link(href=self_url, rel="self", type=feed_format.media_type)
    generator.link(href=site.url(channel.path), rel="alternate", type="text/html")
    generator.language(config.language)
    # RFC 4287 §4.1.1: a feed without entry-level authors needs a feed author (C5).
    author = {"name": xml_text(config.author)}
    if config.author_email:
        author["email"] = config.author_email
        generator.managingEditor(f"{config.author_email} ({xml_text(config.author)})")
    generator.author(author)
    generator.generator(GENERATOR)
    generator.docs(RSS_DOCS)
    generator.updated(feed_updated(channel.posts))


def _describe_entry(entry: Any, site: Site, post: Post) -> None:
    title = xml_text(post.title).strip()
    if not title:
        # feedgen would fail later, while serializing, with no word of which post (L8).
        raise ValueError("the title is empty once characters XML cannot carry are removed")
    permalink = site.url(post_path(post))
    # Also the Atom id: stable and unique (C4); across a rename too when the post has an id.
    entry.guid(entry_id(site, post), permalink=post.id is None)
    entry.title(title)
    entry.link(href=permalink, rel="alternate", type="text/html")  # attributes dropped, see below
    entry.published(post.date)
    entry.updated(entry_updated(post))
    author = xml_text(post.author or site.config.site.author)
    entry.author(name=author)  # no email: RSS would then also get <author> beside dc:creator
    entry.dc.dc_creator(author)
    for term, scheme in _categories(site, post):
        entry.category(term=xml_text(term), scheme=scheme)
    if post.summary:
        # Summaries are plain text; escaped once more they are safe as HTML (C10).
        entry.summary(xml_text(html.escape(post.summary, quote=False)), type="html")
    if site.config.feeds.full_content:
        entry.content(feed_html(site, post), type="html")  # escaped text, never CDATA (C12)


def entry_id(site: Site, post: Post) -> str:
    """The post's feed entry id; see the module docstring."""
    if post.id is None:
        return site.url(post_path(post))
    try:
        return uuid.UUID(post.id).urn
    except ValueError:
        pass
    if _URI_SCHEME.match(post.id):
        return post.id
    return uuid.uuid5(ID_NAMESPACE, post.id).urn


def _categories(site: Site, post: Post) -> list[tuple[str, str]]:
    """(term, scheme) pairs: the post's category, then its tags."""
    pairs = [(post.category, site.url("category/"))] if post.category else []
    return pairs + [(tag, site.url("tag/")) for tag in post.tags]


def feed_html(site: Site, post: Post) -> str:
    """The post body for a feed: links absolute (C3), XML-illegal characters removed (C2)."""
    return xml_text(markup.absolutize(post.body_html, site.url(post_path(post))))


def xml_text(text: str) -> str:
    """``text`` without characters XML 1.0 cannot carry (C2).

    The post reader already rejects control characters in front-matter fields,
    but raw HTML in a body passes through Markdown, and a vertical tab pasted
    from a word processor (``\\x0b``) would make lxml raise a ValueError that
    names no post. They carry no meaning in HTML, so they are dropped.
    """
    return _XML_ILLEGAL.sub("", text)


def _parse(data: bytes) -> Any:
    # Our own output, but parse it without entities or network all the same.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser)


def _restore_entry_link_attributes(root: Any) -> None:
    """Put back ``rel="alternate"`` and ``type="text/html"`` on Atom entry links (C6).

    feedgen 1.0.0 reads them from the new XML element instead of the link data
    (#135, PR #136), so every entry link comes out bare. Each entry has exactly
    one link, the permalink added by ``_describe_entry``.
    """
    for link in root.iterfind(f"{{{ATOM_NS}}}entry/{{{ATOM_NS}}}link"):
        link.set("rel", "alternate")
        link.set("type", "text/html")
