"""The signaling service process."""

from __future__ import annotations

from services.common.service import Component, run

from .settings import SignalingSettings


class Signaling(Component[SignalingSettings]):
    service = "signaling"


def main() -> None:
    run("signaling", SignalingSettings(), lambda bus, s: Signaling(bus, s))


