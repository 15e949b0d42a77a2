"""Feeds: RSS 2.0 and Atom, checked with feedparser and lxml (RELIABILITY C1-C12, L8)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import feedgen.version
import feedparser
import lxml.html
import pytest
from feedgen.feed import FeedGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from builders import SEOUL, make_config, make_post
from publisher.publish.content import Post
from publisher.publish.feeds import (
    EMPTY_FEED_UPDATED,
    FeedError,
    feed_entry_xml,
    render_feeds,
    xml_text,
)
from publisher.publish.site import Site, build_site

NOW = datetime(2025, 7, 1, 12, 0, tzinfo=SEOUL)
BASE = "https://blog.example.com/"
NS = {
    "a": "http://www.w3.org/2005/Atom",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "dc": "http://purl.org/dc/elements/1.1/",
}
SITE_FILES = {"feed.xml", "atom.xml"}
WORLD = "category/세계/"  # category "세계", the default of make_post
ECONOMY = "category/경제/"


# --- builders -------------------------------------------------------------------------------


def dated(day: int, **overrides: Any) -> Post:
    """A public post dated June ``day``, 2025, 09:00 in Seoul."""
    values: dict[str, Any] = {
        "slug": f"글-{day:02d}",
        "source": f"posts/글-{day:02d}.md",
        "title": f"{day}일의 글",
        "date": datetime(2025, 6, day, 9, 0, tzinfo=SEOUL),
    }
    values.update(overrides)
    return make_post(**values)


def site_of(
    tmp_path: Path, posts: list[Post], now: datetime = NOW, **overrides: dict[str, Any]
) -> Site:
    return build_site(make_config(tmp_path, **overrides), posts, now)


def rich_posts() -> list[Post]:
    """Korean slugs, relative links, two categories, tags, an author override, a draft."""
    return [
        dated(
            3,
            body_html='<p>본문 <a href="../글-01/">앞 글</a> <img src="그림.png" alt="그림"> '
            '<a href="#각주">각주</a> <a href="/category/세계/">세계</a></p>',
            tags=("반도체", "미중 관계"),
        ),
        dated(2, category="경제", author="김기자", updated=datetime(2025, 6, 10, tzinfo=SEOUL)),
        dated(1, summary="첫 글 요약"),
        dated(4, draft=True),
    ]


def parse(data: bytes) -> Any:
    """feedparser's reading of a feed, which must be well-formed (C12)."""
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def xml(data: bytes) -> Any:
    return etree.fromstring(data)


def entry_ids(data: bytes) -> list[str]:
    return [entry.id for entry in parse(data).entries]


def permalink(post: Post) -> str:
    return f"{BASE}posts/{quote(post.slug)}/"


def urls_in(data: bytes) -> list[str]:
    """Every URL of a feed: attributes, id/guid/link texts, and href/src inside HTML content."""
    urls: list[str] = []
    for element in xml(data).iter():
        if not isinstance(element.tag, str):
            continue
        urls += [element.get(a) for a in ("href", "src", "scheme", "domain") if element.get(a)]
        name = etree.QName(element).localname
        text = (element.text or "").strip()
        if name in ("id", "guid", "link", "docs") and text:
            urls.append(text)
        if name in ("content", "encoded", "summary", "description") and text:
            fragment = lxml.html.fragment_fromstring(text, create_parent="div")
            urls += [n.get(a) for n in fragment.iter() for a in ("href", "src") if n.get(a)]
    return urls


# --- validity ---------------------------------------------------------------------------------


def test_c12_every_feed_parses_without_bozo(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts()))

    assert set(files) == SITE_FILES | {f"{p}{f}" for p in (WORLD, ECONOMY) for f in SITE_FILES}
    for data in files.values():
        parse(data)


def test_c12_pretty_utf8_with_declaration(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts()))

    for data in files.values():
        assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n")
        assert b"\n  <" in data  # indented
        assert "테스트 블로그".encode() in data  # raw UTF-8, not character references


def test_c3_every_url_is_absolute(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts()))

    for name, data in files.items():
        urls = urls_in(data)
        assert len(urls) >= 6, name
        for url in urls:
            parts = urlsplit(url)
            assert parts.scheme in ("http", "https") and parts.netloc, (name, url)


