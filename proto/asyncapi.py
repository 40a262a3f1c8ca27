"""The AsyncAPI 3 document of the bus, generated from `subjects` and `messages`.

`switchboard asyncapi` prints it; `proto/asyncapi.yaml` is the committed copy and a test
fails when it is stale (regenerate with `switchboard asyncapi > proto/asyncapi.yaml`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from proto import events as ev
from proto import messages as m
from proto import subjects as s


@dataclass(frozen=True)
class Channel:
    name: str
    address: str
    """Subject with `{param}` placeholders for the variable tokens."""
    message: type[m.Message]
    reply: type[m.Message] | None
    owner: str
    """Service that receives (request/reply, subscribe) on this channel."""
    description: str


def _p(name: str) -> str:
    # A placeholder that survives the subject builders' token check.
    return f"PARAM_{name}_"


def _addr(built: str, *names: str) -> str:
    for n in names:
        built = built.replace(_p(n), "{" + n + "}")
    return built


CHANNELS: tuple[Channel, ...] = (
    Channel("routingResolve", s.routing_resolve(), m.RoutingRequest, m.RoutingDecision, "config",
            "Where does a call to this tracking number go (queue group `config`)."),
    Channel("configChanged", _addr(s.config_changed(_p("entity")), "entity"), m.ConfigChanged, None,
            "config", "Every config write; resolvers drop their cached view."),
    Channel("mediaAllocate", _addr(s.media_allocate(_p("region")), "region"), m.MediaAllocate,
            m.MediaAllocation, "media", "Allocate both legs of a call on a worker of the region."),
    Channel("mediaWorkerUpdate", _addr(s.media_worker(_p("worker"), "update"), "worker"),
            m.MediaUpdate, m.Ack, "media", "The peer's address, PTs and key for one leg."),
    Channel("mediaWorkerRekey", _addr(s.media_worker(_p("worker"), "rekey"), "worker"),
            m.MediaRekey, m.MediaLeg, "media", "Fresh media (SRTP key or plain RTP) on one leg for a new attempt."),
    Channel("mediaWorkerDtmf", _addr(s.media_worker(_p("worker"), "dtmf"), "worker"),
            m.MediaDtmf, m.Ack, "media", "Inject RFC 4733 digits towards one leg."),
    Channel("mediaWorkerRelease", _addr(s.media_worker(_p("worker"), "release"), "worker"),
            m.MediaRelease, m.MediaStats, "media", "Free the call's ports; answers its stats."),
    Channel("callEvent", _addr(s.call_event(_p("callId"), _p("kind")), "callId", "kind"),
            m.CallEvent, None, "config", "One event of a call; kept by the CALLS stream."),
    Channel("signalingOriginate", _addr(s.signaling_originate(_p("region")), "region"),
            m.Originate, m.OriginateResult, "signaling",
            "Place the client leg of a call from a node of another region."),
    Channel("callControl", _addr(s.call_control(_p("callId"), _p("side")), "callId", "side"), m.LegSignal,
            m.Ack, "signaling", "Between a call's two legs on different nodes (side: carrier or client)."),
    Channel("routingPingedTargets", s.routing_pinged_targets(), m.PingTargetsRequest, m.PingTargets, "config",
            "The targets with options_ping on, for the signaling nodes that probe them."),
    Channel("targetHealth", s.target_health(), m.TargetHealthChanged, None, "config",
            "A pinged target went up or down (published by the node that pings it)."),
    Channel("heartbeat", _addr(s.heartbeat(_p("service"), _p("region"), _p("node")),
                               "service", "region", "node"),
            m.Heartbeat, None, "registry", "Liveness and load of every node."),
    Channel("regionStatus", _addr(s.region_status(_p("code")), "code"), m.RegionStatus, None,
            "signaling", "A region's health changed."),
    Channel("registrySelect", s.registry_select(), m.RegionSelect, m.RegionSelection, "registry",
            "The region to use now for a preferred region (failover order)."),
    Channel("registryTrunkCheck", s.registry_trunk_check(), m.TrunkCheck, m.TrunkCheckResult,
            "registry", "Is this source address a carrier trunk."),
    Channel("registryApi", _addr(s.registry_query(_p("verb")), "verb"), m.RegistryQuery,
            m.RegistryReply, "registry", "Regions, allow-list and trunks for the public API."),
)


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    js = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in js.pop("$defs", {}).items():
        schemas[name] = sub
    return js


def _event_bodies(schemas: dict[str, Any], messages: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One message per call event kind: the CallEvent envelope with that kind and its body
    as `payload`. Returns the refs for the callEvent channel and for the SIP trace channel."""
    state: dict[str, Any] = {}
    traces: dict[str, Any] = {}
    for kind, model in sorted(ev.KINDS.items()):
        body = _schema(model, schemas)
        # The payload object on the wire: the kind is the envelope's.
        for field in model.WIRE_EXCLUDE:
            body["properties"].pop(field, None)
            if field in body.get("required", []):
                body["required"].remove(field)
        body["title"] = f"{model.__name__} payload"
        schemas[model.__name__] = body
        name = f"CallEvent.{kind}"
        messages[name] = {
            "name": name,
            "title": kind,
            "summary": (model.__doc__ or kind).strip().splitlines()[0],
            "contentType": "application/json",
            "payload": {"allOf": [
                {"$ref": "#/components/schemas/CallEvent"},
                {"type": "object", "properties": {
                    "kind": {"const": kind},
                    "seq": {"description": "Always 0 (not numbered)."} if not model.NUMBERED else
                           {"description": "Per call and emitting node, from 1."},
                    "payload": {"$ref": f"#/components/schemas/{model.__name__}"}}},
            ]},
        }
        (state if model.NUMBERED else traces)[name] = {"$ref": f"#/components/messages/{name}"}
    return state, traces


