"""The import-linter contracts in pyproject.toml catch the imports they forbid.

Each case copies the source tree to a temporary directory, adds one probe import that a
contract forbids, and runs `lint-imports` there: the contract named must be reported broken.
The unchanged copy must keep every contract, so a probe is the only difference.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_tree(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "static", "templates")
    for name in ("proto", "services"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "COLUMNS": "1000"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _broken(output: str) -> set[str]:
    """The names of the contracts lint-imports reports as BROKEN."""
    return {
        line.rsplit(" BROKEN", 1)[0].strip()
        for line in output.splitlines()
        if line.rstrip().endswith("BROKEN")
    }


LAYERS = "Signaling in layers: the B2BUA above the SIP endpoint above the transports above the SIP core"
B2BUA_LAYERS = (
    "The B2BUA's imports point one way: the B2BUA, the carrier leg, the client legs, "
    "their runner, the tables, the policy"
)
SANS_IO_LEGS = "The leg tables are sans-IO: no asyncio, no bus, no endpoint"

PROBES = [
    pytest.param(
        "services/signaling/endpoint.py",
        "from services.signaling.b2bua import call as _probe  # noqa\n",
        # The lower B2BUA modules that use the endpoint would then reach call.py through it.
        {LAYERS, B2BUA_LAYERS},
        id="endpoint-imports-b2bua",
    ),
    pytest.param(
        "services/signaling/b2bua/client_fsm.py",
        "import asyncio as _probe  # noqa\n",
        {SANS_IO_LEGS},
        id="leg-table-imports-asyncio",
    ),
    pytest.param(
        "services/signaling/b2bua/fsm.py",
        "from services.signaling.b2bua import runner as _probe  # noqa\n",
        # The runner drives asyncio too, so the table is no longer sans-IO either.
        {B2BUA_LAYERS, SANS_IO_LEGS},
        id="table-imports-runner",
    ),
    pytest.param(
        "services/signaling/sip/core.py",
        "import socket as _probe  # noqa\n",
        {"The SIP core is sans-IO: no asyncio, no nats"},
        id="sip-core-imports-socket",
    ),
    pytest.param(
        "proto/events.py",
        "import services.config as _probe  # noqa\n",
        # Everything imports proto, so through it common and every service would import config.
        {
            "proto imports no service",
            "services.common imports only proto",
            "The four services are independent of each other",
        },
        id="proto-imports-a-service",
    ),
    pytest.param(
        "services/media/__init__.py",
        "import services.signaling as _probe  # noqa\n",
        {"The four services are independent of each other"},
        id="media-imports-signaling",
    ),
]


@pytest.fixture(scope="module")
def clean_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_tree(tmp_path_factory.mktemp("clean"))


def test_the_tree_as_it_is_keeps_every_contract(clean_tree: Path) -> None:
    result = _lint(clean_tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("path", "probe", "contracts"), PROBES)
def test_a_probe_import_breaks_its_contract(
    tmp_path: Path, path: str, probe: str, contracts: set[str]
) -> None:
    tree = _copy_tree(tmp_path)
    target = tree / path
    target.write_text(target.read_text() + "\n" + probe)
    result = _lint(tree)
    assert result.returncode != 0
    assert _broken(result.stdout) == contracts, result.stdout
