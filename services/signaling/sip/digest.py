"""Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760), both sides.

Client: :func:`answer_challenge` turns a 401/407 into the Authorization /
Proxy-Authorization header for the retried request (use a new CSeq and branch); lower
level :func:`select_challenge` + :func:`build_authorization`. Server: :class:`DigestServer`
issues challenges with self-validating nonces and verifies credentials, given ``now``.

Algorithms: MD5, MD5-sess, SHA-256, SHA-256-sess (RFC 8760 §2.1); qop auth, auth-int and
none (RFC 2069 compatibility). SHA-512-256 and userhash are not supported: such a
challenge is skipped in favour of another one.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import DigestError, SipParseError
from .headers import AuthHeader, quote
from .message import Request, Response

__all__ = [
    "ALGORITHMS",
    "AuthAnswer",
    "Challenge",
    "DigestCredentials",
    "DigestServer",
    "VerifyResult",
    "answer_challenge",
    "build_authorization",
    "compute_response",
    "select_challenge",
]

_Hash = Callable[[bytes], str]


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Upper-cased algorithm name -> (hash, strength rank). RFC 8760 §2.4: prefer SHA-256.
ALGORITHMS: dict[str, tuple[_Hash, int]] = {
    "SHA-256": (_sha256, 4),
    "SHA-256-SESS": (_sha256, 3),
    "MD5": (_md5, 2),
    "MD5-SESS": (_md5, 1),
}


@dataclass
class Challenge:
    """A Digest challenge from WWW-Authenticate (401) or Proxy-Authenticate (407)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: list[str] = field(default_factory=list)
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    proxy: bool = False

    @classmethod
    def parse(cls, value: str, proxy: bool = False) -> Challenge:
        try:
            auth = AuthHeader.parse(value)
        except SipParseError as exc:
            raise DigestError(exc.reason) from None
        if auth.scheme.lower() != "digest":
            raise DigestError(f"Unsupported auth scheme {auth.scheme}")
        p = auth.params
        if "realm" not in p or "nonce" not in p:
            raise DigestError("Digest challenge without realm or nonce")
        qop = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
        return cls(
            p["realm"],
            p["nonce"],
            p.get("algorithm", "MD5"),
            qop,
            p.get("opaque"),
            p.get("stale", "").lower() == "true",
            p.get("domain"),
            proxy,
        )

    @property
    def supported(self) -> bool:
        return self.algorithm.upper() in ALGORITHMS

    def __str__(self) -> str:
        parts = [f"realm={quote(self.realm)}"]
        if self.domain is not None:
            parts.append(f"domain={quote(self.domain)}")
        parts.append(f"nonce={quote(self.nonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        if self.stale:
            parts.append("stale=true")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={quote(','.join(self.qop))}")
        return "Digest " + ", ".join(parts)


@dataclass
class DigestCredentials:
    """A Digest Authorization / Proxy-Authorization value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = "MD5"
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None

    @classmethod
    def parse(cls, value: str) -> DigestCredentials:
        try:
            auth = AuthHeader.parse(value)
        except SipParseError as exc:
            raise DigestError(exc.reason) from None
        if auth.scheme.lower() != "digest":
            raise DigestError(f"Unsupported auth scheme {auth.scheme}")
        p = auth.params
        try:
            return cls(
                p["username"],
                p["realm"],
                p["nonce"],
                p["uri"],
                p["response"],
                p.get("algorithm"),
                p.get("cnonce"),
                p.get("opaque"),
                p.get("qop"),
                p.get("nc"),
            )
        except KeyError as exc:
            raise DigestError(f"Digest credentials without {exc.args[0]}") from None

    def __str__(self) -> str:
        parts = [
            f"username={quote(self.username)}",
            f"realm={quote(self.realm)}",
            f"nonce={quote(self.nonce)}",
            f"uri={quote(self.uri)}",
            f"response={quote(self.response)}",
        ]
        if self.algorithm:
            parts.append(f"algorithm={self.algorithm}")
        if self.cnonce is not None:
            parts.append(f"cnonce={quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        if self.qop:
            parts.append(f"qop={self.qop}")  # a token here, unlike in the challenge
        if self.nc is not None:
            parts.append(f"nc={self.nc}")
        return "Digest " + ", ".join(parts)


def compute_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    cnonce: str | None = None,
    nc: str | None = None,
    qop: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value of RFC 7616 §3.4.1 / RFC 2617 §3.2.2.1 (RFC 2069 form if no qop)."""
    entry = ALGORITHMS.get(algorithm.upper())
    if entry is None:
        raise DigestError(f"Unsupported digest algorithm {algorithm}")
    h = entry[0]
    ha1 = h(f"{username}:{realm}:{password}".encode())
    if algorithm.upper().endswith("-SESS"):
        if cnonce is None:
            raise DigestError("-sess algorithm needs a cnonce")
        ha1 = h(f"{ha1}:{nonce}:{cnonce}".encode())
    if qop == "auth-int":
        ha2 = h(f"{method}:{uri}:{h(body)}".encode())
    else:
        ha2 = h(f"{method}:{uri}".encode())
    if qop:
        if cnonce is None or nc is None:
            raise DigestError("qop needs cnonce and nc")
        return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())
    return h(f"{ha1}:{nonce}:{ha2}".encode())


