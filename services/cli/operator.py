"""Operator views of a running stack: `switchboard regions`.

Asks the registry over NATS (the same `regions` verb the public `/v1/regions` forwards to),
so it works against any deployment the operator can reach."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from proto import subjects
from proto.messages import RegistryQuery, RegistryReply
from services.common.bus import Bus, BusAuth
from services.common.errors import BusError

from .common import bus_auth, run_info

DEFAULT_NATS = "nats://127.0.0.1:4222"


def default_nats_url(data_dir: str | None = None) -> str:
    """The stack `switchboard up` runs from here, else SWITCHBOARD_NATS_URL, else local."""
    return run_info(data_dir).get("nats_url") or os.environ.get("SWITCHBOARD_NATS_URL") or DEFAULT_NATS


def register(sub: Any) -> None:
    p = sub.add_parser("regions", help="each region's health, live nodes and load (asks the registry)")
    p.add_argument("--nats-url", help="NATS of the stack (default: var/run.json of `switchboard up`, "
                                      "else SWITCHBOARD_NATS_URL, else nats://127.0.0.1:4222)")
    p.add_argument("--data-dir", help="data dir of a local `switchboard up` (default ./var)")
    p.add_argument("--json", action="store_true", help="print the registry's answer as JSON")
    p.add_argument("--kind", choices=("signaling", "media"), help="only this kind of region")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the registry")
    p.set_defaults(handler=regions_command)


async def fetch_regions(url: str, kind: str | None = None, timeout: float = 3.0,
                        auth: BusAuth | None = None) -> list[dict[str, Any]]:
    bus = await Bus.connect(url, "switchboard-cli", connect_timeout=timeout, max_reconnect_attempts=0, auth=auth)
    try:
        params = {"kind": kind} if kind else {}
        reply = await bus.request(subjects.registry_query("regions"), RegistryQuery(params=params),
                                  RegistryReply, timeout=timeout)
    finally:
        await bus.close()
    if reply.status != 200 or not isinstance(reply.data, list):
        raise BusError(f"registry answered {reply.status}: {reply.data}")
    return reply.data


def _pct(load: dict[str, Any]) -> str:
    ratio = load.get("ratio")
    return f"{load.get('nodes', 0)} ({ratio * 100:.0f}%)" if ratio is not None else str(load.get("nodes", 0))


def render_table(rows: list[dict[str, Any]]) -> str:
    head = ("REGION", "NAME", "KIND", "HEALTH", "SIGNALING", "MEDIA", "FAILOVER")
    lines = [head]
    for r in rows:
        load = r.get("load", {})
        lines.append((
            r["code"], r["name"], r["kind"], r["health"].upper() if r["health"] == "down" else r["health"],
            _pct(load["signaling"]) if "signaling" in load else "-",
            _pct(load["media"]) if "media" in load else "-",
            " > ".join(r.get("failover") or []) or "-",
        ))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.append("")
    out.append("SIGNALING/MEDIA: live nodes (load as a share of their capacity).")
    return "\n".join(out)


def regions_command(args: argparse.Namespace) -> int:
    url = args.nats_url or default_nats_url(args.data_dir)
    try:
        rows = asyncio.run(fetch_regions(url, args.kind, args.timeout, bus_auth(args.data_dir)))
    except BusError as e:
        print(f"switchboard regions: {e} (is the registry running?)", file=sys.stderr)
        return 1
    except Exception as e:  # cannot connect: say where we tried
        print(f"switchboard regions: cannot reach NATS at {url}: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print(render_table(rows))
    return 0
