from __future__ import annotations

from services.common.settings import CommonSettings


class ConfigSettings(CommonSettings):
    pass
