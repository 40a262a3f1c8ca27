"""`switchboard numbers` / `switchboard receiving` against a live API."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.cli.main import build_parser
from tests.helpers.config_env import ADMIN, LiveApi


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with LiveApi(tmp_path_factory.mktemp("cli")) as live:
        yield live


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(list(argv))
    code = args.handler(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_provision_from_the_shell(api: LiveApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                  tmp_path: Path) -> None:
    import httpx

    acc = httpx.post(f"{api.url}/v1/accounts", json={"name": "Acme"},
                     headers={"Authorization": f"Bearer {ADMIN}"}).json()["id"]
    key = httpx.post(f"{api.url}/v1/accounts/{acc}/api-keys",
                     headers={"Authorization": f"Bearer {ADMIN}"}).json()["key"]
    # The API URL comes from run.json (as written by `switchboard up`), the key from the env.
    (tmp_path / "run.json").write_text(json.dumps({"api_url": api.url}))
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SWITCHBOARD_API_TOKEN", key)
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))

    code, out, err = run(capsys, "receiving", "add", "--name", "Desk", "--uri", "sip:100@pbx.example.com;transport=tcp",
                         "--username", "100", "--password-stdin", "--send-digits", "ww1#", "--region", "us2", "--json")
    assert code == 0, err
    rn = json.loads(out)
    assert rn["sip_targets"][0]["has_password"] and rn["region"] == "us2" and "s3cret" not in out

    code, out, err = run(capsys, "numbers", "add", "+1 555 123 4567", "--receiving", rn["id"])
    assert code == 0, err
    assert "+15551234567 -> " + rn["id"] in out
    code, out, _ = run(capsys, "numbers", "list", "--json")
    items = json.loads(out)
    assert [i["number"] for i in items] == ["+15551234567"]
    code, out, _ = run(capsys, "numbers", "list")
    assert "NUMBER" in out and "+15551234567" in out
    code, out, _ = run(capsys, "numbers", "update", items[0]["id"], "--disable", "--json")
    assert code == 0 and json.loads(out)["enabled"] is False
    code, out, _ = run(capsys, "receiving", "show", rn["id"])
    assert "sip:100@pbx.example.com;transport=tcp [tcp]" in out and "password set" in out
    code, out, _ = run(capsys, "receiving", "list")
    assert rn["id"] in out

    # The PBX options (issue 15): flags of add and update, shown back.
    code, out, err = run(capsys, "receiving", "update", rn["id"], "--request-uri-user", "tracking_number",
                         "--no-diversion", "--forward-header", "X-*", "--forward-header", "User-to-User",
                         "--sip-header", "X-Account=acme", "--transfer", "reject", "--follow-redirects", "none",
                         "--json")
    assert code == 0, err
    got = json.loads(out)
    assert (got["request_uri_user"], got["diversion"], got["forward_headers"], got["sip_headers"], got["transfer"],
            got["follow_redirects"]) == ("tracking_number", False, ["X-*", "User-to-User"], {"X-Account": "acme"},
                                         "reject", "none")
    code, out, _ = run(capsys, "receiving", "show", rn["id"])
    assert "request-uri user tracking_number" in out and "diversion off" in out and "X-Account=acme" in out
    code, _, err = run(capsys, "receiving", "update", rn["id"], "--sip-header", "Via=x")
    assert code == 1 and "sip_headers" in err

    # Errors are the API's problem details, field by field, and exit 1.
    code, _, err = run(capsys, "numbers", "add", "12345", "--receiving", rn["id"])
    assert code == 1 and "error 422" in err and "number:" in err
    code, _, err = run(capsys, "receiving", "add", "--name", "x", "--uri", "sips:a@pbx.example.com;transport=udp")
    assert code == 1 and "sip_targets[0].uri: transport" in err
    # TLS with plain RTP, NAT detection off; SRTP over UDP refused naming the field.
    code, out, err = run(capsys, "receiving", "add", "--name", "Tls", "--uri", "sips:100@pbx.example.com",
                         "--media-encryption", "none", "--nat", "off", "--json")
    assert code == 0, err
    tls_rn = json.loads(out)
    assert tls_rn["nat"] == "off" and tls_rn["sip_targets"][0]["media_encryption"] == "none"
    code, out, err = run(capsys, "receiving", "update", tls_rn["id"], "--nat", "auto", "--json")
    assert code == 0 and json.loads(out)["nat"] == "auto", err
    code, _, err = run(capsys, "receiving", "add", "--name", "x", "--uri", "sip:a@pbx.example.com",
                       "--media-encryption", "srtp")
    assert code == 1 and "sip_targets[0].media_encryption" in err
    code, _, err = run(capsys, "receiving", "delete", rn["id"])
    assert code == 1 and "error 409" in err
    code, _, _ = run(capsys, "numbers", "delete", items[0]["id"])
    assert code == 0
    code, _, _ = run(capsys, "receiving", "delete", rn["id"])
    assert code == 0
    code, _, err = run(capsys, "numbers", "list", "--token", "wrong")
    assert code == 1 and "error 401" in err


def test_calls_export_csv_writes_the_records(api: LiveApi, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import asyncio
    import csv
    from datetime import UTC, datetime

    from services.config import cdr
    from services.config.db.engine import make_engine, sessionmaker
    from services.config.db.models import CallRecord

    async def insert() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{api.tmp / 'live.db'}")
        async with sessionmaker(engine)() as s:
            for i, result in enumerate(("completed", "busy")):
                s.add(CallRecord(id=f"csv-{i}", tracking_number="+15557654321", caller="+15550001111",
                                 started_at=datetime(2026, 1, 1, 12, i, tzinfo=UTC), result=result,
                                 sip_status=200 if i == 0 else 486, duration=12.0 if i == 0 else 0.0))
            await s.commit()
        await engine.dispose()

    asyncio.run(insert())
    out = tmp_path / "calls.csv"
    code, _, err = run(capsys, "calls", "export-csv", "--api-url", api.url, "--token", ADMIN, "-o", str(out),
                       "--number", "+1 555 765 4321")
    assert code == 0, err
    assert "wrote 2 calls" in err
    rows = list(csv.DictReader(out.open(newline="")))
    assert list(rows[0]) == list(cdr.COLUMNS)
    assert [(r["call_id"], r["result"], r["sip_status"]) for r in rows] == [("csv-1", "busy", "486"),
                                                                            ("csv-0", "completed", "200")]
    code, text, err = run(capsys, "calls", "export-csv", "--api-url", api.url, "--token", ADMIN, "--result", "busy")
    assert code == 0, err
    assert [r["call_id"] for r in csv.DictReader(text.splitlines()) if r["tracking_number"] == "+15557654321"] == [
        "csv-1"]
    code, _, err = run(capsys, "calls", "export-csv", "--api-url", api.url, "--token", "wrong")
    assert code == 1 and "401" in err
