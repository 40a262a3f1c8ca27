"""Prometheus metrics of a signaling node (served on SWITCHBOARD_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS_IN_PROGRESS = Gauge("switchboard_calls_in_progress", "Calls this node is handling")
CALLS = Counter("switchboard_calls_total", "Calls by result", ["result"])
PDD = Histogram("switchboard_post_dial_delay_seconds", "Carrier INVITE to the client INVITE",
                buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5))
SIP_MESSAGES = Counter("switchboard_sip_messages_total", "SIP messages by direction, method or status, transport",
                       ["direction", "message", "transport"])
AUTH_CHALLENGES = Counter("switchboard_auth_challenges_total", "Digest challenges answered", ["status"])
TARGET_HEALTH_CHANGES = Counter("switchboard_target_health_changes_total",
                                "Pinged targets going up or down (OPTIONS)", ["health"])
FAILOVERS = Counter("switchboard_failovers_total", "Moves to the next target, region or node", ["kind"])
REFUSED = Counter("switchboard_calls_refused_total", "INVITEs refused before routing", ["reason"])

# Label values known in advance are exported at 0 from the start: a dashboard's rate() needs
# a first sample, and "no failover yet" should read 0, not "no data".
for _kind in ("target", "region"):
    FAILOVERS.labels(_kind)
for _reason in ("node draining", "too many calls on this node", "rate limit", "not a carrier trunk"):
    REFUSED.labels(_reason)
