"""No Docker engine here: check the compose file parses and runs every service scalably."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]


def test_compose_names_every_service() -> None:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"nats-1", "nats-2", "nats-3", "postgres", "signaling", "media", "config", "registry"} <= set(services)
    assert "-js" in services["nats-1"]["command"]
    for name in ("signaling", "media", "config", "registry"):
        svc = services[name]
        assert svc["command"] == ["run", name]
        assert svc["build"] == "."
        assert "healthcheck" in svc
        # --scale needs no fixed container_name.
        assert "container_name" not in svc
        assert svc["environment"]["SWITCHBOARD_NATS_URL"].startswith("nats://")
    assert (REPO / "Dockerfile").exists()


def test_up_host_covers_media_and_advertises_a_concrete_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from services.cli.main import build_parser
    from services.cli.up import Stack

    for k in [k for k in os.environ if k.startswith("SWITCHBOARD_")]:
        monkeypatch.delenv(k)  # the test's own environment must not leak in

    def env_of(*argv: str) -> tuple[Stack, dict[str, str]]:
        stack = Stack(build_parser().parse_args(["up", "--data-dir", str(tmp_path), *argv]))
        return stack, stack.env()

    _, env = env_of("--host", "192.0.2.20")
    assert env["SWITCHBOARD_SIP_HOST"] == env["SWITCHBOARD_MEDIA_HOST"] == "192.0.2.20"
    assert env["SWITCHBOARD_ADVERTISE_ADDRESS"] == "192.0.2.20"
    _, env = env_of("--host", "0.0.0.0", "--advertise", "203.0.113.7")
    assert env["SWITCHBOARD_MEDIA_HOST"] == "0.0.0.0" and env["SWITCHBOARD_ADVERTISE_ADDRESS"] == "203.0.113.7"
    stack, env = env_of("--host", "0.0.0.0")
    assert "SWITCHBOARD_ADVERTISE_ADDRESS" not in env and stack.advertise is None
    _, env = env_of()
    assert env["SWITCHBOARD_MEDIA_HOST"] == "127.0.0.1"


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable syntax, as much as the file uses: $$, ${VAR}, ${VAR:-default}
    (defaults may nest)."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("${", i):
            depth, j = 1, i + 2
            while depth:
                depth += {"{": 1, "}": -1}.get(value[j], 0)
                j += 1
            inner = value[i + 2:j - 1]
            name, sep, default = inner.partition(":-")
            out.append(env.get(name) or (interpolate(default, env) if sep else ""))
            i = j
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def rendered(env: dict[str, str]) -> dict[str, dict[str, str]]:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return {name: {k: interpolate(str(v), env) for k, v in (svc.get("environment") or {}).items()}
            for name, svc in doc["services"].items()}


SETTINGS = {
    "signaling": "services.signaling.settings:SignalingSettings",
    "media": "services.media.settings:MediaSettings",
    "config": "services.config.settings:ConfigSettings",
    "registry": "services.registry.settings:RegistrySettings",
}


def settings_of(service: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> object:
    import importlib
    import os

    for k in [k for k in os.environ if k.startswith("SWITCHBOARD_")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    mod, _, cls = SETTINGS[service].partition(":")
    return getattr(importlib.import_module(mod), cls)()


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_service_gets_the_advertise_address_when_one_is_set(service: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import ipaddress

    env = rendered({"SWITCHBOARD_ADVERTISE_ADDRESS": "203.0.113.7"})[service]
    s = settings_of(service, env, monkeypatch)
    assert s.public_address == "203.0.113.7"  # type: ignore[attr-defined]
    for field in ("public_address", "sip_host", "media_host", "http_host"):
        host = getattr(s, field, None)
        if host is not None and service in ("signaling", "media"):
            assert not ipaddress.ip_address(host).is_loopback, (service, field, host)
    if service == "media":
        assert s.media_host == "203.0.113.7"  # type: ignore[attr-defined]
        nat = settings_of(service, rendered({"SWITCHBOARD_ADVERTISE_ADDRESS": "203.0.113.7",
                                             "SWITCHBOARD_MEDIA_HOST": "0.0.0.0"})[service], monkeypatch)
        assert (nat.media_host, nat.public_address) == ("0.0.0.0", "203.0.113.7")  # type: ignore[attr-defined]
    if service == "signaling":
        assert s.sip_host == "0.0.0.0"  # type: ignore[attr-defined]
    # Nothing set: loopback, as documented (the stack starts, but carries no outside call).
    assert settings_of(service, rendered({})[service], monkeypatch).public_address == "127.0.0.1"  # type: ignore[attr-defined]


def test_a_three_node_nats_cluster_with_replicated_streams_and_metrics_for_prometheus(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from services.common.bus import CallsStreamSettings

    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    nats = {n: s for n, s in doc["services"].items() if n.startswith("nats-")}
    assert len(nats) == 3
    for name, svc in nats.items():
        cmd = svc["command"]
        assert "-js" in cmd and cmd[cmd.index("--cluster_name") + 1] == "switchboard"
        routes = cmd[cmd.index("--routes") + 1].split(",")
        assert sorted(routes) == sorted(f"nats://{o}:6222" for o in nats if o != name)
    env = rendered({})
    ports: set[str] = set()
    for service in SETTINGS:
        e = env[service]
        assert len(e["SWITCHBOARD_NATS_URL"].split(",")) == 3
        settings_of(service, e, monkeypatch)
        assert CallsStreamSettings().replicas == 3
        if service != "config":  # config serves /metrics on its API port
            port = e["SWITCHBOARD_METRICS_PORT"]
            ports.add(port)
            svc = doc["services"][service]
            assert svc.get("network_mode") == "host" or any(p.startswith(f"{port}:") for p in svc["ports"])
    assert len(ports) == 3
    registry = settings_of("registry", env["registry"], monkeypatch)
    assert registry.kv_replicas == 3  # type: ignore[attr-defined]
