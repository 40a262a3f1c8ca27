from __future__ import annotations

from services.common.settings import CommonSettings


class MediaSettings(CommonSettings):
    pass
