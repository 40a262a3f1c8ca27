"""Renders the dashboard's panels (docs/grafana/switchboard.json) from a short load run,
as docs/grafana/dashboard.svg, where no Grafana is at hand.

    .venv/bin/python docs/grafana/render.py [--seconds 90] [--cps 4]

What it does: the whole stack in this process (tests/helpers/stack.py: nats-server, the four
services, SQLite) with /metrics on one port; SIPp as the carrier (tests/interop/scenarios/
carrier_call.xml, --cps calls a second, held 2 s) and as the SIP client (client_auth_answer:
401 challenge, answer, RTP echoed); RTP from here into each answered call's carrier leg, with
a little loss and jitter so the media panels have something to show; one in ten calls to a
number that does not exist (404). A real Prometheus (Debian's `prometheus` package, 1 s
scrapes) keeps the series; each panel's PromQL (with `$__rate_interval` = 15s) is then
asked of it over the run (`/api/v1/query_range`) and drawn. Needs sipp and prometheus."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from html import escape
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from services.common.natsserver import free_port  # noqa: E402
from tests.helpers.sipp import NUMBER, SCENARIOS, sipp  # noqa: E402
from tests.helpers.stack import running_stack, udp_free_port  # noqa: E402

COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a"]


async def rtp_into(port: int, seconds: float, rng: random.Random) -> None:
    """20 ms PCMU frames to a call's carrier-side port: ~2% lost, a few ms of jitter."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    ssrc = rng.getrandbits(32)
    try:
        for seq in range(1, int(seconds / 0.02)):
            if rng.random() > 0.02:
                s.sendto(struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + b"\xff" * 160, ("127.0.0.1", port))
            await asyncio.sleep(max(0.0, 0.02 + rng.gauss(0, 0.004)))
    finally:
        s.close()


async def load(seconds: float, cps: float, metrics_port: int, work: Path) -> float:
    """Runs the calls; returns when they started (the stack is up)."""
    rng = random.Random(7)
    hep = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a HEP collector that only listens
    hep.bind(("127.0.0.1", 0))
    async with running_stack(work, signaling={"metrics_port": metrics_port,
                                              "hep_address": f"127.0.0.1:{hep.getsockname()[1]}"}) as stack:
        client_port = udp_free_port()
        client = await sipp(work, "client", "-sf", str(SCENARIOS / "client_auth_answer.xml"), "-set", "user", "alice",
                            "-set", "pass", "s3cret", "-p", str(client_port), "-mp", str(udp_free_port()),
                            "-rtp_echo")
        acc = (await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{client_port}", "username": "alice",
                                               "password": "s3cret"}]))["account_id"]
        async with stack.http() as h:  # a webhook whose endpoint is down: the backlog grows, retries fail
            await h.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "secret": "s" * 32,
                                               "events": ["completed"], "account_id": acc})
        started = time.time()
        rtp_sink = udp_free_port()
        common = ["-set", "caller", "15550001111", "-set", "rtp_ip", "127.0.0.1", "-set", "rtp_port", str(rtp_sink),
                  "-d", "2000", "-timeout", f"{int(seconds) + 30}s"]
        n = int(seconds * cps)
        good = await sipp(work, "carrier", "-sf", str(SCENARIOS / "carrier_call.xml"), *common, "-s",
                          NUMBER.lstrip("+"), "-p", str(udp_free_port()), "-r", str(cps * 0.9), "-m", str(int(n * 0.9)),
                          f"127.0.0.1:{stack.sip_port}")
        bad = await sipp(work, "unknown", "-sf", str(SCENARIOS / "carrier_rejected.xml"), *common, "-s", "15550000000",
                         "-p", str(udp_free_port()), "-r", str(cps * 0.1), "-m", str(max(1, int(n * 0.1))),
                         f"127.0.0.1:{stack.sip_port}")
        seen: set[str] = set()
        tasks: list[asyncio.Task[None]] = []
        deadline = time.monotonic() + seconds + 20
        while (good.returncode is None or bad.returncode is None) and time.monotonic() < deadline:
            for ev in stack.kinds("media_allocated"):
                if ev.call_id not in seen:
                    seen.add(ev.call_id)
                    tasks.append(asyncio.create_task(rtp_into(ev.payload["a_port"], 2.2, rng)))
            await asyncio.sleep(0.05)
        await asyncio.gather(*tasks)
        for p in (good, bad, client):
            if p.returncode is None:
                p.terminate()
            await p.wait()
        await asyncio.sleep(3)  # the last scrapes
        print(f"load: {len(seen)} calls with media, {len(stack.kinds('failed'))} failed events")
    hep.close()
    return started


def query_range(prom: str, expr: str, start: float, end: float) -> list[tuple[str, list[tuple[float, float]]]]:
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": 2})
    data = json.loads(urllib.request.urlopen(f"{prom}/api/v1/query_range?{q}", timeout=30).read())
    out = []
    for r in data["data"]["result"]:
        pts = [(float(t), float(v)) for t, v in r["values"] if v not in ("NaN", "+Inf", "-Inf")]
        out.append((json.dumps(r["metric"], sort_keys=True), pts))
    return out


