"""CDR export: GET /v1/calls?format=csv streams every matching call (the JSON listing's
filters and scoping) with the documented columns; `switchboard calls export-csv` writes it."""

from __future__ import annotations

import csv
import io
import time
import uuid

import pytest
from sqlalchemy import func, select

from services.config import cdr
from services.config.api.routes import calls as calls_route
from services.config.db.models import CallRecord

from .conftest import TRACKING, CallEnv, full_call, refused_call


def _rows(text: str) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    assert tuple(header) == cdr.COLUMNS
    return [dict(zip(header, r, strict=True)) for r in reader]


async def _wait_records(calls: CallEnv, n: int) -> None:
    deadline = time.monotonic() + 20
    async with calls.env.ctx.sessionmaker() as s:
        while True:
            done = (await s.execute(select(func.count()).select_from(CallRecord)
                                    .where(CallRecord.result.is_not(None)))).scalar_one()
            if done == n:
                return
            assert time.monotonic() < deadline, f"{done} of {n} records"
            s.expire_all()
            await __import__("asyncio").sleep(0.05)


async def test_csv_export_streams_every_matching_call_newest_first(calls: CallEnv,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls_route, "CSV_BATCH", 4)  # several batches: the keyset must not skip or repeat
    acc, headers = await calls.env.account()
    rn = await calls.env.receiving(headers)
    await calls.env.tracking(headers, TRACKING, rn["id"])
    await calls.recorder()
    base = time.time() - 3600
    ids: list[str] = []
    evs = []
    for i in range(11):
        cid = f"{i:04d}" + uuid.uuid4().hex[:20]
        ids.append(cid)
        if i == 7:
            evs += refused_call(cid, t0=base + i * 10)  # no account: the admin's only
        else:
            evs += full_call(cid, acc, t0=base + i * 10, digits="1#")
    await calls.publish(evs)
    await _wait_records(calls, 11)

    r = await calls.client.get("/v1/calls", params={"format": "csv"}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = _rows(r.text)
    mine = [c for i, c in enumerate(ids) if i != 7][::-1]
    assert [row["call_id"] for row in rows] == mine  # all of them, newest first, limit not applied
    row = rows[0]
    assert row["account_id"] == acc and row["tracking_number"] == TRACKING and row["caller"] == "+15550001111"
    assert row["result"] == "completed" and row["sip_status"] == "200" and row["status"] == "ended"
    assert row["duration"] == "42.5" and row["pdd_ms"] == "2970" and row["ended_by"] == "caller"
    assert row["answered_target"] == "sip:100@pbx.example.com;transport=tcp"
    assert row["attempts"].startswith("sip:100@pbx.example.com;transport=tcp")
    assert row["mos"] == "4.3" and row["packets_lost"] == "9" and row["dtmf_digits"] == "1#"
    assert row["secure_media"] == "false" and row["started_at"].endswith("Z")

    r = await calls.client.get("/v1/calls", params={"format": "csv"}, headers=calls.env.admin())
    assert len(_rows(r.text)) == 11
    r = await calls.client.get("/v1/calls", params={"format": "csv", "result": "failed"}, headers=calls.env.admin())
    assert [row["call_id"] for row in _rows(r.text)] == [ids[7]]
    from datetime import UTC, datetime

    frm = datetime.fromtimestamp(base + 20, UTC).isoformat()
    to = datetime.fromtimestamp(base + 60, UTC).isoformat()
    r = await calls.client.get("/v1/calls", params={"format": "csv", "from": frm, "to": to}, headers=headers)
    assert [row["call_id"] for row in _rows(r.text)] == [ids[5], ids[4], ids[3], ids[2]]
    r = await calls.client.get("/v1/calls", params={"format": "csv", "number": "not a number"}, headers=headers)
    assert r.status_code == 422
    r = await calls.client.get("/v1/calls", params={"format": "xml"}, headers=headers)
    assert r.status_code == 422
    other_acc, other = await calls.env.account("Other")
    r = await calls.client.get("/v1/calls", params={"format": "csv"}, headers=other)
    assert r.status_code == 200 and _rows(r.text) == []


def test_a_carrier_supplied_formula_is_not_a_formula_in_a_spreadsheet() -> None:
    row = dict(zip(cdr.COLUMNS, cdr.row({"id": "c1", "caller": "+15550001111", "caller_name": "=HYPERLINK(\"x\")",
                                         "reason": "-1", "targets": [], "media": None}), strict=True))
    assert row["caller"] == "+15550001111" and row["caller_name"] == "'=HYPERLINK(\"x\")" and row["reason"] == "'-1"
