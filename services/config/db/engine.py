"""Engine creation and migrations at start-up (Alembic, driven programmatically)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger("switchboard.config.db")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant; all config instances take this PostgreSQL advisory lock while migrating.
_MIGRATION_LOCK = 0x5B0A_C0F1


def make_engine(url: str, *, null_pool: bool = False, **kw: Any) -> AsyncEngine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            private_file(Path(u.database))
        kw.setdefault("connect_args", {}).setdefault("timeout", 15)
    if null_pool:
        kw["poolclass"] = NullPool
    engine = create_async_engine(u, **kw)
    if u.get_backend_name() == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            # WAL lets readers (the resolver's reloads) run while another instance writes.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=15000")
            cur.close()

    return engine


def private_file(path: Path) -> None:
    """The database holds the sealed secrets and the API key hashes: readable by this user
    only (0600), created so before SQLite opens it (its -wal and -shm files copy the mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    path.chmod(0o600)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:  # type: ignore[type-arg]
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(conn: Connection, revision: str) -> None:
    if conn.dialect.name == "postgresql":
        # Several instances may start together: one migrates, the others wait here.
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
    try:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    finally:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})


async def migrate(engine: AsyncEngine, revision: str = "head", *, attempts: int = 5) -> None:
    """Apply migrations up to `revision`. On SQLite two instances starting together can
    collide; the loser retries and finds the schema current."""
    for attempt in range(attempts):
        try:
            async with engine.connect() as conn:
                await conn.run_sync(_upgrade, revision)
                await conn.commit()
            return
        except Exception as e:
            if attempt == attempts - 1 or engine.dialect.name != "sqlite":
                raise
            log.warning("migration attempt %d failed (%s); retrying", attempt + 1, e)
            await asyncio.sleep(0.2 * (attempt + 1))
