"""Decide what an import writes, check it with the strict post reader, then write it.

``plan_import`` reads nothing but the site's posts and the export's images; it
matches each imported post to an earlier import by its ``source`` id, picks a free
slug for new ones, renders every file and runs ``content.read_post`` on it in a
scratch folder. Any problem anywhere means nothing is written (``Plan.problems``).
``apply`` writes each file atomically (temp file + rename) and copies the images.
"""

from __future__ import annotations

import os
import tempfile
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote, urlsplit

from publisher.config import Config
from publisher.errors import Location, Problem
from publisher.publish.content import Post, read_post, read_posts
from publisher.publish.importers import (
    Asset,
    ImportedPost,
    Options,
    Parsed,
    digest,
    map_names,
    post_text,
)
from publisher.publish.redirects import Redirect
from publisher.publish.slugs import slug_key

_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


@dataclass(frozen=True)
class Write:
    """One post file to write: ``action`` is "new" or "updated"."""

    post: ImportedPost
    relative: str  # "posts/2025-06-20-미중-기술-격차.md"
    text: str
    action: str


@dataclass(frozen=True)
class Plan:
    writes: tuple[Write, ...]
    unchanged: tuple[tuple[ImportedPost, str], ...]
    skipped: tuple[str, ...]
    problems: tuple[Problem, ...]

    @property
    def assets(self) -> tuple[Asset, ...]:
        seen: dict[str, Asset] = {}
        for write in self.writes:
            for asset in write.post.assets:
                seen.setdefault(asset.target, asset)
        return tuple(seen[k] for k in sorted(seen))


def plan_import(config: Config, parsed: Parsed, options: Options) -> Plan:
    """Everything the import would do; nothing is written here."""
    existing = read_posts(config).posts
    by_source = {str(p.extra["source"]): p for p in existing if "source" in p.extra}
    taken = {slug_key(p.slug) for p in existing}
    skipped = list(parsed.skipped)
    writes: list[Write] = []
    unchanged: list[tuple[ImportedPost, str]] = []
    chosen = sorted(parsed.posts, key=lambda p: (p.date, p.source))
    first_at: dict[str, str] = {}
    problems = list(parsed.problems)
    for post in chosen:
        if post.source in first_at:
            problems.append(
                Problem(
                    Location(post.item),
                    f"'{post.title}' has the id {post.source_id!r} of {first_at[post.source]} "
                    "too; an export lists each post once",
                )
            )
            continue
        first_at[post.source] = post.item
        if options.since is not None and post.date < options.since:
            skipped.append(f"{post.item}: '{post.title}' is older than --since")
            continue
        post = _without_reserved_aliases(map_names(post, options.category_map), skipped)
        before = by_source.get(post.source)
        if before is not None and before.extra.get("source_digest") == digest(post):
            unchanged.append((post, before.source))
            continue
        writes.append(_write_for(config, post, before, taken))
    problems.extend(_check(config, writes, existing))
    return Plan(tuple(writes), tuple(unchanged), tuple(skipped), tuple(problems))


def _write_for(config: Config, post: ImportedPost, before: Post | None, taken: set[str]) -> Write:
    if before is not None:
        # An update keeps what the site decided since: the file, its slug (perhaps renamed),
        # its aliases and its feed id.
        slug = before.slug
        kept = tuple(f"/{a}" for a in before.aliases)
        aliases = tuple(dict.fromkeys((*kept, *_clean_aliases(post, slug))))
        # Post.id once the 'id' field is known to the reader; extra["id"] before that.
        feed_id = str(getattr(before, "id", None) or before.extra.get("id") or _feed_id(post))
        text = post_text(post, slug=slug, aliases=aliases, feed_id=feed_id)
        return Write(post, before.source, text, "updated")
    slug = _free_slug(config, post, taken)
    relative = f"{config.build.posts_dir}/{post.date:%Y-%m-%d}-{slug}.md"
    text = post_text(post, slug=slug, aliases=_clean_aliases(post, slug), feed_id=_feed_id(post))
    return Write(post, relative, text, "new")


def _free_slug(config: Config, post: ImportedPost, taken: set[str]) -> str:
    slug, number = post.slug, 1
    while (
        slug_key(slug) in taken or (config.posts_path / f"{post.date:%Y-%m-%d}-{slug}.md").exists()
    ):
        number += 1
        slug = f"{post.slug}-{number}"
    taken.add(slug_key(slug))
    return slug


# Paths the build writes itself: an old URL there cannot redirect (the new page wins).
_RESERVED_FILES = {"index.html", "404.html", "sitemap.xml", "robots.txt", "feed.xml", "atom.xml"}
_RESERVED_FOLDERS = {"archive", "category", "tag", "page", "static"}


def _without_reserved_aliases(post: ImportedPost, notes: list[str]) -> ImportedPost:
    kept = []
    for alias in post.aliases:
        parts = alias.strip("/").split("/")
        if alias.strip("/") in _RESERVED_FILES or parts[0] in _RESERVED_FOLDERS:
            notes.append(f"{post.item}: old path {alias} is a page of this site; not redirected")
        else:
            kept.append(alias)
    return replace(post, aliases=tuple(kept))


def _clean_aliases(post: ImportedPost, slug: str) -> tuple[str, ...]:
    own = f"posts/{slug}"
    return tuple(a for a in dict.fromkeys(post.aliases) if a.strip("/") != own)


_ID_LIMIT = 200  # the post reader's limit for 'id'


