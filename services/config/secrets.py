"""Secrets at rest: SIP passwords (and TLS client keys) are sealed with AES-256-GCM.

Keys come from SWITCHBOARD_SECRET_KEY as `kid:base64key[,kid:base64key...]`: the first
key seals, every listed key opens, so a key is rotated by putting a new one first and
keeping the old one until `reseal` (run at start-up) has rewritten the rows. A sealed value is
`v1:<kid>:<base64(nonce || ciphertext+tag)>`; the key id is bound as associated data so a
value cannot be moved between key ids. Without a configured key, one is generated once into
`<data_dir>/secret.key` (mode 0600) and reused from there."""

from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import SecretError

_KID = re.compile(r"^[A-Za-z0-9_\-]{1,32}$")
VERSION = "v1"


def generate_key_spec(kid: str = "k1") -> str:
    return f"{kid}:{base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def _decode_key(kid: str, b64: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise SecretError(f"secret key {kid!r} must be 32 bytes, base64-encoded")
    return raw


class SecretBox:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise SecretError("no secret key")
        self.primary = keys[0][0]
        self._aead = {kid: AESGCM(key) for kid, key in keys}

    @classmethod
    def from_spec(cls, spec: str) -> SecretBox:
        keys: list[tuple[str, bytes]] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            kid, sep, b64 = part.partition(":")
            if not sep or not _KID.match(kid):
                raise SecretError("SWITCHBOARD_SECRET_KEY must be `kid:base64key[,kid:base64key...]`")
            if kid in {k for k, _ in keys}:
                raise SecretError(f"secret key id {kid!r} is listed twice")
            keys.append((kid, _decode_key(kid, b64)))
        return cls(keys)

    @classmethod
    def load(cls, spec: str, data_dir: Path) -> SecretBox:
        """The configured key, or the one generated into the data dir (created once)."""
        if spec.strip():
            return cls.from_spec(spec)
        path = data_dir / "secret.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                # O_EXCL: two instances starting at once must not write two different keys.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(generate_key_spec() + "\n")
        for _ in range(50):  # another process may be between create and write
            text = path.read_text().strip()
            if text:
                return cls.from_spec(text)
            time.sleep(0.01)
        raise SecretError(f"{path} is empty")

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead[self.primary].encrypt(nonce, plaintext.encode(), self.primary.encode())
        return f"{VERSION}:{self.primary}:{base64.b64encode(nonce + ct).decode()}"

    def open(self, sealed: str) -> str:
        version, _, rest = sealed.partition(":")
        kid, _, b64 = rest.partition(":")
        if version != VERSION or not b64:
            raise SecretError("not a sealed value")
        aead = self._aead.get(kid)
        if aead is None:
            raise SecretError(f"sealed with key id {kid!r}, which is not configured")
        try:
            blob = base64.b64decode(b64)
            return aead.decrypt(blob[:12], blob[12:], kid.encode()).decode()
        except (InvalidTag, ValueError) as e:
            raise SecretError(f"cannot open a value sealed with key {kid!r}") from e

    def key_id(self, sealed: str) -> str:
        return sealed.split(":", 2)[1] if sealed.count(":") >= 2 else ""

    def needs_reseal(self, sealed: str) -> bool:
        return self.key_id(sealed) != self.primary


async def reseal(sessionmaker: Any, box: SecretBox) -> int:
    """Re-encrypt every stored secret that is not under the primary key (after a rotation).
    Compare-and-set per value, so a password changed meanwhile through the API is kept."""
    from sqlalchemy import select, update

    from .db.models import SipTargetRow

    changed = 0
    async with sessionmaker() as session:
        for col in (SipTargetRow.password_sealed, SipTargetRow.tls_client_key_sealed):
            rows = (await session.execute(select(SipTargetRow.id, col).where(col.is_not(None)))).all()
            for target_id, sealed in rows:
                if not box.needs_reseal(sealed):
                    continue
                try:
                    plain = box.open(sealed)
                except SecretError:
                    continue  # a key no longer configured: left for an operator (logged by the resolver)
                res = await session.execute(update(SipTargetRow).where(SipTargetRow.id == target_id, col == sealed)
                                            .values({col.key: box.seal(plain)}))
                changed += res.rowcount or 0
        await session.commit()
    return changed
