"""The RTP port pool: even RTP ports with RTCP on the next odd one (RFC 3550 §11).

Sans-IO: the caller passes `try_bind(port)`, which binds the pair and returns what it bound
(or None when the OS says a port is taken, e.g. by a previous life of this worker that is
still draining, or another program). A port pair is never given to two calls; a released
pair waits `quarantine` seconds so late packets of the old call cannot reach a new one.
The state file records held and quarantined pairs so a restarted worker does not reuse
ports its previous life held (peers may still be sending there).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .errors import PoolExhausted

log = logging.getLogger("switchboard.media.pool")

T = TypeVar("T")


class PortPool:
    def __init__(
        self, port_min: int, port_max: int, *, quarantine: float = 10.0, state_path: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        first = port_min + (port_min & 1)
        self.ports = list(range(first, port_max, 2))  # port + 1 <= port_max
        if not self.ports:
            raise ValueError(f"no even/odd pair in {port_min}-{port_max}")
        self.quarantine = quarantine
        self.state_path = state_path
        self.clock = clock
        self.held: set[int] = set()
        self.quarantined: dict[int, float] = {}
        """port -> wall time when it may be used again."""
        self._cursor = 0
        if state_path is not None:
            self._load()

    @property
    def capacity(self) -> int:
        """Pairs in the range."""
        return len(self.ports)

    @property
    def available(self) -> int:
        now = self.clock()
        return sum(1 for p in self.ports if p not in self.held and self.quarantined.get(p, 0.0) <= now)

    def allocate(self, try_bind: Callable[[int], T | None]) -> tuple[int, T]:
        """The next free pair, round-robin (so a released pair is the last to come back)."""
        now = self.clock()
        n = len(self.ports)
        skipped_busy = 0
        for i in range(n):
            port = self.ports[(self._cursor + i) % n]
            if port in self.held:
                continue
            until = self.quarantined.get(port)
            if until is not None:
                if until > now:
                    continue
                del self.quarantined[port]
            bound = try_bind(port)
            if bound is None:
                # Taken outside this pool (a previous life still bound, another program):
                # leave it alone for a while rather than probing it on every allocation.
                skipped_busy += 1
                self.quarantined[port] = now + max(self.quarantine, 1.0)
                continue
            self._cursor = (self._cursor + i + 1) % n
            self.held.add(port)
            self._save()
            return port, bound
        raise PoolExhausted({
            "pairs": n, "in_use": len(self.held), "quarantined": len(self.quarantined), "busy": skipped_busy,
        })

    def release(self, port: int) -> None:
        if port not in self.held:
            return
        self.held.discard(port)
        if self.quarantine > 0:
            self.quarantined[port] = self.clock() + self.quarantine
        self._save()

    # --- state file ----------------------------------------------------------------

    def _load(self) -> None:
        assert self.state_path is not None
        try:
            state: dict[str, Any] = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            log.warning("port pool state %s unreadable (%s): starting empty", self.state_path, e)
            return
        now = self.clock()
        valid = set(self.ports)
        # Pairs the previous life still held: its peers may still send there.
        for p in state.get("held", []):
            if p in valid:
                self.quarantined[p] = max(self.quarantined.get(p, 0.0), now + self.quarantine)
        for p, until in state.get("quarantined", {}).items():
            p = int(p)
            if p in valid and until > now:
                self.quarantined[p] = max(self.quarantined.get(p, 0.0), float(until))
        if self.quarantined:
            log.info("port pool: %d pairs quarantined from the previous run", len(self.quarantined))
        self._save()

    def _save(self) -> None:
        if self.state_path is None:
            return
        now = self.clock()
        state = {
            "pid": os.getpid(),
            "held": sorted(self.held),
            "quarantined": {str(p): u for p, u in self.quarantined.items() if u > now},
        }
        tmp = self.state_path.with_suffix(".tmp")
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(state))
            os.replace(tmp, self.state_path)
        except OSError as e:
            log.warning("port pool state not saved: %s", e)
