"""A call's ladder diagram (like sngrep's): one column per party — the carrier, Switchboard,
each SIP client — and every SIP message of both legs as an arrow in time order, with the
call's decisions (routing, region, media worker, failover) as notes on Switchboard's line."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

SIP_KINDS = ("sip_in", "sip_out")
# What a decision note shows, per event field (the rest is in the event list).
NOTE_FIELDS = ("tracking_number", "receiving_number_id", "region", "worker_id", "target", "dest", "sip_status",
               "status", "reason", "digit", "leg", "by", "result")

COL_WIDTH = 260
LEFT = 130
ROW = 34
TOP = 70
NOTE_ROOM = 500


@dataclass
class Column:
    label: str
    addr: str
    x: int


@dataclass
class Row:
    index: int
    y: int
    t: float
    """Seconds since the call's first event."""
    kind: str
    label: str
    x1: int = 0
    x2: int = 0
    transport: str = ""
    message: str = ""
    src: str = ""
    dst: str = ""

    @property
    def is_sip(self) -> bool:
        return self.kind in SIP_KINDS

    @property
    def anchor(self) -> str:
        return f"ev-{self.index}"

    @property
    def mid(self) -> int:
        return (self.x1 + self.x2) // 2

    @property
    def leftward(self) -> bool:
        return self.x2 < self.x1


@dataclass
class Ladder:
    columns: list[Column] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    width: int = 0
    height: int = 0

    @property
    def sip_count(self) -> int:
        return sum(1 for r in self.rows if r.is_sip)


def note(ev: dict[str, Any]) -> str:
    p = ev.get("payload") or {}
    parts = [f"{k}={p[k]}" for k in NOTE_FIELDS if p.get(k) not in (None, "", [], {})]
    return f"{ev.get('kind', '')}" + (f": {', '.join(parts)}" if parts else "")


def build(events: list[dict[str, Any]]) -> Ladder:
    """The ladder of a call's events (as GET /v1/calls/{id}/events lists them)."""
    lad = Ladder()
    if not events:
        return lad
    ours: list[str] = []
    peers: list[str] = []
    for ev in events:
        if ev.get("kind") not in SIP_KINDS:
            continue
        p = ev.get("payload") or {}
        here, there = (p.get("dst"), p.get("src")) if ev["kind"] == "sip_in" else (p.get("src"), p.get("dst"))
        if here and here not in ours:
            ours.append(str(here))
        if there and there not in peers:
            peers.append(str(there))
    # The carrier is whoever sent the first incoming request; the other peers are SIP clients.
    first_in = next((e for e in events if e.get("kind") == "sip_in"), None)
    carrier = str((first_in or {}).get("payload", {}).get("src") or "")
    clients = [p for p in peers if p != carrier and p not in ours]
    lad.columns.append(Column("Carrier", carrier, LEFT))
    lad.columns.append(Column("Switchboard", ", ".join(ours), LEFT + COL_WIDTH))
    for i, c in enumerate(clients):
        lad.columns.append(Column("SIP client" + (f" {i + 1}" if len(clients) > 1 else ""), c,
                                  LEFT + COL_WIDTH * (2 + i)))
    x_of = {c.addr: c.x for c in lad.columns if c.label != "Switchboard"}
    sb = lad.columns[1].x
    t0 = float(events[0].get("ts") or 0.0)
    for i, ev in enumerate(events):
        y = TOP + ROW * len(lad.rows)
        kind = str(ev.get("kind") or "")
        t = float(ev.get("ts") or 0.0) - t0
        p = ev.get("payload") or {}
        if kind in SIP_KINDS:
            peer = str(p.get("src") if kind == "sip_in" else p.get("dst"))
            px = x_of.get(peer, sb)
            x1, x2 = (px, sb) if kind == "sip_in" else (sb, px)
            lad.rows.append(Row(i, y, t, kind, str(p.get("first_line") or ""), x1, x2,
                                str(p.get("transport") or ""), str(p.get("message") or ""),
                                str(p.get("src") or ""), str(p.get("dst") or "")))
        else:
            lad.rows.append(Row(i, y, t, kind, note(ev), sb, sb))
    # Room on the right for the decision notes written beside Switchboard's line.
    lad.width = max(LEFT + COL_WIDTH * (len(lad.columns) - 1) + LEFT, sb + NOTE_ROOM)
    lad.height = TOP + ROW * len(lad.rows) + 20
    return lad


