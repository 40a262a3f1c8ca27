"""Prometheus metrics: each service exposes /metrics on SWITCHBOARD_METRICS_PORT (0 = off).

Metrics are module-level objects of prometheus_client's default registry; services define
their own next to the code that counts, this module holds the shared ones."""

from __future__ import annotations

import logging

from prometheus_client import Histogram, start_http_server

log = logging.getLogger("switchboard.metrics")

BUS_REQUEST_SECONDS = Histogram(
    "switchboard_bus_request_seconds",
    "Latency of bus requests by subject family",
    ["family", "outcome"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 2, 5),
)


def family(subject: str) -> str:
    """`media.us1.allocate` -> `media.allocate`: bounded label values, not one per call."""
    parts = subject.split(".")
    return f"{parts[0]}.{parts[-1]}" if len(parts) > 1 else parts[0]


def start_metrics_server(port: int, host: str = "127.0.0.1") -> None:
    if not port:
        return
    try:
        start_http_server(port, addr=host)
        log.info("metrics on http://%s:%d/metrics", host, port)
    except OSError as e:  # a taken port must not stop the service from serving calls
        log.error("metrics port %d not available: %s", port, e.strerror)
