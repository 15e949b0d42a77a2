"""Post files as the editor sees them: read into a form, checked, written atomically.

- Only files the posts reader would read (``*.md`` under the posts folder, not
  symbolic links) can be opened, found by their name in that listing: a request
  never names a path the server then opens (no traversal).
- Saving merges the form into the file's front matter line by line: the fields
  the editor shows are rewritten, every other key keeps its original lines,
  order and spelling (``post.extra`` stays what it was).
- What is saved is checked first by the build's own reader
  (publisher.publish.content.read_post) on a copy of the same name, so its
  problems are shown next to their field with the build's words; a post with
  problems is not written.
- The write is atomic: a temporary file in the same folder, fsync, rename, fsync
  of the folder. A file whose SHA-256 differs from the digest the form was
  opened with is never overwritten (the caller shows both versions).
- Delete moves the file to ``[editor].trash_dir`` (restorable by moving it back).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from publisher.config import Config
from publisher.errors import Problem
from publisher.publish.content import Post, read_post, read_posts
from publisher.publish.frontmatter import FrontMatterError, split
from publisher.publish.slugs import slug_key, slugify

FORM_FIELDS = ("title", "category", "tags", "date", "summary", "slug", "draft", "image")
_PLAIN = re.compile(r"^[^\s\-?:,\[\]{}#&*!|>'\"%@`][^#]*$")
_NEEDS_QUOTES = re.compile(r": |\s#|^\s|\s$")
_KEY_LINE = re.compile(r"^([^\s#:][^:]*):")
_TRASHED = re.compile(r"^\d{8}T\d{6}-(?P<path>[^/]+\.md)$")


@dataclass(frozen=True)
class PostForm:
    """The edit form's values, as text (``date`` as ``YYYY-MM-DD HH:MM``)."""

    title: str = ""
    category: str = ""
    tags: str = ""  # comma-separated
    date: str = ""
    summary: str = ""
    slug: str = ""
    draft: bool = False
    image: str = ""
    body: str = ""

    def tag_list(self) -> list[str]:
        return [t.strip() for t in self.tags.split(",") if t.strip()]


@dataclass
class Checked:
    """What the posts reader said about a text: by form field, and the rest."""

    post: Post | None
    by_field: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.post is not None and not self.by_field and not self.general


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def post_files(config: Config) -> list[str]:
    """Names (relative to the posts folder) of every post file, in path order."""
    folder = config.posts_path
    if not folder.is_dir():
        return []
    return [
        p.relative_to(folder).as_posix()
        for p in sorted(folder.rglob("*.md"))
        if p.is_file() and not p.is_symlink()
    ]


def find_file(config: Config, name: str) -> Path | None:
    """The post file called ``name`` in the listing, else None."""
    return config.posts_path / name if name in post_files(config) else None


# --- reading ---------------------------------------------------------------------------------