def short(first_line: str, limit: int = 38) -> str:
    """The arrow's label: a request's method and URI user part, or a response's status."""
    if first_line.startswith("SIP/2.0 "):
        text = first_line[8:]
    else:
        method, _, rest = first_line.partition(" ")
        uri = rest.rsplit(" ", 1)[0]
        text = f"{method} {uri}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the same ladder as text, for `switchboard calls ladder` (sngrep-style) ---------------

GUTTER = 11  # "+123.456s " and a space
RESET = "\x1b[0m"


def _color(first_line: str) -> str:
    if first_line.startswith("SIP/2.0 "):
        code = first_line[8:9]
        return {"1": "\x1b[33m", "2": "\x1b[32m"}.get(code, "\x1b[31m")  # 1xx yellow, 2xx green, else red
    return "\x1b[36m"  # requests cyan


def _center(text: str, width: int) -> str:
    text = text if len(text) <= width else text[: max(0, width - 1)] + "…"
    return text.center(width)


def _arrow_label(first_line: str, limit: int) -> str:
    """A request's method, a response's status and reason (the URI is in `calls show`)."""
    text = first_line[8:] if first_line.startswith("SIP/2.0 ") else first_line.partition(" ")[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_text(events: list[dict[str, Any]], *, width: int = 100, color: bool = False) -> str:
    """One column per party, an arrow per SIP message with its method or status, the
    time since the call's first event on the left and the call's decisions in the right
    margin. ``width`` is the terminal's: columns close up, labels and notes are cut to fit."""
    lad = build(events)
    if not lad.rows:
        return ""
    n = len(lad.columns)
    index = {c.x: i for i, c in enumerate(lad.columns)}
    margin = max(24, width * 2 // 5)
    span = max(14, (width - GUTTER - margin - 2) // max(1, n - 1))
    pos = [GUTTER + 1 + i * span for i in range(n)]
    last = pos[-1]
    line_width = max(width, last + 2)

    def fit(s: str) -> str:
        return s if len(s) <= line_width else s[: line_width - 1] + "…"

    out: list[str] = []
    for attr in ("label", "addr"):
        chars = [" "] * (last + span // 2 + 1)
        for i, col in enumerate(lad.columns):
            text = _center(getattr(col, attr), span - 1)
            start = max(0, pos[i] - len(text) // 2)
            chars[start:start + len(text)] = text
        header = "".join(chars).rstrip()
        out.append(fit(header))
    for row in lad.rows:
        chars = [" "] * (last + 1)
        for p in pos:
            chars[p] = "|"
        stamp = f"{row.t:+.3f}s".rjust(GUTTER - 1)
        chars[: len(stamp)] = stamp
        a_i, b_i = index.get(row.x1, 1), index.get(row.x2, 1)
        note = ""
        arrow_span: tuple[int, int] | None = None
        if row.is_sip and a_i != b_i:
            lo, hi = sorted((pos[a_i], pos[b_i]))
            room = hi - lo - 1
            label = _arrow_label(row.label, max(4, room - 6))
            body = f" {label} ".center(room - 2, "-")[: room - 2]
            arrow = ("<-" + body) if b_i < a_i else (body + "->")
            chars[lo + 1:hi] = arrow[:room]
            arrow_span = (lo + 1, hi)
            note = row.transport
        elif row.is_sip:  # a message to or from one of our own addresses
            note = short(row.label)
        else:
            chars[pos[1]] = "*"
            note = row.label
        text = "".join(chars) + "  "
        room = max(8, line_width - len(text))
        # A decision too long for the margin goes on under itself, beside the lifelines.
        pieces = (textwrap.wrap(note, room, break_on_hyphens=False) or [""]) if not row.is_sip else [
            note if len(note) <= room else note[: room - 1] + "…"]
        blank = "".join("|" if i in pos else " " for i in range(last + 1)) + "  "
        for k, piece in enumerate(pieces):
            line = text if k == 0 else blank
            if not color:
                out.append((line + piece).rstrip())
                continue
            if arrow_span is not None and k == 0:
                a, b = arrow_span
                line = line[:a] + _color(row.label) + line[a:b] + RESET + line[b:]
            dim = "\x1b[2m" if row.is_sip else "\x1b[35m"  # transports dim, decisions magenta
            out.append(line + (dim + piece + RESET if piece else ""))
    return "\n".join(out)
