"""Form posts -> API request bodies. Input names are the API's field paths
(`sip_targets[0].uri`), so a problem's field error lands next to the input it names.
Values are passed as typed (strings for numbers too): checking them is the API's job."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

TARGET_ROWS = 3
"""Target rows on the receiving-number form (the first is the SIP Client; more under More options)."""


MAX_BODY = 1 << 20
"""Bytes a form post may have (the largest form carries a few PEM certificates)."""


class FormRejected(ValueError):
    """Too large, or too many fields: not a form the console serves."""


class Form:
    def __init__(self, body: bytes) -> None:
        if len(body) > MAX_BODY:
            raise FormRejected("the form is too large")
        try:
            self._data = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=500)
        except ValueError:
            raise FormRejected("the form has too many fields") from None

    def get(self, name: str, default: str = "") -> str:
        values = self._data.get(name)
        return values[0] if values else default

    def all(self, name: str) -> list[str]:
        return list(self._data.get(name, []))

    def on(self, name: str) -> bool:
        return name in self._data

    def text(self, name: str) -> str | None:
        """A trimmed value, None when empty (the field is left out of the request)."""
        v = self.get(name).strip()
        return v or None


def _put(body: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        body[key] = value


def receiving_number_body(f: Form, *, edit: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"name": f.get("name"), "dial_sip_client": f.on("dial_sip_client"),
                            "enabled": f.on("enabled")}
    targets: list[dict[str, Any]] = []
    if f.on("dial_sip_client"):
        for i in range(TARGET_ROWS):
            p = f"sip_targets[{i}]."
            uri = f.get(p + "uri").strip()
            if not uri and (i > 0 or f.text(p + "id")):
                continue  # an empty extra row is not a target (an emptied existing one is removed)
            t: dict[str, Any] = {"uri": uri}
            _put(t, "id", f.text(p + "id"))
            _put(t, "username", f.text(p + "username"))
            # Write-only: an empty field keeps the stored password (on edit), unless removal is ticked.
            if f.get(p + "password"):
                t["password"] = f.get(p + "password")
            elif edit and f.on(p + "password_remove"):
                t["password"] = None
            _put(t, "priority", f.text(p + "priority"))
            _put(t, "weight", f.text(p + "weight"))
            _put(t, "media_encryption", f.text(p + "media_encryption"))
            t["enabled"] = f.on(p + "enabled") or not f.on(p + "enabled_shown")
            t["options_ping"] = f.on(p + "options_ping")
            tls: dict[str, Any] = {"verify": f.on(p + "tls.verify") or not f.on(p + "tls.verify_shown")}
            _put(tls, "ca_pem", f.text(p + "tls.ca_pem"))
            _put(tls, "client_cert_pem", f.text(p + "tls.client_cert_pem"))
            if f.text(p + "tls.client_key_pem"):
                tls["client_key_pem"] = f.get(p + "tls.client_key_pem")
            t["tls"] = tls
            targets.append(t)
    body["sip_targets"] = targets
    body.update(pbx_options_body(f, edit=edit))
    _put(body, "ring_timeout", f.text("ring_timeout"))
    _put(body, "nat", f.text("nat"))
    if edit:
        body["send_digits"] = f.text("send_digits")
        body["region"] = f.text("region")
    else:
        _put(body, "send_digits", f.text("send_digits"))
        _put(body, "region", f.text("region"))
    return body


PBX_SWITCHES = ("diversion", "forward_pai", "forward_identity")
PBX_CHOICES = ("request_uri_user", "transfer", "follow_redirects")


def pbx_options_body(f: Form, *, edit: bool) -> dict[str, Any]:
    """The PBX options of the form's "More options" (the API's fields; issue 15). A switch
    left out of the post (an older form) keeps its default."""
    body: dict[str, Any] = {}
    for name in PBX_SWITCHES:
        if f.on(name + "_shown"):
            body[name] = f.on(name)
    for name in PBX_CHOICES:
        _put(body, name, f.text(name))
    headers = [h.strip() for h in f.get("forward_headers").replace("\n", ",").split(",") if h.strip()]
    if headers or (edit and f.on("forward_headers_shown")):
        body["forward_headers"] = headers
    lines = [ln.strip() for ln in f.get("sip_headers").splitlines() if ln.strip()]
    if lines or (edit and f.on("sip_headers_shown")):
        # One "X-Name: value" per line; a line without ':' goes to the API as it is (its 422 says why).
        body["sip_headers"] = {n.strip(): v.strip() for n, _, v in (ln.partition(":") for ln in lines)}
    return body


def pbx_options_values(rn: dict[str, Any] | None, f: Form | None = None) -> dict[str, Any]:
    if f is not None:
        v: dict[str, Any] = {n: f.on(n) or not f.on(n + "_shown") for n in PBX_SWITCHES}
        v.update({n: f.get(n) for n in (*PBX_CHOICES, "forward_headers", "sip_headers")})
        return v
    rn = rn or {}
    return {"diversion": rn.get("diversion", True), "forward_pai": rn.get("forward_pai", True),
            "forward_identity": rn.get("forward_identity", True),
            "request_uri_user": rn.get("request_uri_user", "target"), "transfer": rn.get("transfer", "same_host"),
            "follow_redirects": rn.get("follow_redirects", "same_host"),
            "forward_headers": ", ".join(rn.get("forward_headers") or []),
            "sip_headers": "\n".join(f"{k}: {val}" for k, val in (rn.get("sip_headers") or {}).items())}


def receiving_number_values(rn: dict[str, Any] | None, f: Form | None = None) -> dict[str, Any]:
    """What the form shows: the stored receiving number, or what was just posted (after an
    error). Passwords and client keys are never among them."""
    if f is not None:
        v: dict[str, Any] = {k: f.get(k) for k in ("name", "ring_timeout", "send_digits", "region", "nat")}
        v["dial_sip_client"] = f.on("dial_sip_client")
        v["enabled"] = f.on("enabled")
        rows = []
        for i in range(TARGET_ROWS):
            p = f"sip_targets[{i}]."
            rows.append({"id": f.get(p + "id"), "uri": f.get(p + "uri"), "username": f.get(p + "username"),
                         "priority": f.get(p + "priority", "10"), "weight": f.get(p + "weight", "10"),
                         "media_encryption": f.get(p + "media_encryption"),
                         "enabled": f.on(p + "enabled") or not f.on(p + "enabled_shown"),
                         "options_ping": f.on(p + "options_ping"),
                         "has_password": f.get(p + "has_password") == "1",
                         "has_client_key": f.get(p + "has_client_key") == "1",
                         "tls": {"verify": f.on(p + "tls.verify") or not f.on(p + "tls.verify_shown"),
                                 "ca_pem": f.get(p + "tls.ca_pem"),
                                 "client_cert_pem": f.get(p + "tls.client_cert_pem")}})
        v["targets"] = rows
        v["pbx"] = pbx_options_values(None, f)
        return v
    # A new receiving number starts with "Dial SIP Client" off: turning it on is the step users know.
    v = {"name": "", "ring_timeout": "30", "send_digits": "", "region": "", "dial_sip_client": False,
         "enabled": True, "nat": "auto"}
    stored: list[dict[str, Any]] = []
    if rn is not None:
        v.update(name=rn["name"], ring_timeout=str(rn["ring_timeout"]), send_digits=rn.get("send_digits") or "",
                 region=rn.get("region") or "", dial_sip_client=rn["dial_sip_client"], enabled=rn["enabled"],
                 nat=rn.get("nat") or "auto")
        stored = rn["sip_targets"]
    rows = []
    for i in range(TARGET_ROWS):
        t = stored[i] if i < len(stored) else None
        if t is None:
            rows.append({"id": "", "uri": "", "username": "", "priority": "10", "weight": "10", "enabled": True,
                         "media_encryption": "", "options_ping": False,
                         "has_password": False, "has_client_key": False,
                         "tls": {"verify": True, "ca_pem": "", "client_cert_pem": ""}})
        else:
            rows.append({"id": t["id"], "uri": t["uri"], "username": t.get("username") or "",
                         "priority": str(t["priority"]), "weight": str(t["weight"]), "enabled": t["enabled"],
                         "media_encryption": t.get("media_encryption") or "",
                         "options_ping": t.get("options_ping", False),
                         "has_password": t["has_password"], "has_client_key": t["tls"]["has_client_key"],
                         "tls": {"verify": t["tls"]["verify"], "ca_pem": t["tls"].get("ca_pem") or "",
                                 "client_cert_pem": t["tls"].get("client_cert_pem") or ""}})
    v["targets"] = rows
    v["pbx"] = pbx_options_values(rn)
    return v
