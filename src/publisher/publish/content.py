"""Read posts: Markdown files with front matter become typed ``Post`` objects.

Strict by design: every problem in every post is collected and reported once,
each naming the file and line (``posts/a.md:3: 'date' must be ...``). A post is
either read completely or not at all; nothing is guessed or dropped silently.
Unknown front-matter keys are kept in ``Post.extra`` for templates.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from publisher.config import Config
from publisher.errors import Location, Problem
from publisher.publish import markup
from publisher.publish.frontmatter import Field, FrontMatterError, split
from publisher.publish.slugs import is_valid_slug, slug_from_filename, slug_key

KNOWN_FIELDS = (
    "title",
    "date",
    "updated",
    "category",
    "tags",
    "summary",
    "slug",
    "draft",
    "author",
    "image",
    "aliases",
)
_DATETIME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(?P<zone>Z|[+-]\d{2}:?\d{2})?)?$"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Post:
    """One post, fully read and rendered. Immutable; stages pass it along."""

    source: str  # path relative to the site folder, for messages: "posts/a.md"
    slug: str
    title: str
    date: datetime  # timezone-aware
    updated: datetime | None
    category: str | None
    tags: tuple[str, ...]
    summary: str  # plain text
    draft: bool
    author: str | None
    image: str | None
    body_html: str  # sanitized; links as written (relative links stay relative)
    reading_minutes: int
    digest: str  # sha256 of the file bytes: what changed, for caches and the scheduler
    extra: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # old site-relative paths that redirect here ("entry/제목")

    def is_published(self, now: datetime) -> bool:
        """Public at ``now``: not a draft and not dated in the future (A20)."""
        return not self.draft and self.date <= now


@dataclass(frozen=True)
class ReadResult:
    """Posts read successfully, and every problem and warning found."""

    posts: tuple[Post, ...]
    problems: tuple[Problem, ...]
    warnings: tuple[Problem, ...]


class _PostProblems:
    """Collects problems for one file; ``at(line)`` locates them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def add(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.problems.append(Problem(Location(self.source, line, column), message))

    def warn(self, message: str, line: int | None = None) -> None:
        self.warnings.append(Problem(Location(self.source, line), message))


def read_posts(config: Config) -> ReadResult:
    """Read every ``*.md`` under the posts folder, in path order."""
    folder = config.posts_path
    posts: list[Post] = []
    problems: list[Problem] = []
    warnings: list[Problem] = []
    if not folder.is_dir():
        where = Location(config.build.posts_dir)
        return ReadResult((), (Problem(where, "posts folder not found"),), ())
    for path in sorted(folder.rglob("*.md")):
        source = path.relative_to(config.root).as_posix()
        post, found = read_post(path, source, config)
        problems.extend(found.problems)
        warnings.extend(found.warnings)
        if post is not None:
            posts.append(post)
    problems.extend(_duplicate_slugs(posts))
    return ReadResult(tuple(posts), tuple(sorted(problems, key=str)), tuple(warnings))


def read_post(path: Path, source: str, config: Config) -> tuple[Post | None, _PostProblems]:
    """Read one post file; returns the post (or None) and its problems."""
    found = _PostProblems(source)
    text = _read_text(path, config.build.max_post_bytes, found)
    if text is None:
        return None, found
    try:
        document = split(text)
    except FrontMatterError as exc:
        found.add(exc.message, exc.line, exc.column)
        return None, found
    post = _build_post(document.fields, document.body, path, source, config, found)
    return (post if not found.problems else None), found


def _read_text(path: Path, max_bytes: int, found: _PostProblems) -> str | None:
    if path.is_symlink():
        found.add("is a symbolic link; posts must be regular files inside the posts folder (A21)")
        return None
    data = path.read_bytes()
    if len(data) > max_bytes:
        found.add(f"is {len(data):,} bytes; the limit is [build].max_post_bytes = {max_bytes:,}")
        return None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a BOM from Windows editors is harmless once removed (A1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        found.add(
            f"not valid UTF-8 at byte {exc.start} (line {line}); save the file as UTF-8 "
            "(it may be CP949/EUC-KR)",
            line,
        )
        return None
    if not text.strip():
        found.add("is empty; a post needs front matter with 'title' and 'date', and a body")
        return None
    return text


def _build_post(
    fields: dict[str, Field],
    body: str,
    path: Path,
    source: str,
    config: Config,
    found: _PostProblems,
) -> Post | None:
    zone = config.site.timezone
    title = _text_field(fields, "title", found, required=True, header_safe=True)
    published = _date_field(fields, "date", zone, found, required=True)
    updated = _date_field(fields, "updated", zone, found, required=False)
    category = _text_field(fields, "category", found, header_safe=True)
    tags = _tags_field(fields, found)
    summary = _text_field(fields, "summary", found, multiline=True)
    draft = _bool_field(fields, "draft", found)
    author = _text_field(fields, "author", found, header_safe=True)
    image = _text_field(fields, "image", found)
    slug = _slug_field(fields, path, found)
    aliases = _aliases_field(fields, found)
    if not body.strip():
        found.add("has no body text after the front matter; write the article or mark it draft")
    extra = {k: f.value for k, f in fields.items() if k not in KNOWN_FIELDS}
    if found.problems or title is None or published is None or slug is None:
        return None
    tokens = markup.parse(body)
    return Post(
        source=source,
        slug=slug,
        title=title,
        date=published,
        updated=updated,
        category=category,
        tags=tags,
        summary=summary
        or markup.summarize(markup.first_paragraph_text(tokens), config.site.summary_length),
        draft=draft,
        author=author,
        image=image,
        body_html=markup.render_tokens(tokens),
        reading_minutes=markup.reading_minutes(
            markup.plain_text(tokens), config.site.reading_cpm, config.site.reading_wpm
        ),
        digest=hashlib.sha256(path.read_bytes()).hexdigest(),
        extra=extra,
        aliases=aliases,
    )


ALIAS_REFUSED = re.compile(r"[\s\\\"'<>{};$?#%]")


def _aliases_field(fields: Mapping[str, Field], found: _PostProblems) -> tuple[str, ...]:
    """Old URL paths of this post (``aliases: [/entry/제목, /123]``), stored without the first '/'.

    Each becomes a redirect page and a line in the server redirect maps, so only plain
    paths are taken: no scheme or host, query, fragment, '..', quotes or spaces.
    """
    entry = fields.get("aliases")
    if entry is None or entry.value == "":
        return ()
    value = entry.value
    if not isinstance(value, list) or not all(isinstance(a, str) and a.strip() for a in value):
        found.add(
            f"'aliases' must be a list of old paths such as [/entry/제목, /123], got "
            f"{_shown(value)}",
            entry.line,
        )
        return ()
    paths: list[str] = []
    for alias in value:
        path = unicodedata.normalize("NFC", unquote(alias.strip()))
        parts = path.strip("/").split("/")
        if (
            "://" in path
            or ALIAS_REFUSED.search(path)
            or _CONTROL.search(path)
            or any(p in ("", ".", "..") for p in parts)
        ):
            found.add(
                f"'aliases' entry {_shown(alias)} must be a path on this site such as "
                "/2019/05/old-post/ (no host, query, '..', spaces or quotes)",
                entry.line,
            )
            continue
        paths.append(path.lstrip("/"))
    return tuple(dict.fromkeys(paths))


def _text_field(
    fields: Mapping[str, Field],
    key: str,
    found: _PostProblems,
    *,
    required: bool = False,
    multiline: bool = False,
    header_safe: bool = False,
) -> str | None:
    entry = fields.get(key)
    if entry is None or entry.value == "":
        if required:
            found.add(f"'{key}' is required", entry.line if entry else 1)
        return None
    value = entry.value
    if not isinstance(value, str):
        found.add(f"'{key}' must be text, got {_shown(value)}", entry.line)
        return None
    text = value.strip() if multiline else value
    if _CONTROL.search(text) or (not multiline and ("\n" in text or "\r" in text)):
        found.add(f"'{key}' must be one line of text without control characters", entry.line)
        return None
    if header_safe and "=?" in text:
        # '=?' starts an RFC 2047 encoded-word: in a Subject it can smuggle headers (D1b).
        found.add(
            f"'{key}' must not contain '=?' (it would be read as an encoded mail header)",
            entry.line,
        )
        return None
    return text.strip()


def _tags_field(fields: Mapping[str, Field], found: _PostProblems) -> tuple[str, ...]:
    entry = fields.get("tags")
    if entry is None or entry.value == "":
        return ()
    value = entry.value
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        found.add(f"'tags' must be a list such as [경제, 반도체], got {_shown(value)}", entry.line)
        return ()
    tags = tuple(dict.fromkeys(t.strip() for t in value))
    if any(_CONTROL.search(t) or "\n" in t for t in tags):
        found.add("'tags' must be one-line texts", entry.line)
    return tags


def _bool_field(fields: Mapping[str, Field], key: str, found: _PostProblems) -> bool:
    entry = fields.get(key)
    if entry is None:
        return False
    # Only true/false: YAML 1.1 also reads yes/no/on/off, the "Norway problem" (A4).
    value = entry.value
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    found.add(f"'{key}' must be true or false, got {_shown(value)}", entry.line)
    return False


def _slug_field(fields: Mapping[str, Field], path: Path, found: _PostProblems) -> str | None:
    entry = fields.get("slug")
    if entry is None or entry.value == "":
        slug = slug_from_filename(path.stem)
        if not slug:
            found.add("the file name gives an empty slug; add 'slug:' to the front matter", 1)
            return None
        return slug
    value = entry.value
    if not isinstance(value, str) or not is_valid_slug(value):
        found.add(
            f"'slug' must be letters, digits and inner hyphens (one path segment, "
            f"lower case), got {_shown(value)}",
            entry.line,
        )
        return None
    return value


def _date_field(
    fields: Mapping[str, Field],
    key: str,
    zone: ZoneInfo,
    found: _PostProblems,
    *,
    required: bool,
) -> datetime | None:
    entry = fields.get(key)
    if entry is None or entry.value == "":
        if required:
            found.add(
                f"'{key}' is required (e.g. {key}: 2025-06-20 09:00)", entry.line if entry else 1
            )
        return None
    try:
        moment, warning = parse_moment(entry.value, zone)
    except ValueError as exc:
        found.add(f"'{key}' {exc}", entry.line)
        return None
    if warning:
        found.warn(f"'{key}' {warning}", entry.line)
    return moment


def parse_moment(value: Any, zone: ZoneInfo) -> tuple[datetime, str | None]:
    """Parse a front-matter date or datetime; zone-less values are read in ``zone`` (A6-A8).

    Returns the aware datetime and an optional warning. Raises ValueError whose
    message completes "'date' ...".
    """
    if isinstance(value, datetime):
        naive = value.replace(tzinfo=None) if value.tzinfo is None else None
        return (value, None) if naive is None else _localize(naive, zone)
    if isinstance(value, date):
        return _localize(datetime.combine(value, time()), zone)
    if not isinstance(value, str):
        raise ValueError(
            f"must be a date such as 2025-06-20 or 2025-06-20 09:00, got {_shown(value)}"
        )
    match = _DATETIME.match(value.strip())
    if not match:
        raise ValueError(
            f"must be a date such as 2025-06-20 or 2025-06-20 09:00 (optionally +09:00), "
            f"got {_shown(value)}"
        )
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"is not a real date or time: {_shown(value)}") from None
    if parsed.tzinfo is not None:
        return parsed, None
    return _localize(parsed, zone)


def _localize(naive: datetime, zone: ZoneInfo) -> tuple[datetime, str | None]:
    aware = naive.replace(tzinfo=zone, fold=0)
    round_trip = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != naive:
        raise ValueError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {zone.key} (clocks jump forward); "
            "pick another time or give an offset such as +01:00"
        )
    if aware.utcoffset() != naive.replace(tzinfo=zone, fold=1).utcoffset():
        return aware, (
            f"{naive:%Y-%m-%d %H:%M} happens twice in {zone.key} (clocks go back); "
            "using the first, add an offset to choose"
        )
    return aware, None


def _duplicate_slugs(posts: Iterable[Post]) -> list[Problem]:
    seen: dict[str, Post] = {}
    problems = []
    for post in posts:
        key = slug_key(post.slug)
        if key in seen:
            first = seen[key]
            problems.append(
                Problem(
                    Location(post.source),
                    f"slug '{post.slug}' is also the slug of {first.source}; "
                    "both would be written to the same page (set 'slug:' on one)",
                )
            )
        else:
            seen[key] = post
    return problems


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)
