"""A receiving number's PBX options (issue 15) through the API: defaults, shown back on GET,
changed by PATCH, refused with a 422 naming the field, and carried in the routing decision."""

from __future__ import annotations

from typing import Any

import pytest

from proto.messages import RoutingRequest
from tests.helpers.config_env import Env

from .test_api import assert_problem, rn_body

DEFAULTS = {"diversion": True, "request_uri_user": "target", "forward_pai": True, "forward_identity": True,
            "forward_headers": [], "sip_headers": {}, "transfer": "same_host", "follow_redirects": "same_host"}


async def test_defaults_shown_back_and_patched(env: Env) -> None:
    _, h = await env.account()
    rn = await env.receiving(h)
    assert {k: rn[k] for k in DEFAULTS} == DEFAULTS
    assert rn["sip_targets"][0]["options_ping"] is False and rn["sip_targets"][0]["health"] == "unknown"
    url = f"/v1/receiving-numbers/{rn['id']}"
    changes = {"diversion": False, "request_uri_user": "tracking_number", "forward_pai": False,
               "forward_identity": False, "forward_headers": ["X-*", "User-to-User"],
               "sip_headers": {"X-Account": "acme", "X-Site": '"Front desk, 2nd floor"'}, "transfer": "any",
               "follow_redirects": "none"}
    r = await env.client.patch(url, json=changes, headers=h)
    assert r.status_code == 200, r.text
    got = (await env.client.get(url, headers=h)).json()
    assert {k: got[k] for k in changes} == changes
    await env.tracking(h, "+15551234567", rn["id"])
    assert env.resolver is not None
    await env.resolver.settled()
    decision = env.resolver.decide(RoutingRequest(call_id="c1", tracking_number="+15551234567"))
    assert decision.pbx.model_dump(exclude={"schema_version"}) == changes


BAD = [
    ({"request_uri_user": "did"}, "request_uri_user", "target"),
    ({"transfer": "always"}, "transfer", "same_host"),
    ({"follow_redirects": "yes"}, "follow_redirects", "same_host"),
    ({"forward_headers": ["Via"]}, "forward_headers", "set by Switchboard"),
    ({"forward_headers": ["*"]}, "forward_headers", "not a header name"),
    ({"forward_headers": ["X Bad"]}, "forward_headers", "not a header name"),
    ({"sip_headers": {"Contact": "x"}}, "sip_headers", "start with X-"),
    ({"sip_headers": {"X-Switchboard-Call-Id": "x"}}, "sip_headers", "set by Switchboard"),
    ({"sip_headers": {"X-A": "two words"}}, "sip_headers", "token or a quoted-string"),
    ({"sip_headers": {"X-A": "a\r\nVia: x"}}, "sip_headers", "token or a quoted-string"),
    ({"sip_headers": {f"X-H{i}": "v" for i in range(11)}}, "sip_headers", "at most 10"),
]


@pytest.mark.parametrize(("patch", "field", "says"), BAD)
async def test_bad_pbx_options_are_422_naming_the_field(env: Env, patch: dict[str, Any], field: str,
                                                        says: str) -> None:
    _, h = await env.account()
    assert_problem(await env.client.post("/v1/receiving-numbers", json=rn_body(**patch), headers=h), 422, field,
                   says)
    rn = await env.receiving(h)
    assert_problem(await env.client.patch(f"/v1/receiving-numbers/{rn['id']}", json=patch, headers=h), 422,
                   field, says)
