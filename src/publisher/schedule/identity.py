"""Which post is which across renames, and which posts stay public when the clock steps back.

Pure: posts as read and the ``published`` records in, decisions out. Used by the
scheduler and by ``publisher build`` so both follow one rule (issue 8, items 1 and 15).

**Identity** (item 1). The newsletter knows a post by its published record. A post
whose slug has no record is matched, in this order, to a record whose slug no
longer belongs to any post:

1. the same ``id`` (front matter; ``publisher new`` writes one);
2. the same content (file digest: a plain ``mv`` of a file whose slug comes from
   its name);
3. the same date and title (the slug and the text changed, the post did not).

Two different ids never match, and each record matches at most one post. A
matched post is a rename: its record moves to the new slug, keeping whether its
issue exists, so it is neither published nor mailed again.

**Clock steps back** (item 15). A post recorded as published and dated up to
``published_as_of`` (the latest moment a publish pass was made at) stays public
even when the clock now says it is in the future; a post moved past that moment
by its author is hidden again, as meant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from publisher.publish.content import Post
from publisher.store import PublishedPost


@dataclass(frozen=True)
class Rename:
    """A published post now under another slug."""

    old: str
    new: str
    by: str  # what recognised it: "id", "content", "date and title"
    issue_created: bool  # the newsletter had handled it already

    def line(self, mailed: bool) -> str:
        if mailed:
            note = "already mailed, not sent again"
        elif self.issue_created:
            note = "already published, not mailed"
        else:
            note = "already published"
        return f"renamed: {self.old} → {self.new} ({note})"


Rule = Callable[[Post, PublishedPost], bool]


def _same_id(post: Post, record: PublishedPost) -> bool:
    return post.id is not None and post.id == record.post_id


def _ids_agree(post: Post, record: PublishedPost) -> bool:
    return post.id is None or record.post_id is None or post.id == record.post_id


def _same_content(post: Post, record: PublishedPost) -> bool:
    return _ids_agree(post, record) and post.digest == record.digest


def _same_date_and_title(post: Post, record: PublishedPost) -> bool:
    return (
        _ids_agree(post, record)
        and record.title is not None
        and record.post_date is not None
        and (post.title, post.date) == (record.title, record.post_date)
    )


RULES: tuple[tuple[str, Rule], ...] = (
    ("id", _same_id),
    ("content", _same_content),
    ("date and title", _same_date_and_title),
)


def find_renames(posts: Iterable[Post], records: Sequence[PublishedPost]) -> list[Rename]:
    """Posts (all read, public or not) that are published records under a new slug."""
    everything = list(posts)
    recorded = {r.slug for r in records}
    current = {p.slug for p in everything}
    vanished = [r for r in records if r.slug not in current]
    candidates = sorted((p for p in everything if p.slug not in recorded), key=_oldest_first)
    renames: list[Rename] = []
    taken: set[str] = set()
    for by, rule in RULES:
        for post in candidates:
            if post.slug in taken:
                continue
            for record in vanished:
                if record.slug not in taken and rule(post, record):
                    renames.append(Rename(record.slug, post.slug, by, record.issue_created))
                    taken.update((record.slug, post.slug))
                    break
    return sorted(renames, key=lambda r: r.new)


def renamed_slugs(records: Sequence[PublishedPost], renames: Sequence[Rename]) -> set[str]:
    """The slugs ``records`` will have once ``renames`` are recorded."""
    moved = {r.old: r.new for r in renames}
    return {moved.get(r.slug, r.slug) for r in records}


def published_moment(
    now: datetime, posts: Iterable[Post], published: set[str], as_of: datetime | None
) -> datetime:
    """``now``, or later if the clock stepped back past posts already published (G8, item 15).

    ``published``: the slugs recorded as published; only posts dated up to ``as_of``
    count, so a published post moved to a future date is hidden again as its author meant.
    """
    if as_of is None or as_of <= now:
        return now
    dates = [p.date for p in posts if p.slug in published and not p.draft and p.date <= as_of]
    return max([now, *dates])


def _oldest_first(post: Post) -> tuple[datetime, str]:
    return (post.date, post.slug)
