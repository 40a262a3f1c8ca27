"""Which peer nodes are still alive, judged from their heartbeats (sans-IO: the caller
passes `now`). The B2BUA uses it to notice a media worker that died mid-call (its calls
would be dead air until the carrier gives up); a media worker, to notice that the signaling
node of its calls died (nobody would ever release their ports)."""

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

    def overdue(self, node: str, now: float) -> float:
        """Seconds the node is past its deadline (negative while it is alive)."""
        return now - self._deadline.get(node, self._since + self.after)

    def lost(self, node: str, now: float) -> bool:
        return self.overdue(node, now) > 0
