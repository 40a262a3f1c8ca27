"""The console's session: an encrypted, authenticated cookie (AES-256-GCM through the
service's SecretBox), HttpOnly, SameSite=Strict, with an expiry inside the sealed payload
as well as on the cookie. The API key lives only inside it, never in a page.

Sign-in attempts are limited per client address (failures in a sliding window)."""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass, field

from ..errors import SecretError
from ..secrets import SecretBox

COOKIE = "sb_console"
# Bound into the sealed payload so a value sealed for another purpose never opens as a session.
PURPOSE = "switchboard-console-session"


@dataclass
class Session:
    csrf: str
    expires: float
    sid: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    key: str | None = None
    """The signed-in user's API key (or the admin token); None before sign-in."""
    admin: bool = False
    account_id: str | None = None
    """The account the pages work on: the key's own, or the one the admin picked."""
    account_name: str = ""

    @property
    def signed_in(self) -> bool:
        return self.key is not None

    def check_csrf(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), (token or "").encode())


def new_session(ttl: float) -> Session:
    return Session(csrf=secrets.token_urlsafe(24), expires=time.time() + ttl)


class SessionCodec:
    def __init__(self, box: SecretBox) -> None:
        self.box = box
        self._ended: dict[str, float] = {}
        """Sessions signed out in this process, until they would have expired anyway."""

    def dump(self, s: Session) -> str:
        return self.box.seal(json.dumps({"p": PURPOSE, **asdict(s)}, separators=(",", ":")))

    def load(self, value: str | None) -> Session | None:
        if not value or len(value) > 4096:
            return None
        try:
            data = json.loads(self.box.open(value))
        except (SecretError, ValueError):
            return None
        if not isinstance(data, dict) or data.pop("p", None) != PURPOSE:
            return None
        try:
            s = Session(**data)
        except TypeError:
            return None
        if s.expires < time.time() or s.sid in self._ended:
            return None
        return s

    def end(self, s: Session) -> None:
        now = time.time()
        self._ended = {sid: exp for sid, exp in self._ended.items() if exp > now}
        self._ended[s.sid] = s.expires


class SignInLimiter:
    """At most `attempts` failed sign-ins per client address within `window` seconds."""

    def __init__(self, attempts: int = 5, window: float = 60.0) -> None:
        self.attempts, self.window = attempts, window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, addr: str, now: float) -> deque[float]:
        q = self._failures.setdefault(addr, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, addr: str, now: float | None = None) -> int:
        """Seconds until this address may try again (0: now)."""
        now = time.monotonic() if now is None else now
        q = self._recent(addr, now)
        if len(q) < self.attempts:
            if not q:
                self._failures.pop(addr, None)
            return 0
        return max(1, int(q[0] + self.window - now + 0.999))

    def failed(self, addr: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._recent(addr, now).append(now)
        if len(self._failures) > 10000:  # a flood of addresses must not grow memory without bound
            self._failures = {a: q for a, q in self._failures.items() if q and q[-1] > now - self.window}
