"""What the API needs from the process, gathered so tests can build an app without NATS."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from proto import subjects
from proto.messages import ConfigChanged, ConfigEntity, RegistryQuery, RegistryReply
from services.common.bus import Bus

from ..secrets import SecretBox
from ..settings import ConfigSettings

log = logging.getLogger("switchboard.config.api")

RegistryCall = Callable[[str, dict[str, Any]], Awaitable[RegistryReply]]
Op = Literal["created", "updated", "deleted"]


@dataclass
class AppContext:
    settings: ConfigSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker  # type: ignore[type-arg]
    secrets: SecretBox
    bus: Bus | None = None
    registry_call: RegistryCall | None = None
    """Overrides the bus request to the registry (tests); None uses the bus."""
    local_listeners: list[Callable[[ConfigChanged], Awaitable[None]]] = field(default_factory=list)
    """Told of every write of this process directly (e.g. its own resolver), in addition to the bus."""
    ready_checks: dict[str, Callable[[], bool]] = field(default_factory=dict)
    on_webhooks_queued: Callable[[], None] | None = None
    """Wakes this instance's webhook delivery worker after the API queued a delivery."""

    async def changed(self, entity: ConfigEntity, id: str, account_id: str | None, op: Op) -> None:
        """Announce a committed write. Never raises: the write is done; a lost event is
        repaired by the resolvers' periodic full reload."""
        ev = ConfigChanged(entity=entity, id=id, account_id=account_id, op=op)
        for listener in self.local_listeners:
            try:
                await listener(ev)
            except Exception:
                log.exception("local change listener failed")
        if self.bus is not None:
            try:
                await self.bus.publish(subjects.config_changed(entity), ev)
            except Exception as e:
                log.warning("could not publish %s change of %s: %s", entity, id, e)

    async def registry(self, verb: str, params: dict[str, Any]) -> RegistryReply:
        if self.registry_call is not None:
            return await self.registry_call(verb, params)
        if self.bus is None:
            from services.common.errors import NoResponders

            raise NoResponders(subjects.registry_query(verb))
        return await self.bus.request(
            subjects.registry_query(verb), RegistryQuery(params=params), RegistryReply,
            timeout=self.settings.registry_timeout,
        )