def test_c3_content_links_are_resolved_against_the_post(tmp_path: Path) -> None:
    atom = render_feeds(site_of(tmp_path, rich_posts()))["atom.xml"]
    content = xml(atom).findtext("a:entry/a:content", namespaces=NS)
    fragment = lxml.html.fragment_fromstring(content, create_parent="div")
    links = [unquote(n.get("href") or n.get("src")) for n in fragment.iter("a", "img")]
    here = f"{BASE}posts/글-03/"

    assert links == [
        f"{BASE}posts/글-01/",
        f"{here}그림.png",
        f"{here}#각주",
        f"{BASE}category/세계/",
    ]


def test_c3_korean_feed_urls_are_percent_encoded(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts()))

    for name in (f"{WORLD}atom.xml", f"{WORLD}feed.xml", "atom.xml", "feed.xml"):
        root = xml(files[name])
        outside_content = [
            url
            for element in root.iter()
            if isinstance(element.tag, str)
            and etree.QName(element).localname not in ("content", "encoded")
            for url in [element.get("href"), element.get("scheme"), element.get("domain")]
            if url
        ]
        assert outside_content and all(url.isascii() for url in outside_content), name
    self_link = xml(files[f"{WORLD}atom.xml"]).find("a:link[@rel='self']", NS).get("href")
    assert self_link == f"{BASE}category/%EC%84%B8%EA%B3%84/atom.xml"


def test_c3_self_link_first_and_alternate_last(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts()))

    for path in ("", WORLD):
        atom_links = xml(files[f"{path}atom.xml"]).findall("a:link", NS)
        assert [link.get("rel") for link in atom_links] == ["self", "alternate"]
        assert atom_links[0].get("href") == f"{BASE}{quote(path)}atom.xml"
        assert atom_links[0].get("type") == "application/atom+xml"
        assert atom_links[1].get("href") == f"{BASE}{quote(path)}"
        assert atom_links[1].get("type") == "text/html"

        channel = xml(files[f"{path}feed.xml"]).find("channel")
        rss_self = channel.find("a:link[@rel='self']", NS)
        assert rss_self.get("href") == f"{BASE}{quote(path)}feed.xml"
        assert rss_self.get("type") == "application/rss+xml"
        assert channel.findtext("link") == f"{BASE}{quote(path)}"  # the page, not the feed


def test_c4_ids_are_unique_permalinks(tmp_path: Path) -> None:
    posts = rich_posts()
    files = render_feeds(site_of(tmp_path, posts))
    public = [p for p in posts if not p.draft]

    atom = xml(files["atom.xml"])
    ids = [e.findtext("a:id", namespaces=NS) for e in atom.findall("a:entry", NS)]
    assert sorted(ids) == sorted(permalink(p) for p in public)
    assert len(set(ids)) == len(ids)

    items = xml(files["feed.xml"]).findall("channel/item")
    guids = [item.find("guid") for item in items]
    assert [g.text for g in guids] == ids  # same order, same values as Atom
    assert all(g.get("isPermaLink") == "true" for g in guids)
    assert [item.findtext("link") for item in items] == ids


def test_c4_feed_ids_differ_between_feeds(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts()))
    feed_ids = [xml(d).findtext("a:id", namespaces=NS) for n, d in files.items() if "atom" in n]

    assert len(set(feed_ids)) == len(feed_ids) == 3
    assert f"{BASE}atom.xml" in feed_ids


def test_c6_entry_links_have_rel_and_type(tmp_path: Path) -> None:
    atom = render_feeds(site_of(tmp_path, rich_posts()))["atom.xml"]
    links = xml(atom).findall("a:entry/a:link", NS)

    assert len(links) == 3
    for link in links:
        assert link.get("rel") == "alternate"
        assert link.get("type") == "text/html"
    assert all(e.link.startswith(BASE) for e in parse(atom).entries)


def test_c5_feed_author_and_language(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts(), site={"language": "en-US"}))

    atom = xml(files["atom.xml"])
    assert atom.get("{http://www.w3.org/XML/1998/namespace}lang") == "en-US"
    assert atom.findtext("a:author/a:name", namespaces=NS) == "편집부"
    assert atom.findtext("a:author/a:email", namespaces=NS) == "editor@blog.example.com"
    channel = xml(files["feed.xml"]).find("channel")
    assert channel.findtext("language") == "en-US"
    assert channel.findtext("managingEditor") == "editor@blog.example.com (편집부)"


def test_c5_feed_author_without_email(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts(), site={"author_email": ""}))

    atom = xml(files["atom.xml"])
    assert atom.findtext("a:author/a:name", namespaces=NS) == "편집부"
    assert atom.find("a:author/a:email", NS) is None
    assert xml(files["feed.xml"]).find("channel/managingEditor") is None
    parse(files["feed.xml"])


