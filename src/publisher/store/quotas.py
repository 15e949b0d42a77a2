"""The persisted hourly send budget."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (
    Connection,
    delete,
    func,
    select,
)

from publisher.store.db import Database
from publisher.store.schema import send_counts


class Quotas(Database):
    """The persisted hourly send budget."""

    def reserve_send_slot(self, per_hour: int) -> timedelta:
        """Take one slot of the persisted hourly budget; returns zero, or how long to wait."""
        now = self.clock()
        minute = now.replace(second=0, microsecond=0)
        window_start = minute - timedelta(minutes=59)

        def work(conn: Connection) -> timedelta:
            conn.execute(delete(send_counts).where(send_counts.c.minute < window_start))
            used = conn.execute(select(func.coalesce(func.sum(send_counts.c.count), 0)))
            if int(used.scalar_one()) >= per_hour:
                oldest: datetime = conn.execute(select(func.min(send_counts.c.minute))).scalar_one()
                wait: timedelta = oldest + timedelta(hours=1) - now
                return max(wait, timedelta(seconds=1))
            stmt = self.insert(send_counts).values(minute=minute, count=1)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[send_counts.c.minute],
                    set_={"count": send_counts.c.count + 1},
                )
            )
            return timedelta(0)

        return self.run(work)
