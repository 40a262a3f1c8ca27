"""Fixtures of the config service's integration tests (the helpers are in
tests/helpers/config_env.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers.config_env import Env, make_env


@pytest.fixture
async def env(tmp_path: Path, db_url: str) -> AsyncIterator[Env]:
    e, close = await make_env(tmp_path, db_url, resolver=True, registry="fake")
    yield e
    await close()
