"""Shared fixtures. Builders live in tests/builders.py."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sending import close_stores
from smtp_sink import SmtpSink, TlsFiles, make_certificate, running_sink

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --- newsletter delivery: SMTP sink and databases -------------------------------------------

PG_ADMIN = os.environ.get(
    "PUBLISHER_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    """Dispose of every store tests opened with sending.open_store (no leaked connections)."""
    yield
    close_stores()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A scripted aiosmtpd server on 127.0.0.1 (see tests/smtp_sink.py)."""
    yield from running_sink()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway self-signed certificate for 127.0.0.1."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_tls_sink(tls_files: TlsFiles) -> Iterator[SmtpSink]:
    """A sink that requires STARTTLS and offers AUTH (``sink.accept_login = False`` answers 535)."""
    yield from running_sink(tls_files, auth=True)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database for this test run, created via the maintenance DB and dropped at the end.

    Unreachable PostgreSQL skips the PostgreSQL tests locally and fails them in CI.
    """
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL unreachable ({PG_ADMIN}): {exc}".strip()
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    name = f"publisher_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    info = admin.info
    try:
        yield f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: a SQLite file, or a new schema in the run's PG database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'publisher.db'}"
    base: str = request.getfixturevalue("postgres_database")
    schema = f"t_{secrets.token_hex(5)}"
    with psycopg.connect(base.replace("+psycopg", "")) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{base}?options=-csearch_path%3D{schema}"
