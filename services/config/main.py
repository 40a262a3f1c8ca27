"""The config service process."""

from __future__ import annotations

from services.common.service import Component, run

from .settings import ConfigSettings


class Config(Component[ConfigSettings]):
    service = "config"


def main() -> None:
    run("config", ConfigSettings(), lambda bus, s: Config(bus, s))
