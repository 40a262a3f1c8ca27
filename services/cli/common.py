"""What the operator commands share: finding the bus and the API of a running stack."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from services.common.bus import BusAuth


def run_info(data_dir: str | None = None) -> dict[str, str]:
    """What `switchboard up` wrote about the running stack, if it runs from here."""
    path = Path(data_dir or os.environ.get("SWITCHBOARD_DATA_DIR", "var")) / "run.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def nats_url(args: argparse.Namespace) -> str:
    return (
        getattr(args, "nats_url", None)
        or os.environ.get("SWITCHBOARD_NATS_URL")
        or run_info(getattr(args, "data_dir", None)).get("nats_url")
        or "nats://127.0.0.1:4222"
    )


def bus_auth(data_dir: str | None = None) -> BusAuth:
    """SWITCHBOARD_NATS_* settings when there are any, else the credentials of the local
    `switchboard up` (its embedded NATS refuses anonymous clients)."""
    env = BusAuth()
    if env.connect_options():
        return env
    creds = run_info(data_dir).get("nats_credentials")
    return BusAuth.from_file(Path(creds)) if creds and Path(creds).exists() else env


def add_nats_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nats-url", help="NATS of the stack (default: var/run.json of `switchboard up`)")
    p.add_argument("--data-dir", help="data dir of a local `switchboard up` (default ./var)")
