"""Writes docs/grafana/switchboard.json, the Grafana dashboard over Switchboard's Prometheus
metrics: `python docs/grafana/dashboard.py`. Import the JSON in Grafana (Dashboards →
Import) and pick the Prometheus data source that scrapes the services' /metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

R = "[$__rate_interval]"

# (title, unit, [(PromQL, legend)], description); two panels a row.
PANELS: list[tuple[str, str, list[tuple[str, str]], str]] = [
    ("Calls in progress", "short", [("sum(switchboard_calls_in_progress)", "signaling"),
                                    ("sum(switchboard_media_calls_active)", "media")],
     "Calls the signaling nodes handle, and calls with ports on a media worker."),
    ("Calls by result", "cps", [(f"sum by (result) (rate(switchboard_calls_total{R}))", "{{result}}")],
     "Finished calls per second: completed, busy, no-answer, failed, canceled."),
    ("Post-dial delay", "s", [
        (f"histogram_quantile(0.5, sum by (le) (rate(switchboard_post_dial_delay_seconds_bucket{R})))", "p50"),
        (f"histogram_quantile(0.95, sum by (le) (rate(switchboard_post_dial_delay_seconds_bucket{R})))", "p95")],
     "From the carrier's INVITE to our INVITE to the SIP client."),
    ("Failures by cause", "cps", [
        (f"sum by (result, status) (rate(switchboard_call_failures_total{R}))", "{{result}} {{status}}"),
        (f"sum by (reason) (rate(switchboard_calls_refused_total{R}))", "refused: {{reason}}")],
     "Calls that did not complete, by the SIP status the carrier got; INVITEs refused before routing."),
    ("Failovers", "ops", [(f"sum by (kind) (rate(switchboard_failovers_total{R}))", "{{kind}}")],
     "Moves to the next target, region or node."),
    ("SIP messages", "ops", [(f"sum by (direction, message) (rate(switchboard_sip_messages_total{R}))",
                              "{{direction}} {{message}}")],
     "By method or status, in and out."),
    ("Media packet loss", "percentunit", [
        (f"sum by (leg) (rate(switchboard_media_packets_lost_total{R})) / "
         f"clamp_min(sum by (leg) (rate(switchboard_media_packets_total{{direction=\"in\"}}{R})), 1)", "leg {{leg}}")],
     "RTP lost (RFC 3550 A.3) over RTP received, per leg (a: carrier, b: SIP client)."),
    ("Media jitter p95", "ms", [
        (f"histogram_quantile(0.95, sum by (le, leg) (rate(switchboard_media_jitter_ms_bucket{R})))", "leg {{leg}}")],
     "Interarrival jitter (RFC 3550 A.8) of released calls."),
    ("MOS", "short", [
        (f"sum(rate(switchboard_media_mos_sum{R})) / sum(rate(switchboard_media_mos_count{R}))", "mean"),
        (f"histogram_quantile(0.05, sum by (le) (rate(switchboard_media_mos_bucket{R})))", "worst 5%")],
     "Estimated MOS (E-model) of released calls."),
    ("SRTP failures", "pps", [(f"sum by (leg) (rate(switchboard_media_srtp_failures_total{R}))", "leg {{leg}}")],
     "Packets dropped for failing SRTP authentication or replay."),
    ("Media ports in use", "short", [
        ("sum(switchboard_media_port_pairs_total) - sum(switchboard_media_port_pairs_available)", "in use"),
        ("sum(switchboard_media_port_pairs_total)", "total")],
     "RTP/RTCP port pairs taken on the media workers."),
    ("Bus request latency p99", "s", [
        (f"histogram_quantile(0.99, sum by (le, family) (rate(switchboard_bus_request_seconds_bucket{R})))",
         "{{family}}")],
     "NATS request/reply latency by subject family (routing.resolve, media.allocate, ...)."),
    ("Webhook backlog", "short", [("sum(switchboard_webhook_backlog)", "pending"),
                                  (f"sum by (outcome) (rate(switchboard_webhook_deliveries_total{R}))",
                                   "{{outcome}}/s")],
     "Deliveries pending (due or waiting to retry), and delivery outcomes."),
    ("HEP capture", "pps", [(f"sum by (outcome) (rate(switchboard_hep_packets_total{R}))", "{{outcome}}")],
     "SIP copies sent to the HEP collector, and dropped when it is away."),
]


def panel(i: int, title: str, unit: str, targets: list[tuple[str, str]], description: str) -> dict[str, Any]:
    return {
        "id": i + 1, "type": "timeseries", "title": title, "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 10}}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [{"refId": chr(65 + j), "expr": expr, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for j, (expr, legend) in enumerate(targets)],
    }


def dashboard() -> dict[str, Any]:
    return {
        "uid": "switchboard", "title": "Switchboard", "tags": ["switchboard", "sip"], "timezone": "utc",
        "schemaVersion": 39, "version": 1, "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
    }


if __name__ == "__main__":
    out = Path(__file__).with_name("switchboard.json")
    out.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {out}")
