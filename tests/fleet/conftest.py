"""Fixtures for the fleet's external services: PostgreSQL (and Redis) started by
``scripts/services start``, which writes their URLs to ``$KDX_SERVICES_ENV`` (default
/tmp/kdx-services.env); the environment's own ``KDX_TEST_DATABASE``/``KDX_TEST_REDIS``
win. A test needing a service that is not running skips, saying how to start it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Iterator

import pytest


def service_url(name: str) -> str | None:
    """``KDX_TEST_DATABASE`` or ``KDX_TEST_REDIS``: from the environment, else the file."""
    if os.environ.get(name):
        return os.environ[name]
    path = Path(os.environ.get("KDX_SERVICES_ENV", "/tmp/kdx-services.env"))
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == name and value.strip():
            return value.strip()
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server's URL (its ``kdx`` database is the admin connection)."""
    url = service_url("KDX_TEST_DATABASE")
    if url is None:
        pytest.skip("no PostgreSQL: run scripts/services start (or set KDX_TEST_DATABASE)")
    return url


def _fresh_postgres(url: str) -> Iterator[str]:
    """A new empty database on the server, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "kdx_t_" + secrets.token_hex(6)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:  # noqa: ANN001 (fixtures)
    """An empty database of each kind: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fleet.sqlite3'}"
        return
    yield from _fresh_postgres(request.getfixturevalue("postgres_url"))


@pytest.fixture
def postgres_database(postgres_url) -> Iterator[str]:  # noqa: ANN001 (fixtures)
    """A fresh empty PostgreSQL database, dropped afterwards."""
    yield from _fresh_postgres(postgres_url)