def _feed_id(post: ImportedPost) -> str:
    """The old feed's entry id when it can be a post id (one short word), else a URN of the
    source id: readers of the old feed then see the imported post as the entry they have."""
    old = post.feed_id or ""
    if old and len(old) <= _ID_LIMIT and not any(c.isspace() or c in '<>"{}|\\^`' for c in old):
        return old
    return f"urn:publisher-import:{post.platform}:{quote(post.source_id, safe='')}"[:_ID_LIMIT]


def _check(config: Config, writes: list[Write], existing: tuple[Post, ...]) -> list[Problem]:
    """Run the strict reader on every file in a scratch folder; locate problems by item.

    Then check what the build would write: no old path may land on another post's page
    or old path, in the import or in the site (the build would refuse it later).
    """
    problems: list[Problem] = []
    replaced = {w.relative for w in writes}
    taken: dict[str, str] = {}
    for kept in existing:
        if kept.source not in replaced:
            _occupy(taken, kept, kept.source)
    with tempfile.TemporaryDirectory(prefix="publisher-import-") as scratch:
        for index, write in enumerate(writes):
            path = Path(scratch) / str(index) / PurePosixPath(write.relative).name
            path.parent.mkdir()
            path.write_text(write.text, encoding="utf-8")
            post, found = read_post(path, write.relative, config)
            where = f"{write.post.item} ('{write.post.title}')"
            for problem in found.problems:
                line = f":{problem.location.line}" if problem.location.line else ""
                problems.append(
                    Problem(Location(where), f"{write.relative}{line}: {problem.message}")
                )
            if post is not None:
                for clash in _occupy(taken, post, where):
                    problems.append(Problem(Location(where), clash))
    return problems


def _occupy(taken: dict[str, str], post: Post, owner: str) -> list[str]:
    """Claim the post's page and its alias pages; say which ones someone else holds."""
    page = f"posts/{post.slug}/index.html"
    claims = [(page, f"its page {page}")]
    for alias in post.aliases:
        rule = Redirect(alias, f"posts/{post.slug}/", post.source)
        if alias.rstrip("/") != f"posts/{post.slug}":
            claims.append((rule.page_path, f"its old path /{alias}"))
    clashes = []
    for path, what in claims:
        key = unicodedata.normalize("NFC", path).casefold()
        if key in taken and taken[key] != owner:
            clashes.append(f"{what} is already taken by {taken[key]}; keep it on one post only")
        taken.setdefault(key, owner)
    return clashes


def apply(config: Config, plan: Plan) -> None:
    """Copy the images, then write every post file atomically."""
    for asset in plan.assets:
        target = config.templates_path / asset.target
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_bytes(target, asset.path.read_bytes())
    for write in plan.writes:
        target = config.root / write.relative
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_bytes(target, write.text.encode("utf-8"))


def _atomic_bytes(target: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".import-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class AssetFinder:
    """Maps an image ``src`` to a copy from the export folder, when the folder holds it.

    The URL's path is looked up under the export folder, dropping leading segments
    but keeping two (``https://old/wp-content/uploads/2020/01/a.jpg`` finds
    ``wp-content/uploads/2020/01/a.jpg``, ``uploads/2020/01/a.jpg`` … ``01/a.jpg``). Only regular files inside the folder whose bytes are a PNG,
    JPEG, GIF or WebP are taken (SVG can carry scripts). Anything else keeps its URL;
    nothing is ever downloaded.
    """

    def __init__(self, export_dir: Path | None, platform: str, assets_dir: str) -> None:
        self.root = export_dir.resolve() if export_dir else None
        self.prefix = f"{assets_dir}/{platform}"
        self.found: list[Asset] = []
        self.missing: list[str] = []  # relative images the folder does not hold: broken links

    def __call__(self, src: str) -> str:
        """What the post links to: ``../../static/imported/…`` for a copy, else ``src``."""
        asset = self.local(src)
        if asset is None and "://" not in src and not src.startswith("data:"):
            self.missing.append(src)
        return quote("../../" + asset.target) if asset else src

    def local(self, src: str) -> Asset | None:
        """The export folder's copy of ``src`` (recorded to be copied), or None."""
        if self.root is None:
            return None
        path = unquote(urlsplit(src.replace("__GHOST_URL__", "")).path)
        parts = [p for p in path.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            return None
        # Keep two segments at least: "img.png" alone would match any Tistory image.
        for start in range(max(1, len(parts) - 1)):
            relative = "/".join(parts[start:])
            candidate = self.root / relative
            if self._is_image(candidate):
                asset = Asset(candidate, f"{self.prefix}/{relative}")
                self.found.append(asset)
                return asset
        return None

    def take(self) -> tuple[Asset, ...]:
        found, self.found = tuple(self.found), []
        return found

    def _is_image(self, path: Path) -> bool:
        assert self.root is not None
        try:
            if path.is_symlink() or not path.is_file():
                return False
            path.resolve().relative_to(self.root)
            with path.open("rb") as handle:
                head = handle.read(12)
        except (OSError, ValueError):
            return False
        return head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def image_field(finder: AssetFinder, src: str | None) -> str | None:
    """The ``image:`` front matter for a feature image: site-relative when copied."""
    if not src:
        return None
    asset = finder.local(src)
    if asset is None and "://" not in src:
        finder.missing.append(src)
    return asset.target if asset else src


__all__ = ["AssetFinder", "Plan", "Write", "apply", "image_field", "plan_import", "replace"]
