"""Newsletter issues: creation (idempotent per key), bodies, statuses, snapshots."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    Integer,
    String,
    exists,
    func,
    literal,
    select,
    update,
)

from publisher.store.db import Database, UtcDateTime
from publisher.store.model import (
    DeliveryStatus,
    Issue,
    IssueStatus,
    IssueSummary,
    NewIssue,
    _categories,
)
from publisher.store.published import mark_issues_created_in
from publisher.store.schema import deliveries, issues, subscribers
from publisher.store.subscribers import _recipient_filter


class Issues(Database):
    """Newsletter issues: creation (idempotent per key), bodies, statuses, snapshots."""

    def create_issue(self, new: NewIssue) -> tuple[Issue, bool]:
        """Create the issue for ``new.key``, or return the existing one unchanged (B6)."""
        now = self.clock()
        values = {
            "key": new.key,
            "post_slugs": json.dumps(list(new.post_slugs), ensure_ascii=False),
            "categories": json.dumps(list(_categories(new.categories)), ensure_ascii=False),
            "subject": new.subject,
            "preheader": new.preheader,
            "html": new.html,
            "text": new.text,
            "digest": new.digest,
            "status": IssueStatus.DRAFT,
            "created_at": now,
        }

        def work(conn: Connection) -> tuple[int, bool]:
            stmt = self.insert(issues).values(**values).on_conflict_do_nothing()
            new_id = conn.execute(stmt.returning(issues.c.id)).scalar_one_or_none()
            # In the same transaction: a post renamed after a crash right here must not
            # find its published record still waiting for an issue (issue 8, item 1).
            mark_issues_created_in(conn, new.post_slugs)
            if new_id is not None:
                return int(new_id), True
            found = conn.execute(select(issues.c.id).where(issues.c.key == new.key))
            return int(found.scalar_one()), False

        issue_id, created = self.run(work)
        issue = self.get_issue(issue_id)
        assert issue is not None
        return issue, created

    def get_issue(self, issue_id: int) -> Issue | None:
        return self._one_issue(issues.c.id == issue_id)

    def find_issue(self, key: str) -> Issue | None:
        return self._one_issue(issues.c.key == key)

    def _one_issue(self, condition: Any) -> Issue | None:
        def work(conn: Connection) -> Issue | None:
            row = conn.execute(select(issues).where(condition)).mappings().first()
            return None if row is None else _issue(row)

        return self.run(work, write=False)

    def list_issues(self) -> list[Issue]:
        def work(conn: Connection) -> list[Issue]:
            rows = conn.execute(select(issues).order_by(issues.c.id)).mappings().all()
            return [_issue(r) for r in rows]

        return self.run(work, write=False)

    def set_issue_status(
        self, issue_id: int, status: IssueStatus, reason: str | None = None
    ) -> None:
        values: dict[str, Any] = {"status": status, "pause_reason": reason}
        if status == IssueStatus.DONE:
            values["finished_at"] = self.clock()
        stmt = update(issues).where(issues.c.id == issue_id).values(**values)
        self.run(lambda c: c.execute(stmt))

    def replace_issue_body(self, issue_id: int, new: NewIssue) -> bool:
        """Store a fresh rendering of an issue nobody may have a copy of yet (issue 8).

        B6 holds: every reader gets the same body, because no row is sent, in doubt or
        being sent. False (nothing changed) when one is.
        """
        started = exists().where(
            deliveries.c.issue_id == issue_id,
            deliveries.c.status.in_(
                (DeliveryStatus.SENT, DeliveryStatus.IN_DOUBT, DeliveryStatus.SENDING)
            ),
        )
        stmt = (
            update(issues)
            .where(issues.c.id == issue_id, issues.c.key == new.key, ~started)
            .values(
                subject=new.subject,
                preheader=new.preheader,
                html=new.html,
                text=new.text,
                digest=new.digest,
            )
        )
        return self.run(lambda c: int(c.execute(stmt).rowcount) == 1)

    def snapshot(self, issue_id: int) -> int:
        """Freeze the recipients of an issue: one delivery row per matching active subscriber.

        Runs once per issue (later subscribers are not added, E15); one
        ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` in the database, so no
        subscriber list passes through memory. Returns the rows added.
        """
        now = self.clock()

        def work(conn: Connection) -> int:
            row = conn.execute(
                select(issues.c.snapshot_at, issues.c.categories)
                .where(issues.c.id == issue_id)
                .with_for_update()  # two senders starting at once snapshot once
            ).one()
            if row.snapshot_at is not None:
                return 0
            source = select(
                literal(issue_id, Integer),
                subscribers.c.id,
                literal(str(DeliveryStatus.PENDING), String),
                literal(0, Integer),
                literal(now, UtcDateTime),
                literal(now, UtcDateTime),
                literal(False, Boolean),
            ).where(_recipient_filter(json.loads(row.categories), confirmed_before=now))
            columns = [
                "issue_id",
                "subscriber_id",
                "status",
                "attempt",
                "next_attempt_at",
                "updated_at",
                "resent",
            ]
            stmt = self.insert(deliveries).from_select(columns, source).on_conflict_do_nothing()
            conn.execute(stmt)
            # rowcount of INSERT ... SELECT is -1 on psycopg; the rows are all new here.
            count = select(func.count()).where(deliveries.c.issue_id == issue_id)
            added = conn.execute(count).scalar_one()
            conn.execute(
                update(issues)
                .where(issues.c.id == issue_id)
                .values(snapshot_at=now, status=IssueStatus.SENDING)
            )
            return int(added)

        return self.run(work)

    def open_issues(self) -> list[IssueSummary]:
        """Issues not done yet, oldest first, without their bodies (cheap to poll)."""
        query = (
            select(issues.c.id, issues.c.key, issues.c.status, issues.c.pause_reason)
            .where(issues.c.status != IssueStatus.DONE)
            .order_by(issues.c.id)
        )

        def work(conn: Connection) -> list[IssueSummary]:
            return [
                IssueSummary(r.id, r.key, IssueStatus(r.status), r.pause_reason)
                for r in conn.execute(query)
            ]

        return self.run(work, write=False)

    def issue_count(self) -> int:
        query = select(func.count()).select_from(issues)
        return self.run(lambda c: int(c.execute(query).scalar_one()), write=False)


def _issue(row: Any) -> Issue:
    return Issue(
        id=row["id"],
        key=row["key"],
        post_slugs=tuple(json.loads(row["post_slugs"])),
        categories=tuple(json.loads(row["categories"])),
        subject=row["subject"],
        preheader=row["preheader"],
        html=row["html"],
        text=row["text"],
        digest=row["digest"],
        status=IssueStatus(row["status"]),
        pause_reason=row["pause_reason"],
        created_at=row["created_at"],
        snapshot_at=row["snapshot_at"],
        finished_at=row["finished_at"],
    )
