"""Receive statistics (RFC 3550 A.1 sequence/loss, A.8 interarrival jitter) and a MOS
estimate from the ITU-T G.107 E-model, simplified for G.711."""

from __future__ import annotations

MAX_DROPOUT = 3000
MAX_MISORDER = 100


class StreamStats:
    """Loss and jitter of what one peer sends us. Survives SSRC changes and big sequence
    jumps by closing the current run and starting a new one (RFC 3550 A.1)."""

    __slots__ = ("ssrc", "base_seq", "max_seq", "cycles", "received", "jitter", "last_transit",
                 "_lost_before", "_expected_before", "_received_run")

    def __init__(self) -> None:
        self.ssrc: int | None = None
        self.base_seq = 0
        self.max_seq = 0
        self.cycles = 0
        self.received = 0
        self._received_run = 0
        self.jitter = 0.0
        """In timestamp units (1/8000 s)."""
        self.last_transit: int | None = None
        self._lost_before = 0
        self._expected_before = 0

    def _start(self, ssrc: int, seq: int) -> None:
        if self.ssrc is not None:
            self._lost_before += self._run_lost()
            self._expected_before += self._run_expected()
        self.ssrc = ssrc
        self.base_seq = seq
        self.max_seq = seq
        self.cycles = 0
        self._received_run = 0
        self.last_transit = None

    def _run_expected(self) -> int:
        return self.cycles + self.max_seq - self.base_seq + 1

    def _run_lost(self) -> int:
        return max(0, self._run_expected() - self._received_run)

    def update(self, ssrc: int, seq: int, timestamp: int, arrival: int, audio: bool = True) -> None:
        """`arrival` is the arrival time in timestamp units."""
        if ssrc != self.ssrc:
            self._start(ssrc, seq)
        else:
            delta = (seq - self.max_seq) & 0xFFFF
            if delta < MAX_DROPOUT:
                if seq < self.max_seq:
                    self.cycles += 1 << 16
                self.max_seq = seq
            elif delta <= (1 << 16) - MAX_MISORDER:
                self._start(ssrc, seq)  # a jump: the source restarted its sequence
            # else: a late or duplicate packet, counted as received
        self.received += 1
        self._received_run += 1
        if audio:
            transit = (arrival - timestamp) & 0xFFFFFFFF
            if self.last_transit is not None:
                d = (transit - self.last_transit) & 0xFFFFFFFF
                if d & 0x80000000:
                    d = (1 << 32) - d
                if d < 8000 * 10:  # ignore a timestamp jump (new talkspurt base, SSRC reuse)
                    self.jitter += (d - self.jitter) / 16
            self.last_transit = transit

    @property
    def expected(self) -> int:
        return self._expected_before + (self._run_expected() if self.ssrc is not None else 0)

    @property
    def lost(self) -> int:
        return self._lost_before + (self._run_lost() if self.ssrc is not None else 0)

    def jitter_ms(self, clock_rate: int = 8000) -> float:
        return self.jitter * 1000 / clock_rate


def mos(loss_fraction: float, jitter_ms: float, delay_ms: float = 0.0) -> float:
    """Simplified E-model (ITU-T G.107) for G.711 with packet loss concealment.

    R = 93.2 - Id - Ie_eff; Ie = 0 and Bpl = 25.1 for G.711 with PLC (ITU-T G.113 App. I);
    the one-way delay counts a jitter buffer of twice the jitter plus one packet."""
    d = delay_ms + 2 * jitter_ms + 20
    i_d = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    ppl = max(0.0, min(loss_fraction, 1.0)) * 100
    ie_eff = 0 + (95 - 0) * ppl / (ppl + 25.1)
    r = 93.2 - i_d - ie_eff
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return round(1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6, 2)
