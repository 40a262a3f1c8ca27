"""Allow-list rendering, and its consistency with the topology file."""

from __future__ import annotations

import csv
import io
import ipaddress
import re

import pytest

from services.registry import allowlist, topology

TOPO = topology.load()


def file_facts() -> set[tuple[str, str, str, str]]:
    """(region, address, protocol, ports) straight from the YAML, not through Topology."""
    import yaml

    raw = yaml.safe_load(topology.SHIPPED_FILE.read_text())
    defaults = raw["defaults"]
    out = set()
    for r in raw["signaling_regions"]:
        for p in r.get("sip_ports", defaults["sip_ports"]):
            for gw in r["gateways"]:
                out.add((r["code"], str(ipaddress.ip_address(gw)), p["protocol"], str(p["port"])))
    for m in raw["media_regions"]:
        ports = m.get("rtp_ports", defaults["rtp_ports"])
        for net in m["ranges"]:
            out.add((m["code"], str(ipaddress.ip_network(net)), "udp", f"{ports['start']}-{ports['end']}"))
    return out


def test_csv_matches_the_file() -> None:
    rows = list(csv.DictReader(io.StringIO(allowlist.to_csv(TOPO))))
    assert {(r["region"], r["address"], r["protocol"], r["ports"]) for r in rows} == file_facts()
    assert len(rows) == len(file_facts())


def test_json_matches_the_file() -> None:
    data = allowlist.to_json(TOPO)
    facts = set()
    for r in data["signaling"]:
        for a in r["addresses"]:
            for p in r["ports"]:
                facts.add((r["region"], a, p["protocol"], str(p["port"])))
    for m in data["media"]:
        for n in m["ranges"]:
            facts.add((m["region"], n, m["protocol"], f"{m['ports']['start']}-{m['ports']['end']}"))
    assert facts == file_facts()
    ashburn = next(m for m in data["media"] if m["name"] == "Ashburn")
    assert ashburn["serves"] == ["us1"]


def _rules(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_nftables_has_every_fact() -> None:
    text = allowlist.to_nftables(TOPO)
    found = set()
    rule = re.compile(r"^(ip6?) saddr \{ (.+) \} (udp|tcp) (sport|dport) (\S+) accept$")
    comment_region = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("# ") and ":" in s and s[2:].split()[0] in (TOPO.signaling | TOPO.media):
            comment_region = s[2:].split()[0]
            proto = s.rsplit("(", 1)[1].split()[0]
            continue
        mt = rule.match(s)
        if mt:
            for a in mt.group(2).split(", "):
                found.add((comment_region, a, proto, mt.group(5)))
    assert found == file_facts()
    # media is matched on our source ports, signaling on the SIP ports of the customer's side
    assert "udp sport 10000-20000" in text and "tcp dport 5061" in text


def test_iptables_has_every_fact() -> None:
    text = allowlist.to_iptables(TOPO)
    rules = [r for r in _rules(text) if " -A SWITCHBOARD " in r]
    expected = sum(1 for _ in allowlist.entries(TOPO))
    assert len(rules) == expected
    for r in rules:
        tool = r.split()[0]
        net = ipaddress.ip_network(r.split(" -s ")[1].split()[0])
        assert (tool == "iptables") == (net.version == 4)
    assert "--sport 16384:32768" in text and "--dport 5061" in text


def test_render_dispatch() -> None:
    ct, body = allowlist.render(TOPO, "json")
    assert ct == "application/json" and isinstance(body, dict)
    for fmt in ("csv", "nftables", "iptables"):
        ct, body = allowlist.render(TOPO, fmt)
        assert ct.startswith("text/") and isinstance(body, str)
    with pytest.raises(ValueError, match="unknown format"):
        allowlist.render(TOPO, "pf")


def test_rendering_is_deterministic() -> None:
    assert allowlist.to_nftables(TOPO) == allowlist.to_nftables(topology.load())
