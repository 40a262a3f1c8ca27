"""The registry service process."""

from __future__ import annotations

from services.common.service import Component, run

from .settings import RegistrySettings


class Registry(Component[RegistrySettings]):
    service = "registry"


def main() -> None:
    run("registry", RegistrySettings(), lambda bus, s: Registry(bus, s))
