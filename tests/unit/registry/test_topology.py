"""The regions file: the shipped one is complete and uses documentation ranges only; a
malformed one fails with file, line and field."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from services.registry import topology
from services.registry.errors import TopologyError
from services.registry.settings import RegistrySettings

SHIPPED = topology.SHIPPED_FILE.read_text()
DOC_V4 = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
DOC_V6 = ipaddress.ip_network("2001:db8::/32")


def _is_doc(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if net.version == 6:
        return net.subnet_of(DOC_V6)
    return any(net.subnet_of(d) for d in DOC_V4)


def test_shipped_file_has_every_region() -> None:
    topo = topology.load()
    assert {r.code: r.name for r in topo.signaling_regions} == {
        "us1": "North America Virginia", "us2": "North America Oregon", "ie1": "Europe Ireland",
        "de1": "Europe Frankfurt", "jp1": "Asia Pacific Tokyo", "sg1": "Asia Pacific Singapore",
        "au1": "Asia Pacific Sydney", "br1": "South America São Paulo",
    }
    assert {r.name for r in topo.media_regions} == {
        "San Jose", "Ashburn", "Frankfurt", "São Paulo", "Sydney", "Singapore", "Mumbai"}
    assert topo.signaling["us1"].failover[0] == "us2"
    for r in topo.signaling_regions:
        assert r.failover, f"{r.code} has no failover order"
        assert r.media_regions, f"{r.code} has no media region"
    assert topo.carrier_trunks


def test_shipped_file_uses_documentation_ranges_only() -> None:
    topo = topology.load()
    for r in topo.signaling_regions:
        for gw in r.gateways:
            assert _is_doc(ipaddress.ip_network(gw)), gw
    for m in topo.media_regions:
        for net in m.ranges:
            assert _is_doc(net), net
    for t in topo.carrier_trunks:
        for net in t.networks:
            assert _is_doc(net), net


def test_ports_defaults_and_overrides() -> None:
    topo = topology.load()
    sip = {(p.port, p.protocol) for p in topo.sip_ports(topo.signaling["us1"])}
    assert sip == {(5060, "udp"), (5060, "tcp"), (5061, "tls")}
    rtp = {m.name: (topo.rtp_ports(m).start, topo.rtp_ports(m).end) for m in topo.media_regions}
    assert rtp["Ashburn"] == (10000, 20000)
    assert rtp["Mumbai"] == (16384, 32768)
    assert rtp["São Paulo"] == (10000, 30000)


def test_media_region_of_address() -> None:
    topo = topology.load()
    assert topo.media_region_of("198.51.100.20").name == "Ashburn"
    assert topo.media_region_of("127.0.0.1") is None
    assert topo.media_region_of("not an ip") is None


def test_regions_file_setting(monkeypatch, tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text(SHIPPED.replace("North America Virginia", "Virginia (lab)"))
    monkeypatch.setenv("SWITCHBOARD_REGIONS_FILE", str(f))
    s = RegistrySettings()
    assert topology.load(s.regions_file).signaling["us1"].name == "Virginia (lab)"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "field", "needle", "words"),
    [
        ("192.0.2.21", "192.0.2.321", "signaling_regions[1].gateways[1]", "192.0.2.321", "not an IP address"),
        ("failover: [us2, br1, ie1]", "failover: [us2, xx9, ie1]", "signaling_regions[0].failover[1]",
         "xx9", "unknown signaling region"),
        ("    ranges: [198.51.100.96/28", "    rangez: [198.51.100.96/28", "media_regions[6].rangez",
         "rangez", "unknown field"),
        ("{start: 16384, end: 32768}", "{start: 32768, end: 16384}", "media_regions[6].rtp_ports",
         "32768, end: 16384", "after end"),
        ("203.0.113.32/27", "203.0.113.33/27", "carrier_trunks[1].networks[0]", "203.0.113.33/27",
         "host bits"),
        ("media_regions: [syd1]", "media_regions: [nowhere]", "signaling_regions[6].media_regions[0]",
         "[nowhere]", "unknown media region"),
        ("{port: 5061, protocol: tls}", "{port: 5061, protocol: sctp}", "defaults.sip_ports[2].protocol",
         "sctp", "udp"),
    ],
)
def test_malformed_file_names_file_line_and_field(tmp_path: Path, old, new, field, needle, words) -> None:
    assert old in SHIPPED
    text = SHIPPED.replace(old, new, 1)
    f = tmp_path / "regions.yaml"
    f.write_text(text)
    with pytest.raises(TopologyError) as e:
        topology.load(f)
    err = e.value
    assert err.path == str(f)
    assert err.field == field
    assert err.line == _line_of(text, needle)
    assert words in str(err)
    assert f"{f}:{err.line}" in str(err)


def test_duplicate_code_points_at_the_second_one(tmp_path: Path) -> None:
    text = SHIPPED.replace("  - code: de1", "  - code: ie1", 1)
    with pytest.raises(TopologyError) as e:
        topology.parse(text, "r.yaml")
    lines = [i for i, line in enumerate(text.splitlines(), 1) if "code: ie1" in line]
    assert e.value.line == lines[1]


def test_missing_field_points_at_its_mapping(tmp_path: Path) -> None:
    text = SHIPPED.replace("    name: Mumbai\n", "", 1)
    with pytest.raises(TopologyError) as e:
        topology.parse(text, "r.yaml")
    assert e.value.field == "media_regions[6].name"
    assert "required" in e.value.problem
    assert e.value.line == _line_of(text, "code: bom1")


def test_yaml_syntax_error_has_a_line() -> None:
    text = SHIPPED.replace("failover: [us2, br1, ie1]", "failover: [us2, br1, ie1", 1)
    with pytest.raises(TopologyError) as e:
        topology.parse(text, "r.yaml")
    assert e.value.line is not None and "not valid YAML" in str(e.value)


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read"):
        topology.load(tmp_path / "missing.yaml")
    with pytest.raises(TopologyError, match="mapping"):
        topology.parse("- just\n- a list\n", "r.yaml")
    with pytest.raises(TopologyError) as e:
        topology.parse("version: 1\n", "r.yaml")
    assert e.value.field == "signaling_regions"
