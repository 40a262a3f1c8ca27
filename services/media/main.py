"""The media service process."""

from __future__ import annotations

from services.common.service import Component, run

from .settings import MediaSettings


class Media(Component[MediaSettings]):
    service = "media"


def main() -> None:
    run("media", MediaSettings(), lambda bus, s: Media(bus, s))
