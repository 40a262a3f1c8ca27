"""The web console in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium): an account's user follows the steps our users know, word for word —
Numbers → Receiving Numbers → New Receiving Number → turn on "Dial SIP Client" → SIP Client,
SIP User, SIP Password → Save & Continue → attach a tracking number — then a real SIPp call
goes to that number and the user finds it on the Calls page, with the INVITE on both legs of
its ladder. No page the console served contains the SIP password.

Screenshots go to tmp_path; set SWITCHBOARD_CONSOLE_SCREENSHOTS=docs/console to refresh the
README's. Selenium is blocking, and the stack runs in this test's event loop: every browser
step runs in a worker thread (asyncio.to_thread)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.peers import SippPeer
from tests.helpers.stack import ADMIN, running_stack, udp_free_port

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.interop,
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                       reason="chromium and chromium-driver are not installed (.ci/run installs them)"),
    pytest.mark.timeout(240),
]

NUMBER = "+15557650123"
SIP_USER = "alice"
SIP_PASSWORD = "Pw-7f3k9-Zq"  # must never be in a page
REPO = Path(__file__).resolve().parents[2]
WAIT = 15  # seconds any one page element may take to appear


class Browser:
    """A Chromium driven through chromedriver, remembering every page source it saw."""

    def __init__(self, base: str, tmp: Path, shots: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'chromium-profile'}",
                     "--window-size=1280,900"):
            opts.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(tmp / "chromedriver.log")),
                                       options=opts)
        self.base, self.shots = base, shots
        self.sources: dict[str, str] = {}
        shots.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        self.driver.quit()

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def wait(self, cond: Callable[[Any], Any], what: str) -> Any:
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        # A page being replaced by the next one leaves stale elements: the condition is checked again.
        return WebDriverWait(self.driver, WAIT, poll_frequency=0.05,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                             ).until(cond, message=f"waiting for {what}")

    def heading(self, text: str) -> None:
        """Wait for the page whose h1 is `text`, and keep its source."""
        from selenium.webdriver.common.by import By

        self.wait(lambda d: any(h.text.strip() == text for h in d.find_elements(By.TAG_NAME, "h1")),
                  f"the page {text!r}")
        self.sources[self.driver.current_url] = self.driver.page_source

    def click_link(self, text: str) -> None:
        from selenium.webdriver.common.by import By

        self.wait(lambda d: d.find_elements(By.LINK_TEXT, text), f"a link {text!r}")[0].click()

    def click_button(self, text: str) -> None:
        from selenium.webdriver.common.by import By

        xpath = f"//button[normalize-space()={_xq(text)}]"
        self.wait(lambda d: d.find_elements(By.XPATH, xpath), f"a button {text!r}")[0].click()

    def field(self, label: str) -> Any:
        """The input a <label> with this text is for (so every field checked has a real label)."""
        from selenium.webdriver.common.by import By

        lab = self.wait(lambda d: d.find_elements(By.XPATH, f"//label[normalize-space()={_xq(label)}]"),
                        f"a label {label!r}")[0]
        return self.driver.find_element(By.ID, lab.get_attribute("for"))

    def type(self, label: str, text: str) -> None:
        el = self.field(label)
        self.wait(lambda d: el.is_displayed(), f"the field {label!r} to be shown")
        el.clear()
        el.send_keys(text)

    def shot(self, name: str, full: bool = False) -> None:
        d = self.driver
        if full:
            height = d.execute_script("return document.documentElement.scrollHeight")
            width = d.execute_script("return document.documentElement.scrollWidth")
            d.set_window_size(max(1280, int(width)), min(int(height) + 120, 6000))
        d.save_screenshot(str(self.shots / f"{name}.png"))
        if full:
            d.set_window_size(1280, 900)


class HookReceiver:
    """An HTTP endpoint on loopback that answers every webhook delivery 204 and keeps them."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        received = self.received = []  # type: list[dict[str, Any]]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _xq(s: str) -> str:
    return f'"{s}"' if '"' not in s else f"'{s}'"


