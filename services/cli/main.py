"""The `switchboard` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

SERVICE_NAMES = ("signaling", "media", "config", "registry")

# Sub-command modules that add themselves with `register(subparsers)`; a module that is not
# there yet (a service still being built) is skipped.
EXTRA_COMMANDS = ("services.cli.provision", "services.cli.operator", "services.cli.calls")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchboard", description="Route tracked calls to SIP clients.")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the whole stack locally (embedded NATS, SQLite)")
    from .up import add_arguments

    add_arguments(up)

    run = sub.add_parser("run", help="run one service process")
    run.add_argument("service", choices=SERVICE_NAMES)

    sub.add_parser("asyncapi", help="print the AsyncAPI 3 document of the bus")

    for mod in EXTRA_COMMANDS:
        try:
            importlib.import_module(mod).register(sub)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "up":
        from .up import run_up

        sys.exit(asyncio.run(run_up(args)))
    if args.command == "run":
        importlib.import_module(f"services.{args.service}.main").main()
        return
    if args.command == "asyncapi":
        from proto.asyncapi import render

        sys.stdout.write(render())
        return
    handler = getattr(args, "handler", None)
    if handler is None:
        raise SystemExit(f"unknown command {args.command}")
    sys.exit(handler(args) or 0)