def test_c5_post_author_overrides_the_site_author(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts()))

    atom_authors = {
        e.findtext("a:title", namespaces=NS): e.findtext("a:author/a:name", namespaces=NS)
        for e in xml(files["atom.xml"]).findall("a:entry", NS)
    }
    assert atom_authors == {"3일의 글": "편집부", "2일의 글": "김기자", "1일의 글": "편집부"}
    items = xml(files["feed.xml"]).findall("channel/item")
    # RSS <author> must be an email address; dc:creator carries the name, never both (W3C).
    assert [i.findtext("dc:creator", namespaces=NS) for i in items] == [
        "편집부",
        "김기자",
        "편집부",
    ]
    assert all(i.find("author") is None for i in items)


def test_autodiscovery_titles(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts()))

    assert parse(files["atom.xml"]).feed.title == "테스트 블로그"
    assert parse(files["feed.xml"]).feed.title == "테스트 블로그"
    assert parse(files[f"{WORLD}atom.xml"]).feed.title == "테스트 블로그 – 세계"
    assert parse(files[f"{ECONOMY}feed.xml"]).feed.title == "테스트 블로그 – 경제"


def test_rss_channel_description_falls_back_to_the_title(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts(), site={"description": ""}))

    assert xml(files["feed.xml"]).findtext("channel/description") == "테스트 블로그"
    assert xml(files[f"{WORLD}feed.xml"]).findtext("channel/description") == "테스트 블로그 – 세계"


# --- order, size and time ---------------------------------------------------------------------


def test_c7_entries_newest_first(tmp_path: Path) -> None:
    posts = [dated(d) for d in (5, 1, 9, 3, 7)]  # not in date order
    files = render_feeds(site_of(tmp_path, posts))
    expected = [permalink(dated(d)) for d in (9, 7, 5, 3, 1)]

    for name in ("atom.xml", "feed.xml", f"{WORLD}atom.xml", f"{WORLD}feed.xml"):
        assert entry_ids(files[name]) == expected, name


def test_c11_entries_capped_at_max_items(tmp_path: Path) -> None:
    posts = [dated(d) for d in range(1, 8)]
    files = render_feeds(site_of(tmp_path, posts, feeds={"max_items": 3}))
    expected = [permalink(dated(d)) for d in (7, 6, 5)]

    for name in ("atom.xml", "feed.xml", f"{WORLD}atom.xml", f"{WORLD}feed.xml"):
        assert entry_ids(files[name]) == expected, name


def test_c11_zero_posts_give_valid_empty_feeds(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, [dated(2, draft=True)]))

    assert set(files) == SITE_FILES  # no public category, so no category feed
    for data in files.values():
        assert parse(data).entries == []
    atom_updated = xml(files["atom.xml"]).findtext("a:updated", namespaces=NS)
    assert datetime.fromisoformat(atom_updated) == EMPTY_FEED_UPDATED
    last_build = xml(files["feed.xml"]).findtext("channel/lastBuildDate")
    assert parsedate_to_datetime(last_build) == EMPTY_FEED_UPDATED
    # After 1990: the W3C validator calls earlier dates ImplausibleDate.
    assert datetime(1990, 1, 1, tzinfo=UTC) < EMPTY_FEED_UPDATED < datetime(2025, 1, 1, tzinfo=UTC)


def test_c9_pubdate_is_rfc822_and_matches_the_post(tmp_path: Path) -> None:
    posts = rich_posts()
    by_link = {permalink(p): p for p in posts}
    rss = render_feeds(site_of(tmp_path, posts))["feed.xml"]

    items = xml(rss).findall("channel/item")
    assert len(items) == 3
    for item in items:
        post = by_link[item.findtext("link")]
        assert parsedate_to_datetime(item.findtext("pubDate")) == post.date


def test_c8_entry_times_come_from_the_posts(tmp_path: Path) -> None:
    posts = rich_posts()
    by_link = {permalink(p): p for p in posts}
    atom = render_feeds(site_of(tmp_path, posts))["atom.xml"]

    for entry in xml(atom).findall("a:entry", NS):
        post = by_link[entry.findtext("a:id", namespaces=NS)]
        published = datetime.fromisoformat(entry.findtext("a:published", namespaces=NS))
        updated = datetime.fromisoformat(entry.findtext("a:updated", namespaces=NS))
        assert published == post.date
        assert updated == (post.updated or post.date)