def select_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """The strongest supported challenge (RFC 8760 §2.4; the first among equals)."""
    best: Challenge | None = None
    for ch in challenges:
        if ch.supported and (best is None or ALGORITHMS[ch.algorithm.upper()][1] > ALGORITHMS[best.algorithm.upper()][1]):
            best = ch
    return best


def build_authorization(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    body: bytes = b"",
    cnonce: str | None = None,
    nc: int = 1,
    prefer_auth_int: bool = False,
) -> DigestCredentials:
    """Credentials answering ``challenge``. ``uri`` must be the Request-URI exactly as sent
    (§22.4); ``username`` is the auth user, which need not be the From user. ``str()`` of the
    result is the header value."""
    qop: str | None = None
    if challenge.qop:
        if "auth-int" in challenge.qop and (prefer_auth_int or "auth" not in challenge.qop):
            qop = "auth-int"
        elif "auth" in challenge.qop:
            qop = "auth"
        else:
            raise DigestError(f"Unsupported qop {challenge.qop}")
    sess = challenge.algorithm.upper().endswith("-SESS")
    if (qop or sess) and cnonce is None:
        cnonce = secrets.token_hex(8)
    nc_text = f"{nc:08x}" if qop else None
    response = compute_response(
        algorithm=challenge.algorithm,
        username=username,
        realm=challenge.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        cnonce=cnonce,
        nc=nc_text,
        qop=qop,
        body=body,
    )
    return DigestCredentials(
        username,
        challenge.realm,
        challenge.nonce,
        uri,
        response,
        challenge.algorithm,
        cnonce if (qop or sess) else None,
        challenge.opaque,
        qop,
        nc_text,
    )


@dataclass
class AuthAnswer:
    """What to add to the retried request. ``stale`` means the server only refreshed its
    nonce (RFC 7616 §3.3): retry without counting it as a failed attempt."""

    header: str
    value: str
    stale: bool
    challenge: Challenge


def answer_challenge(
    response: Response,
    request: Request,
    *,
    username: str,
    password: str,
    cnonce: str | None = None,
    nc: int = 1,
) -> AuthAnswer | None:
    """Answer a 401 (WWW-Authenticate → Authorization) or 407 (Proxy-Authenticate →
    Proxy-Authorization) to ``request``; None if no usable Digest challenge is offered."""
    if response.status == 401:
        source, target, proxy = "WWW-Authenticate", "Authorization", False
    elif response.status == 407:
        source, target, proxy = "Proxy-Authenticate", "Proxy-Authorization", True
    else:
        return None
    challenges: list[Challenge] = []
    for value in response.headers.get_all(source):
        try:
            challenges.append(Challenge.parse(value, proxy))
        except DigestError:
            continue  # another scheme (e.g. Basic) or a malformed one: try the others
    chosen = select_challenge(challenges)
    if chosen is None:
        return None
    creds = build_authorization(
        chosen,
        method=request.method,
        uri=request.uri,
        username=username,
        password=password,
        body=request.body,
        cnonce=cnonce,
        nc=nc,
    )
    return AuthAnswer(target, str(creds), chosen.stale, chosen)


