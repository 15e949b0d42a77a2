"""Published posts: what was made public, renames, and which issues carry a post."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    select,
    update,
)

from publisher.store.db import Database
from publisher.store.model import PublishedEntry, PublishedPost
from publisher.store.schema import issues, published, published_identity


class Published(Database):
    """Published posts: what was made public, renames, and which issues carry a post."""

    def posts_without_issue(self) -> list[str]:
        query = select(published.c.slug).where(published.c.issue_created.is_(False))
        return self.run(lambda c: list(c.execute(query.order_by(published.c.slug)).scalars()))

    def record_published_many(
        self,
        posts: Sequence[PublishedEntry | tuple[str, str]],
        published_at: datetime,
        *,
        renames: Sequence[tuple[str, str]] = (),
    ) -> list[str]:
        """Record public posts in one transaction; returns the slugs new to ``published``.

        ``renames`` (old slug, new slug) move a record to a post's new slug first, keeping
        whether its issue exists, so a renamed post is not published or mailed again
        (issue 8, item 1). Known posts get their id, title, date and digest updated, which
        is what the next rename is recognised by.
        """
        entries = [p if isinstance(p, PublishedEntry) else PublishedEntry(*p) for p in posts]
        table = published_identity

        def work(conn: Connection) -> list[str]:
            self._rename_published(conn, renames)
            rows = {r["slug"]: r for r in conn.execute(select(table)).mappings()}
            fresh = []
            for entry in entries:
                values = entry.values()
                row = rows.get(entry.slug)
                if row is None:
                    fresh.append(entry.slug)
                    stmt = self.insert(table).values(slug=entry.slug, **values)
                    stmt = stmt.values(published_at=published_at, issue_created=False)
                    conn.execute(stmt.on_conflict_do_nothing())
                elif any(row[k] != v for k, v in values.items()):
                    conn.execute(update(table).where(table.c.slug == entry.slug).values(values))
            return fresh

        return self.run(work)

    def _rename_published(self, conn: Connection, renames: Sequence[tuple[str, str]]) -> None:
        # Through temporary keys ('~' is never in a slug), so that swaps and chains work.
        table = published_identity
        moves = [(old, new, f"~{n}") for n, (old, new) in enumerate(renames) if old != new]
        for old, _, temporary in moves:
            conn.execute(update(table).where(table.c.slug == old).values(slug=temporary))
        taken = set(conn.execute(select(table.c.slug)).scalars())
        moved: dict[str, str] = {}
        for old, new, temporary in moves:
            final = old if new in taken else new  # never merge two records into one
            conn.execute(update(table).where(table.c.slug == temporary).values(slug=final))
            taken.add(final)
            if final != old:
                moved[old] = final
        self._rename_in_issues(conn, moved)

    def _rename_in_issues(self, conn: Connection, moved: dict[str, str]) -> None:
        """Issues name their posts by slug: follow the renames (all at once, so a swap works),
        so that a crashed pass's bookkeeping (``mark_issues_created(issue.post_slugs)``)
        still finds the records."""
        found = {
            i: slugs
            for old in moved
            for i, slugs in conn.execute(self._issues_with_post_query(old))
        }
        for issue_id, slugs in found.items():
            names = [moved.get(s, s) for s in json.loads(slugs)]
            encoded = json.dumps(names, ensure_ascii=False)
            conn.execute(update(issues).where(issues.c.id == issue_id).values(post_slugs=encoded))

    def _issues_with_post_query(self, slug: str) -> Any:
        pattern = json.dumps(slug, ensure_ascii=False)
        return (
            select(issues.c.id, issues.c.post_slugs)
            .where(issues.c.post_slugs.contains(pattern, autoescape=True))
            .order_by(issues.c.id)
        )

    def published_posts(self) -> list[PublishedPost]:
        """Every post ever made public, by slug."""
        table = published_identity
        query = select(table).order_by(table.c.slug)

        def work(conn: Connection) -> list[PublishedPost]:
            return [
                PublishedPost(
                    r["slug"],
                    r["digest"],
                    r["published_at"],
                    bool(r["issue_created"]),
                    post_id=r["post_id"],
                    title=r["title"],
                    post_date=r["post_date"],
                )
                for r in conn.execute(query).mappings()
            ]

        return self.run(work, write=False)

    def mark_issues_created(self, slugs: Sequence[str]) -> None:
        """Record that the issues of these published posts exist, in one transaction."""
        self.run(lambda c: mark_issues_created_in(c, slugs))

    def issues_with_post(self, slug: str) -> list[int]:
        """Ids of the issues that carry the post ``slug``, oldest first."""
        query = self._issues_with_post_query(slug)

        def work(conn: Connection) -> list[int]:
            return [int(i) for i, slugs in conn.execute(query) if slug in json.loads(slugs)]

        return self.run(work, write=False)


def mark_issues_created_in(conn: Connection, slugs: Sequence[str]) -> None:
    """``mark_issues_created`` inside a transaction the caller holds (issue creation)."""
    if slugs:
        stmt = update(published).where(published.c.slug.in_(list(slugs)))
        conn.execute(stmt.values(issue_created=True))
