"""What the operator commands share: finding the bus and the API of a running stack."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from services.common.bus import BusAuth

DEFAULT_NATS = "nats://127.0.0.1:4222"


def data_dir_of(data_dir: str | None = None) -> Path:
    return Path(data_dir or os.environ.get("SWITCHBOARD_DATA_DIR", "var"))


def run_info(data_dir: str | None = None) -> dict[str, str]:
    """What `switchboard up` wrote about the running stack, if it runs from here."""
    path = data_dir_of(data_dir) / "run.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def nats_source(args: argparse.Namespace) -> tuple[str, str]:
    """The NATS URL to use and where it came from (said in errors, so a user knows what to change)."""
    if getattr(args, "nats_url", None):
        return str(args.nats_url), "--nats-url"
    if os.environ.get("SWITCHBOARD_NATS_URL"):
        return os.environ["SWITCHBOARD_NATS_URL"], "SWITCHBOARD_NATS_URL"
    data_dir = getattr(args, "data_dir", None)
    run_json = data_dir_of(data_dir) / "run.json"
    url = run_info(data_dir).get("nats_url")
    if url:
        return url, f"{run_json} (written by `switchboard up`)"
    return DEFAULT_NATS, f"the default: no {run_json.resolve()} of a `switchboard up` here"


def nats_url(args: argparse.Namespace) -> str:
    return nats_source(args)[0]


HOW_TO_POINT = ("point at the stack with --data-dir DIR (the --data-dir of `switchboard up`, or "
                "SWITCHBOARD_DATA_DIR), or --nats-url nats://HOST:PORT (or SWITCHBOARD_NATS_URL)")


def bus_auth(data_dir: str | None = None) -> BusAuth:
    """SWITCHBOARD_NATS_* settings when there are any, else the credentials of the local
    `switchboard up` (its embedded NATS refuses anonymous clients)."""
    env = BusAuth()
    if env.connect_options():
        return env
    creds = run_info(data_dir).get("nats_credentials")
    return BusAuth.from_file(Path(creds)) if creds and Path(creds).exists() else env


def add_nats_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nats-url", help="NATS of the stack (default: DATA_DIR/run.json of `switchboard up`)")
    p.add_argument("--data-dir", help="data dir of a local `switchboard up` (default $SWITCHBOARD_DATA_DIR or ./var)")
