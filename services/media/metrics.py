"""Prometheus metrics of a media worker (served on SWITCHBOARD_METRICS_PORT).

Per-packet counting would cost the relay's hot path, so packet figures are added from each
call's final stats at release; live figures are gauges read when scraped."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS_ACTIVE = Gauge("switchboard_media_calls_active", "Calls on this worker")
PORTS_TOTAL = Gauge("switchboard_media_port_pairs_total", "RTP/RTCP port pairs in this worker's range")
PORTS_AVAILABLE = Gauge("switchboard_media_port_pairs_available",
                        "Port pairs free to allocate (not held, not in quarantine)")
PACKETS = Counter("switchboard_media_packets_total", "RTP packets of released calls", ["leg", "direction"])
PACKETS_LOST = Counter("switchboard_media_packets_lost_total", "RTP packets lost (RFC 3550 A.3) on released calls", ["leg"])
SRTP_FAILURES = Counter("switchboard_media_srtp_failures_total", "Packets dropped for failing SRTP authentication or replay", ["leg"])
DROPPED = Counter("switchboard_media_dropped_total", "Packets dropped (payload type, stranger, not latched)", ["leg"])
CALLS_RELEASED = Counter("switchboard_media_calls_released_total", "Calls released")
ALLOCATIONS_REFUSED = Counter("switchboard_media_allocations_refused_total", "Allocations refused", ["reason"])
JITTER_MS = Histogram("switchboard_media_jitter_ms", "Interarrival jitter (RFC 3550 A.8) of released calls, per leg",
                      ["leg"], buckets=(1, 2, 5, 10, 20, 30, 50, 100, 200))
MOS = Histogram("switchboard_media_mos", "Estimated MOS (E-model) of released calls",
                buckets=(1.0, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.4, 4.5))