def document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in m.ALL_MESSAGES:
        schemas[model.__name__] = _schema(model, schemas)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for ch in CHANNELS:
        for msg_model in (ch.message, ch.reply):
            if msg_model is not None:
                messages[msg_model.__name__] = {
                    "name": msg_model.__name__,
                    "contentType": "application/json",
                    "payload": {"$ref": f"#/components/schemas/{msg_model.__name__}"},
                }
        params: dict[str, Any] = {p.strip("{}"): {} for p in ch.address.split(".") if p.startswith("{")}
        entry: dict[str, Any] = {
            "address": ch.address,
            "description": ch.description,
            "messages": {ch.message.__name__: {"$ref": f"#/components/messages/{ch.message.__name__}"}},
        }
        if params:
            entry["parameters"] = params
        channels[ch.name] = entry
        op: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{ch.name}"},
            "summary": f"{ch.owner}: {ch.description}",
        }
        if ch.reply is not None:
            reply_name = f"{ch.name}Reply"
            channels[reply_name] = {
                "address": None,
                "messages": {ch.reply.__name__: {"$ref": f"#/components/messages/{ch.reply.__name__}"}},
            }
            op["reply"] = {"channel": {"$ref": f"#/channels/{reply_name}"}}
        operations[ch.name] = op
    entities = ", ".join(e.value for e in m.ConfigEntity)
    channels["configChanged"]["parameters"]["entity"] = {
        "description": f"One of {entities} (open: a newer config may add one)."}
    state, traces = _event_bodies(schemas, messages)
    call_event = channels["callEvent"]
    call_event["messages"].update(state)
    call_event["description"] += (" The `CallEvent` message is the envelope; the others are each kind this "
                                  "version emits. Kinds are open: a reader keeps an unknown one as it came.")
    address = _addr(s.call_event(_p("callId"), "sip_in"), "callId")
    channels["callSipTrace"] = {
        "address": address[: address.rindex(".")] + ".{direction}",
        "description": "The SIP messages of a call (direction: in or out), kept by the CALLS stream; "
                       "consumers of the call's state never receive them.",
        "messages": traces,
        "parameters": {"callId": {}, "direction": {"enum": ["in", "out"]}},
    }
    operations["callSipTrace"] = {"action": "receive", "channel": {"$ref": "#/channels/callSipTrace"},
                                  "summary": "config: the SIP traces of a call (CLI, pcap export)."}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Switchboard bus",
            "version": "1",
            "description": "Subjects and messages between Switchboard's services over NATS. "
            "Messages are JSON, open-world (unknown fields ignored). Error answers carry the "
            "Nats-Service-Error and Nats-Service-Error-Code headers and an ErrorReply body.",
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:4222", "protocol": "nats"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render() -> str:
    return yaml.safe_dump(document(), sort_keys=True, allow_unicode=True, width=100)
