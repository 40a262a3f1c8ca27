"""Which peer nodes are still alive, judged from their heartbeats (sans-IO: the caller
passes `now`). The B2BUA uses it to notice a media worker that died mid-call: its
heartbeats stop, and the calls it carried would otherwise be dead air until the carrier
gives up."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Liveness:
    after: float
    """Seconds of silence after which a node is lost (at least 3 of its own intervals)."""
    _deadline: dict[str, float] = field(default_factory=dict)
    _since: float = 0.0

    def seen(self, node: str, now: float, interval: float) -> None:
        self._deadline[node] = now + max(self.after, 3 * interval)

    def reset(self, now: float) -> None:
        """Judge nobody until they had `after` seconds to beat again: while our own bus
        connection is down, silence says nothing about the peers."""
        self._since = now
        self._deadline.clear()

    def lost(self, node: str, now: float) -> bool:
        deadline = self._deadline.get(node, self._since + self.after)
        return now > deadline
