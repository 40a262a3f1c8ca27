"""The console's handlers over the real app (API, database, sessions): the steps of the issue,
CSRF, account isolation, the sign-in limit. The browser test (tests/interop) does the same
steps in Chromium; these are the fast checks."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from .conftest import ADMIN, Browser, Console

PASSWORD = "pw-Zq81-never-shown"


def field_error(html: str, input_id: str) -> str:
    m = re.search(rf'<p class="error" id="{re.escape(input_id)}-error"[^>]*>([^<]*)</p>', html)
    assert m, f"no error shown for {input_id}"
    return m.group(1)


async def signed_in(console: Console, name: str = "Acme") -> tuple[str, str, Browser]:
    acc, key = await console.account(name)
    b = console.browser()
    r = await b.sign_in(key)
    assert r.status_code == 200 and str(r.url).endswith("/numbers"), (r.status_code, r.url)
    return acc, key, b


async def new_receiving(b: Browser, name: str = "Front desk", uri: str = "sip:100@pbx.example.com;transport=tls",
                        user: str = "100", password: str = PASSWORD):
    await b.get("/numbers/receiving/new")
    return await b.post("/numbers/receiving/new", {
        "name": name, "dial_sip_client": "on", "enabled": "on", "sip_targets[0].uri": uri,
        "sip_targets[0].username": user, "sip_targets[0].password": password, "ring_timeout": "30"},
        follow=False)


async def test_sign_in_page_sets_a_strict_httponly_expiring_cookie(console: Console) -> None:
    b = console.browser()
    r = await b.get("/")
    assert r.status_code == 200
    assert '<label for="api_key">API key</label>' in r.text and ">Sign in</button>" in r.text
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=" in cookie
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    # The API and its docs stay where they were.
    assert (await console.api.get("/v1/accounts")).status_code == 401
    assert (await console.api.get("/docs")).status_code == 200


async def test_wrong_key_is_refused_clearly_and_attempts_are_limited(console: Console) -> None:
    _, key = await console.account()
    b = console.browser()
    for _ in range(3):  # console_signin_attempts=3 in the fixture
        r = await b.sign_in("sb_not-a-key")
        assert r.status_code == 401
        assert "That API key is not valid" in r.text
        assert 'aria-invalid="true"' in r.text
    r = await b.sign_in(key)  # even the right key waits now
    assert r.status_code == 429 and "Too many failed sign-in attempts" in r.text
    assert int(r.headers["retry-after"]) > 0


async def test_the_steps_route_a_tracking_number_to_a_sip_client(console: Console) -> None:
    acc, key, b = await signed_in(console)
    numbers = await b.get("/numbers")
    assert 'href="/numbers/receiving">Receiving Numbers</a>' in numbers.text
    assert 'href="/numbers/tracking">Tracking Numbers</a>' in numbers.text
    page = await b.get("/numbers/receiving")
    assert ">New Receiving Number</a>" in page.text
    form = await b.get("/numbers/receiving/new")
    for label in ("Name", "Dial SIP Client", "SIP Client", "SIP User", "SIP Password"):
        assert re.search(rf'<label for="[^"]+">{label}</label>', form.text), label
    assert "Save &amp; Continue</button>" in form.text and "<summary>More options</summary>" in form.text

    r = await new_receiving(b)
    assert r.status_code == 303
    nxt = urlsplit(r.headers["location"])
    assert nxt.path == "/numbers/tracking/new"
    rn_id = parse_qs(nxt.query)["receiving_number_id"][0]
    # Through the API: the target, its user, and a password (write-only: the API says it is set).
    rn = (await console.api.get(f"/v1/receiving-numbers/{rn_id}", headers={"Authorization": f"Bearer {key}"})).json()
    assert rn["account_id"] == acc and rn["name"] == "Front desk" and rn["dial_sip_client"] is True
    [t] = rn["sip_targets"]
    assert (t["uri"], t["username"], t["has_password"]) == ("sip:100@pbx.example.com;transport=tls", "100", True)

    attach = await b.get(r.headers["location"])
    assert "Front desk</strong> saved" in attach.text and f'<option value="{rn_id}" selected>' in attach.text
    r = await b.post("/numbers/tracking/new", {"number": "+1 555 010 0199", "receiving_number_id": rn_id,
                                              "name": "Ads"})
    assert r.status_code == 200 and "Tracking number added." in r.text
    assert "<code>+15550100199</code>" in r.text  # normalised by the API
    tns = (await console.api.get("/v1/tracking-numbers", headers={"Authorization": f"Bearer {key}"})).json()
    assert [(x["number"], x["receiving_number_id"]) for x in tns["items"]] == [("+15550100199", rn_id)]

    # Editing: the password is "set", never rendered; an empty field keeps it.
    edit = await b.get(f"/numbers/receiving/{rn_id}")
    assert "A password is set" in edit.text
    r = await b.post(f"/numbers/receiving/{rn_id}", {
        "name": "Front desk 2", "dial_sip_client": "on", "enabled": "on", "sip_targets[0].id": t["id"],
        "sip_targets[0].uri": t["uri"], "sip_targets[0].username": "100", "sip_targets[0].password": "",
        "ring_timeout": "25"})
    assert r.status_code == 200 and "Receiving number saved." in r.text
    rn = (await console.api.get(f"/v1/receiving-numbers/{rn_id}", headers={"Authorization": f"Bearer {key}"})).json()
    assert rn["name"] == "Front desk 2" and rn["ring_timeout"] == 25 and rn["sip_targets"][0]["has_password"]

    for path in ("/numbers", "/numbers/receiving", f"/numbers/receiving/{rn_id}", "/numbers/tracking",
                 "/numbers/tracking/new", "/calls", "/regions", "/webhooks"):
        html = (await b.get(path)).text
        assert PASSWORD not in html and key not in html, path


async def test_api_field_errors_are_shown_next_to_their_field(console: Console) -> None:
    _, key, b = await signed_in(console)
    r = await new_receiving(b, name="", uri="sip:", password=PASSWORD)
    assert r.status_code == 422
    # The very messages of the API's problem, under the inputs they name.
    direct = await console.api.post("/v1/receiving-numbers", headers={"Authorization": f"Bearer {key}"}, json={
        "name": "", "sip_targets": [{"uri": "sip:", "username": "100", "password": "x"}]})
    msgs = {e["field"]: e["message"] for e in direct.json()["errors"]}
    assert field_error(r.text, "name") == msgs["name"]
    assert field_error(r.text, "sip_targets-0-uri") == msgs["sip_targets[0].uri"]
    assert PASSWORD not in r.text  # not even echoed back after an error
    assert 'value="100"' in r.text  # the rest of what was typed is kept

    r = await new_receiving(b, password="")
    rn_id = parse_qs(urlsplit(r.headers["location"]).query)["receiving_number_id"][0]
    await b.get("/numbers/tracking/new")
    r = await b.post("/numbers/tracking/new", {"number": "12", "receiving_number_id": rn_id})
    assert r.status_code == 422 and field_error(r.text, "number")

    # A password without a SIP user: the API's rule, shown on the SIP User field.
    r = await new_receiving(b, user="")
    assert r.status_code == 422 and "needs a SIP user" in field_error(r.text, "sip_targets-0-username")


async def test_a_post_without_the_csrf_token_is_refused(console: Console) -> None:
    _, key, b = await signed_in(console)
    await b.get("/numbers/receiving/new")
    body = {"name": "X", "dial_sip_client": "on", "sip_targets[0].uri": "sip:1@pbx.example.com"}
    r = await b.post("/numbers/receiving/new", body, csrf=False)
    assert r.status_code == 403 and "CSRF" in r.text
    r = await b.post("/numbers/receiving/new", [*body.items(), ("csrf", "forged")], csrf=False)
    assert r.status_code == 403
    other = console.browser()
    await other.sign_in((await console.account("Other"))[1])
    r = await b.post("/numbers/receiving/new", [*body.items(), ("csrf", other.csrf)], csrf=False)
    assert r.status_code == 403
    r = await b.post("/sign-out", {}, csrf=False)
    assert r.status_code == 403
    listed = await console.api.get("/v1/receiving-numbers", headers={"Authorization": f"Bearer {key}"})
    assert listed.json()["items"] == []


async def test_another_accounts_cookie_sees_404_for_this_accounts_objects(console: Console) -> None:
    _, key, a = await signed_in(console, "Alpha")
    r = await new_receiving(a)
    rn_id = parse_qs(urlsplit(r.headers["location"]).query)["receiving_number_id"][0]
    await a.get("/numbers/tracking/new")
    await a.post("/numbers/tracking/new", {"number": "+15550100111", "receiving_number_id": rn_id})
    tn_id = (await console.api.get("/v1/tracking-numbers", headers={"Authorization": f"Bearer {key}"})
             ).json()["items"][0]["id"]

    _, _, b = await signed_in(console, "Beta")
    assert (await b.get(f"/numbers/receiving/{rn_id}")).status_code == 404
    await b.get("/numbers")
    assert (await b.post(f"/numbers/receiving/{rn_id}", {"name": "stolen"})).status_code == 404
    assert (await b.post(f"/numbers/receiving/{rn_id}/delete", {})).status_code == 404
    assert (await b.post(f"/numbers/tracking/{tn_id}/delete", {})).status_code == 404
    assert "+15550100111" not in (await b.get("/numbers/tracking")).text
    assert (await b.get("/calls/not-a-call")).status_code == 404
    # Nothing of Alpha's changed.
    rn = (await console.api.get(f"/v1/receiving-numbers/{rn_id}", headers={"Authorization": f"Bearer {key}"})).json()
    assert rn["name"] == "Front desk"
    assert (await console.api.get(f"/v1/tracking-numbers/{tn_id}",
                                  headers={"Authorization": f"Bearer {key}"})).status_code == 200


async def test_sign_out_ends_the_session_even_for_a_copied_cookie(console: Console) -> None:
    _, _, b = await signed_in(console)
    cookie = b.http.cookies.get("sb_console")
    assert cookie
    r = await b.post("/sign-out", {})
    assert r.status_code == 200 and "You are signed out." in r.text
    assert (await b.get("/numbers", follow_redirects=False)).status_code == 303
    replay = console.browser()
    replay.http.cookies.set("sb_console", cookie)
    r = await replay.get("/numbers", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


async def test_a_tampered_cookie_is_no_session(console: Console) -> None:
    _, _, b = await signed_in(console)
    cookie = b.http.cookies.get("sb_console")
    assert cookie
    forged = console.browser()
    forged.http.cookies.set("sb_console", cookie[:-6] + ("AAAAAA" if not cookie.endswith("AAAAAA") else "BBBBBB"))
    r = await forged.get("/numbers", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


async def test_admin_signs_in_picks_or_creates_an_account(console: Console) -> None:
    acc, _ = await console.account("Existing")
    b = console.browser()
    r = await b.sign_in(ADMIN)
    assert str(r.url).endswith("/accounts") and "Existing" in r.text
    r = await b.post("/accounts/select", {"account_id": acc})
    assert "Account selected." in r.text and "Admin · Existing" in r.text
    r = await b.post("/accounts/new", {"name": "Fresh"})
    assert "Admin · Fresh" in r.text
    r = await new_receiving(b, name="Admin made")
    assert r.status_code == 303
    admin = {"Authorization": f"Bearer {ADMIN}"}
    rns = (await console.api.get("/v1/receiving-numbers", headers=admin)).json()["items"]
    fresh = (await console.api.get("/v1/accounts", headers=admin)).json()["items"]
    fresh_id = next(a["id"] for a in fresh if a["name"] == "Fresh")
    assert [(x["name"], x["account_id"]) for x in rns] == [("Admin made", fresh_id)]


async def test_regions_page_and_allowlist_downloads(console: Console) -> None:
    _, _, b = await signed_in(console)
    r = await b.get("/regions")
    assert r.status_code == 200 and "Virginia" in r.text and "us2" in r.text and "203.0.113.10" in r.text
    for fmt, filename in (("json", "switchboard-allowlist.json"), ("csv", "switchboard-allowlist.csv"),
                          ("nftables", "switchboard-allowlist.nft"), ("iptables", "switchboard-allowlist.iptables")):
        assert f'href="/regions/allowlist/{fmt}"' in r.text
        d = await b.get(f"/regions/allowlist/{fmt}")
        assert d.status_code == 200 and d.headers["content-disposition"] == f'attachment; filename="{filename}"'
    assert (await b.get("/regions/allowlist/json")).json() == {"signaling": ["203.0.113.10"]}
    assert (await b.get("/regions/allowlist/pdf")).status_code == 404


async def test_webhooks_add_list_remove_and_errors(console: Console) -> None:
    _, key, b = await signed_in(console)
    await b.get("/webhooks")
    r = await b.post("/webhooks/new", [("url", "ftp://x"), ("events", "completed"), ("secret", "short")])
    assert r.status_code == 422 and field_error(r.text, "wh-url") and field_error(r.text, "wh-secret")
    r = await b.post("/webhooks/new", [("url", "https://hooks.example.com/sb"), ("events", "completed"),
                                       ("events", "answered"), ("secret", "a-secret-of-24-chars-xx")])
    assert "Webhook added." in r.text and "https://hooks.example.com/sb" in r.text
    assert "a-secret-of-24-chars-xx" not in r.text
    [wh] = (await console.api.get("/v1/webhooks", headers={"Authorization": f"Bearer {key}"})).json()["items"]
    assert wh["events"] == ["answered", "completed"]
    log = await b.get(f"/webhooks/{wh['id']}")
    assert log.status_code == 200 and "Nothing delivered yet." in log.text
    r = await b.post(f"/webhooks/{wh['id']}/delete", {})
    assert "Webhook removed." in r.text


async def test_calls_filters_show_the_apis_errors(console: Console) -> None:
    _, _, b = await signed_in(console)
    r = await b.get("/calls")
    assert r.status_code == 200 and "No calls." in r.text
    r = await b.get("/calls", params={"number": "12"})
    assert r.status_code == 422 and field_error(r.text, "f-number")


async def test_more_options_failover_target_and_its_errors(console: Console) -> None:
    _, key, b = await signed_in(console)
    await b.get("/numbers/receiving/new")
    base = {"name": "Two PBXs", "dial_sip_client": "on", "enabled": "on",
            "sip_targets[0].uri": "sips:100@pbx1.example.com", "sip_targets[0].enabled_shown": "1",
            "sip_targets[0].enabled": "on", "sip_targets[0].tls.verify_shown": "1",
            "sip_targets[1].uri": "sip:100@pbx2.example.com;transport=tcp", "sip_targets[1].priority": "abc",
            "sip_targets[1].enabled_shown": "1", "sip_targets[1].enabled": "on",
            "sip_targets[1].tls.verify_shown": "1", "sip_targets[1].tls.verify": "on",
            "ring_timeout": "2", "send_digits": "ww12#", "region": "us1"}
    r = await b.post("/numbers/receiving/new", base, follow=False)
    assert r.status_code == 422
    assert field_error(r.text, "sip_targets-1-priority") and field_error(r.text, "ring_timeout")
    assert '<details class="more" open>' in r.text  # the errors under More options are not hidden
    r = await b.post("/numbers/receiving/new", {**base, "sip_targets[1].priority": "20", "ring_timeout": "15"},
                     follow=False)
    assert r.status_code == 303, r.text
    [rn] = (await console.api.get("/v1/receiving-numbers", headers={"Authorization": f"Bearer {key}"})).json()["items"]
    assert (rn["ring_timeout"], rn["send_digits"], rn["region"]) == (15, "ww12#", "us1")
    t0, t1 = rn["sip_targets"]
    assert (t0["uri"], t0["tls"]["verify"], t0["transport"]) == ("sips:100@pbx1.example.com", False, "tls")
    assert (t1["uri"], t1["priority"], t1["tls"]["verify"]) == ("sip:100@pbx2.example.com;transport=tcp", 20, True)
    # The toggle off: the API's answer is shown at the toggle.
    r = await b.post("/numbers/receiving/new", {"name": "Off", "enabled": "on"}, follow=False)
    assert r.status_code == 422 and field_error(r.text, "dial_sip_client")


async def test_point_a_tracking_number_elsewhere_and_removal_rules(console: Console) -> None:
    _, key, b = await signed_in(console)
    h = {"Authorization": f"Bearer {key}"}
    first = parse_qs(urlsplit((await new_receiving(b, name="First")).headers["location"]).query)
    second = parse_qs(urlsplit((await new_receiving(b, name="Second")).headers["location"]).query)
    rn1, rn2 = first["receiving_number_id"][0], second["receiving_number_id"][0]
    await b.get("/numbers/tracking/new")
    await b.post("/numbers/tracking/new", {"number": "+15550100222", "receiving_number_id": rn1})
    [tn] = (await console.api.get("/v1/tracking-numbers", headers=h)).json()["items"]
    # A receiving number with a tracking number pointing at it is not removed; the page says why.
    r = await b.post(f"/numbers/receiving/{rn1}/delete", {})
    assert "still has tracking numbers" in r.text
    r = await b.post(f"/numbers/tracking/{tn['id']}", {"receiving_number_id": rn2})
    assert "Tracking number saved." in r.text
    assert (await console.api.get(f"/v1/tracking-numbers/{tn['id']}", headers=h)).json()["receiving_number_id"] == rn2
    # Another account's receiving number is not a choice, even if posted by hand.
    _, _, other = await signed_in(console, "Other")
    theirs = parse_qs(urlsplit((await new_receiving(other, name="Theirs")).headers["location"]).query)
    await b.get("/numbers/tracking")
    r = await b.post(f"/numbers/tracking/{tn['id']}", {"receiving_number_id": theirs["receiving_number_id"][0]})
    assert "That change was refused" in r.text
    assert (await console.api.get(f"/v1/tracking-numbers/{tn['id']}", headers=h)).json()["receiving_number_id"] == rn2
    r = await b.post(f"/numbers/receiving/{rn1}/delete", {})
    assert "Receiving number removed." in r.text
    r = await b.post(f"/numbers/tracking/{tn['id']}/delete", {})
    assert "Tracking number removed." in r.text
    assert (await console.api.get("/v1/tracking-numbers", headers=h)).json()["items"] == []


def unlabelled(html: str) -> list[str]:
    """Form controls (not hidden) without a <label for=...> naming their id."""
    from html.parser import HTMLParser

    class P(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.controls: list[tuple[str, str]] = []
            self.labels: set[str] = set()

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "label" and a.get("for"):
                self.labels.add(a["for"] or "")
            if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
                self.controls.append((a.get("id") or "", a.get("name") or ""))

    p = P()
    p.feed(html)
    return [name for id_, name in p.controls if not id_ or id_ not in p.labels]


async def test_every_form_field_has_a_real_label(console: Console) -> None:
    _, _, b = await signed_in(console)
    r = await new_receiving(b)
    rn_id = parse_qs(urlsplit(r.headers["location"]).query)["receiving_number_id"][0]
    await b.get("/numbers/tracking/new")
    await b.post("/numbers/tracking/new", {"number": "+15550100333", "receiving_number_id": rn_id})
    pages = ["/numbers/receiving/new", f"/numbers/receiving/{rn_id}", "/numbers/tracking/new", "/numbers/tracking",
             "/calls", "/webhooks", "/regions", "/numbers/receiving"]
    for path in pages:
        html = (await b.get(path)).text
        assert unlabelled(html) == [], path
    signin = console.browser()
    assert unlabelled((await signin.get("/")).text) == []
    admin = console.browser()
    assert unlabelled((await admin.sign_in(ADMIN)).text) == []


async def test_a_bad_certificate_opens_its_tls_section_with_the_error(console: Console) -> None:
    _, _, b = await signed_in(console)
    await b.get("/numbers/receiving/new")
    r = await b.post("/numbers/receiving/new", {
        "name": "TLS", "dial_sip_client": "on", "sip_targets[0].uri": "sips:100@pbx.example.com",
        "sip_targets[0].tls.ca_pem": "not a certificate"}, follow=False)
    assert r.status_code == 422
    assert field_error(r.text, "sip_targets-0-tls-ca_pem")
    assert '<details class="more" open>' in r.text and '<details class="tls" open>' in r.text


async def test_media_encryption_and_nat_detection_from_the_form(console: Console) -> None:
    """TLS with plain RTP and NAT detection off; SRTP on a UDP target is refused next to its select."""
    _, key, b = await signed_in(console)
    await b.get("/numbers/receiving/new")
    base = {"name": "TLS, no SRTP", "dial_sip_client": "on", "enabled": "on",
            "sip_targets[0].uri": "sip:100@pbx.example.com", "sip_targets[0].media_encryption": "srtp",
            "nat": "off"}
    r = await b.post("/numbers/receiving/new", base, follow=False)
    assert r.status_code == 422 and "TLS" in field_error(r.text, "sip_targets-0-media_encryption")
    assert '<option value="srtp" selected>' in r.text and '<option value="off" selected>' in r.text
    r = await b.post("/numbers/receiving/new", {**base, "sip_targets[0].uri": "sips:100@pbx.example.com",
                                                "sip_targets[0].media_encryption": "none"}, follow=False)
    assert r.status_code == 303, r.text
    [rn] = (await console.api.get("/v1/receiving-numbers", headers={"Authorization": f"Bearer {key}"})).json()["items"]
    assert rn["nat"] == "off" and rn["sip_targets"][0]["media_encryption"] == "none"
    r = await b.get(f"/numbers/receiving/{rn['id']}")
    assert '<option value="none" selected>' in r.text and '<option value="off" selected>' in r.text


async def test_calls_are_paged_filtered_and_a_call_page_says_when_events_are_away(console: Console) -> None:
    from datetime import UTC, datetime, timedelta

    from services.config.db.models import CallRecord

    acc, _, b = await signed_in(console)
    other, _ = await console.account("Other")
    t0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    async with console.ctx.sessionmaker() as session:
        for i in range(30):
            session.add(CallRecord(id=f"c{i:02d}", account_id=acc, tracking_number="+15550100444", caller="+15550001",
                                   started_at=t0 + timedelta(minutes=i), result="busy" if i % 3 == 0 else "completed",
                                   sip_status=486 if i % 3 == 0 else 200, duration=0 if i % 3 == 0 else 12.5,
                                   targets=[], dtmf=[]))
        session.add(CallRecord(id="theirs", account_id=other, tracking_number="+15550100444", started_at=t0,
                               result="completed", targets=[], dtmf=[]))
        await session.commit()
    page1 = await b.get("/calls")
    ids = re.findall(r'href="/calls/(c\d\d)"', page1.text)
    assert ids == [f"c{i:02d}" for i in range(29, 4, -1)]  # newest first, 25 a page
    assert "theirs" not in page1.text
    older = re.search(r'href="/calls\?(cursor=[^"]+)">Older calls', page1.text)
    assert older
    page2 = await b.get("/calls?" + older.group(1).replace("&amp;", "&"))
    assert re.findall(r'href="/calls/(c\d\d)"', page2.text) == ["c04", "c03", "c02", "c01", "c00"]
    assert "First page</a>" in page2.text and "Older calls" not in page2.text
    busy = await b.get("/calls", params={"result": "busy", "from": "2026-01-05T12:10", "to": "2026-01-05T12:20"})
    assert re.findall(r'href="/calls/(c\d\d)"', busy.text) == ["c18", "c15", "c12"]
    # No event stream in this app: the record shows, and the ladder says why it is missing.
    call = await b.get("/calls/c01")
    assert call.status_code == 200 and "completed" in call.text and "12.5 s" in call.text
    assert "The call's messages cannot be shown now" in call.text
    assert (await b.get("/calls/theirs")).status_code == 404


async def test_an_oversized_form_is_refused(console: Console) -> None:
    _, key, b = await signed_in(console)
    await b.get("/numbers/receiving/new")
    r = await b.post("/numbers/receiving/new", {"name": "x" * (1 << 20), "dial_sip_client": "on"})
    assert r.status_code == 413
    r = await b.post("/numbers/receiving/new", [(f"f{i}", "") for i in range(600)])
    assert r.status_code == 413
    assert (await console.api.get("/v1/receiving-numbers", headers={"Authorization": f"Bearer {key}"})
            ).json()["items"] == []


async def test_ids_that_are_not_ids_never_reach_the_api(console: Console) -> None:
    _, _, b = await signed_in(console)
    assert (await b.get("/numbers/receiving/..%2F..%2Fv1%2Faccounts")).status_code == 404
    assert (await b.get("/calls/a%3Fb")).status_code == 404
    admin = console.browser()
    await admin.sign_in(ADMIN)
    r = await admin.post("/accounts/select", {"account_id": "../receiving-numbers"})
    assert r.status_code == 404


async def test_receiving_numbers_list_shows_each_pinged_targets_health(console: Console) -> None:
    """Issue 17's list column, from issue 15's OPTIONS pinging: a pinged target's health and
    since when; a target that is not pinged says so. The console form keeps options_ping."""
    from datetime import UTC, datetime

    from services.config.db.models import TargetHealthRow

    _, key, b = await signed_in(console)
    h = {"Authorization": f"Bearer {key}"}
    r = await console.api.post("/v1/receiving-numbers", headers=h, json={
        "name": "Pinged", "sip_targets": [{"uri": "sip:100@pbx.example.com", "options_ping": True},
                                          {"uri": "sip:100@backup.example.com", "options_ping": True},
                                          {"uri": "sip:100@spare.example.com"}]})
    assert r.status_code == 201, r.text
    rn = r.json()
    first, second, _ = rn["sip_targets"]
    async with console.ctx.sessionmaker() as session:
        session.add(TargetHealthRow(target_id=first["id"], health="down",
                                    changed_at=datetime(2026, 12, 3, 13, 5, 7, tzinfo=UTC), node="sig-1"))
        await session.commit()
    page = (await b.get("/numbers/receiving")).text
    cells = re.findall(r'<span class="health (\w+)">(\w+)</span>', page)
    assert cells == [("down", "down"), ("unknown", "unknown")]
    assert "since <time" in page and "2026-12-03 13:05:07 UTC" in page
    assert "not pinged" in page
    # Editing in the console keeps (and shows) the ping setting.
    form = (await b.get(f"/numbers/receiving/{rn['id']}")).text
    assert re.search(r'name="sip_targets\[0\]\.options_ping" checked', form)
    assert re.search(r'<label for="[^"]+">Ping with OPTIONS', form)


async def test_more_options_has_the_pbx_options(console: Console) -> None:
    """Issue 17's "More options" carries issue 15's PBX options: saved through the API, shown
    back on edit, and a bad header named next to its field."""
    _, key, b = await signed_in(console)
    form = await b.get("/numbers/receiving/new")
    for label in ("Diversion header with the tracking number", "Request-URI user", "Transfers (REFER)",
                  "Redirects (3xx)", "Carrier headers to pass on", "Headers to add"):
        assert re.search(rf'<label for="[^"]+">{re.escape(label)}', form.text), label
    body = {"name": "DID desk", "dial_sip_client": "on", "enabled": "on", "sip_targets[0].uri": "sip:pbx.example.com",
            "ring_timeout": "30", "diversion_shown": "1", "forward_pai_shown": "1", "forward_pai": "on",
            "forward_identity_shown": "1", "request_uri_user": "tracking_number", "transfer": "reject",
            "follow_redirects": "any", "forward_headers": "X-*, User-to-User", "sip_headers": "X-Account: acme"}
    bad = await b.post("/numbers/receiving/new", {**body, "sip_headers": "Via: x"})
    assert bad.status_code == 422 and "start with X-" in field_error(bad.text, "sip_headers")
    r = await b.post("/numbers/receiving/new", body, follow=False)
    assert r.status_code == 303, r.text
    rn_id = parse_qs(urlsplit(r.headers["location"]).query)["receiving_number_id"][0]
    rn = (await console.api.get(f"/v1/receiving-numbers/{rn_id}", headers={"Authorization": f"Bearer {key}"})).json()
    assert (rn["diversion"], rn["forward_pai"], rn["forward_identity"], rn["request_uri_user"], rn["transfer"],
            rn["follow_redirects"], rn["forward_headers"], rn["sip_headers"]) == (
        False, True, False, "tracking_number", "reject", "any", ["X-*", "User-to-User"], {"X-Account": "acme"})
    edit = (await b.get(f"/numbers/receiving/{rn_id}")).text
    assert '<option value="tracking_number" selected>' in edit and "X-Account: acme</textarea>" in edit
    assert 'value="X-*, User-to-User"' in edit
