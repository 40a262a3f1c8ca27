"""The Grafana dashboard (docs/grafana/switchboard.json) queries only metrics, and labels,
that a running stack exports: the whole stack takes real SIPp calls (one refused, one
answered with RTP both ways), with HEP on and a webhook, and /metrics is scraped."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import struct
import urllib.request
from pathlib import Path

import pytest

from services.common.natsserver import free_port
from tests.helpers.sipp import NUMBER, SCENARIOS, carrier, finish, media_carrier, sipp
from tests.helpers.stack import running_stack, udp_free_port

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "switchboard.json"
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.timeout(120),
]


def queries() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def wanted() -> dict[str, set[str]]:
    """Metric family -> the labels the dashboard groups or filters it by."""
    out: dict[str, set[str]] = {}
    for expr in queries():
        for m in re.finditer(r"(switchboard_[a-z0-9_]+)(\{[^}]*\})?", expr):
            name = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
            labels = out.setdefault(name, set())
            labels |= set(re.findall(r"(\w+)\s*=", m.group(2) or ""))
        for by, inner in re.findall(r"by \(([^)]*)\) \((?:rate\()?(switchboard_[a-z0-9_]+)", expr):
            name = re.sub(r"_(bucket|sum|count)$", "", inner)
            out[name] |= {x.strip() for x in by.split(",")} - {"le"}
    return out


def scrape(url: str) -> dict[str, set[str]]:
    """Exported family -> label names seen on its samples."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            out.setdefault(line.split()[2], set())
        elif line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][\w:]*)(\{([^}]*)\})?", line)
            assert m
            family = re.sub(r"_(bucket|sum|count|total|created)$", "", m.group(1))
            for key in (family, m.group(1), re.sub(r"_(bucket|sum|count|created)$", "", m.group(1))):
                if key in out:
                    out[key] |= set(re.findall(r"(\w+)=", m.group(3) or "")) - {"le"}
    return out


def test_the_dashboard_covers_what_operators_watch() -> None:
    names = set(wanted())
    for needed in ("switchboard_calls_total", "switchboard_post_dial_delay_seconds", "switchboard_call_failures_total",
                   "switchboard_failovers_total", "switchboard_media_packets_lost_total", "switchboard_media_jitter_ms",
                   "switchboard_media_mos", "switchboard_media_srtp_failures_total",
                   "switchboard_media_port_pairs_available", "switchboard_bus_request_seconds",
                   "switchboard_webhook_backlog"):
        assert needed in names, needed


async def test_every_metric_the_dashboard_queries_is_exported_by_a_running_stack(tmp_path: Path) -> None:
    port = free_port()
    hep = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hep.bind(("127.0.0.1", 0))
    try:
        async with running_stack(tmp_path, signaling={"metrics_port": port,
                                                      "hep_address": f"127.0.0.1:{hep.getsockname()[1]}"}) as stack:
            # Refused: the number is not provisioned yet (404).
            c = await carrier(stack, tmp_path, "carrier_rejected.xml", name="refused")
            assert await finish(c, tmp_path, "refused") == 0
            await stack.wait_event("failed")
            async with stack.http() as h:
                acc = (await stack.provision(NUMBER, [{"uri": "sip:placeholder@127.0.0.1:9"}]))["account_id"]
                r = await h.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "secret": "s" * 32,
                                                       "events": ["completed"], "account_id": acc})
                assert r.status_code == 201, r.text
                rn = (await h.get("/v1/receiving-numbers")).json()["items"][0]
                client_port = udp_free_port()
                client = await sipp(tmp_path, "client", "-sf", str(SCENARIOS / "client_answer.xml"),
                                    "-p", str(client_port), "-mp", str(udp_free_port()), "-rtp_echo", "-m", "1")
                r = await h.patch(f"/v1/receiving-numbers/{rn['id']}",
                                  json={"sip_targets": [{"uri": f"sip:100@127.0.0.1:{client_port}"}]})
                assert r.status_code == 200, r.text
            await asyncio.sleep(0)
            rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rtp.bind(("127.0.0.1", 0))
            answered_before = len(stack.kinds("answered"))
            call = await media_carrier(stack, tmp_path, rtp.getsockname()[1], hold_ms=1500)
            allocated = await stack.wait_event("answered", timeout=20) and stack.kinds("media_allocated")[-1]
            assert len(stack.kinds("answered")) > answered_before
            for seq in range(1, 31):
                rtp.sendto(struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0xABCD) + b"\xff" * 160,
                           ("127.0.0.1", allocated.payload["a_port"]))
                await asyncio.sleep(0.02)
            rtp.close()
            assert await finish(call, tmp_path, "carrier") == 0
            assert await finish(client, tmp_path, "client") == 0
            await stack.wait_event("media_stats", timeout=10)

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while True:  # the records consumer and the webhook worker run after the call
                got = await asyncio.to_thread(scrape, f"http://127.0.0.1:{port}/metrics")
                missing = {n: ls - got.get(n, set()) for n, ls in wanted().items()
                           if n not in got or ls - got[n]}
                if not missing or loop.time() > deadline:
                    break
                await asyncio.sleep(0.2)
            config_metrics = await asyncio.to_thread(scrape, f"{stack.api}/metrics")
    finally:
        hep.close()
    assert not missing, f"the dashboard queries what the stack does not export (name -> labels): {missing}"
    assert "switchboard_api_requests_total" in config_metrics  # the config API's own /metrics serves too
