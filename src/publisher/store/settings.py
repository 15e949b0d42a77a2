"""The ``settings`` key/value rows."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Connection,
    select,
)

from publisher.store.db import Database
from publisher.store.schema import settings


class Settings(Database):
    """The ``settings`` key/value rows."""

    def get_setting(self, key: str) -> str | None:
        query = select(settings.c.value).where(settings.c.key == key)
        return self.run(lambda c: c.execute(query).scalar_one_or_none(), write=False)

    def setting_or_create(self, key: str, make: Callable[[], str]) -> str:
        """The stored value of ``key``; when absent, store ``make()`` (first writer wins)."""
        stmt = self.insert(settings).values(key=key, value=make()).on_conflict_do_nothing()

        def work(conn: Connection) -> str:
            conn.execute(stmt)
            return str(conn.execute(select(settings.c.value).where(settings.c.key == key)).one()[0])

        return self.run(work)

    def set_setting(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing any earlier value."""
        self.run(lambda c: self.upsert_setting(c, key, value))

    def upsert_setting(self, conn: Connection, key: str, value: str) -> None:
        """``set_setting`` inside a transaction the caller already holds."""
        stmt = self.insert(settings).values(key=key, value=value)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=[settings.c.key], set_={"value": value})
        )
