"""Read posts: Markdown files with front matter become typed ``Post`` objects.

Strict by design: every problem in every post is collected and reported once,
each naming the file and line (``posts/a.md:3: 'date' must be ...``). A post is
either read completely or not at all; nothing is guessed or dropped silently.
Unknown front-matter keys are kept in ``Post.extra`` for templates.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from publisher.config import Config, Invalid
from publisher.config import language as config_language
from publisher.errors import Location, Problem
from publisher.publish import markup
from publisher.publish.frontmatter import Field, FrontMatterError, split
from publisher.publish.safetext import Finding, Unsafe, find_unsafe
from publisher.publish.slugs import (
    MAX_SLUG_BYTES,
    fits_file_name,
    is_valid_slug,
    slug_from_filename,
    slug_key,
)

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
    "language",
    "id",
    "aliases",
)
MAX_ID_LENGTH = 200
_DATETIME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(?P<zone>Z|[+-]\d{2}:?\d{2})?)?$"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Characters an id may not hold: it is used verbatim in feed ids (URIs), so besides whitespace
# and control characters, those RFC 3986 never allows in a URI.
_ID_FORBIDDEN = frozenset('<>"{}|\\^`')


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
    digest: str  # sha256 of the bytes read and rendered: what changed, for caches and the scheduler
    extra: Mapping[str, Any] = field(default_factory=dict)
    language: str | None = None  # BCP 47; None means [site].language
    id: str | None = None  # stable identity across renames (front matter 'id'); None: the slug
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
    paths, walk_problems = _post_paths(folder, config.root)
    problems.extend(walk_problems)
    for path in paths:
        source = path.relative_to(config.root).as_posix()
        post, found = read_post(path, source, config)
        problems.extend(found.problems)
        warnings.extend(found.warnings)
        if post is not None:
            posts.append(post)
    problems.extend(_duplicate_slugs(posts))
    problems.extend(_duplicate_ids(posts))
    return ReadResult(tuple(posts), tuple(sorted(problems, key=str)), tuple(warnings))


def _post_paths(folder: Path, root: Path) -> tuple[list[Path], list[Problem]]:
    """Every ``*.md`` entry under ``folder``, sorted; a symlinked folder is a problem (A21).

    Folders are walked without following links; a folder named ``x.md`` is a folder,
    walked like any other, and never read as a post (issue 8, items 11 and 15).
    """
    paths: list[Path] = []
    problems: list[Problem] = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename or folder).relative_to(root).as_posix()
        problems.append(Problem(Location(where), f"cannot be listed: {exc.strerror}"))

    for top, dirs, files in os.walk(folder, onerror=unreadable):
        for name in sorted(dirs):
            link = Path(top, name)
            if link.is_symlink():
                where = Location(link.relative_to(root).as_posix())
                problems.append(Problem(where, _FOLDER_SYMLINK))
        paths.extend(Path(top, name) for name in files if name.endswith(".md"))
    return sorted(paths), problems


_SYMLINK = "is a symbolic link; posts must be regular files inside the posts folder (A21)"
_FOLDER_SYMLINK = (
    "is a symbolic link to a folder; posts must be regular files inside the posts folder "
    "(A21): move the folder here instead of linking it"
)


def read_post(path: Path, source: str, config: Config) -> tuple[Post | None, _PostProblems]:
    """Read one post file; returns the post (or None) and its problems.

    The file is read once, and everything (front matter, body, digest) comes from
    those bytes, so a file saved or renamed mid-build cannot mix two versions.
    """
    found = _PostProblems(source)
    data = _read_bytes(path, config.build.max_post_bytes, found)
    text = None if data is None else _decode(data, found)
    if data is None or text is None:
        return None, found
    try:
        document = split(text)
    except FrontMatterError as exc:
        found.add(exc.message, exc.line, exc.column)
        return None, found
    digest = hashlib.sha256(data).hexdigest()
    post = _build_post(document.fields, document.body, path, source, digest, config, found)
    return (post if not found.problems else None), found


def _read_bytes(path: Path, max_bytes: int, found: _PostProblems) -> bytes | None:
    """The file's bytes, or None with a problem: only regular files are read (A21, item 12).

    ``O_NONBLOCK`` keeps a FIFO from blocking the open, ``O_NOFOLLOW`` refuses a link
    that appeared after the walk, and ``fstat`` checks what was actually opened.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        if path.is_symlink():
            found.add(_SYMLINK)
            return None
        fd = os.open(path, flags)
    except FileNotFoundError:
        found.add("disappeared while the build read it (renamed or deleted); build again")
        return None
    except OSError as exc:
        found.add(_os_problem(exc))
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        kind = _file_kind(info.st_mode)
        if kind is not None:
            found.add(f"is {kind}, not a file; posts must be regular files (rename or remove it)")
            return None
        try:
            data = file.read(max_bytes + 1)
        except OSError as exc:
            found.add(_os_problem(exc))
            return None
    if len(data) > max_bytes:
        size = max(len(data), info.st_size)
        found.add(f"is {size:,} bytes; the limit is [build].max_post_bytes = {max_bytes:,}")
        return None
    return data


def _file_kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a named pipe (FIFO)",
        stat.S_ISSOCK: "a socket",
    }
    return next((name for test, name in kinds.items() if test(mode)), "a device")


