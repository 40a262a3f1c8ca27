"""The life of one service process: connect, register, heartbeat, serve, drain, stop.

Each service provides a `Component`; `run_service` does the rest the same way for all four,
so every process answers `$SRV.PING/INFO/STATS` (nats.micro), heartbeats to the registry
and exits cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Generic, TypeVar

from nats import micro

from proto import subjects
from proto.messages import Heartbeat, ServiceName

from .bus import Bus
from .logging import setup_logging
from .looplag import LoopLag
from .metrics import start_metrics_server
from .settings import CommonSettings

log = logging.getLogger("switchboard.service")

VERSION = "0.1.0"

S = TypeVar("S", bound=CommonSettings)


class Component(Generic[S]):
    """What a service plugs into `run_service`. Override what applies."""

    service: ServiceName

    def __init__(self, bus: Bus, settings: S) -> None:
        self.bus = bus
        self.settings = settings
        self.loop_lag = LoopLag()
        """Started by `serve`; the component may refuse work by it, and its heartbeat reports it."""

    async def start(self) -> None:
        """Subscribe, bind sockets. Raise to abort start-up with a clear message."""

    async def drain(self) -> None:
        """Stop taking new work; return when work in progress is done (bounded by the caller)."""

    async def stop(self) -> None:
        """Release everything."""

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(
            service=self.service,
            node_id=self.settings.node_id,
            region=self.settings.region,
            addresses=[self.settings.public_address],
            interval=self.settings.heartbeat_interval,
            version=VERSION,
            lag=round(self.loop_lag.lag, 4),
        )


async def connect_bus(settings: CommonSettings, name: str, *, wait: float = 30.0) -> Bus:
    """Connect, retrying while the NATS server comes up (e.g. under `switchboard up`)."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            return await Bus.connect(settings.nats_url, f"{name}-{settings.node_id}")
        except Exception as e:
            if asyncio.get_running_loop().time() > deadline:
                raise SystemExit(f"{name}: cannot reach NATS at {settings.nats_url}: {e}") from e
            await asyncio.sleep(0.5)


async def serve(
    name: ServiceName, settings: S, factory: Callable[[Bus, S], Component[S]], *, stop: asyncio.Event | None = None
) -> None:
    bus = await connect_bus(settings, name)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass

    start_metrics_server(settings.metrics_port, settings.metrics_host)
    component = factory(bus, settings)
    component.loop_lag.start()
    try:
        await component.start()
    except Exception:
        await component.stop()
        await component.loop_lag.stop()
        await bus.close()
        raise
    svc = await micro.add_service(
        bus.nc,
        name=subjects.micro_name(name),
        version=VERSION,
        description=f"Switchboard {name} service",
        metadata={"region": settings.region, "node": settings.node_id},
    )

    async def beat() -> None:
        while True:
            try:
                hb = component.heartbeat()
                await bus.publish(subjects.heartbeat(name, settings.region, settings.node_id), hb)
            except Exception as e:  # NATS down: keep trying, the registry judges
                log.debug("heartbeat not sent: %s", e)
            await asyncio.sleep(settings.heartbeat_interval)

    beater = asyncio.create_task(beat())
    log.info("%s started (node %s, region %s)", name, settings.node_id, settings.region)
    await stop.wait()
    log.info("%s stopping", name)
    beater.cancel()
    try:
        await asyncio.wait_for(component.drain(), settings.shutdown_grace)
    except TimeoutError:
        log.warning("%s: drain deadline reached, stopping with work in progress", name)
    await component.stop()
    await component.loop_lag.stop()
    try:  # goodbye: the registry forgets this node now, not after missed heartbeats
        hb = component.heartbeat()
        hb.leaving = True
        await bus.publish(subjects.heartbeat(name, settings.region, settings.node_id), hb)
    except Exception as e:  # NATS gone: the registry will notice the silence instead
        log.debug("goodbye not sent: %s", e)
    try:
        await asyncio.wait_for(svc.stop(), 2)
    except Exception:  # NATS gone: nothing left to unregister from
        pass
    await bus.close()
    log.info("%s stopped", name)


def run(name: ServiceName, settings: S, factory: Callable[[Bus, S], Component[S]]) -> None:
    """Entry point of `python -m services.<name>`."""
    setup_logging(name, settings.node_id, json_lines=settings.log_json, level=settings.log_level)
    try:
        import uvloop

        uvloop.run(serve(name, settings, factory))
    except ImportError:
        asyncio.run(serve(name, settings, factory))
    except KeyboardInterrupt:
        pass
