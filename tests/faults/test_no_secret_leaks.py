"""Issue 14 item 8: a call through a SIP client that challenges us, with a recognisable
password: the password is found nowhere it should not be: the stack's logs (DEBUG), the data
dir (the database holds it sealed), every event of the call in the CALLS stream, every API
answer, `switchboard calls show --sip` and the pcap export. (There is no HEP output.)"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.sipp import NUMBER, SCENARIOS, carrier, finish, sipp
from tests.helpers.stack import running_stack, udp_free_port

pytestmark = [
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.timeout(120),
]

SECRET = "Zq7RecognisableSipPassword91x"
CLI = [sys.executable, "-c", "from services.cli.main import main; main()"]


async def test_the_sip_password_appears_nowhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_stack(tmp_path) as stack:
        port = udp_free_port()
        pbx = await sipp(tmp_path, "pbx", "-sf", str(SCENARIOS / "client_auth_answer.xml"), "-set", "user", "alice",
                         "-set", "pass", SECRET, "-p", str(port), "-mp", str(udp_free_port()), "-m", "1")
        ids = await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{port}", "username": "alice",
                                              "password": SECRET, "priority": 1}])
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "300")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(pbx, tmp_path, "pbx") == 0  # it verified our digest: we knew the password
        ended = await stack.wait_event("ended")
        assert await stack.wait_event("challenged")

        places: dict[str, str] = {}
        async with stack.http() as api:
            while True:  # the record is written from the stream
                r = await api.get(f"/v1/calls/{ended.call_id}")
                if r.status_code == 200 and r.json()["result"]:
                    break
                await asyncio.sleep(0.1)
            for path in ("/v1/calls", f"/v1/calls/{ended.call_id}", f"/v1/calls/{ended.call_id}/events",
                         "/v1/receiving-numbers", f"/v1/receiving-numbers/{ids['receiving_number_id']}",
                         "/v1/tracking-numbers", "/v1/accounts", f"/v1/accounts/{ids['account_id']}",
                         "/v1/webhooks", "/openapi.json"):
                r = await api.get(path, params={"account_id": ids["account_id"]} if path == "/v1/calls" else None)
                assert r.status_code == 200, (path, r.text)
                places[f"GET {path}"] = r.text
        events = await stack.call_events(ended.call_id)
        assert len(events) > 10
        places["CALLS stream"] = "\n".join(e.model_dump_json() for e in events)
        places["live events"] = "\n".join(e.model_dump_json() for e in stack.events)

        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        pcap = tmp_path / "export.pcap"
        for name, args in (("calls show --sip", ["calls", "show", ended.call_id, "--sip"]),
                           ("calls export", ["calls", "export", ended.call_id, "--pcap", str(pcap)])):
            out = await asyncio.to_thread(subprocess.run, CLI + args + ["--nats-url", stack.nats.url],
                                          capture_output=True, text=True, timeout=60, env=env)
            assert out.returncode == 0, out.stderr
            places[name] = out.stdout + out.stderr
        assert "Authorization: Digest" in places["calls show --sip"]  # the SIP messages are there, redacted
        places["pcap"] = pcap.read_bytes().decode("latin-1")
    places["logs"] = caplog.text + "\n".join(str(r.args) for r in caplog.records)

    sipp_files = {p for p in tmp_path.glob("*") if p.suffix in (".err", ".log") or p.name.startswith(("pbx", "carrier"))}
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p not in sipp_files]
    assert any(p.name == "db.sqlite" for p in files) and any("nats" in p.parts for p in files)
    for p in files:
        places[f"file {p.relative_to(tmp_path)}"] = p.read_bytes().decode("latin-1")

    found = {where: text.count(SECRET) for where, text in places.items() if SECRET in text}
    print(f"the SIP password in {len(places)} places searched ({len(files)} files): {sum(found.values())} "
          f"occurrences")
    assert not found, found
