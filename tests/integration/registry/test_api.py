"""The registry's API verbs over the bus: allow-list (nftables checked by `nft`), trunks,
trunk check, and bad heartbeats."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess

import pytest

from proto import subjects
from proto.messages import Heartbeat, RegistryQuery, RegistryReply, TrunkCheck, TrunkCheckResult
from services.common.errors import RemoteError
from services.registry import topology


async def _query(bus, verb: str, **params) -> RegistryReply:
    return await bus.request(subjects.registry_query(verb), RegistryQuery(params=params), RegistryReply,
                             timeout=3.0)


async def test_nftables_allowlist_loads_in_nft_check(rig, tmp_path) -> None:
    nft = shutil.which("nft")
    if nft is None:
        pytest.skip("`nft` (nftables) is not installed: cannot check the nftables allow-list")
    await rig.registry()
    bus = await rig.connect("client")
    r = await _query(bus, "allowlist", format="nftables")
    assert r.status == 200 and r.content_type.startswith("text/plain") and r.text
    path = tmp_path / "allowlist.nft"
    path.write_text(r.text)
    proc = subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr:
        pytest.skip(f"`nft -c` needs CAP_NET_ADMIN here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    # And it is the shipped topology's list: every gateway and media range is in it.
    topo = topology.load()
    for sr in topo.signaling_regions:
        for gw in sr.gateways:
            assert str(gw) in r.text
    for mr in topo.media_regions:
        for net in mr.ranges:
            assert str(net) in r.text
        assert str(topo.rtp_ports(mr)) in r.text


async def test_allowlist_formats_and_bad_format(rig) -> None:
    await rig.registry()
    bus = await rig.connect("client")
    js = await _query(bus, "allowlist")
    assert js.status == 200 and js.content_type == "application/json"
    assert {r["region"] for r in js.data["signaling"]} >= {"us1", "us2", "br1"}
    csv = await _query(bus, "allowlist", format="csv")
    assert csv.text.startswith("kind,region,") and csv.content_type.startswith("text/csv")
    ipt = await _query(bus, "allowlist", format="iptables")
    assert "iptables -A SWITCHBOARD" in ipt.text
    bad = await _query(bus, "allowlist", format="pf")
    assert bad.status == 422 and bad.data["field"] == "format"


async def test_trunks_validation_and_unknown(rig) -> None:
    await rig.registry()
    bus = await rig.connect("admin")
    r = await _query(bus, "trunks_add", name="c", networks=["198.51.100.0/24", "nope/99"])
    assert r.status == 422 and r.data["field"] == "networks[1]"
    r = await _query(bus, "trunks_add", name="", networks=["198.51.100.0/24"])
    assert r.status == 422 and r.data["field"] == "name"
    r = await _query(bus, "trunks_add", name="example-carrier-east", networks=["198.51.100.0/24"])
    assert r.status == 409
    assert (await _query(bus, "trunks_delete", id="0123456789abcdef")).status == 404
    assert (await _query(bus, "trunks_delete", id="file-0")).status == 409
    listed = await _query(bus, "trunks_list")
    assert {t["source"] for t in listed.data} == {"file"}


async def test_trunk_check(rig) -> None:
    await rig.registry()
    bus = await rig.connect("signaling")

    async def check(address: str) -> TrunkCheckResult:
        return await bus.request(subjects.registry_trunk_check(), TrunkCheck(address=address), TrunkCheckResult)

    assert (await check("203.0.113.7:5060")).trunk == "example-carrier-east"
    assert (await check("[2001:db8:201::9]:5061")).trunk == "example-carrier-eu"
    assert not (await check("127.0.0.1:5060")).allowed
    with pytest.raises(RemoteError) as e:
        await check("not-an-ip")
    assert e.value.code == 400


async def test_local_mode_loopback_is_a_trunk(rig) -> None:
    await rig.registry(local_mode=True)
    bus = await rig.connect("signaling")
    for address in ("127.0.0.1:5060", "[::1]:5060"):
        r = await bus.request(subjects.registry_trunk_check(), TrunkCheck(address=address), TrunkCheckResult)
        assert r.allowed, address


async def test_bad_heartbeats_are_rejected_and_logged(rig, caplog) -> None:
    reg = await rig.registry()
    bus = await rig.connect("liar")
    caplog.set_level(logging.WARNING, logger="switchboard.registry")
    good = Heartbeat(service="signaling", node_id="n1", region="us1", interval=0.2)
    bad = [
        (subjects.heartbeat("signaling", "zz9", "n1"), good.model_copy(update={"region": "zz9"})),
        (subjects.heartbeat("signaling", "us1", "n2"), good),  # subject and body disagree
        (subjects.heartbeat("signaling", "us1", "n1"), good.model_copy(update={"interval": -1})),
        (subjects.heartbeat("media", "us1", "n1"), good.model_copy(update={"service": "media", "load": -3})),
        (subjects.heartbeat("signaling", "us1", "n1"), good.model_copy(update={"addresses": ["a b;c"]})),
    ]
    for subject, hb in bad:
        await bus.publish(subject, hb)
    await bus.nc.publish(subjects.heartbeat("signaling", "us1", "n3"), b"{not json")
    await bus.nc.flush()

    async def all_logged():
        return len([r for r in caplog.records if "rejected heartbeat" in r.getMessage()]) >= len(bad) + 1

    await rig.eventually(all_logged, "every bad heartbeat logged")
    assert not reg.membership.nodes
    # A good one after them is stored: the subscription survived.
    await bus.publish(subjects.heartbeat("signaling", "us1", "n1"), good)

    async def stored():
        return ("signaling", "n1") in reg.membership.nodes

    await rig.eventually(stored, "good heartbeat stored")
    await asyncio.sleep(0)