def form_from_text(text: str) -> PostForm:
    """The form for a file; values the form cannot show stay in the file untouched."""
    try:
        document = split(text.removeprefix("\ufeff"))
    except FrontMatterError:
        return PostForm(body=text)
    values = {k: f.value for k, f in document.fields.items()}

    def text_of(key: str) -> str:
        value = values.get(key, "")
        return value if isinstance(value, str) else ""

    tags = values.get("tags")
    return PostForm(
        title=text_of("title"),
        category=text_of("category"),
        tags=", ".join(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else "",
        date=text_of("date"),
        summary=text_of("summary"),
        slug=text_of("slug"),
        draft=text_of("draft").lower() == "true",
        image=text_of("image"),
        body=document.body.lstrip("\n"),
    )


# --- writing the text ------------------------------------------------------------------------


def scalar(value: str) -> str:
    """A YAML scalar the strict reader reads back as exactly ``value``."""
    if value and _PLAIN.match(value) and not _NEEDS_QUOTES.search(value):
        return value
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def _field_lines(form: PostForm) -> dict[str, str | None]:
    """Each form field as its front-matter line(s); None drops the key."""
    tags = form.tag_list()
    return {
        "title": f"title: {scalar(form.title)}\n" if form.title else None,
        "date": f"date: {scalar(form.date)}\n" if form.date else None,
        "category": f"category: {scalar(form.category)}\n" if form.category else None,
        "tags": "tags: [" + ", ".join(scalar(t) for t in tags) + "]\n" if tags else None,
        "summary": f"summary: {scalar(form.summary)}\n" if form.summary else None,
        "slug": f"slug: {scalar(form.slug)}\n" if form.slug else None,
        "draft": "draft: true\n" if form.draft else None,
        "image": f"image: {scalar(form.image)}\n" if form.image else None,
    }


def compose(form: PostForm, original: str | None, *, new_id: str | None = None) -> str:
    """The file text for ``form``, keeping every other key of ``original`` as written."""
    wanted = _field_lines(form)
    head: list[str] = []
    if original is not None:
        try:
            document = split(original.removeprefix("\ufeff"))
        except FrontMatterError:
            document = None
        if document is not None:
            lines = original.removeprefix("\ufeff").splitlines(keepends=True)
            end = document.body_line - 2  # index of the closing fence
            starts = sorted((f.line - 1, key) for key, f in document.fields.items())
            for position, (start, key) in enumerate(starts):
                stop = starts[position + 1][0] if position + 1 < len(starts) else end
                block = lines[start:stop]
                if key in wanted:
                    line = wanted.pop(key)
                    if line is not None:
                        head.append(line)
                    # Comments and blank lines after a rewritten field stay where they were.
                    head.extend(b for b in block[1:] if b.startswith("#") or not b.strip())
                else:
                    head.extend(b if b.endswith("\n") else b + "\n" for b in block)
    if new_id is not None and not any(line.startswith("id:") for line in head):
        head.insert(0, f"id: {new_id}\n")
    head.extend(line for line in wanted.values() if line is not None)
    body = form.body.replace("\r\n", "\n")
    if not body.endswith("\n"):
        body += "\n"
    return "---\n" + "".join(head) + "---\n" + body


def new_post_id() -> str:
    """A random post id, in the form `publisher new` writes (a UUID 4)."""
    return str(uuid.uuid4())


def new_post_name(config: Config, form: PostForm, now: datetime) -> str:
    """``<date>-<slug>.md`` for a new post; the slug from the form or the title."""
    day = form.date[:10] if re.match(r"^\d{4}-\d{2}-\d{2}", form.date) else f"{now:%Y-%m-%d}"
    slug = form.slug or slugify(form.title) or new_post_id()
    return f"{day}-{slug}.md"


# --- checking --------------------------------------------------------------------------------


def check(config: Config, name: str, text: str) -> Checked:
    """Read ``text`` as the post file ``name`` with the build's reader; problems by field."""
    with tempfile.TemporaryDirectory(prefix="publisher-editor-") as folder:
        path = Path(folder) / Path(name).name
        path.write_text(text, encoding="utf-8")
        source = f"{config.build.posts_dir}/{name}"
        post, found = read_post(path, source, config)
        problems = list(found.problems)
    if post is not None:
        post = replace(post, source=source)
        problems.extend(_slug_taken(config, name, post))
    return _by_field(post, problems, text)


def _slug_taken(config: Config, name: str, post: Post) -> list[Problem]:
    from publisher.errors import Location

    source = f"{config.build.posts_dir}/{name}"
    for other in read_posts(config).posts:
        if other.source != source and slug_key(other.slug) == slug_key(post.slug):
            return [
                Problem(
                    Location(source),
                    f"slug '{post.slug}' is also the slug of {other.source}; "
                    "both would be written to the same page (set 'slug:' on one)",
                )
            ]
    return []


def _by_field(post: Post | None, problems: list[Problem], text: str) -> Checked:
    lines: dict[int, str] = {}
    try:
        document = split(text)
        lines = {f.line: key for key, f in document.fields.items()}
        body_line = document.body_line
    except FrontMatterError:
        body_line = 0
    checked = Checked(post if not problems else None)
    for problem in problems:
        message = problem.message
        quoted = re.match(r"^'([a-z]+)'", message)
        key = quoted.group(1) if quoted else lines.get(problem.location.line or -1)
        if key is None and ("body" in message or (problem.location.line or 0) >= body_line > 0):
            key = "body"
        if message.startswith("slug '"):
            key = "slug"
        if key in (*FORM_FIELDS, "body"):
            checked.by_field.setdefault(key, []).append(message)
        else:
            checked.general.append(str(problem))
    return checked


# --- files -----------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` all at once: temp file, fsync, rename, fsync folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def to_trash(config: Config, path: Path, now: datetime) -> Path:
    """Move a post file into the trash folder; the name keeps the time and the original path."""
    trash = config.root / config.editor.trash_dir
    trash.mkdir(parents=True, exist_ok=True)
    relative = path.relative_to(config.posts_path).as_posix().replace("/", "__")
    target = trash / f"{now:%Y%m%dT%H%M%S}-{relative}"
    os.replace(path, target)
    return target


def trash_files(config: Config) -> list[str]:
    """Names in the trash folder, newest first."""
    trash = config.root / config.editor.trash_dir
    if not trash.is_dir():
        return []
    names = [p.name for p in trash.iterdir() if p.is_file() and not p.is_symlink()]
    return sorted((n for n in names if _TRASHED.match(n)), reverse=True)


def restore(config: Config, name: str) -> Path | None:
    """Move a trashed file back to its place; None when the name is unknown or the place is taken."""
    if name not in trash_files(config):
        return None
    match = _TRASHED.match(name)
    assert match is not None
    target = config.posts_path / match.group("path").replace("__", "/")
    if target.exists() or target.is_symlink():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(config.root / config.editor.trash_dir / name, target)
    return target
