from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.common.settings import CommonSettings


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_NATS_URL", "nats://10.0.0.9:4222")
    monkeypatch.setenv("SWITCHBOARD_REGION", "us2")
    monkeypatch.setenv("SWITCHBOARD_LOG_JSON", "1")
    s = CommonSettings()
    assert (s.nats_url, s.region, s.log_json) == ("nats://10.0.0.9:4222", "us2", True)


def test_defaults() -> None:
    s = CommonSettings()
    assert s.region == "us1" and s.node_id


def test_region_must_be_a_subject_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The region becomes part of subjects (media.<region>.allocate): no dots or wildcards."""
    monkeypatch.setenv("SWITCHBOARD_REGION", "us1.>")
    with pytest.raises(ValidationError):
        CommonSettings()
