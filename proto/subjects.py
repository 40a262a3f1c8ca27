"""Every NATS subject Switchboard uses, built in one place.

No other module of the tree spells a subject: they call these functions (a test greps the
tree for subject literals). A subject is dot-separated tokens; the variable parts are
checked so a call id or region code can never inject a wildcard or an extra token.
"""

from __future__ import annotations

import re

CALLS_STREAM = "CALLS"
"""JetStream stream that keeps every call event (`call.>`), for replay and records."""

TRUNKS_BUCKET = "switchboard_registry_trunks"
"""JetStream KV bucket of the registry's operator trunks (the default of `trunks_bucket`)."""

MICRO_PREFIX = "$SRV"
"""nats.micro discovery prefix ($SRV.PING, $SRV.INFO, $SRV.STATS)."""

_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+$")


class SubjectError(ValueError):
    """A variable part of a subject is not a single safe token."""


def token(value: str) -> str:
    """Validate one subject token: no dots, spaces or wildcards."""
    if not _TOKEN.match(value):
        raise SubjectError(f"not a valid subject token: {value!r}")
    return value


# --- queue groups ---------------------------------------------------------------------
# A request subject served by many instances is subscribed in a queue group, so each
# request reaches one of them. Not subjects, but part of the same contract.

CONFIG_QUEUE = "config"
"""Every config instance answering `routing.resolve`."""

REGISTRY_QUEUE = "registry"
"""Every registry instance answering `registry.*` requests."""


def media_queue(region: str) -> str:
    """The media workers of one region answering `media.<region>.allocate`."""
    return f"media-{token(region)}"


def signaling_queue(region: str) -> str:
    """The signaling nodes of one region answering `signaling.<region>.originate`."""
    return f"signaling-{token(region)}"


# --- config ---------------------------------------------------------------------------


def routing_resolve() -> str:
    """Request/reply, queue group `config`: tracking number -> RoutingDecision."""
    return "routing.resolve"


def routing_pinged_targets() -> str:
    """Request/reply, queue group `config`: the targets to probe with OPTIONS (PingTargets)."""
    return "routing.pinged_targets"


def config_changed(entity: str) -> str:
    """Published by every config write so resolver caches invalidate (ConfigChanged)."""
    return f"config.{token(entity)}.changed"


def config_changed_any() -> str:
    return "config.*.changed"


# --- media ----------------------------------------------------------------------------


def media_allocate(region: str) -> str:
    """Request/reply, queue group per region: MediaAllocate -> MediaAllocation."""
    return f"media.{token(region)}.allocate"


def media_worker(worker_id: str, verb: str) -> str:
    """Addressed to one worker: verb is `update`, `rekey`, `release` or `dtmf`."""
    return f"media.worker.{token(worker_id)}.{token(verb)}"


# --- calls ----------------------------------------------------------------------------


SIP_TRACE_KINDS = {"sip_in": "in", "sip_out": "out"}


def call_event(call_id: str, kind: str) -> str:
    """One event of one call (CallEvent), kept by the CALLS stream.

    SIP traces (`sip_in`, `sip_out`) go one token deeper, `call.<id>.sip.<in|out>`, so a
    consumer of the call's state (`call_state_events()`) never receives them."""
    direction = SIP_TRACE_KINDS.get(kind)
    if direction is not None:
        return f"call.{token(call_id)}.sip.{direction}"
    return f"call.{token(call_id)}.{token(kind)}"


def call_state_events() -> str:
    """Every event of every call but the SIP traces."""
    return "call.*.*"


def call_events(call_id: str) -> str:
    """Every event of one call."""
    return f"call.{token(call_id)}.>"


def call_events_of_kind(kind: str) -> str:
    """One kind of event of every call (e.g. `media_timeout` for the signaling nodes)."""
    return f"call.*.{token(kind)}"


def call_events_all() -> str:
    """Every event of every call: the CALLS stream's subject."""
    return "call.>"


def call_control(call_id: str, verb: str) -> str:
    """Commands to the node that owns a call (e.g. `hangup`), not kept by the stream."""
    return f"callctl.{token(call_id)}.{token(verb)}"


# --- signaling ------------------------------------------------------------------------


def signaling_originate(region: str) -> str:
    """Request/reply, queue group per region: originate the client leg in that region."""
    return f"signaling.{token(region)}.originate"


def target_health() -> str:
    """Published by the signaling node that pings a target when its health changes
    (TargetHealthChanged); config keeps it for routing and the API."""
    return "signaling.targets.health"


# --- registry -------------------------------------------------------------------------


def heartbeat(service: str, region: str, node_id: str) -> str:
    """Published periodically by every node (Heartbeat)."""
    return f"heartbeat.{token(service)}.{token(region)}.{token(node_id)}"


def heartbeat_all() -> str:
    return "heartbeat.>"


def heartbeats_of(service: str) -> str:
    """Every node's heartbeat of one service, e.g. signaling watching the media workers."""
    return f"heartbeat.{token(service)}.>"


def region_status(code: str) -> str:
    """Published by the registry on every health change of a region (RegionStatus)."""
    return f"registry.region.{token(code)}.status"


def region_status_all() -> str:
    return "registry.region.*.status"


def registry_select() -> str:
    """Request/reply: preferred region -> region to use now (RegionSelect -> RegionSelection)."""
    return "registry.select"


def registry_trunk_check() -> str:
    """Request/reply: is this source address a carrier trunk (TrunkCheck -> TrunkCheckResult)."""
    return "registry.trunk.check"


def registry_query(verb: str) -> str:
    """Request/reply read/write endpoints of the registry behind the public HTTP API:
    `regions`, `allowlist`, `trunks.list`-style verbs are single tokens (`regions`,
    `allowlist`, `trunks_list`, `trunks_add`, `trunks_delete`)."""
    return f"registry.api.{token(verb)}"


# --- discovery ------------------------------------------------------------------------


def micro_name(service: str) -> str:
    """The nats.micro service name a Switchboard service registers as."""
    return f"switchboard-{token(service)}"


def micro_ping(service: str | None = None) -> str:
    """`$SRV.PING` for every service, or for one by name."""
    return f"{MICRO_PREFIX}.PING" + (f".{micro_name(service)}" if service else "")
