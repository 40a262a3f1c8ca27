"""Carrier trunks: the source networks that may send us calls.

Trunks come from the topology file (read-only), from the operator over the API (kept in
a NATS KV bucket so every registry instance and every restart sees the same set) and, in
local mode, loopback.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from .errors import TrunkInputError
from .topology import IPNetwork, Topology

log = logging.getLogger("switchboard.registry.trunks")

MAX_NETWORKS = 256


@dataclass(frozen=True)
class Trunk:
    id: str
    name: str
    networks: tuple[IPNetwork, ...]
    source: Literal["file", "api", "local"]
    created: float = 0.0

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "networks": [str(n) for n in self.networks],
            "source": self.source, "created": self.created or None,
            "editable": self.source == "api",
        }

    def to_json(self) -> bytes:
        return json.dumps({
            "id": self.id, "name": self.name, "networks": [str(n) for n in self.networks],
            "created": self.created,
        }).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Trunk:
        d = json.loads(data)
        return cls(
            id=str(d["id"]), name=str(d["name"]),
            networks=tuple(ipaddress.ip_network(n) for n in d["networks"]),
            source="api", created=float(d.get("created", 0.0)),
        )


LOOPBACK = Trunk(
    id="local-loopback", name="local loopback",
    networks=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")), source="local",
)


def file_trunks(topo: Topology) -> list[Trunk]:
    return [Trunk(id=f"file-{i}", name=t.name, networks=t.networks, source="file")
            for i, t in enumerate(topo.carrier_trunks)]


def validate_new(params: dict[str, Any]) -> tuple[str, tuple[IPNetwork, ...]]:
    """The operator's input for a new trunk, or TrunkInputError naming the field."""
    name = params.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TrunkInputError("name", "a non-empty string is required")
    if len(name) > 100:
        raise TrunkInputError("name", "at most 100 characters")
    raw = params.get("networks")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise TrunkInputError("networks", "a non-empty list of CIDR networks is required")
    if len(raw) > MAX_NETWORKS:
        raise TrunkInputError("networks", f"at most {MAX_NETWORKS} networks")
    nets: list[IPNetwork] = []
    for i, n in enumerate(raw):
        try:
            # strict: 203.0.113.5/24 is a typo to report, not a network to guess.
            nets.append(ipaddress.ip_network(str(n).strip(), strict=True))
        except ValueError as e:
            raise TrunkInputError(f"networks[{i}]", f"{n!r} is not a CIDR network: {e}") from None
    return name.strip(), tuple(nets)


def parse_source(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """`203.0.113.5`, `203.0.113.5:5060`, `[2001:db8::1]:5060` or `2001:db8::1` -> address."""
    a = address.strip()
    if a.startswith("["):
        a = a[1:].split("]", 1)[0]
    elif a.count(":") == 1:
        a = a.split(":", 1)[0]
    ip = ipaddress.ip_address(a.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def match(trunks: Iterable[Trunk], address: str) -> Trunk | None:
    """The first trunk holding the address (ValueError if it is not an address)."""
    ip = parse_source(address)
    for t in trunks:
        if any(ip in n for n in t.networks):
            return t
    return None


class TrunkStore:
    """Operator trunks in a NATS KV bucket (one key per trunk id)."""

    def __init__(self, js: JetStreamContext, bucket: str, *, replicas: int = 1) -> None:
        self.js = js
        self.bucket = bucket
        self.replicas = replicas
        self._kv: KeyValue | None = None

    async def open(self) -> None:
        try:
            self._kv = await self.js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            self._kv = await self.js.create_key_value(KeyValueConfig(
                bucket=self.bucket, history=1, storage=StorageType.FILE, replicas=self.replicas,
                description="Switchboard registry: carrier trunks added by the operator",
            ))

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("TrunkStore.open() first")
        return self._kv

    async def list(self) -> list[Trunk]:
        try:
            keys = await self.kv.keys()
        except nats.js.errors.NoKeysError:
            return []
        out = []
        for k in keys:
            try:
                entry = await self.kv.get(k)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                continue  # deleted between keys() and get()
            if entry.value is None:
                continue
            try:
                out.append(Trunk.from_json(entry.value))
            except (ValueError, KeyError, TypeError) as e:
                log.warning("ignoring unreadable trunk %s in KV: %s", k, e)
        return sorted(out, key=lambda t: (t.created, t.id))

    async def add(self, name: str, networks: tuple[IPNetwork, ...]) -> Trunk:
        t = Trunk(id=uuid.uuid4().hex[:16], name=name, networks=networks, source="api", created=time.time())
        await self.kv.create(t.id, t.to_json())
        return t

    async def delete(self, trunk_id: str) -> bool:
        try:
            await self.kv.get(trunk_id)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return False
        await self.kv.delete(trunk_id)
        return True