def test_c8_feed_updated_is_the_latest_entry_update(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts()))
    latest = datetime(2025, 6, 10, tzinfo=SEOUL)  # the 2nd's update, later than every date

    atom_updated = xml(files["atom.xml"]).findtext("a:updated", namespaces=NS)
    assert datetime.fromisoformat(atom_updated) == latest
    last_build = xml(files["feed.xml"]).findtext("channel/lastBuildDate")
    assert parsedate_to_datetime(last_build) == latest
    world_updated = xml(files[f"{WORLD}atom.xml"]).findtext("a:updated", namespaces=NS)
    assert datetime.fromisoformat(world_updated) == datetime(2025, 6, 3, 9, tzinfo=SEOUL)


def test_c8_renders_are_byte_identical(tmp_path: Path) -> None:
    first = render_feeds(site_of(tmp_path, rich_posts()))
    again = render_feeds(site_of(tmp_path, rich_posts()))
    a_month_later = render_feeds(
        site_of(tmp_path, rich_posts(), now=datetime(2025, 8, 1, tzinfo=UTC))
    )

    assert first == again == a_month_later  # no now(), no feedgen version in the bytes


# --- content ------------------------------------------------------------------------------------


def test_c12_atom_text_is_escaped_html_never_cdata(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts()))

    atom = xml(files["atom.xml"])
    for element in atom.findall("a:entry/a:content", NS) + atom.findall("a:entry/a:summary", NS):
        assert element.get("type") == "html"
    assert all(b"<![CDATA[" not in data for data in files.values())
    assert parse(files["atom.xml"]).entries[0].content[0].type == "text/html"


def test_c10_script_in_the_title_stays_text(tmp_path: Path) -> None:
    title = "<script>alert(1)</script> & 제목"
    files = render_feeds(site_of(tmp_path, [dated(1, title=title, summary="<b>요약</b>")]))

    for name in ("atom.xml", "feed.xml"):
        data = files[name]
        assert b"<script" not in data
        entry = parse(data).entries[0]
        assert entry.title == title
        assert entry.title_detail.type == "text/plain"
    # The plain-text summary is escaped as HTML, so readers show it rather than render it.
    atom_summary = xml(files["atom.xml"]).findtext("a:entry/a:summary", namespaces=NS)
    assert atom_summary == "&lt;b&gt;요약&lt;/b&gt;"
    assert xml(files["feed.xml"]).findtext("channel/item/description") == atom_summary


def test_c12_korean_emoji_and_cdata_end_survive(tmp_path: Path) -> None:
    body = "<p>한글 본문 😀 a ]]> b &amp; c</p>"
    post = dated(1, title="한글 제목 🎉", body_html=body, tags=("태그 😀",))
    files = render_feeds(site_of(tmp_path, [post]))

    atom_entry = parse(files["atom.xml"]).entries[0]
    assert atom_entry.title == "한글 제목 🎉"
    assert atom_entry.content[0].value == body
    assert [t.term for t in atom_entry.tags] == ["세계", "태그 😀"]
    raw_content = xml(files["atom.xml"]).findtext("a:entry/a:content", namespaces=NS)
    assert raw_content == body  # escaped once by lxml, given back exactly
    rss_item = xml(files["feed.xml"]).find("channel/item")
    assert rss_item.findtext("content:encoded", namespaces=NS) == body
    assert parse(files["feed.xml"]).entries[0].title == "한글 제목 🎉"


def test_full_content_carries_body_and_summary(tmp_path: Path) -> None:
    post = dated(1, body_html="<p>전체 본문</p>", summary="짧은 요약")
    files = render_feeds(site_of(tmp_path, [post], feeds={"full_content": True}))

    atom_entry = parse(files["atom.xml"]).entries[0]
    assert atom_entry.content[0].value == "<p>전체 본문</p>"
    assert atom_entry.summary == "짧은 요약"
    item = xml(files["feed.xml"]).find("channel/item")
    assert item.findtext("description") == "짧은 요약"
    assert item.findtext("content:encoded", namespaces=NS) == "<p>전체 본문</p>"


def test_summary_only_leaves_the_body_out(tmp_path: Path) -> None:
    post = dated(1, body_html="<p>전체 본문</p>", summary="짧은 요약")
    files = render_feeds(site_of(tmp_path, [post], feeds={"full_content": False}))

    atom_entry = parse(files["atom.xml"]).entries[0]
    assert "content" not in atom_entry
    assert atom_entry.summary == "짧은 요약"
    assert all("전체 본문".encode() not in data for data in files.values())
    item = xml(files["feed.xml"]).find("channel/item")
    assert item.findtext("description") == "짧은 요약"
    assert item.find("content:encoded", NS) is None


