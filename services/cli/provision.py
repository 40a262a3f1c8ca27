"""`switchboard numbers ...` and `switchboard receiving ...`: provision from a shell over the
HTTP API (httpx), human output by default, `--json` for scripts.

The API address comes from `--api-url`, else the `run.json` that `switchboard up` writes in
its data dir, else http://127.0.0.1:8080. The key from `--token`, SWITCHBOARD_API_TOKEN,
else the admin token `switchboard up` keeps in its data dir."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

DEFAULT_API = "http://127.0.0.1:8080"


class CliError(Exception):
    pass


def data_dir() -> Path:
    return Path(os.environ.get("SWITCHBOARD_DATA_DIR", "var"))


def default_api_url() -> str:
    try:
        return str(json.loads((data_dir() / "run.json").read_text())["api_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_API


def default_token() -> str | None:
    for value in (os.environ.get("SWITCHBOARD_API_TOKEN"), os.environ.get("SWITCHBOARD_ADMIN_TOKEN")):
        if value:
            return value
    try:
        return (data_dir() / "admin_token").read_text().strip() or None
    except OSError:
        return None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api-url", default=None, help=f"API base URL (default: from var/run.json, else {DEFAULT_API})")
    p.add_argument("--token", default=None, help="API key (default: $SWITCHBOARD_API_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the API's JSON")


class Api:
    def __init__(self, args: argparse.Namespace, transport: httpx.BaseTransport | None = None) -> None:
        token = args.token or default_token()
        if not token:
            raise CliError("no API key: pass --token or set SWITCHBOARD_API_TOKEN")
        self.base = (args.api_url or default_api_url()).rstrip("/")
        self.client = httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=10,
                                   transport=transport)

    def call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.client.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise CliError(f"cannot reach the API at {self.base}: {e}") from None
        if r.status_code >= 400:
            raise CliError(problem_text(r))
        return r.json() if r.content else None


def problem_text(r: httpx.Response) -> str:
    try:
        p = r.json()
    except ValueError:
        return f"HTTP {r.status_code}: {r.text[:200]}"
    lines = [f"error {r.status_code}: {p.get('detail') or p.get('title')}"]
    for e in p.get("errors", []) or []:
        lines.append(f"  {e.get('field') or '(request)'}: {e.get('message')}")
    return "\n".join(lines)


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[str(r.get(c, "") if r.get(c) is not None else "-") for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    out = ["  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True))]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def _all(api: Api, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.call("GET", path, params={**params, "limit": 200, **({"cursor": cursor} if cursor else {})})
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def _emit(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2) if args.json else human)


def _receiving_human(rn: dict[str, Any]) -> str:
    lines = [f"{rn['id']}  {rn['name']}  ({'enabled' if rn['enabled'] else 'disabled'})",
             f"  ring timeout {rn['ring_timeout']}s, region {rn.get('region') or '-'}, "
             f"send digits {rn.get('send_digits') or '-'}"]
    for t in rn["sip_targets"]:
        lines.append(f"  target {t['id']}: {t['uri']} [{t['transport']}] prio {t['priority']} weight {t['weight']}"
                     f" user {t.get('username') or '-'} password {'set' if t['has_password'] else 'none'}"
                     f"{'' if t['enabled'] else ' (disabled)'}"
                     f"{' health ' + t.get('health', 'unknown') if t.get('options_ping') else ''}")
    if "diversion" in rn:
        lines.append(f"  pbx: diversion {'on' if rn['diversion'] else 'off'}, request-uri user {rn['request_uri_user']}, "
                     f"pai {'on' if rn['forward_pai'] else 'off'}, identity {'on' if rn['forward_identity'] else 'off'}, "
                     f"transfer {rn['transfer']}, redirects {rn['follow_redirects']}, "
                     f"forward headers {','.join(rn['forward_headers']) or '-'}, "
                     f"sip headers {','.join(f'{k}={v}' for k, v in rn['sip_headers'].items()) or '-'}")
    return "\n".join(lines)


def _pbx_options(args: argparse.Namespace) -> dict[str, Any]:
    """The PBX options of the API (issue 15) from their flags; only those given."""
    body: dict[str, Any] = {}
    for key in ("diversion", "request_uri_user", "forward_pai", "forward_identity", "transfer", "follow_redirects"):
        if getattr(args, key, None) is not None:
            body[key] = getattr(args, key)
    if args.forward_header is not None:
        body["forward_headers"] = [h for h in args.forward_header if h]
    if args.sip_header is not None:
        headers: dict[str, str] = {}
        for item in args.sip_header:
            name, sep, value = item.partition("=")
            if not sep:
                raise CliError(f"--sip-header {item!r}: give NAME=VALUE")
            headers[name.strip()] = value.strip()
        body["sip_headers"] = headers
    return body


def _pbx_flags(p: argparse.ArgumentParser) -> None:
    def onoff(flag: str, dest: str, what: str) -> None:
        g = p.add_mutually_exclusive_group()
        g.add_argument(f"--{flag}", dest=dest, action="store_const", const=True, default=None, help=what)
        g.add_argument(f"--no-{flag}", dest=dest, action="store_const", const=False)

    onoff("diversion", "diversion", "Diversion header with the tracking number (default on)")
    onoff("forward-pai", "forward_pai", "pass the carrier's P-Asserted-Identity and Privacy (default on)")
    onoff("forward-identity", "forward_identity", "pass the carrier's STIR/SHAKEN Identity (default on)")
    p.add_argument("--request-uri-user", choices=["target", "tracking_number"],
                   help="tracking_number: the DID in the Request-URI and To")
    p.add_argument("--transfer", choices=["reject", "same_host", "any"], help="REFER from the PBX")
    p.add_argument("--follow-redirects", choices=["none", "same_host", "any"], help="3xx from a target")
    p.add_argument("--forward-header", action="append", metavar="NAME",
                   help="carrier header to copy, e.g. 'X-*' (repeat; '' clears)")
    p.add_argument("--sip-header", action="append", metavar="NAME=VALUE", help="X- header to add (repeat)")


# --- numbers -------------------------------------------------------------------------


def numbers_list(args: argparse.Namespace) -> int:
    api = Api(args)
    params = {k: v for k, v in (("number", args.number), ("receiving_number_id", args.receiving)) if v}
    items = _all(api, "/v1/tracking-numbers", params)
    _emit(args, items, _table(items, ["id", "number", "receiving_number_id", "name", "enabled"]))
    return 0


def numbers_add(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"number": args.number, "receiving_number_id": args.receiving}
    if args.name:
        body["name"] = args.name
    if args.account:
        body["account_id"] = args.account
    tn = Api(args).call("POST", "/v1/tracking-numbers", json=body)
    _emit(args, tn, f"{tn['id']}  {tn['number']} -> {tn['receiving_number_id']}")
    return 0


def numbers_show(args: argparse.Namespace) -> int:
    tn = Api(args).call("GET", f"/v1/tracking-numbers/{args.id}")
    _emit(args, tn, f"{tn['id']}  {tn['number']} -> {tn['receiving_number_id']}  {tn['name']}"
                    f"  ({'enabled' if tn['enabled'] else 'disabled'})")
    return 0


def numbers_update(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.receiving:
        body["receiving_number_id"] = args.receiving
    if args.name is not None:
        body["name"] = args.name
    if args.enabled is not None:
        body["enabled"] = args.enabled
    if not body:
        raise CliError("nothing to change")
    tn = Api(args).call("PATCH", f"/v1/tracking-numbers/{args.id}", json=body)
    _emit(args, tn, f"{tn['id']}  {tn['number']} -> {tn['receiving_number_id']}")
    return 0


def numbers_delete(args: argparse.Namespace) -> int:
    Api(args).call("DELETE", f"/v1/tracking-numbers/{args.id}")
    _emit(args, {"deleted": args.id}, f"deleted {args.id}")
    return 0


# --- receiving numbers ---------------------------------------------------------------


def _password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return args.password  # type: ignore[no-any-return]


def receiving_list(args: argparse.Namespace) -> int:
    items = _all(Api(args), "/v1/receiving-numbers", {})
    rows = [{**rn, "targets": ", ".join(t["uri"] for t in rn["sip_targets"])} for rn in items]
    _emit(args, items, _table(rows, ["id", "name", "enabled", "region", "targets"]))
    return 0


def receiving_add(args: argparse.Namespace) -> int:
    password = _password(args)
    tls: dict[str, Any] = {"verify": not args.no_verify_tls}
    if args.ca_file:
        tls["ca_pem"] = Path(args.ca_file).read_text()
    targets = []
    for i, uri in enumerate(args.uri):
        t: dict[str, Any] = {"uri": uri, "priority": 10 + 10 * i if args.failover else 10, "tls": tls,
                             "options_ping": args.options_ping}
        if args.media_encryption:
            t["media_encryption"] = args.media_encryption
        if args.username:
            t["username"] = args.username
            if password is not None:
                t["password"] = password
        targets.append(t)
    body: dict[str, Any] = {"name": args.name, "dial_sip_client": True, "sip_targets": targets,
                            "ring_timeout": args.ring_timeout}
    for key, value in (("send_digits", args.send_digits), ("region", args.region), ("account_id", args.account),
                       ("nat", args.nat)):
        if value:
            body[key] = value
    body.update(_pbx_options(args))
    rn = Api(args).call("POST", "/v1/receiving-numbers", json=body)
    _emit(args, rn, _receiving_human(rn))
    return 0


def receiving_show(args: argparse.Namespace) -> int:
    rn = Api(args).call("GET", f"/v1/receiving-numbers/{args.id}")
    _emit(args, rn, _receiving_human(rn))
    return 0


def receiving_update(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    for key in ("name", "ring_timeout", "send_digits", "region", "enabled", "nat"):
        value = getattr(args, key)
        if value is not None:
            body[key] = value
    body.update(_pbx_options(args))
    if not body:
        raise CliError("nothing to change")
    rn = Api(args).call("PATCH", f"/v1/receiving-numbers/{args.id}", json=body)
    _emit(args, rn, _receiving_human(rn))
    return 0


def receiving_delete(args: argparse.Namespace) -> int:
    Api(args).call("DELETE", f"/v1/receiving-numbers/{args.id}")
    _emit(args, {"deleted": args.id}, f"deleted {args.id}")
    return 0


def _guard(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except CliError as e:
            print(f"switchboard: {e}", file=sys.stderr)
            return 1
    return run


def _enable_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--enable", dest="enabled", action="store_const", const=True, default=None)
    g.add_argument("--disable", dest="enabled", action="store_const", const=False)


def register(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    _common(common)

    numbers = sub.add_parser("numbers", help="tracking numbers (the numbers calls arrive on)")
    ns = numbers.add_subparsers(dest="action", required=True)
    p = ns.add_parser("list", parents=[common], help="list tracking numbers")
    p.add_argument("--number", help="only this number (E.164)")
    p.add_argument("--receiving", help="only those pointing at this receiving number id")
    p.set_defaults(handler=_guard(numbers_list))
    p = ns.add_parser("add", parents=[common], help="add a tracking number")
    p.add_argument("number", help="E.164, e.g. +15551234567")
    p.add_argument("--receiving", required=True, help="receiving number id to send its calls to")
    p.add_argument("--name")
    p.add_argument("--account", help="account id (with an admin key)")
    p.set_defaults(handler=_guard(numbers_add))
    for action, fn in (("show", numbers_show), ("delete", numbers_delete)):
        p = ns.add_parser(action, parents=[common], help=f"{action} a tracking number")
        p.add_argument("id")
        p.set_defaults(handler=_guard(fn))
    p = ns.add_parser("update", parents=[common], help="change a tracking number")
    p.add_argument("id")
    p.add_argument("--receiving")
    p.add_argument("--name")
    _enable_flags(p)
    p.set_defaults(handler=_guard(numbers_update))

    receiving = sub.add_parser("receiving", help="receiving numbers (SIP clients that calls are sent to)")
    rs = receiving.add_subparsers(dest="action", required=True)
    p = rs.add_parser("list", parents=[common], help="list receiving numbers")
    p.set_defaults(handler=_guard(receiving_list))
    p = rs.add_parser("add", parents=[common], help="add a receiving number that dials a SIP client")
    p.add_argument("--name", required=True)
    p.add_argument("--uri", action="append", required=True,
                   help="SIP target, e.g. sip:100@pbx.example.com;transport=tcp (repeat for more)")
    p.add_argument("--failover", action="store_true", help="try the --uri targets in order instead of sharing load")
    p.add_argument("--username", help="SIP user for digest authentication")
    pw = p.add_mutually_exclusive_group()
    pw.add_argument("--password", help="SIP password (visible in the process list: prefer --password-stdin)")
    pw.add_argument("--password-stdin", action="store_true", help="read the SIP password from stdin")
    p.add_argument("--ring-timeout", type=int, default=30)
    p.add_argument("--send-digits", help="DTMF after answer, e.g. ww123#")
    p.add_argument("--region", help="preferred region code, e.g. us1")
    p.add_argument("--no-verify-tls", action="store_true", help="accept a self-signed certificate (sips:)")
    p.add_argument("--ca-file", help="PEM file of a private CA to trust (sips:)")
    p.add_argument("--media-encryption", choices=("srtp", "none"),
                   help="srtp (TLS targets only) or none (plain RTP); default: srtp on TLS, none otherwise")
    p.add_argument("--nat", choices=("auto", "off"), help="NAT detection for the PBX (default auto)")
    p.add_argument("--account", help="account id (with an admin key)")
    p.add_argument("--options-ping", action="store_true", help="probe the targets with OPTIONS; skip them while down")
    _pbx_flags(p)
    p.set_defaults(handler=_guard(receiving_add))
    for action, fn in (("show", receiving_show), ("delete", receiving_delete)):
        p = rs.add_parser(action, parents=[common], help=f"{action} a receiving number")
        p.add_argument("id")
        p.set_defaults(handler=_guard(fn))
    p = rs.add_parser("update", parents=[common], help="change a receiving number")
    p.add_argument("id")
    p.add_argument("--name")
    p.add_argument("--ring-timeout", type=int)
    p.add_argument("--send-digits")
    p.add_argument("--region")
    p.add_argument("--nat", choices=("auto", "off"), help="NAT detection for the PBX")
    _enable_flags(p)
    _pbx_flags(p)
    p.set_defaults(handler=_guard(receiving_update))
