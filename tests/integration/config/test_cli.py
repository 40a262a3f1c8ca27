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
    code, _, err = run(capsys, "receiving", "delete", rn["id"])
    assert code == 1 and "error 409" in err
    code, _, _ = run(capsys, "numbers", "delete", items[0]["id"])
    assert code == 0
    code, _, _ = run(capsys, "receiving", "delete", rn["id"])
    assert code == 0
    code, _, err = run(capsys, "numbers", "list", "--token", "wrong")
    assert code == 1 and "error 401" in err
