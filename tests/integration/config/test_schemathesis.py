"""Property-based run of the OpenAPI document against a real uvicorn: no input gives a 5xx.

Bounded (MAX_EXAMPLES per operation, positive and negative generation) so it fits the
suite. The server runs in its own thread and loop with a SQLite database and a stand-in
registry (so /v1/regions etc. answer instead of 503 "registry unreachable")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error

from services.config.api.app import create_app
from tests.helpers.config_env import LiveApi

ADMIN = "schemathesis-admin"
MAX_EXAMPLES = 30

schema = schemathesis.openapi.from_dict(create_app(None).openapi())  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with LiveApi(tmp_path_factory.mktemp("st"), ADMIN) as api:
        yield api.url


@schema.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None,
                     suppress_health_check=list(hypothesis.HealthCheck), derandomize=True)
def test_no_server_error(case: Any, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN}"},
                           checks=[not_a_server_error], timeout=10)
