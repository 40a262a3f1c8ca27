"""Session timers on the client leg (RFC 4028), where we are the UAC: what we ask for, what
the PBX's 2xx decides, when we refresh or give up. Pure functions; the leg (`client_leg.py`)
sends the requests."""

from __future__ import annotations

from dataclasses import dataclass

from ..sip.message import Response

REQUESTED = 1800  # §4: the recommended interval; the PBX may lower it (its 2xx) or raise it (422)
MIN_SE = 90  # §4: the smallest interval we ask for


@dataclass(frozen=True)
class SessionTimer:
    interval: int
    we_refresh: bool
    """refresher=uac in the PBX's 2xx: we (the UAC) refresh."""
    update: bool
    """The PBX allows UPDATE: refresh with it (no SDP); else re-INVITE (§7.4, §9)."""

    @property
    def refresh_after(self) -> float:
        """§10: the refresher refreshes at half the interval."""
        return self.interval / 2

    @property
    def expire_after(self) -> float:
        """§10: the other side gives up (BYE) at the interval minus min(32 s, a third)."""
        return self.interval - min(32.0, self.interval / 3)


def _seconds(value: str | None) -> tuple[int, dict[str, str]] | None:
    if not value:
        return None
    head, *params = value.split(";")
    try:
        seconds = int(head.strip())
    except ValueError:
        return None
    if seconds <= 0:
        return None
    kv = {}
    for p in params:
        k, _, v = p.partition("=")
        kv[k.strip().lower()] = v.strip().lower()
    return seconds, kv


def from_answer(response: Response) -> SessionTimer | None:
    """The session timer the PBX's 2xx (to an INVITE, UPDATE or re-INVITE) sets, if any.
    §7.2: no Session-Expires in the 2xx means no session timer for this session."""
    parsed = _seconds(response.headers.get("Session-Expires"))  # also its compact form "x"
    if parsed is None:
        return None
    seconds, params = parsed
    allow = {m.strip().upper() for v in response.headers.values("Allow") for m in v.split(",")}
    # §7.2: without a refresher parameter the UAC (we) refreshes.
    return SessionTimer(interval=seconds, we_refresh=params.get("refresher", "uac") != "uas",
                        update="UPDATE" in allow)


def min_se(response: Response) -> int | None:
    """The Min-SE of a 422 (§6), the interval to ask for on the retry."""
    parsed = _seconds(response.headers.get("Min-SE"))
    return parsed[0] if parsed else None


def request_headers(interval: int, minimum: int = MIN_SE) -> list[tuple[str, str]]:
    """§7.1: what the initial INVITE asks (no refresher: the PBX may choose)."""
    return [("Session-Expires", str(interval)), ("Min-SE", str(min(minimum, interval)))]


def refresh_headers(timer: SessionTimer) -> list[tuple[str, str]]:
    """§7.4: a refresh we send keeps the interval and says we refresh."""
    return [("Session-Expires", f"{timer.interval};refresher=uac"), ("Supported", "timer")]
