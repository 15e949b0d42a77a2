"""Index posts into a ``Site``: what is public, in what order, under which URL.

Pure: no I/O, no clock of its own (``now`` is passed in). Everything templates
show that needs computing (sort order, categories, tags, pagination, each
post's related-category list, URLs) is computed here once and tested in Python.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from publisher.config import Config
from publisher.publish.content import Post
from publisher.publish.slugs import slug_key, slugify, unique_slugs


@dataclass(frozen=True)
class RelatedItem:
    """One line of a related-category list: title, date, link, and whether it is this post."""

    title: str
    date: datetime
    url: str
    current: bool


@dataclass(frozen=True)
class RelatedList:
    """The "'세계' 카테고리의 다른 글" block under a post, newest first."""

    heading: str
    category: str
    category_url: str
    items: tuple[RelatedItem, ...]


@dataclass(frozen=True)
class Taxonomy:
    """A category or a tag with its public posts, newest first."""

    name: str  # the spelling most posts use, when they differ in case ("AI", "ai")
    slug: str
    path: str  # site-relative, e.g. "category/세계/"
    posts: tuple[Post, ...]
    key: str = ""  # the NFC, case-folded name every spelling of it shares


@dataclass(frozen=True)
class Page:
    """One page of a paginated list."""

    number: int
    total: int
    posts: tuple[Post, ...]
    path: str
    previous_path: str | None
    next_path: str | None


@dataclass(frozen=True)
class Site:
    """The public site at one moment: the single input of every renderer."""

    config: Config
    now: datetime
    posts: tuple[Post, ...]  # public posts, newest first
    categories: tuple[Taxonomy, ...]
    tags: tuple[Taxonomy, ...]
    related: Mapping[str, RelatedList]  # by post slug
    hidden: tuple[Post, ...]  # drafts and scheduled posts, not published
    next_due: Post | None  # the next scheduled post, if any

    def url(self, path: str) -> str:
        """Absolute URL of a site-relative path (Hangul percent-encoded)."""
        return self.config.site.base_url + quote(path, safe="/#?=&")

    def category(self, name: str) -> Taxonomy | None:
        """The category ``name`` belongs to, in any spelling of it (``AI`` is ``ai``)."""
        return _find(self.categories, name)

    def category_path(self, name: str) -> str:
        """Site-relative folder of category ``name``'s pages: ``category/세계/``."""
        return _path_of(self.categories, "category", name)

    def tag_path(self, name: str) -> str:
        """Site-relative folder of tag ``name``'s pages: ``tag/ai/``."""
        return _path_of(self.tags, "tag", name)


def _find(taxonomies: Iterable[Taxonomy], name: str) -> Taxonomy | None:
    key = slug_key(name)
    return next((t for t in taxonomies if t.key == key), None)


def _path_of(taxonomies: Iterable[Taxonomy], kind: str, name: str) -> str:
    # A name no public post has (a hidden post's, in a template) still gets a plain path.
    taxonomy = _find(taxonomies, name)
    return taxonomy.path if taxonomy else f"{kind}/{slugify(name) or kind}/"


def post_path(post: Post) -> str:
    return f"posts/{post.slug}/"


def sort_key(post: Post) -> tuple[float, str]:
    """Newest first; the slug breaks ties so the order never depends on file order."""
    return (-post.date.timestamp(), post.slug)


def build_site(
    config: Config, posts: Iterable[Post], now: datetime, *, include_drafts: bool = False
) -> Site:
    """Index ``posts`` as the public site at ``now``.

    Drafts and future posts are hidden (A20) unless ``include_drafts`` (preview).
    """
    ordered = sorted(posts, key=sort_key)
    public_flags = [include_drafts or p.is_published(now) for p in ordered]
    public = tuple(p for p, shown in zip(ordered, public_flags, strict=True) if shown)
    hidden = tuple(p for p, shown in zip(ordered, public_flags, strict=True) if not shown)
    scheduled = [p for p in hidden if not p.draft and p.date > now]
    categories = _group(public, lambda p: [p.category] if p.category else [], "category")
    tags = _group(public, lambda p: list(p.tags), "tag")
    return Site(
        config=config,
        now=now,
        posts=public,
        categories=categories,
        tags=tags,
        related=related_lists(config, categories),
        hidden=hidden,
        next_due=min(scheduled, key=lambda p: (p.date, p.slug)) if scheduled else None,
    )