def test_empty_summary_is_left_out(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, [dated(1, summary="")]))

    assert xml(files["atom.xml"]).find("a:entry/a:summary", NS) is None
    for data in files.values():
        parse(data)


@pytest.mark.parametrize("name", ["atom.xml", "feed.xml"])
def test_c2_control_characters_are_stripped(tmp_path: Path, name: str) -> None:
    body = "<p>앞\x00\x08\x0b\x0c\x1f\ufffe\uffff뒤\t탭</p>"
    data = render_feeds(site_of(tmp_path, [dated(1, body_html=body, summary="요\x0b약")]))[name]

    entry = parse(data).entries[0]
    assert entry.content[0].value == "<p>앞뒤\t탭</p>"
    assert entry.summary == "요약"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=st.text().filter(lambda t: xml_text(t).strip()), summary=st.text(), body=st.text())
def test_c2_c12_any_text_gives_well_formed_feeds(title: str, summary: str, body: str) -> None:
    site = build_site(
        make_config("."), [dated(1, title=title, summary=summary, body_html=body)], NOW
    )

    for data in render_feeds(site).values():
        parse(data)


# --- categories, visibility ---------------------------------------------------------------------


def test_categories_and_tags_become_feed_categories(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts()))

    atom_entry = xml(files["atom.xml"]).find("a:entry", NS)
    categories = [(c.get("term"), c.get("scheme")) for c in atom_entry.findall("a:category", NS)]
    assert categories == [
        ("세계", f"{BASE}category/"),
        ("반도체", f"{BASE}tag/"),
        ("미중 관계", f"{BASE}tag/"),
    ]
    rss_item = xml(files["feed.xml"]).find("channel/item")
    assert [c.text for c in rss_item.findall("category")] == ["세계", "반도체", "미중 관계"]


def test_category_feeds_contain_only_their_category(tmp_path: Path) -> None:
    posts = [*rich_posts(), dated(5, category="경제"), dated(6, category=None)]
    files = render_feeds(site_of(tmp_path, posts))
    world = [permalink(dated(d)) for d in (3, 1)]
    economy = [permalink(dated(d)) for d in (5, 2)]

    assert entry_ids(files[f"{WORLD}atom.xml"]) == entry_ids(files[f"{WORLD}feed.xml"]) == world
    assert entry_ids(files[f"{ECONOMY}atom.xml"]) == economy
    assert entry_ids(files[f"{ECONOMY}feed.xml"]) == economy
    assert len(entry_ids(files["atom.xml"])) == 5  # the uncategorised post is in the site feed


def test_per_category_off_gives_only_the_site_feeds(tmp_path: Path) -> None:
    files = render_feeds(site_of(tmp_path, rich_posts(), feeds={"per_category": False}))

    assert set(files) == SITE_FILES


def test_a20_drafts_and_future_posts_are_left_out(tmp_path: Path) -> None:
    public = dated(1, category="경제")
    draft = dated(2, draft=True, category="경제")
    future = dated(3, date=datetime(2025, 7, 2, tzinfo=SEOUL), category="경제")
    files = render_feeds(site_of(tmp_path, [public, draft, future]))

    assert set(files) == SITE_FILES | {ECONOMY + "feed.xml", ECONOMY + "atom.xml"}
    for data in files.values():
        assert entry_ids(data) == [permalink(public)]
        assert draft.slug.encode() not in data and quote(future.slug).encode() not in data


# --- errors, preview --------------------------------------------------------------------------


def test_c1_naive_date_error_names_the_post(tmp_path: Path) -> None:
    site = site_of(tmp_path, [dated(1)])
    naive = dated(1, source="posts/naive.md", date=datetime(2025, 6, 1, 9, 0))
    broken = dataclasses.replace(site, posts=(naive,), categories=())

    with pytest.raises(FeedError) as caught:
        render_feeds(broken)
    assert str(caught.value) == (
        "1 feed problem:\n"
        "posts/naive.md: cannot be put in a feed: Datetime object has no timezone info"
    )


def test_c2_title_of_only_control_characters_names_the_post(tmp_path: Path) -> None:
    site = site_of(tmp_path, [dated(1, source="posts/blank.md", title="\x0b\x1f ")])

    with pytest.raises(FeedError) as caught:
        render_feeds(site)
    assert str(caught.value) == (
        "1 feed problem:\nposts/blank.md: cannot be put in a feed: "
        "the title is empty once characters XML cannot carry are removed"
    )


