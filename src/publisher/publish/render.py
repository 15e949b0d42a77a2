"""Render the blog: every HTML page, the sitemap, robots.txt and static files.

Input is a ``Site``; output goes into an ``OutputTree``. Templates receive
precomputed data only (URLs, related lists, pages, JSON-LD), never raw config
dicts, so what a page shows is decided and tested in Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from publisher.publish import markup
from publisher.publish.content import Post
from publisher.publish.redirects import redirect_maps, redirects
from publisher.publish.site import (
    Page,
    Site,
    Taxonomy,
    paginate,
    post_path,
)
from publisher.publish.templating import make_environment, render
from publisher.publish.writer import OutputTree


@dataclass(frozen=True)
class FeedLink:
    title: str
    type: str
    path: str  # site-relative; pages link it relatively, the feed itself is absolute


HIGHLIGHTED = '<pre class="highlight">'  # what publisher.publish.markup writes for fenced code


def relative_url(target: str, page: str) -> str:
    """The link from the page at site-relative ``page`` to site-relative ``target``.

    Relative, so ``public/`` works opened from disk and served from any host or
    sub-path (issue 8, item 16). A folder (``posts/x/``, or ``""`` for the home
    page) is linked as its ``index.html``: from ``file://`` a browser shows a
    folder as a listing, never its index page. Hangul is percent-encoded as in
    ``Site.url``.
    """
    depth = page.count("/")  # "posts/x/" and "posts/x/index.html" are both two deep
    if target == "" or target.endswith("/"):
        target += "index.html"
    return "../" * depth + quote(target, safe="/#?=&")


@dataclass(frozen=True)
class MonthGroup:
    label: str
    posts: tuple[Post, ...]


@dataclass(frozen=True)
class Signup:
    action: str
    categories: tuple[str, ...]
    archive: str  # the public archive of sent issues


class PageRenderer:
    """Renders pages of one site with one Jinja environment."""

    def __init__(self, site: Site, env: jinja2.Environment | None = None) -> None:
        self.site = site
        self.env = env or make_environment(site.config)
        config = site.config
        self.signup = (
            Signup(
                config.web_base_url + "subscribe",
                tuple(c.name for c in site.categories),
                config.web_base_url + "archive/",
            )
            if config.web.signup_form and config.newsletter.enabled
            else None
        )
        self.site_feeds = (
            FeedLink(f"{config.site.title} (RSS)", "application/rss+xml", "feed.xml"),
            FeedLink(f"{config.site.title} (Atom)", "application/atom+xml", "atom.xml"),
        )

    def globals(
        self, path: str, *, absolute: bool = False, section: str | None = None
    ) -> dict[str, Any]:
        """Link helpers for the page at ``path``: relative links, or absolute ones for a
        page served at any address (404.html), where a relative link would not resolve."""
        site = self.site

        def url(target: str) -> str:
            return site.url(target) if absolute else relative_url(target, path)

        return {
            "site": site,
            "url": url,
            "post_url": lambda post: url(post_path(post)),
            "category_url": lambda name: url(site.category_path(name)),
            "tag_url": lambda name: url(site.tag_path(name)),
            "signup": self.signup,
            "nav_current": lambda target: nav_current(target, path, section),
        }

    def page(
        self,
        template: str,
        path: str,
        *,
        absolute: bool = False,
        section: str | None = None,
        **context: Any,
    ) -> str:
        feeds = context.pop("feeds", self.site_feeds)
        context.setdefault("lang", self.site.config.site.language)
        # Only a page with highlighted code loads the code stylesheet (issue 8, item 20).
        context.setdefault("has_code", False)
        return render(
            self.env,
            template,
            **self.globals(path, absolute=absolute, section=section),
            canonical=self.site.url(path),
            feeds=feeds,
            **context,
        )

    def category_feeds(self, name: str) -> tuple[FeedLink, ...]:
        if not self.site.config.feeds.per_category:
            return self.site_feeds
        base = self.site.category_path(name)
        title = f"{self.site.config.site.title} – {name}"
        return (
            *self.site_feeds,
            FeedLink(f"{title} (RSS)", "application/rss+xml", base + "feed.xml"),
            FeedLink(f"{title} (Atom)", "application/atom+xml", base + "atom.xml"),
        )

    def post(self, post: Post) -> str:
        path = post_path(post)
        feeds = self.category_feeds(post.category) if post.category else self.site_feeds
        return self.page(
            "post.html",
            path,
            post=post,
            related=self.site.related.get(post.slug),
            image_url=self.site.url(post.image)
            if post.image and "://" not in post.image
            else post.image,
            json_ld=json_ld(self.site, post),
            feeds=feeds,
            section=self.site.category_path(post.category) if post.category else None,
            lang=post.language or self.site.config.site.language,
            has_code=HIGHLIGHTED in post.body_html,
        )


def nav_current(target: str, page: str, section: str | None) -> str | None:
    """``aria-current`` for the menu link to ``target`` on the page at ``page``.

    "page" on the section's own pages (``category/x/`` and its ``page/N/``; the
    archive; ``""``, the home page, and its ``page/N/``), "true" on a post of that
    category (WAI-ARIA: the current item of a set), else None.
    """
    if page == target or page.startswith(target + "page/"):
        return "page"
    if section is not None and section == target:
        return "true"
    return None


def json_ld(site: Site, post: Post) -> dict[str, Any]:
    """schema.org BlogPosting for search engines."""
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "BlogPosting",
        "headline": post.title,
        "description": post.summary,
        "datePublished": post.date.isoformat(),
        "dateModified": (post.updated or post.date).isoformat(),
        "author": {"@type": "Person", "name": post.author or site.config.site.author},
        "publisher": {"@type": "Organization", "name": site.config.site.title},
        "mainEntityOfPage": site.url(post_path(post)),
        "url": site.url(post_path(post)),
        "inLanguage": post.language or site.config.site.language,
    }
    if post.category:
        data["articleSection"] = post.category
    if post.tags:
        data["keywords"] = list(post.tags)
    if post.image:
        data["image"] = post.image if "://" in post.image else site.url(post.image)
    return data


def render_pages(
    site: Site, tree: OutputTree, progress: Callable[[int], None] | None = None
) -> None:
    """Add every HTML page, sitemap, robots.txt and static file to ``tree``."""
    renderer = PageRenderer(site)
    for count, post in enumerate(site.posts, start=1):
        tree.add(post_path(post) + "index.html", renderer.post(post), owner=post.source)
        if progress and count % 500 == 0:
            progress(count)
    _list_pages(renderer, tree, "index.html", "", site.posts, heading="최근 글")
    for taxonomy in site.categories:
        _taxonomy_pages(
            renderer, tree, taxonomy, heading=f"카테고리: {taxonomy.name}", is_category=True
        )
    for taxonomy in site.tags:
        _taxonomy_pages(
            renderer, tree, taxonomy, heading=f"태그: #{taxonomy.name}", is_category=False
        )
    tree.add("archive/index.html", renderer.page("archive.html", "archive/", months=months(site)))
    # A server answers any missing address with 404.html: only absolute links resolve there.
    tree.add("404.html", renderer.page("404.html", "404.html", absolute=True))
    tree.add("sitemap.xml", render(renderer.env, "sitemap.xml", entries=sitemap_entries(site)))
    tree.add("robots.txt", render(renderer.env, "robots.txt", url=site.url))
    _redirect_pages(renderer, tree)
    _static_files(renderer.env, tree)


def _redirect_pages(renderer: PageRenderer, tree: OutputTree) -> None:
    """A page at every post alias pointing at the post, and the server redirect maps."""
    site = renderer.site
    rules = redirects(site)
    by_source = {post.source: post for post in site.posts}
    for rule in rules:
        html = render(
            renderer.env,
            "redirect.html",
            site=site,
            post=by_source[rule.source],
            target=site.url(rule.target),
        )
        tree.add(rule.page_path, html, owner=f"{rule.source} (alias /{rule.alias})")
    for path, text in redirect_maps(site, rules).items():
        tree.add(path, text, owner="redirect maps")


def _list_pages(
    renderer: PageRenderer,
    tree: OutputTree,
    template: str,
    base: str,
    posts: tuple[Post, ...],
    heading: str,
    feeds: tuple[FeedLink, ...] | None = None,
) -> None:
    for page in paginate(posts, renderer.site.config.site.posts_per_page, base):
        extra: dict[str, Any] = {"feeds": feeds} if feeds else {}
        html = renderer.page(template, page.path, page=page, heading=heading, **extra)
        tree.add(page.path + "index.html", html)


def _taxonomy_pages(
    renderer: PageRenderer, tree: OutputTree, taxonomy: Taxonomy, heading: str, is_category: bool
) -> None:
    feeds = renderer.category_feeds(taxonomy.name) if is_category else None
    _list_pages(renderer, tree, "taxonomy.html", taxonomy.path, taxonomy.posts, heading, feeds)


def months(site: Site) -> list[MonthGroup]:
    """Posts grouped by month in the site's timezone, newest first."""
    zone = site.config.site.timezone
    groups: dict[str, list[Post]] = {}
    for post in site.posts:
        local = post.date.astimezone(zone)
        groups.setdefault(f"{local.year}년 {local.month}월", []).append(post)
    return [MonthGroup(label, tuple(posts)) for label, posts in groups.items()]


