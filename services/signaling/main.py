"""The signaling service process: the SIP listeners and the B2BUA."""

from __future__ import annotations

from proto.messages import Heartbeat
from services.common.bus import Bus
from services.common.service import Component, run
from services.common.settings import load

from .b2bua.b2bua import B2BUA
from .health import HealthPinger
from .settings import SignalingSettings


class Signaling(Component[SignalingSettings]):
    service = "signaling"

    def __init__(self, bus: Bus, settings: SignalingSettings) -> None:
        super().__init__(bus, settings)
        self.b2bua = B2BUA(bus, settings, self.loop_lag)
        self.pinger = HealthPinger(bus, self.b2bua.endpoint, settings)

    async def start(self) -> None:
        try:
            await self.b2bua.start()
        except OSError as e:
            raise SystemExit(f"signaling: cannot listen on SIP port: {e.strerror or e}") from None
        self.pinger.start()

    async def drain(self) -> None:
        await self.b2bua.drain()

    async def stop(self) -> None:
        await self.pinger.stop()
        await self.b2bua.stop()

    def heartbeat(self) -> Heartbeat:
        hb = super().heartbeat()
        hb.capacity = self.settings.max_calls
        hb.load = len(self.b2bua.calls)
        return hb


def main() -> None:
    run("signaling", load(SignalingSettings), lambda bus, s: Signaling(bus, s))
