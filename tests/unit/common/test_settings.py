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


def test_one_advertise_address_sets_via_contact_sdp_and_the_listeners(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.media.settings import MediaSettings
    from services.signaling.settings import SignalingSettings

    monkeypatch.setenv("SWITCHBOARD_ADVERTISE_ADDRESS", "203.0.113.7")
    sig, media = SignalingSettings(), MediaSettings()
    assert (sig.public_address, sig.sip_host) == ("203.0.113.7", "203.0.113.7")
    assert (media.public_address, media.media_host) == ("203.0.113.7", "203.0.113.7")
    # Behind 1:1 NAT: advertise the public IP, bind the local one.
    monkeypatch.setenv("SWITCHBOARD_MEDIA_HOST", "0.0.0.0")
    monkeypatch.setenv("SWITCHBOARD_SIP_HOST", "10.0.0.5")
    sig, media = SignalingSettings(), MediaSettings()
    assert (sig.public_address, sig.sip_host) == ("203.0.113.7", "10.0.0.5")
    assert (media.public_address, media.media_host) == ("203.0.113.7", "0.0.0.0")
    monkeypatch.setenv("SWITCHBOARD_PUBLIC_ADDRESS", "198.51.100.1")
    assert SignalingSettings().public_address == "198.51.100.1"


def test_without_an_advertise_address_everything_stays_on_loopback() -> None:
    from services.media.settings import MediaSettings
    from services.signaling.settings import SignalingSettings

    sig, media = SignalingSettings(), MediaSettings()
    assert (sig.public_address, sig.sip_host, media.media_host) == ("127.0.0.1", "127.0.0.1", "127.0.0.1")


def test_a_bad_setting_ends_the_service_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.common.settings import load
    from services.signaling.settings import SignalingSettings

    monkeypatch.setenv("SWITCHBOARD_MAX_CALLS", "lots")
    monkeypatch.setenv("SWITCHBOARD_OVERLOAD_RETRY_AFTER", "-5")
    with pytest.raises(SystemExit) as exit_:
        load(SignalingSettings)
    message = str(exit_.value)
    assert message.startswith("bad setting: ")
    assert "SWITCHBOARD_MAX_CALLS: Input should be a valid integer" in message
    assert "SWITCHBOARD_OVERLOAD_RETRY_AFTER: Input should be greater than or equal to 0" in message
