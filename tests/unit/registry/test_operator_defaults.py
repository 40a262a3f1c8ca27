"""Where `switchboard regions` looks for NATS."""

from __future__ import annotations

import json

from services.cli.operator import DEFAULT_NATS, default_nats_url, render_table


def test_run_json_then_env_then_default(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_NATS_URL", raising=False)
    monkeypatch.delenv("SWITCHBOARD_DATA_DIR", raising=False)
    assert default_nats_url(str(tmp_path)) == DEFAULT_NATS
    monkeypatch.setenv("SWITCHBOARD_NATS_URL", "nats://10.0.0.1:4222")
    assert default_nats_url(str(tmp_path)) == "nats://10.0.0.1:4222"
    (tmp_path / "run.json").write_text(json.dumps({"nats_url": "nats://127.0.0.1:4999"}))
    assert default_nats_url(str(tmp_path)) == "nats://127.0.0.1:4999"


def test_table_marks_down_regions() -> None:
    rows = [
        {"code": "us1", "name": "North America Virginia", "kind": "signaling", "health": "down",
         "failover": ["us2"], "load": {"signaling": {"nodes": 0, "ratio": None},
                                       "media": {"nodes": 1, "ratio": 0.5}}},
        {"code": "iad1", "name": "Ashburn", "kind": "media", "health": "unknown", "failover": [],
         "load": {"media": {"nodes": 0, "ratio": None}}},
    ]
    text = render_table(rows)
    assert "DOWN" in text and "1 (50%)" in text and "unknown" in text
