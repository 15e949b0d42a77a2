"""Claims with a lease, and settling a claimed row: one implementation for every queue.

A claim takes up to ``limit`` rows that are due, in key order, and marks them held
(``claimed_by``, ``lease_until``) in the same transaction. SQLite serializes writers
with ``BEGIN IMMEDIATE`` (see ``publisher.store.db``); PostgreSQL locks the rows with
``SELECT ... FOR UPDATE`` (``SKIP LOCKED`` for work queues, so two claimers split the
rows instead of waiting) and the ``UPDATE ... RETURNING`` checks ``due`` again.

What an **expired lease** means is the caller's choice, made in its ``due`` condition
(:func:`held_expired` is the piece that makes it due again):

- deliveries: never due again by expiry; ``Store.recover_expired_leases`` settles them
  in doubt (or pending, when never handed over), because the server may have the
  message (G1);
- confirmation mails and scheduler jobs: due again (at-least-once; a job's lease is
  its liveness).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Table, and_, select, update


def held_expired(table: Table, now: datetime, *held: ColumnElement[bool]) -> ColumnElement[bool]:
    """Rows still held (``held``, e.g. status ``sending``) whose lease ran out before ``now``."""
    return and_(*held, table.c.lease_until < now)


def claim_rows(
    conn: Connection,
    table: Table,
    due: ColumnElement[bool],
    values: Mapping[str, Any],
    *,
    limit: int,
    key: Column[Any] | None = None,
    skip_locked: bool = True,
) -> list[Any]:
    """Take up to ``limit`` ``due`` rows of ``table``; returns the claimed rows (mappings).

    ``values`` is what a claim writes (at least ``claimed_by`` and ``lease_until``).
    ``skip_locked=False`` waits for a row another transaction holds and then checks
    ``due`` again (a single named row, like a scheduler job, is never skipped).
    """
    key = table.c.id if key is None else key
    found = (
        select(key).where(due).order_by(key).limit(limit).with_for_update(skip_locked=skip_locked)
    )
    keys = list(conn.execute(found).scalars())
    if not keys:
        return []
    stmt = update(table).where(key.in_(keys), due).values(**values).returning(*table.c)
    return list(conn.execute(stmt).mappings())


def held_by(
    table: Table, worker: str, *held: ColumnElement[bool]
) -> tuple[ColumnElement[bool], ...]:
    """The row is still ``worker``'s claim (and ``held``, e.g. status ``sending``)."""
    return (table.c.claimed_by == worker, *held)


def settle(conn: Connection, table: Table, *where: ColumnElement[bool], **values: Any) -> int:
    """End the claim on the rows ``where`` selects, writing ``values``; returns how many.

    Only the claim holder settles a row another worker may have taken over: callers pass
    :func:`held_by` in ``where`` (a server's acceptance, which wins over any claim, passes
    its own condition instead).
    """
    stmt = update(table).where(*where).values(claimed_by=None, lease_until=None, **values)
    return int(conn.execute(stmt).rowcount or 0)