def _os_problem(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return _SYMLINK
    if isinstance(exc, PermissionError):
        return "cannot be read: permission denied; make the file readable (chmod a+r)"
    return f"cannot be read: {exc.strerror or exc}"


def _decode(data: bytes, found: _PostProblems) -> str | None:
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
    digest: str,
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
    image = _text_field(fields, "image", found, header_safe=False)
    slug = _slug_field(fields, path, found)
    language = _language_field(fields, found)
    post_id = _id_field(fields, found)
    aliases = _aliases_field(fields, found)
    if not body.strip():
        found.add("has no body text after the front matter; write the article or mark it draft")
    extra = {k: f.value for k, f in fields.items() if k not in KNOWN_FIELDS}
    if found.problems or title is None or published is None or slug is None:
        return None
    tokens = markup.parse(body)
    return Post(
        source=found.source,
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
        digest=digest,
        extra=extra,
        language=language,
        id=post_id,
        aliases=aliases,
    )


def _language_field(fields: Mapping[str, Field], found: _PostProblems) -> str | None:
    """``language:``, a BCP 47 tag such as "en", for ``<html lang>``; default [site].language."""
    text = _text_field(fields, "language", found)
    if text is None:
        return None
    try:
        return config_language(text)
    except Invalid as exc:
        found.add(f"'language' must be {exc}, got {text!r}", fields["language"].line)
        return None


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
    if entry is None or (isinstance(entry.value, str) and not entry.value.strip()):
        if required:
            found.add(f"'{key}' is required", entry.line if entry else 1)
        return None
    value = entry.value
    if not isinstance(value, str):
        found.add(f"'{key}' must be text, got {_shown(value)}", entry.line)
        return None
    text = value.strip() if multiline else value
    unsafe = find_unsafe(text, one_line=not multiline, in_header=header_safe)
    if unsafe is not None:
        found.add(_unsafe_message(f"'{key}'", unsafe), entry.line)
        return None
    return text.strip()


def _unsafe_message(what: str, unsafe: Finding) -> str:
    """The reader's words for a character the message builder would refuse (issue 8, item 3)."""
    char = unsafe.shown()
    return {
        Unsafe.LINE_BREAK: f"{what} must be one line of text, without line breaks ({char})",
        Unsafe.CONTROL: f"{what} must not contain the control character or line separator "
        f"{char}; remove it",
        Unsafe.BIDI: f"{what} must not contain the bidirectional control {char}: it makes the "
        "text display differently from what it is; remove it",
        Unsafe.ENCODED_WORD: f"{what} must not contain '=?' (it would be read as an encoded "
        "mail header)",
        Unsafe.SURROGATE: f"{what} contains {char}, a lone surrogate that is not a character; "
        "fix the \\u escape",
    }[unsafe.reason]


def _tags_field(fields: Mapping[str, Field], found: _PostProblems) -> tuple[str, ...]:
    entry = fields.get("tags")
    if entry is None or entry.value == "":
        return ()
    value = entry.value
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        found.add(f"'tags' must be a list such as [경제, 반도체], got {_shown(value)}", entry.line)
        return ()
    tags = tuple(dict.fromkeys(t.strip() for t in value))
    for tag in tags:
        unsafe = find_unsafe(tag, in_header=False)
        if unsafe is not None:
            found.add(_unsafe_message("'tags'", unsafe), entry.line)
            break
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
    if isinstance(value, str) and not fits_file_name(value):
        found.add(
            f"'slug' is {len(value.encode('utf-8'))} bytes in UTF-8 and a file name holds at "
            f"most {MAX_SLUG_BYTES}: set a shorter 'slug:' (a Hangul syllable is 3 bytes)",
            entry.line,
        )
        return None
    if not isinstance(value, str) or not is_valid_slug(value):
        found.add(
            f"'slug' must be letters, digits and inner hyphens (one path segment, "
            f"lower case), got {_shown(value)}",
            entry.line,
        )
        return None
    return value


def _id_field(fields: Mapping[str, Field], found: _PostProblems) -> str | None:
    """'id': the post's identity across renames; one word of visible characters."""
    entry = fields.get("id")
    if entry is None:
        return None
    value = entry.value
    bad = not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH
    if isinstance(value, str) and not bad:
        bad = any(_invisible(c) or c in _ID_FORBIDDEN for c in value)
    if bad:
        found.add(
            f"'id' must be one word of visible characters (no spaces), at most {MAX_ID_LENGTH} "
            f"long, such as 7f3c2a9e-1b4d-4c8e-9a6f-2d5e8b1c0a47, got {_shown(value)}; "
            "`publisher new` writes one",
            entry.line,
        )
        return None
    return str(value)


def _invisible(char: str) -> bool:
    # Cc control, Cf format (bidi overrides, zero-width), Z* separators (U+2028, NBSP).
    return char.isspace() or unicodedata.category(char)[0] in "CZ"


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
    message completes "'date' ...". A moment must stay inside the calendar when shown
    in any timezone, so it lies between 0001-01-02 and 9999-12-30 UTC (issue 8, item 11).
    """
    try:
        moment, warning = _parse_moment(value, zone)
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not _EARLIEST <= utc <= _LATEST:
        raise ValueError(
            f"must be between {_EARLIEST.date()} and {_LATEST.date()} (UTC), got {_shown(value)}"
        )
    return moment, warning


_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def _parse_moment(value: Any, zone: ZoneInfo) -> tuple[datetime, str | None]:
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


def _duplicate_ids(posts: Iterable[Post]) -> list[Problem]:
    seen: dict[str, Post] = {}
    problems = []
    for post in posts:
        if post.id is None:
            continue
        first = seen.setdefault(post.id, post)
        if first is not post:
            problems.append(
                Problem(
                    Location(post.source),
                    f"id '{post.id}' is also the id of {first.source}; every post needs its "
                    "own id (a copied file keeps it: remove the 'id' line from the copy)",
                )
            )
    return problems


def _shown(value: Any) -> str:
    if isinstance(value, str):
        # Line breaks and controls are shown escaped, so a message stays one honest line.
        return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in value) + '"'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)
