"""Every SWITCHBOARD_* setting is in the README's configuration table, and the table names
no setting that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from services.common.bus import BusAuth, CallsStreamSettings
from services.config.settings import ConfigSettings
from services.media.settings import MediaSettings
from services.registry.settings import RegistrySettings
from services.signaling.settings import SignalingSettings

README = Path(__file__).resolve().parents[3] / "README.md"
SERVICES = Path(__file__).resolve().parents[3] / "services"
CLASSES: tuple[type[BaseSettings], ...] = (SignalingSettings, MediaSettings, ConfigSettings, RegistrySettings,
                                           CallsStreamSettings, BusAuth)
# Read by the commands themselves (`switchboard up`, the provisioning CLI), not by a settings class.
COMMAND_ONLY = {"SWITCHBOARD_NATS_PORT", "SWITCHBOARD_API_TOKEN"}


def table_names() -> set[str]:
    text = README.read_text()
    section = text[text.index("## Configuration"):]
    names: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| `SWITCHBOARD_"):
            continue
        tokens = re.findall(r"`(_?[A-Z0-9_]+)`", line.split("|")[1])
        first = tokens[0]
        names.add(first)
        for short in tokens[1:]:
            if short.startswith("SWITCHBOARD_"):
                names.add(short)
                continue
            # `SWITCHBOARD_PORT_MIN` / `_PORT_MAX`: the shorthand replaces as many trailing words.
            words = short.strip("_").split("_")
            names.add("_".join(first.split("_")[: -len(words)] + words))
    return names


def setting_names() -> set[str]:
    out: set[str] = set()
    for cls in CLASSES:
        prefix = str(cls.model_config.get("env_prefix", ""))
        out |= {f"{prefix}{name}".upper() for name in cls.model_fields}
    return out


def test_every_setting_is_in_the_readme_table() -> None:
    missing = setting_names() - table_names()
    assert not missing, f"settings missing from README's Configuration table: {sorted(missing)}"


def test_the_table_names_only_real_settings() -> None:
    unknown = table_names() - setting_names() - COMMAND_ONLY
    assert not unknown, f"README names settings that do not exist: {sorted(unknown)}"
    code = "".join(p.read_text() for p in SERVICES.rglob("*.py"))
    for name in COMMAND_ONLY:
        assert name in code, name