def legend_of(fmt: str, metric: dict[str, str]) -> str:
    out = fmt
    for k, v in metric.items():
        out = out.replace("{{" + k + "}}", v)
    return out.replace("{{", "").replace("}}", "")


def fmt_value(v: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{v * 100:.1f}%"
    if unit == "s":
        return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.1f} s"
    if unit == "ms":
        return f"{v:.1f} ms"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.0f}"


def panel_svg(p: dict[str, Any], series: list[tuple[str, list[tuple[float, float]]]], x: int, y: int,
              w: int, h: int, t0: float, t1: float) -> str:
    unit = p["fieldConfig"]["defaults"]["unit"]
    parts = [f'<g transform="translate({x},{y})">',
             f'<rect width="{w}" height="{h}" rx="3" fill="#181b1f" stroke="#2c3235"/>',
             f'<text x="10" y="20" fill="#ccccdc" font-size="13" font-weight="600">{escape(p["title"])}</text>']
    left, top, pw, ph = 58, 32, w - 70, h - 80
    values = [v for _, pts in series for _, v in pts]
    vmin, vmax = (min(0.0, min(values)), max(values)) if values else (0.0, 1.0)
    if vmax - vmin < 1e-9:
        vmax = vmin + 1.0
    for i in range(5):
        gy = top + ph - ph * i / 4
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="#2c3235"/>')
        parts.append(f'<text x="{left - 6}" y="{gy + 4:.1f}" fill="#8e8e8e" font-size="10" text-anchor="end">'
                     f'{escape(fmt_value(vmin + (vmax - vmin) * i / 4, unit))}</text>')
    for i in range(4):
        gx = left + pw * i / 3
        label = time.strftime("%H:%M:%S", time.gmtime(t0 + (t1 - t0) * i / 3))
        parts.append(f'<text x="{gx:.1f}" y="{top + ph + 14}" fill="#8e8e8e" font-size="10" '
                     f'text-anchor="middle">{label}</text>')
    legend_x = 10
    for j, (label, pts) in enumerate(series[:len(COLORS)]):
        color = COLORS[j % len(COLORS)]
        if len(pts) > 1:
            path = " ".join(f"{left + pw * (t - t0) / (t1 - t0):.1f},{top + ph - ph * (v - vmin) / (vmax - vmin):.1f}"
                            for t, v in pts)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        text = f"{label} ({fmt_value(pts[-1][1], unit)})" if pts else label
        if legend_x + 14 + 6 * len(text) > w - 10:
            continue  # no room: the line is drawn, its legend left out
        parts.append(f'<rect x="{legend_x}" y="{h - 24}" width="10" height="4" fill="{color}"/>'
                     f'<text x="{legend_x + 14}" y="{h - 19}" fill="#ccccdc" font-size="10">{escape(text)}</text>')
        legend_x += 14 + 6 * len(text) + 12
    if not series:
        parts.append(f'<text x="{w / 2}" y="{h / 2}" fill="#8e8e8e" font-size="12" text-anchor="middle">'
                     'no data (nothing happened)</text>')
    parts.append("</g>")
    return "".join(parts)


def render(prom: str, t0: float, t1: float, out: Path) -> None:
    doc = json.loads((HERE / "switchboard.json").read_text())
    w, h, gap = 600, 230, 10
    rows = (len(doc["panels"]) + 1) // 2
    width, height = 2 * w + 3 * gap, rows * (h + gap) + gap + 40
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="Inter, Helvetica, Arial, sans-serif">',
           f'<rect width="{width}" height="{height}" fill="#111217"/>',
           f'<text x="{gap}" y="26" fill="#ccccdc" font-size="16" font-weight="600">Switchboard — '
           f'docs/grafana/switchboard.json, rendered from a {t1 - t0:.0f} s load run (see docs/grafana/render.py)'
           '</text>']
    for i, p in enumerate(doc["panels"]):
        series = []
        for t in p["targets"]:
            expr = t["expr"].replace("$__rate_interval", "15s")
            for metric, pts in query_range(prom, expr, t0, t1):
                series.append((legend_of(t["legendFormat"], json.loads(metric)), pts))
        svg.append(panel_svg(p, series, gap + (i % 2) * (w + gap), 40 + (i // 2) * (h + gap), w, h, t0, t1))
    svg.append("</svg>")
    out.write_text("\n".join(svg) + "\n")
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=90)
    ap.add_argument("--cps", type=float, default=4)
    ap.add_argument("--out", type=Path, default=HERE / "dashboard.svg")
    args = ap.parse_args()
    for tool in ("sipp", "prometheus"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install sip-tester prometheus)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        metrics_port, prom_port = free_port(), free_port()
        (work / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"scrape_configs:\n  - job_name: switchboard\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n")
        prom = subprocess.Popen(["prometheus", f"--config.file={work / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            t0 = asyncio.run(load(args.seconds, args.cps, metrics_port, work / "stack"))
            t1 = time.time()
            render(f"http://127.0.0.1:{prom_port}", t0, t1, args.out)
        finally:
            prom.terminate()
            prom.wait()


if __name__ == "__main__":
    main()
