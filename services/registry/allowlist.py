"""The allow-list customers paste into their firewalls, rendered from the topology.

Pure functions of a `Topology`: the same file always gives the same text, and nothing
here knows about live nodes (a customer allows a whole region, not the nodes up today).

Firewall rules (nftables, iptables) are for the *customer's* input chain, accepting what
Switchboard sends them:

- signaling: from our gateway addresses to the SIP ports (5060 UDP/TCP, 5061 TLS) their
  SIP client listens on — the standard ports, the same ones our gateways use;
- media: from our media ranges, from our RTP port range (we send symmetric RTP from the
  port we allocated, RFC 4961), UDP.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .topology import IPNetwork, Topology

FORMATS = ("json", "csv", "nftables", "iptables")
CONTENT_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "nftables": "text/plain; charset=utf-8",
    "iptables": "text/plain; charset=utf-8",
}
NFT_TABLE = "switchboard_allow"
IPT_CHAIN = "SWITCHBOARD"


@dataclass(frozen=True)
class Entry:
    """One allowed (address range, protocol, ports) of one region."""

    kind: Literal["signaling", "media"]
    region: str
    region_name: str
    network: IPNetwork
    protocol: Literal["udp", "tcp", "tls"]
    port_start: int
    port_end: int

    @property
    def ports(self) -> str:
        return str(self.port_start) if self.port_start == self.port_end else f"{self.port_start}-{self.port_end}"

    @property
    def address(self) -> str:
        """A gateway is shown as a bare address, a range in CIDR form."""
        net = self.network
        return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _host(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> IPNetwork:
    return ipaddress.ip_network(ip)


def entries(topo: Topology) -> list[Entry]:
    """Every allowed range, signaling regions first, in file order."""
    out: list[Entry] = []
    for sr in topo.signaling_regions:
        for p in topo.sip_ports(sr):
            for gw in sr.gateways:
                out.append(Entry("signaling", sr.code, sr.name, _host(gw), p.protocol, p.port, p.port))
    for mr in topo.media_regions:
        ports = topo.rtp_ports(mr)
        for net in mr.ranges:
            out.append(Entry("media", mr.code, mr.name, net, "udp", ports.start, ports.end))
    return out


def to_json(topo: Topology) -> dict[str, Any]:
    serves: dict[str, list[str]] = {}
    for sr in topo.signaling_regions:
        for m in sr.media_regions:
            serves.setdefault(m, []).append(sr.code)
    return {
        "signaling": [
            {
                "region": sr.code,
                "name": sr.name,
                "addresses": [str(a) for a in sr.gateways],
                "ports": [{"port": p.port, "protocol": p.protocol} for p in topo.sip_ports(sr)],
            }
            for sr in topo.signaling_regions
        ],
        "media": [
            {
                "region": mr.code,
                "name": mr.name,
                "serves": serves.get(mr.code, []),
                "ranges": [str(n) for n in mr.ranges],
                "protocol": "udp",
                "ports": {"start": topo.rtp_ports(mr).start, "end": topo.rtp_ports(mr).end},
            }
            for mr in topo.media_regions
        ],
    }


def to_csv(topo: Topology) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["kind", "region", "region_name", "address", "protocol", "ports"])
    for e in entries(topo):
        w.writerow([e.kind, e.region, e.region_name, e.address, e.protocol, e.ports])
    return buf.getvalue()


def _groups(topo: Topology) -> Iterable[tuple[str, list[Entry]]]:
    """Entries grouped by (kind, region, protocol, ports), keeping file order."""
    groups: dict[tuple[str, str, str, str], list[Entry]] = {}
    for e in entries(topo):
        groups.setdefault((e.kind, e.region, e.protocol, e.ports), []).append(e)
    for (kind, region, _proto, _ports), es in groups.items():
        yield f"{region} {es[0].region_name}: {kind}", es


def _ip_proto(e: Entry) -> str:
    return "udp" if e.protocol == "udp" else "tcp"


def _header(topo: Topology, tool: str) -> list[str]:
    regions = ", ".join(r.code for r in topo.signaling_regions)
    return [
        f"# Switchboard allow-list ({tool}), generated from the regions topology.",
        f"# Signaling regions: {regions}.",
        "# Accepts SIP from our gateways to your SIP ports (5060 UDP/TCP, 5061 TLS) and RTP from",
        "# our media ranges and RTP ports. Generated: edit the topology, not this output.",
    ]


def to_nftables(topo: Topology) -> str:
    lines = ["#!/usr/sbin/nft -f", *_header(topo, "nftables")]
    # Re-loadable: create the table if missing, drop it, then define it afresh.
    lines += [f"table inet {NFT_TABLE}", f"delete table inet {NFT_TABLE}", "", f"table inet {NFT_TABLE} {{"]
    lines += ["\tchain input {", "\t\ttype filter hook input priority filter; policy accept;"]
    for title, es in _groups(topo):
        lines.append(f"\t\t# {title} ({es[0].protocol} {es[0].ports})")
        for family, match in (("ip", 4), ("ip6", 6)):
            nets = [e.address for e in es if e.network.version == match]
            if not nets:
                continue
            e = es[0]
            direction = "sport" if e.kind == "media" else "dport"
            lines.append(
                f"\t\t{family} saddr {{ {', '.join(nets)} }} {_ip_proto(e)} {direction} {e.ports} accept"
            )
    lines += ["\t}", "}", ""]
    return "\n".join(lines)


def to_iptables(topo: Topology) -> str:
    lines = ["#!/bin/sh", *_header(topo, "iptables/ip6tables"), "set -e"]
    for tool in ("iptables", "ip6tables"):
        lines += [f"{tool} -N {IPT_CHAIN} 2>/dev/null || {tool} -F {IPT_CHAIN}"]
    for title, es in _groups(topo):
        lines.append(f"# {title} ({es[0].protocol} {es[0].ports})")
        for e in es:
            tool = "iptables" if e.network.version == 4 else "ip6tables"
            direction = "--sport" if e.kind == "media" else "--dport"
            ports = e.ports.replace("-", ":")
            lines.append(
                f"{tool} -A {IPT_CHAIN} -s {e.network} -p {_ip_proto(e)} {direction} {ports} -j ACCEPT"
            )
    for tool in ("iptables", "ip6tables"):
        lines.append(f"{tool} -C INPUT -j {IPT_CHAIN} 2>/dev/null || {tool} -I INPUT -j {IPT_CHAIN}")
    return "\n".join(lines) + "\n"


def render(topo: Topology, fmt: str) -> tuple[str, Any]:
    """(content type, body): a dict for json, text for the others. ValueError if unknown."""
    if fmt == "json":
        return CONTENT_TYPES[fmt], to_json(topo)
    if fmt == "csv":
        return CONTENT_TYPES[fmt], to_csv(topo)
    if fmt == "nftables":
        return CONTENT_TYPES[fmt], to_nftables(topo)
    if fmt == "iptables":
        return CONTENT_TYPES[fmt], to_iptables(topo)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def example_markdown(topo: Topology) -> str:
    """`docs/allowlist-example.md`: the nftables allow-list of the shipped topology
    (regenerate with `python -m services.registry.allowlist > docs/allowlist-example.md`)."""
    return "\n".join([
        "# Allow-list example (nftables)",
        "",
        "Customers allow Switchboard's signaling and media addresses through their firewall.",
        "The registry renders the list from its topology file; the public API serves it at",
        "`GET /v1/allowlist?format=json|csv|nftables|iptables`. Below is the nftables rendering",
        "of the topology shipped with the project (`services/registry/regions.yaml`, which uses",
        "documentation address ranges only: RFC 5737 and RFC 3849). Your deployment's list comes",
        "from your own regions file.",
        "",
        "Signaling: our gateways send SIP to your SIP client on 5060 (UDP, TCP) and 5061 (TLS).",
        "Media: our media ranges send RTP/RTCP (UDP) from their RTP port range (10000–20000",
        "unless a region says otherwise). Check it with `nft -c -f allowlist.nft`; load it with",
        "`nft -f allowlist.nft`.",
        "",
        "Generated by `python -m services.registry.allowlist`; a test fails when it is stale.",
        "",
        "```nft",
        to_nftables(topo).rstrip("\n"),
        "```",
        "",
    ])


if __name__ == "__main__":
    import sys

    from .topology import load

    sys.stdout.write(example_markdown(load(sys.argv[1] if len(sys.argv) > 1 else None)))