def _group(
    posts: Sequence[Post], names_of: Callable[[Post], list[str]], kind: str
) -> tuple[Taxonomy, ...]:
    """One taxonomy per name, names equal after NFC and case folding being one (item 14).

    The name shown is the most used spelling (ties: the first in code-point order), NFC;
    names that still share a slug (``C``, ``C++``, ``C#``) get distinct ones.
    """
    groups: dict[str, list[Post]] = {}
    spellings: dict[str, Counter[str]] = {}
    for post in posts:
        for name in dict.fromkeys(names_of(post)):
            key = slug_key(name)
            spellings.setdefault(key, Counter())[name] += 1
            members = groups.setdefault(key, [])
            if not members or members[-1] is not post:  # "AI" and "ai" on one post
                members.append(post)
    shown = {key: _most_used(counts) for key, counts in spellings.items()}
    slugs = unique_slugs(sorted(shown.values()), fallback=kind)
    taxonomies = [
        Taxonomy(
            name,
            slugs[name],
            f"{kind}/{slugs[name]}/",
            tuple(groups[key]),
            key,
        )
        for key, name in shown.items()
    ]
    return tuple(sorted(taxonomies, key=lambda t: (t.slug, t.name)))


def _most_used(spellings: Counter[str]) -> str:
    """The most used spelling, in NFC; a tie goes to the first in code-point order."""
    name = min(spellings.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return unicodedata.normalize("NFC", name)


def related_lists(config: Config, categories: Iterable[Taxonomy]) -> dict[str, RelatedList]:
    """Every post's related-category list, computed once per category: O(posts x N)."""
    count = config.site.related_count
    result: dict[str, RelatedList] = {}
    if count == 0:
        return result
    for taxonomy in categories:
        heading = config.site.related_heading.format(category=taxonomy.name)
        members = taxonomy.posts
        if len(members) < 2:
            continue
        for index, post in enumerate(members):
            window = nearest_window(members, index, count)
            items = tuple(
                RelatedItem(p.title, p.date, post_path(p), current=(p is post)) for p in window
            )
            result[post.slug] = RelatedList(heading, taxonomy.name, taxonomy.path, items)
    return result


def nearest_window(members: Sequence[Post], index: int, count: int) -> Sequence[Post]:
    """The post at ``index`` and up to ``count`` others nearest to it in time.

    ``members`` is newest first. Walk outwards, taking the neighbour closer in
    time (the newer on a tie), so the list reads like Tistory's: the current post
    among its neighbours, in date order.
    """
    centre = members[index].date
    newer, older = index - 1, index + 1
    for _ in range(min(count, len(members) - 1)):
        take_newer = newer >= 0 and (
            older >= len(members)
            or (members[newer].date - centre) <= (centre - members[older].date)
        )
        if take_newer:
            newer -= 1
        else:
            older += 1
    return members[newer + 1 : older]


def paginate(posts: Sequence[Post], per_page: int, base_path: str) -> list[Page]:
    """Split ``posts`` into pages: page 1 at ``base_path``, then ``base_path/page/N/``."""
    chunks = [tuple(posts[i : i + per_page]) for i in range(0, len(posts), per_page)] or [()]
    total = len(chunks)

    def path(number: int) -> str:
        return base_path if number == 1 else f"{base_path}page/{number}/"

    return [
        Page(
            number=n,
            total=total,
            posts=chunk,
            path=path(n),
            previous_path=path(n - 1) if n > 1 else None,
            next_path=path(n + 1) if n < total else None,
        )
        for n, chunk in enumerate(chunks, start=1)
    ]