@dataclass(frozen=True)
class SitemapEntry:
    loc: str
    lastmod: str | None


def sitemap_entries(site: Site) -> list[SitemapEntry]:
    """Home, every post (lastmod from the post, never from now) and every taxonomy page."""
    newest = site.posts[0].updated or site.posts[0].date if site.posts else None
    entries = [SitemapEntry(site.url(""), newest.isoformat() if newest else None)]
    for post in site.posts:
        entries.append(
            SitemapEntry(site.url(post_path(post)), (post.updated or post.date).isoformat())
        )
    for taxonomy in (*site.categories, *site.tags):
        entries.append(SitemapEntry(site.url(taxonomy.path), None))
    return entries


def _static_files(env: jinja2.Environment, tree: OutputTree) -> None:
    """Copy ``static/`` from the template folders (site first) and add the code stylesheet."""
    for relative, data in static_files(env).items():
        tree.add(f"static/{relative}", data)


def static_files(env: jinja2.Environment) -> dict[str, bytes]:
    """Every file of ``static/`` by its path, the site's theme before the default one, plus
    the generated code stylesheet: what the build copies and what a preview inlines."""
    loader = env.loader
    assert isinstance(loader, jinja2.FileSystemLoader)
    found: dict[str, bytes] = {}
    for folder in loader.searchpath:
        static = Path(folder) / "static"
        if not static.is_dir():
            continue
        for path in sorted(static.rglob("*")):
            relative = path.relative_to(static).as_posix()
            if path.is_file() and not path.is_symlink() and relative not in found:
                found[relative] = path.read_bytes()
    found.setdefault("pygments.css", markup.pygments_css().encode("utf-8"))
    return found


_STYLESHEET = re.compile(r'<link rel="stylesheet" href="(?:\.\./)*static/([\w./-]+\.css)">')


def inline_stylesheets(page_html: str, env: jinja2.Environment) -> str:
    """The page with its theme stylesheets inlined, for a preview shown where its relative
    links lead nowhere (an ``srcdoc`` frame): no network, the same CSS as the built site."""
    files = static_files(env)

    def inline(match: re.Match[str]) -> str:
        css = files.get(match[1])
        if css is None:
            return match[0]
        text = css.decode("utf-8", "replace").replace("</", "<\\/")  # cannot end the element
        return f"<style>{text}</style>"

    return _STYLESHEET.sub(inline, page_html)


__all__ = ["Page", "PageRenderer", "inline_stylesheets", "render_pages", "static_files"]