class VerifyResult(enum.Enum):
    OK = "ok"
    STALE = "stale"  # right password, expired nonce: challenge again with stale=true
    FAILED = "failed"


class DigestServer:
    """Server side: challenges with stateless HMAC nonces (timestamp + MAC), verification.

    ``now`` is passed in (seconds, any monotonic or wall clock), keeping this sans-IO.
    Nonce-count replay tracking is left to the caller.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        algorithm: str = "MD5",
        qop: tuple[str, ...] = ("auth",),
        nonce_ttl: float = 300.0,
    ) -> None:
        if algorithm.upper() not in ALGORITHMS:
            raise DigestError(f"Unsupported digest algorithm {algorithm}")
        self.realm = realm
        self.secret = secret
        self.algorithm = algorithm
        self.qop = list(qop)
        self.nonce_ttl = nonce_ttl

    def _mac(self, stamp: bytes) -> bytes:
        return hmac.new(self.secret, stamp, hashlib.sha256).digest()[:16]

    def make_nonce(self, now: float) -> str:
        stamp = struct.pack(">d", now) + secrets.token_bytes(8)
        return base64.urlsafe_b64encode(stamp + self._mac(stamp)).decode().rstrip("=")

    def nonce_age(self, nonce: str, now: float) -> float | None:
        """Seconds since we issued ``nonce``; None if we did not issue it."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) != 32 or not hmac.compare_digest(raw[16:], self._mac(raw[:16])):
            return None
        issued: float = struct.unpack(">d", raw[:8])[0]
        return now - issued

    def challenge(self, now: float, *, stale: bool = False, opaque: str | None = None, proxy: bool = False) -> Challenge:
        """Use ``str(result)`` as the WWW-Authenticate (or Proxy-Authenticate) value."""
        return Challenge(self.realm, self.make_nonce(now), self.algorithm, list(self.qop), opaque, stale, None, proxy)

    def verify(
        self,
        credentials: str | DigestCredentials,
        *,
        method: str,
        password: str,
        now: float,
        body: bytes = b"",
        request_uri: str | None = None,
    ) -> VerifyResult:
        try:
            creds = credentials if isinstance(credentials, DigestCredentials) else DigestCredentials.parse(credentials)
        except DigestError:
            return VerifyResult.FAILED
        algorithm = creds.algorithm or "MD5"
        if creds.realm != self.realm or algorithm.upper() != self.algorithm.upper():
            return VerifyResult.FAILED
        if request_uri is not None and creds.uri != request_uri:
            return VerifyResult.FAILED  # RFC 7616 §3.4.6
        if self.qop and creds.qop not in self.qop:
            return VerifyResult.FAILED
        age = self.nonce_age(creds.nonce, now)
        if age is None or age < 0:
            return VerifyResult.FAILED
        try:
            expected = compute_response(
                algorithm=algorithm,
                username=creds.username,
                realm=creds.realm,
                password=password,
                method=method,
                uri=creds.uri,
                nonce=creds.nonce,
                cnonce=creds.cnonce,
                nc=creds.nc,
                qop=creds.qop,
                body=body,
            )
        except DigestError:
            return VerifyResult.FAILED
        if not hmac.compare_digest(expected, creds.response.lower()):
            return VerifyResult.FAILED
        return VerifyResult.STALE if age > self.nonce_ttl else VerifyResult.OK
