"""Fixtures of the integration tier shared by several services' tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.helpers.config_env import DB_PARAMS, pg_admin, postgres_url


@pytest.fixture(params=DB_PARAMS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file in tmp_path, or a new PostgreSQL database
    (created from SWITCHBOARD_TEST_POSTGRES_URL, dropped after) so tests never share data."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'cfg.db'}"
        return
    base = postgres_url()
    if not base:
        pytest.skip("SWITCHBOARD_TEST_POSTGRES_URL is not set: PostgreSQL variant skipped (.ci/run sets it)")
    name = f"sbtest_{uuid.uuid4().hex[:12]}"
    try:
        await pg_admin(base, f'CREATE DATABASE "{name}"')
    except Exception as e:  # set but unreachable: a failure, not a skip
        pytest.fail(f"PostgreSQL at {base} is not reachable: {e}")
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    await pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
