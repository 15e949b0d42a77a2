"""Rename a post's slug without breaking its links or its feed entry.

Pure text in, text out (the CLI and the editor write the result atomically):
``renamed_text`` sets ``slug``, adds the old page path to ``aliases`` (so the
build writes a redirect from it) and, when the post has no ``id`` yet, pins its
feed id to the old permalink, so feed readers do not see it as a new entry.
Every other line of the front matter and the body stay exactly as written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from publisher.publish.frontmatter import split

REWRITTEN = ("slug", "aliases", "id")


@dataclass(frozen=True)
class Rename:
    """What a rename changes: the new slug, the alias to add, the id to pin (or None)."""

    new_slug: str
    add_alias: str | None  # "/posts/old/" when the post was public under the old slug
    pin_id: str | None  # the old permalink, when the post had no id


def renamed_text(text: str, change: Rename, aliases: tuple[str, ...], post_id: str | None) -> str:
    """``text`` with ``slug``, ``aliases`` and ``id`` rewritten; raises FrontMatterError."""
    document = split(text)
    lines = text.splitlines(keepends=True)
    fence = document.body_line - 2  # index of the closing '---' line
    starts = sorted((f.line - 1, key) for key, f in document.fields.items())
    drop: set[int] = set()
    for position, (start, key) in enumerate(starts):
        end = starts[position + 1][0] if position + 1 < len(starts) else fence
        if key in REWRITTEN:
            drop.update(range(start, end))
    own = f"/posts/{change.new_slug}/"
    wanted = [f"/{a}" if not a.startswith("/") else a for a in aliases]
    if change.add_alias:
        wanted.append(change.add_alias)
    kept = [a for a in dict.fromkeys(wanted) if a.rstrip("/") != own.rstrip("/")]
    added = [f"slug: {json.dumps(change.new_slug, ensure_ascii=False)}\n"]
    if kept:
        added.append(f"aliases: {json.dumps(kept, ensure_ascii=False)}\n")
    final_id = post_id or change.pin_id
    if final_id:
        added.append(f"id: {json.dumps(final_id, ensure_ascii=False)}\n")
    head = [line for index, line in enumerate(lines[:fence]) if index not in drop]
    if head and not head[-1].endswith("\n"):
        head[-1] += "\n"
    return "".join([*head, *added, *lines[fence:]])
