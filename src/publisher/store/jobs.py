"""Scheduler jobs: leases, back-off and consecutive failures (G5).

A job's consecutive failures are kept in ``settings`` under ``job_failures:<name>``
so back-off survives restarts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    or_,
    select,
)

from publisher.store.leases import claim_rows, held_by, held_expired, settle
from publisher.store.model import JobState
from publisher.store.schema import jobs, settings
from publisher.store.settings import Settings


class Jobs(Settings):
    """Scheduler jobs: leases, back-off and consecutive failures (G5)."""

    def claim_job(
        self, name: str, worker: str, lease: timedelta, *, ignore_backoff: bool = False
    ) -> bool:
        """Take the lease on job ``name`` unless another live worker holds it, and only
        once its ``next_run_at`` (back-off after a failure) has come (G5).

        One ``UPDATE``: two schedulers can never both take a job (G4, G6).
        """
        now = self.clock()
        due = or_(jobs.c.next_run_at.is_(None), jobs.c.next_run_at <= now)

        def work(conn: Connection) -> bool:
            conn.execute(self.insert(jobs).values(name=name).on_conflict_do_nothing())
            # A job's expired lease is free again: the lease is its holder's liveness.
            free = or_(
                jobs.c.claimed_by.is_(None), jobs.c.claimed_by == worker, held_expired(jobs, now)
            )
            claimable = and_(jobs.c.name == name, free, *(() if ignore_backoff else (due,)))
            values = {"claimed_by": worker, "lease_until": now + lease}
            rows = claim_rows(
                conn, jobs, claimable, values, limit=1, key=jobs.c.name, skip_locked=False
            )
            return bool(rows)

        return self.run(work)

    def finish_job(
        self, name: str, worker: str, *, error: str | None, next_run_at: datetime | None
    ) -> int:
        """Release job ``name`` and record this run; returns its consecutive failures.

        Does nothing (returns -1) when ``worker`` no longer holds the job.
        """
        key = f"job_failures:{name}"

        def work(conn: Connection) -> int:
            ran = {"last_run_at": self.clock(), "last_error": error, "next_run_at": next_run_at}
            if not settle(conn, jobs, jobs.c.name == name, *held_by(jobs, worker), **ran):
                return -1
            before = conn.execute(select(settings.c.value).where(settings.c.key == key))
            failures = 0 if error is None else int(before.scalar_one_or_none() or 0) + 1
            self.upsert_setting(conn, key, str(failures))
            return failures

        return self.run(work)

    def release_job(self, name: str, claimed_by: str) -> bool:
        """Free job ``name`` if ``claimed_by`` still holds it (a claimer known to be dead)."""
        return self.run(
            lambda c: bool(settle(c, jobs, jobs.c.name == name, *held_by(jobs, claimed_by)))
        )

    def job_states(self) -> list[JobState]:
        """Every job row with its consecutive failures, by name."""

        def work(conn: Connection) -> list[JobState]:
            counts = conn.execute(
                select(settings.c.key, settings.c.value).where(
                    settings.c.key.like("job\\_failures:%", escape="\\")
                )
            )
            failures = {k.partition(":")[2]: int(v) for k, v in counts}
            rows = conn.execute(select(jobs).order_by(jobs.c.name)).mappings()
            return [_job_state(r, failures.get(r["name"], 0)) for r in rows]

        return self.run(work, write=False)


def _job_state(row: Any, failures: int) -> JobState:
    return JobState(
        name=row["name"],
        claimed_by=row["claimed_by"],
        lease_until=row["lease_until"],
        last_run_at=row["last_run_at"],
        last_error=row["last_error"],
        next_run_at=row["next_run_at"],
        failures=failures,
    )
