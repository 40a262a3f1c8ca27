"""No Docker engine here: check the compose file parses and runs every service scalably."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]


def test_compose_names_every_service() -> None:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"nats", "postgres", "signaling", "media", "config", "registry"} <= set(services)
    assert "-js" in services["nats"]["command"]
    for name in ("signaling", "media", "config", "registry"):
        svc = services[name]
        assert svc["command"] == ["run", name]
        assert svc["build"] == "."
        assert "healthcheck" in svc
        # --scale needs no fixed container_name.
        assert "container_name" not in svc
        assert svc["environment"]["SWITCHBOARD_NATS_URL"].startswith("nats://")
    assert (REPO / "Dockerfile").exists()
