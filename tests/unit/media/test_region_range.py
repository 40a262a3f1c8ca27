"""The RTP range a media worker uses and the one the allow-list publishes for its media
region are one fact: the worker takes it from the regions file, and refuses a range outside."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.media.main import Media
from services.media.settings import MediaSettings

REGIONS = """
version: 1
defaults:
  rtp_ports: {start: 10000, end: 20000}
signaling_regions:
  - {code: us1, name: Virginia, failover: [], gateways: [192.0.2.10], media_regions: [iad1]}
media_regions:
  - {code: iad1, name: Ashburn, ranges: [198.51.100.16/28], rtp_ports: {start: 40000, end: 41000}}
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in [k for k in os.environ if k.startswith("SWITCHBOARD_")]:
        monkeypatch.delenv(k)


def test_a_worker_takes_its_media_regions_range_from_the_regions_file(tmp_path: Path) -> None:
    f = tmp_path / "regions.yaml"
    f.write_text(REGIONS)
    s = MediaSettings(public_address="198.51.100.17", regions_file=f)
    assert s.apply_region_range() is None
    assert (s.port_min, s.port_max) == (40000, 41000)
    # A worker on loopback (development) gets its signaling region's media region's range.
    s = MediaSettings(regions_file=f)
    assert s.apply_region_range() is None and (s.port_min, s.port_max) == (40000, 41000)
    # The shipped file: São Paulo's media region publishes 10000-30000, the default 10000-20000.
    s = MediaSettings(region="br1", public_address="198.51.100.50")
    assert s.apply_region_range() is None and (s.port_min, s.port_max) == (10000, 30000)
    s = MediaSettings()
    assert s.apply_region_range() is None and (s.port_min, s.port_max) == (10000, 20000)


def test_a_worker_configured_outside_its_published_range_refuses_naming_both(tmp_path: Path) -> None:
    f = tmp_path / "regions.yaml"
    f.write_text(REGIONS)
    s = MediaSettings(public_address="198.51.100.17", regions_file=f, port_min=30000, port_max=30100)
    problem = s.apply_region_range()
    assert problem is not None and "30000-30100" in problem and "40000-41000" in problem and "iad1" in problem
    with pytest.raises(SystemExit) as exc:
        Media(None, MediaSettings(public_address="198.51.100.17", regions_file=f,  # type: ignore[arg-type]
                                  port_min=30000, port_max=30100))
    assert "40000-41000" in str(exc.value)
    # Inside it (a part of the range, say one of two workers on a host): fine.
    s = MediaSettings(public_address="198.51.100.17", regions_file=f, port_min=40000, port_max=40500)
    assert s.apply_region_range() is None and (s.port_min, s.port_max) == (40000, 40500)
    # An address the allow-list does not publish is not bound by it (a test's loopback worker).
    s = MediaSettings(regions_file=f, port_min=21000, port_max=21998)
    assert s.apply_region_range() is None


def test_the_media_process_refuses_to_start_before_connecting_anywhere(tmp_path: Path) -> None:
    f = tmp_path / "regions.yaml"
    f.write_text(REGIONS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")} | {
        "SWITCHBOARD_PUBLIC_ADDRESS": "198.51.100.17", "SWITCHBOARD_REGIONS_FILE": str(f),
        "SWITCHBOARD_PORT_MIN": "10000", "SWITCHBOARD_PORT_MAX": "20000",
        "SWITCHBOARD_NATS_URL": "nats://127.0.0.1:1"}
    r = subprocess.run([sys.executable, "-m", "services.media"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "10000-20000" in r.stderr and "40000-41000" in r.stderr and "Traceback" not in r.stderr