@pytest.fixture
def shots_dir(tmp_path: Path) -> Path:
    target = os.environ.get("SWITCHBOARD_CONSOLE_SCREENSHOTS")
    return (REPO / target) if target else tmp_path / "screenshots"


@pytest.fixture
def browser_factory(tmp_path: Path, shots_dir: Path) -> Iterator[Callable[[str], Browser]]:
    made: list[Browser] = []

    def make(base: str) -> Browser:
        b = Browser(base, tmp_path, shots_dir)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


@pytest.fixture
def hooks() -> Iterator[HookReceiver]:
    r = HookReceiver()
    yield r
    r.close()


async def test_route_a_tracking_number_to_a_sip_client_and_see_the_call(
        tmp_path: Path, sipp: Callable[..., SippPeer], browser_factory: Callable[[str], Browser],
        hooks: HookReceiver) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    async with running_stack(tmp_path) as stack:
        async with stack.http() as admin:
            acc = (await admin.post("/v1/accounts", json={"name": "Acme Dental"})).json()["id"]
            key = (await admin.post(f"/v1/accounts/{acc}/api-keys", json={"name": "console"})).json()["key"]
        client = await sipp("client_auth_answer", variables={"user": SIP_USER, "pass": SIP_PASSWORD},
                            rtp_echo=True, timeout=60).start()
        sip_client = f"sip:100@127.0.0.1:{client.port}"
        b = await asyncio.to_thread(browser_factory, stack.api)

        def sign_in_and_route() -> None:
            b.open("/")
            b.heading("Sign in to Switchboard")
            b.shot("sign-in")
            b.type("API key", "sb_wrong-key")
            b.click_button("Sign in")
            b.wait(lambda d: "That API key is not valid" in d.page_source, "the wrong-key message")
            b.type("API key", key + Keys.ENTER)  # the keyboard submits the form too
            b.heading("Numbers")
            b.shot("numbers")
            b.click_link("Receiving Numbers")
            b.heading("Receiving Numbers")
            b.click_link("New Receiving Number")
            b.heading("New Receiving Number")
            b.type("Name", "Front desk")
            toggle = b.field("Dial SIP Client")
            assert not toggle.is_selected() and not b.field("SIP Client").is_displayed()
            toggle.send_keys(Keys.SPACE)  # a switch, operated from the keyboard
            b.wait(lambda d: toggle.is_selected(), "Dial SIP Client to be on")
            b.type("SIP Client", sip_client)
            b.type("SIP User", SIP_USER)
            b.type("SIP Password", SIP_PASSWORD)
            b.shot("new-receiving-number")
            b.click_button("Save & Continue")
            b.heading("Add Tracking Number")
            assert "Front desk" in b.driver.find_element(By.CSS_SELECTOR, "p.flash.ok").text
            b.type("Tracking number", NUMBER)
            b.shot("add-tracking-number")
            b.click_button("Add Tracking Number")
            b.heading("Tracking Numbers")
            b.wait(lambda d: NUMBER in d.page_source, "the new tracking number in the list")
            b.shot("tracking-numbers")
            # Status webhooks for this account's calls, to a receiver on loopback.
            b.click_link("Webhooks")
            b.heading("Webhooks")
            b.type("Endpoint URL", hooks.url)
            b.type("Signing secret", "whsec-0123456789abcdef")
            b.click_button("Add webhook")
            b.wait(lambda d: "Webhook added." in d.page_source and hooks.url in d.page_source, "the new webhook")
            b.shot("webhooks")

        await asyncio.to_thread(sign_in_and_route)

        # Through the API: the receiving number has that target, user and a password.
        h = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=stack.api, headers=h) as api:
            [rn] = (await api.get("/v1/receiving-numbers")).json()["items"]
            [t] = rn["sip_targets"]
            assert (rn["name"], rn["dial_sip_client"]) == ("Front desk", True)
            assert (t["uri"], t["username"], t["has_password"]) == (sip_client, SIP_USER, True)
            [tn] = (await api.get("/v1/tracking-numbers")).json()["items"]
            assert (tn["number"], tn["receiving_number_id"]) == (NUMBER, rn["id"])

            # A real call: SIPp as the carrier dials the tracking number; SIPp as the SIP client
            # challenges, checks the digest made from the password typed above, answers.
            carrier = sipp("carrier_call", remote=f"127.0.0.1:{stack.sip_port}", service=NUMBER.lstrip("+"),
                           call_length_ms=1000, timeout=40,
                           variables={"caller": "15550001111", "rtp_ip": "127.0.0.1", "rtp_port": udp_free_port()})
            (await carrier.run(timeout=45)).assert_ok()
            (await client.wait(timeout=30)).assert_ok()
            ended = await stack.wait_event("ended", timeout=20)
            call_id = ended.call_id
            # The record is written by the config service's consumer: wait for it, bounded.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while True:
                items = (await api.get("/v1/calls")).json()["items"]
                if items and items[0]["id"] == call_id and items[0]["result"] == "completed":
                    break
                assert loop.time() < deadline, f"call {call_id} not recorded as completed: {items}"
                await asyncio.sleep(0.1)
            while not any(d.get("event") == "completed" for d in hooks.received):
                assert loop.time() < deadline, f"no completed webhook delivered: {hooks.received}"
                await asyncio.sleep(0.1)

        def find_the_call() -> None:
            b.click_link("Calls")
            b.heading("Calls")
            row = b.wait(lambda d: d.find_elements(By.CSS_SELECTOR, f"a[href='/calls/{call_id}']"), "the call")
            assert "completed" in b.driver.find_element(By.CSS_SELECTOR, "table.calls tbody tr").text
            b.shot("calls")
            row[0].click()
            b.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "svg.ladder"), "the ladder")
            b.sources[b.driver.current_url] = b.driver.page_source
            cols = [c.text for c in b.driver.find_elements(By.CSS_SELECTOR, "svg.ladder .col-label")]
            assert cols == ["Carrier", "Switchboard", "SIP client"], cols
            x = {lab: float(el.get_attribute("x")) for lab, el in
                 zip(cols, b.driver.find_elements(By.CSS_SELECTOR, "svg.ladder .col-label"), strict=True)}

            def arrows(kind: str) -> list[tuple[str, float, float]]:
                out = []
                for a in b.driver.find_elements(By.CSS_SELECTOR, f"svg.ladder a.row.{kind}"):
                    line = a.find_element(By.CSS_SELECTOR, "line.msg")
                    label = a.find_element(By.CSS_SELECTOR, ".msg-label").text
                    out.append((label, float(line.get_attribute("x1")), float(line.get_attribute("x2"))))
                return out

            # The INVITE on both legs: carrier -> Switchboard, and Switchboard -> the SIP client.
            assert any(lab.startswith("INVITE") and x1 == x["Carrier"] and x2 < x["Switchboard"]
                       for lab, x1, x2 in arrows("sip_in")), arrows("sip_in")
            assert any(lab.startswith("INVITE") and x1 == x["Switchboard"] and x2 > x["Switchboard"]
                       for lab, x1, x2 in arrows("sip_out")), arrows("sip_out")
            # The decisions are on the ladder too.
            notes = [n.text for n in b.driver.find_elements(By.CSS_SELECTOR, "svg.ladder .note")]
            for kind in ("received", "resolved", "media_allocated", "dialing", "answered", "ended"):
                assert any(n.startswith(kind) for n in notes), (kind, notes)
            b.shot("call-ladder", full=True)
            # Selecting the client leg's second INVITE shows its text, the digest response redacted.
            invites = [a for a in b.driver.find_elements(By.CSS_SELECTOR, "svg.ladder a.row.sip_out")
                       if a.find_element(By.CSS_SELECTOR, ".msg-label").text.startswith("INVITE")]
            anchor = invites[-1].get_dom_attribute("href").split("#", 1)[1]
            invites[-1].find_element(By.CSS_SELECTOR, ".msg-label").click()
            shown = b.wait(lambda d: d.find_element(By.ID, anchor) if d.find_element(By.ID, anchor)
                           .get_attribute("open") is not None else None, "the message text")
            text = shown.find_element(By.TAG_NAME, "pre").text
            assert text.startswith("INVITE sip:100@127.0.0.1") and 'response="<redacted>"' in text, text

            # The webhook's delivery log, and a redelivery.
            b.click_link("Webhooks")
            b.heading("Webhooks")
            b.click_link(hooks.url)
            b.heading(f"Webhook {hooks.url}")
            b.wait(lambda d: "completed" in d.page_source and "succeeded" in d.page_source, "the delivery log")
            b.driver.find_element(By.CSS_SELECTOR, f"button[aria-label='Redeliver completed of {call_id}']").click()
            b.wait(lambda d: "Delivery queued again." in d.page_source and "(redelivery)" in d.page_source,
                   "the redelivery in the log")
            b.sources[b.driver.current_url] = b.driver.page_source
            b.shot("webhook-deliveries")

            for path, title in (("/regions", "Regions & allow-list"), ("/numbers/receiving", "Receiving Numbers")):
                b.open(path)
                b.heading(title)
                b.shot(path.strip("/").replace("/", "-"), full=path == "/regions")
            b.click_link("Front desk")
            b.heading("Receiving Number: Front desk")
            assert "A password is set" in b.driver.page_source
            assert b.field("SIP Password").get_attribute("value") == ""
            b.shot("edit-receiving-number")
            b.driver.find_element(By.XPATH, "//summary[normalize-space()='More options']").click()
            b.wait(lambda d: b.field("Ring timeout (seconds)").is_displayed(), "More options to open")
            assert b.field("Ring timeout (seconds)").get_attribute("value") == "30"
            b.shot("receiving-more-options", full=True)

            # Tracking numbers: add a second one, then remove it (the page asks first).
            b.open("/numbers/tracking/new")
            b.heading("Add Tracking Number")
            b.type("Tracking number", "+15557650999")
            b.click_button("Add Tracking Number")
            b.heading("Tracking Numbers")
            b.wait(lambda d: "+15557650999" in d.page_source, "the second tracking number")
            b.driver.find_element(By.CSS_SELECTOR, "button[aria-label='Remove +15557650999']").click()
            b.wait(ec.alert_is_present(), "the confirmation").accept()
            b.wait(lambda d: "Tracking number removed." in d.page_source, "the removal")
            assert "+15557650999" not in b.driver.page_source and NUMBER in b.driver.page_source

            b.click_button("Sign out")
            b.heading("Sign in to Switchboard")
            b.open("/numbers")
            b.heading("Sign in to Switchboard")  # the session is over

            # The admin token (what `make run` prints) signs in as admin, with an account picker.
            b.type("API key", ADMIN + Keys.ENTER)
            b.heading("Accounts")
            b.type("Account name", "Second Clinic")
            b.shot("accounts")
            b.click_button("Create account")
            b.heading("Numbers")
            assert "Admin · Second Clinic" in b.driver.find_element(By.CSS_SELECTOR, ".who").text
            b.click_link("Accounts")
            b.heading("Accounts")
            from selenium.webdriver.support.ui import Select

            Select(b.field("Account")).select_by_visible_text(f"Acme Dental ({acc}, active)")
            b.click_button("Use this account")
            b.heading("Numbers")
            b.click_link("Calls")
            b.heading("Calls")
            assert b.driver.find_elements(By.CSS_SELECTOR, f"a[href='/calls/{call_id}']")
            b.sources[b.driver.current_url + "#admin"] = b.driver.page_source

        await asyncio.to_thread(find_the_call)

        assert len(b.sources) >= 10, list(b.sources)
        for url, html in b.sources.items():
            assert SIP_PASSWORD not in html, f"the SIP password is in the source of {url}"
            assert key not in html and ADMIN not in html, f"a key is in the source of {url}"
