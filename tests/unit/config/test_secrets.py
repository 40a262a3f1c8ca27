"""Sealing SIP passwords: AES-GCM with key ids and rotation (no network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.config.errors import SecretError
from services.config.secrets import SecretBox, generate_key_spec


def test_round_trip_and_fresh_nonce() -> None:
    box = SecretBox.from_spec(generate_key_spec("k1"))
    a, b = box.seal("hunter2"), box.seal("hunter2")
    assert a != b and "hunter2" not in a and a.startswith("v1:k1:")
    assert box.open(a) == box.open(b) == "hunter2"
    assert box.open(box.seal("")) == ""


def test_rotation_by_key_id() -> None:
    old, new = generate_key_spec("old"), generate_key_spec("new")
    sealed_old = SecretBox.from_spec(old).seal("pw")
    rotated = SecretBox.from_spec(f"{new},{old}")
    assert rotated.open(sealed_old) == "pw" and rotated.needs_reseal(sealed_old)
    fresh = rotated.seal("pw")
    assert rotated.key_id(fresh) == "new" and not rotated.needs_reseal(fresh)
    with pytest.raises(SecretError, match="not configured"):
        SecretBox.from_spec(new).open(sealed_old)


def test_tampering_and_key_id_swap_are_detected() -> None:
    k1 = generate_key_spec("k1")
    box = SecretBox.from_spec(k1)
    sealed = box.seal("pw")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretError):
        box.open(flipped)
    # The same key under another id does not open it: the id is authenticated.
    same_key_other_id = SecretBox.from_spec("k2:" + k1.split(":", 1)[1])
    with pytest.raises(SecretError):
        same_key_other_id.open(sealed.replace("v1:k1:", "v1:k2:"))
    for bad in ("", "plain", "v2:k1:abc"):
        with pytest.raises(SecretError):
            box.open(bad)


@pytest.mark.parametrize("spec", ["nokid", "k1:short", "bad id!:AAAA", "k1:" + "A" * 43 + ",k1:" + "A" * 43])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(SecretError):
        SecretBox.from_spec(spec)


def test_generated_once_into_the_data_dir(tmp_path: Path) -> None:
    a = SecretBox.load("", tmp_path / "data")
    path = tmp_path / "data" / "secret.key"
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
    b = SecretBox.load("", tmp_path / "data")
    assert b.open(a.seal("x")) == "x"  # the same key the second time
    configured = SecretBox.load(generate_key_spec("env"), tmp_path / "other")
    assert configured.primary == "env" and not (tmp_path / "other").exists()
    assert os.path.getsize(path) > 40
