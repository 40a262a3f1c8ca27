"""`switchboard regions` against a running registry."""

from __future__ import annotations

import asyncio
import json

from services.cli.main import build_parser


async def _run(capsys, *argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(["regions", *argv])
    code = await asyncio.to_thread(args.handler, args)
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_regions_table_and_json(rig, capsys) -> None:
    await rig.registry()
    await rig.node("signaling", "us1", "sig-us1")
    await rig.node("media", "us1", "media-us1", address="198.51.100.20")
    url = rig.server.url

    async def us1_up():
        code, out, _ = await _run(capsys, "--nats-url", url, "--json")
        rows = {r["code"]: r for r in json.loads(out)} if code == 0 else {}
        return rows if rows.get("us1", {}).get("health") == "up" else None

    rows = await rig.eventually(us1_up, "us1 up in `switchboard regions --json`")
    assert {n["node_id"] for n in rows["us1"]["live_nodes"]} == {"sig-us1", "media-us1"}
    assert rows["iad1"]["kind"] == "media" and rows["iad1"]["health"] == "up"

    code, out, _ = await _run(capsys, "--nats-url", url)
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split()[:4] == ["REGION", "NAME", "KIND", "HEALTH"]
    us1 = next(line for line in lines if line.startswith("us1 "))
    assert "North America Virginia" in us1 and " up " in us1 and "1 (5%)" in us1 and "us2 > br1 > ie1" in us1


async def test_regions_without_a_registry_fails_clearly(rig, capsys) -> None:
    code, _, err = await _run(capsys, "--nats-url", rig.server.url, "--timeout", "0.5")
    assert code == 1 and "registry" in err