def test_feed_entry_xml_is_the_feed_entry(tmp_path: Path) -> None:
    posts = rich_posts()
    site = site_of(tmp_path, posts)

    preview = feed_entry_xml(site, posts[0])
    in_feed = xml(render_feeds(site)["atom.xml"]).find("a:entry", NS)
    assert preview.startswith('<entry xmlns="http://www.w3.org/2005/Atom">\n')
    assert canonical(preview.encode()) == canonical(etree.tostring(in_feed))
    assert xml(preview.encode()).find("a:link", NS).get("rel") == "alternate"


def canonical(data: bytes) -> bytes:
    """C14N without indentation. (lxml's C14N of a non-root element drops its namespace.)"""
    root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True))
    result: bytes = etree.tostring(root, method="c14n")
    return result


# --- library traps (L8): these fail when a feedgen upgrade changes the behaviour we work around ---


def _bare_feedgen() -> Any:
    generator = FeedGenerator()
    generator.id(BASE)
    generator.title("t")
    generator.link(href=BASE, rel="alternate")
    return generator


def test_l8_feedgen_is_the_pinned_version() -> None:
    assert feedgen.version.version_str == "1.0.0"


def test_l8_feedgen_drops_entry_link_attributes() -> None:
    generator = _bare_feedgen()
    entry = generator.add_entry()
    entry.id(BASE + "p/")
    entry.title("p")
    entry.link(href=BASE + "p/", rel="alternate", type="text/html")

    link = xml(generator.atom_str()).find("a:entry/a:link", NS)
    assert link.get("rel") is None and link.get("type") is None  # feedgen #135


def test_l8_feedgen_add_entry_prepends_by_default() -> None:
    generator = _bare_feedgen()
    for name in ("first", "second"):
        entry = generator.add_entry()
        entry.id(BASE + name)
        entry.title(name)
        entry.content("x")

    titles = [
        e.findtext("a:title", namespaces=NS)
        for e in xml(generator.atom_str()).iter("{http://www.w3.org/2005/Atom}entry")
    ]
    assert titles == ["second", "first"]


# --- entry ids across a rename (issue 8 item 1, issue 11) ------------------------------------------


def _ids(files: dict[str, bytes]) -> tuple[list[str], list[tuple[str | None, str | None]]]:
    atom = xml(files["atom.xml"])
    ids = [e.findtext("a:id", namespaces=NS) or "" for e in atom.findall("a:entry", NS)]
    guids = [(g.text, g.get("isPermaLink")) for g in xml(files["feed.xml"]).iter("guid")]
    return ids, guids


def test_a_post_with_an_id_keeps_its_entry_id_when_its_slug_changes(tmp_path: Path) -> None:
    uid = "7f3c2a9e-1b4d-4c8e-9a6f-2d5e8b1c0a47"
    before = render_feeds(site_of(tmp_path, [dated(1, id=uid)]))
    after = render_feeds(site_of(tmp_path, [dated(1, id=uid, slug="새-주소", title="새 제목")]))
    assert _ids(before) == _ids(after) == ([f"urn:uuid:{uid}"], [(f"urn:uuid:{uid}", "false")])
    assert f"{BASE}posts/{quote('새-주소')}/" in urls_in(after["atom.xml"])  # link follows


@pytest.mark.parametrize(
    "post_id, expected",
    [
        ("https://old.example.com/p/42", "https://old.example.com/p/42"),  # moving in
        ("tag:old.example.com,2019:42", "tag:old.example.com,2019:42"),
        ("hand-made-1", "urn:uuid:"),  # name-based: the same id always gives the same URN
    ],
)
def test_uri_ids_are_kept_and_other_ids_become_urns(
    tmp_path: Path, post_id: str, expected: str
) -> None:
    ids, guids = _ids(render_feeds(site_of(tmp_path, [dated(1, id=post_id)])))
    assert ids[0].startswith(expected) and guids == [(ids[0], "false")]
    again, _ = _ids(render_feeds(site_of(tmp_path, [dated(1, id=post_id, slug="moved")])))
    assert again == ids


def test_posts_without_an_id_keep_their_permalink_as_entry_id(tmp_path: Path) -> None:
    post = dated(1)
    ids, guids = _ids(render_feeds(site_of(tmp_path, [post])))
    assert ids == [permalink(post)] and guids == [(permalink(post), "true")]
