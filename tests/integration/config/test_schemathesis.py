"""Property-based run of the OpenAPI document against a real uvicorn: no input gives a 5xx.

Bounded (MAX_EXAMPLES per operation, positive and negative generation) so it fits the
suite. The server runs in its own thread and loop with a SQLite database and a stand-in
registry (so /v1/regions etc. answer instead of 503 "registry unreachable")."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import uvicorn
from schemathesis.checks import not_a_server_error

from proto.messages import RegistryReply
from services.common.natsserver import free_port
from services.config.api.app import create_app
from services.config.api.context import AppContext
from services.config.db.engine import make_engine, migrate, sessionmaker
from services.config.secrets import SecretBox, generate_key_spec
from services.config.settings import ConfigSettings

ADMIN = "schemathesis-admin"
MAX_EXAMPLES = 30

schema = schemathesis.openapi.from_dict(create_app(None).openapi())  # type: ignore[arg-type]


class _Quiet(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # older uvicorn
        pass


def _serve(tmp: Path, port: int, ready: threading.Event, stop: list[Any]) -> None:
    async def main() -> None:
        url = f"sqlite+aiosqlite:///{tmp / 'st.db'}"
        engine = make_engine(url)
        await migrate(engine)
        s = ConfigSettings(database_url=url, admin_token=ADMIN, data_dir=tmp, secret_key=generate_key_spec())

        async def registry(verb: str, params: dict[str, Any]) -> RegistryReply:
            return RegistryReply(data={"verb": verb, "params": params})

        ctx = AppContext(settings=s, engine=engine, sessionmaker=sessionmaker(engine),
                         secrets=SecretBox.from_spec(s.secret_key), registry_call=registry)
        server = _Quiet(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, lifespan="off",
                                       log_level="warning"))
        stop.append(server)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        ready.set()
        await task
        await engine.dispose()

    asyncio.run(main())


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    ready = threading.Event()
    stop: list[Any] = []
    t = threading.Thread(target=_serve, args=(tmp_path_factory.mktemp("st"), port, ready, stop), daemon=True)
    t.start()
    assert ready.wait(20), "API server did not start"
    yield f"http://127.0.0.1:{port}"
    stop[0].should_exit = True
    t.join(10)


@schema.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None,
                     suppress_health_check=list(hypothesis.HealthCheck), derandomize=True)
def test_no_server_error(case: Any, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN}"},
                           checks=[not_a_server_error], timeout=10)
