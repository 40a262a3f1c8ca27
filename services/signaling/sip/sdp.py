"""SDP (RFC 4566), offer/answer (RFC 3264) and SDES crypto (RFC 4568) for what Switchboard
negotiates: one audio stream, PCMU (PT 0) mandatory, RFC 4733 telephone-event, and SRTP
``AES_CM_128_HMAC_SHA1_80`` only.

A :class:`SessionDescription` keeps every line in order (unknown ones included), as
``(type, value)`` pairs for the session part and per :class:`Media`; typed accessors parse
on demand, so ``bytes(parse_sdp(x)) == x`` for CRLF-terminated input.

Negotiation helpers return a result instead of raising: :class:`SdpAnswer` /
:class:`NegotiatedMedia` on success, :class:`SdpRejection` (``status`` 488) otherwise.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field, replace

from .errors import SdpError

__all__ = [
    "PCMU_PT",
    "SRTP_SUITE",
    "Connection",
    "Crypto",
    "Media",
    "NegotiatedMedia",
    "Origin",
    "RtpMap",
    "SdpAnswer",
    "SdpRejection",
    "SessionDescription",
    "answer_offer",
    "build_offer",
    "hold_offer",
    "parse_sdp",
    "validate_answer",
]

PCMU_PT = 0
SRTP_SUITE = "AES_CM_128_HMAC_SHA1_80"
SRTP_KEY_SALT_LEN = 30  # 16-octet master key || 14-octet master salt (RFC 4568 §6.2.1)
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_REVERSE = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}
_LINE_RE = re.compile(r"[a-z]=")
_CRYPTO_RE = re.compile(r"([0-9]{1,9})\s+(\S+)\s+(\S+)(?:\s+(.*))?", re.S)


@dataclass
class Connection:
    """``c=IN IP4 192.0.2.1`` (RFC 4566 §5.7)."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def parse(cls, value: str) -> Connection:
        parts = value.split()
        if len(parts) != 3:
            raise SdpError(f"Bad c= line: {value[:60]!r}", 400)
        # Multicast TTL/count suffixes ("/127") are not ours to use; keep the address only.
        return cls(parts[2].split("/")[0], parts[1], parts[0])

    @property
    def is_hold(self) -> bool:
        """RFC 2543-style hold (RFC 3264 §8.4): c=0.0.0.0."""
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


@dataclass
class Origin:
    """``o=`` (RFC 4566 §5.2)."""

    username: str
    session_id: str
    session_version: int
    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def parse(cls, value: str) -> Origin:
        parts = value.split()
        if len(parts) != 6 or not parts[2].isdecimal():
            raise SdpError(f"Bad o= line: {value[:60]!r}", 400)
        return cls(parts[0], parts[1], int(parts[2]), parts[5], parts[4], parts[3])

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock>[/<channels>]``."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        pt, _, rest = value.partition(" ")
        parts = rest.strip().split("/")
        if not pt.isdecimal() or len(parts) < 2 or not parts[1].isdecimal():
            raise SdpError(f"Bad rtpmap: {value[:60]!r}", 400)
        channels = int(parts[2]) if len(parts) > 2 and parts[2].isdecimal() else None
        return cls(int(pt), parts[0], int(parts[1]), channels)

    def __str__(self) -> str:
        extra = f"/{self.channels}" if self.channels else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{extra}"


def _b64decode(text: str) -> bytes:
    # RFC 4568 §6.1 uses base64 with padding, but peers also send it without '='.
    text = text.rstrip("=")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


@dataclass
class Crypto:
    """``a=crypto:<tag> <suite> inline:<key||salt>[|lifetime][|MKI:len] [session-params]``.

    Only the first key parameter is kept; ``lifetime`` and ``mki`` are carried as text and
    never used by negotiation. ``key_salt`` is the decoded master key || salt.
    """

    tag: int
    suite: str
    key_salt: bytes
    lifetime: str | None = None
    mki: str | None = None
    session_params: str | None = None

    @classmethod
    def parse(cls, value: str) -> Crypto:
        m = _CRYPTO_RE.fullmatch(value.strip())
        if m is None:
            raise SdpError(f"Bad crypto attribute: {value[:60]!r}", 400)
        tag, suite, key_params, session = m.groups()
        first = key_params.split(";")[0]
        method, _, info = first.partition(":")
        if method != "inline" or not info:
            raise SdpError(f"Unsupported key method: {first[:40]!r}", 488)
        parts = info.split("|")
        try:
            key_salt = _b64decode(parts[0])
        except (binascii.Error, ValueError):
            raise SdpError("Bad base64 in crypto key", 400) from None
        lifetime: str | None = None
        mki: str | None = None
        for part in parts[1:]:
            if ":" in part:
                mki = part
            else:
                lifetime = part
        return cls(int(tag), suite, key_salt, lifetime, mki, session)

    @property
    def lifetime_packets(self) -> int | None:
        """The master key's lifetime in packets (RFC 4568 §6.1: `2^n` or a decimal), or
        None when not given (libsrtp's default, 2^48, applies) or unreadable."""
        text = (self.lifetime or "").strip()
        if text.startswith("2^") and text[2:].isdecimal() and int(text[2:]) <= 64:
            return int(2 ** int(text[2:]))
        return int(text) if text.isdecimal() else None

    @property
    def unusable_because(self) -> str | None:
        """Why we cannot use this line, or None. Unknown session parameters are ignored
        (RFC 4568 §6.3); the ones that change the protection we cannot follow are not."""
        if self.suite != SRTP_SUITE:
            return f"suite {self.suite} (only {SRTP_SUITE})"
        if len(self.key_salt) != SRTP_KEY_SALT_LEN:
            return "key||salt is not 30 octets"
        if self.mki is not None:
            # pylibsrtp (1.0) exposes no MKI in its Policy: MKI-tagged packets would
            # fail authentication, so say so (488 with a Warning) rather than go silent.
            return "an MKI is not supported: send the a=crypto line without |MKI:length"
        for param in (self.session_params or "").split():
            name, _, value = param.partition("=")
            if name in ("UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP", "FEC_KEY") or (
                    name == "KDR" and value not in ("", "0")):
                return f"session parameter {param} is not supported"
        return None

    @property
    def usable(self) -> bool:
        """Our suite, a 30-octet key||salt, no MKI, no session parameter we cannot follow."""
        return self.unusable_because is None

    def format(self) -> str:
        # 30 octets are 40 base64 characters: an AES_CM_128 key never has '=' padding.
        key = base64.b64encode(self.key_salt).decode("ascii")
        out = f"{self.tag} {self.suite} inline:{key}"
        if self.lifetime:
            out += f"|{self.lifetime}"
        if self.mki:
            out += f"|{self.mki}"
        if self.session_params:
            out += f" {self.session_params}"
        return out

    def __str__(self) -> str:
        return self.format()


class _Attributes:
    lines: list[tuple[str, str]]

    def attributes(self, name: str) -> list[str]:
        """Values of ``a=<name>:<value>`` lines ("" for a property attribute ``a=<name>``)."""
        out = []
        for t, v in self.lines:
            if t == "a":
                n, _, val = v.partition(":")
                if n == name:
                    out.append(val)
        return out

    def attribute(self, name: str) -> str | None:
        values = self.attributes(name)
        return values[0] if values else None

    def has_attribute(self, name: str) -> bool:
        return self.attribute(name) is not None

    @property
    def connection(self) -> Connection | None:
        for t, v in self.lines:
            if t == "c":
                return Connection.parse(v)
        return None

    @property
    def direction(self) -> str | None:
        """The direction attribute set at this level, None if none."""
        for t, v in self.lines:
            if t == "a" and v in DIRECTIONS:
                return v
        return None

    def set_direction(self, direction: str) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(direction)
        self.lines = [(t, v) for t, v in self.lines if not (t == "a" and v in DIRECTIONS)]
        self.lines.append(("a", direction))

    def set_connection(self, connection: Connection) -> None:
        for i, (t, _) in enumerate(self.lines):
            if t == "c":
                self.lines[i] = ("c", str(connection))
                return
        self.lines.insert(0, ("c", str(connection)))


@dataclass
class Media(_Attributes):
    """One ``m=`` section; ``lines`` are the lines after ``m=`` (c=, b=, a=, ...)."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    lines: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse_m(cls, value: str) -> Media:
        parts = value.split()
        if len(parts) < 3:
            raise SdpError(f"Bad m= line: {value[:60]!r}", 400)
        port_text, _, count = parts[1].partition("/")
        if not port_text.isdecimal() or int(port_text) > 65535 or (count and not count.isdecimal()):
            raise SdpError(f"Bad m= port: {value[:60]!r}", 400)
        return cls(parts[0], int(port_text), parts[2], parts[3:], int(count) if count else None)

    def m_line(self) -> str:
        port = f"{self.port}/{self.port_count}" if self.port_count else str(self.port)
        return " ".join([self.media, port, self.proto, *self.formats])

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        out: dict[int, RtpMap] = {}
        for value in self.attributes("rtpmap"):
            try:
                rm = RtpMap.parse(value)
            except SdpError:
                continue  # a broken rtpmap for a codec we ignore must not fail the call
            out[rm.payload_type] = rm
        return out

    @property
    def fmtps(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for value in self.attributes("fmtp"):
            pt, _, params = value.partition(" ")
            if pt.isdecimal():
                out[int(pt)] = params.strip()
        return out

    @property
    def ptime(self) -> int | None:
        value = (self.attribute("ptime") or "").strip()
        return int(value) if value.isdecimal() and len(value) < 6 else None

    @property
    def rtcp(self) -> tuple[int, Connection | None] | None:
        """``a=rtcp:<port> [IN IP4 addr]`` (RFC 3605)."""
        value = self.attribute("rtcp")
        if not value:
            return None
        port, _, conn = value.strip().partition(" ")
        if not port.isdecimal() or int(port) > 65535:
            return None
        try:
            return int(port), (Connection.parse(conn) if conn else None)
        except SdpError:
            return int(port), None

    @property
    def cryptos(self) -> list[Crypto]:
        """Parsed ``a=crypto`` lines; malformed ones are skipped."""
        out = []
        for value in self.attributes("crypto"):
            try:
                out.append(Crypto.parse(value))
            except SdpError:
                continue
        return out

    def payload_type_for(self, encoding: str, clock_rate: int) -> int | None:
        """The PT offered for ``encoding/clock_rate`` (static PT 0 counts as PCMU/8000)."""
        maps = self.rtpmaps
        for fmt in self.formats:
            if not fmt.isdecimal():
                continue
            pt = int(fmt)
            rm = maps.get(pt)
            if rm is not None:
                if rm.encoding.lower() == encoding.lower() and rm.clock_rate == clock_rate:
                    return pt
            elif pt == PCMU_PT and encoding.upper() == "PCMU" and clock_rate == 8000:
                return pt  # RFC 3551 static assignment, rtpmap optional
        return None


@dataclass
class SessionDescription(_Attributes):
    """A whole SDP body: session-level ``lines`` (v=, o=, s=, c=, t=, a=, ...) and ``media``."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)

    @property
    def origin(self) -> Origin | None:
        for t, v in self.lines:
            if t == "o":
                return Origin.parse(v)
        return None

    def set_origin(self, origin: Origin) -> None:
        for i, (t, _) in enumerate(self.lines):
            if t == "o":
                self.lines[i] = ("o", str(origin))
                return
        self.lines.insert(1, ("o", str(origin)))

    def media_connection(self, media: Media) -> Connection | None:
        """Media-level c= overrides the session-level one (RFC 4566 §5.7)."""
        return media.connection or self.connection

    def media_direction(self, media: Media) -> str:
        return media.direction or self.direction or "sendrecv"

    def __str__(self) -> str:
        out = [f"{t}={v}\r\n" for t, v in self.lines]
        for m in self.media:
            out.append(f"m={m.m_line()}\r\n")
            out.extend(f"{t}={v}\r\n" for t, v in m.lines)
        return "".join(out)

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")

    def copy(self) -> SessionDescription:
        return SessionDescription(
            list(self.lines), [replace(m, formats=list(m.formats), lines=list(m.lines)) for m in self.media]
        )


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body. Raises :class:`SdpError` (status 400) if it is not SDP."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("SDP is not UTF-8", 400) from None
    else:
        text = data
    sdp = SessionDescription()
    current: Media | None = None
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if not _LINE_RE.match(line):
            raise SdpError(f"Malformed SDP line: {line[:60]!r}", 400)
        t, v = line[0], line[2:]
        if t == "m":
            current = Media.parse_m(v)
            sdp.media.append(current)
        elif current is not None:
            current.lines.append((t, v))
        else:
            sdp.lines.append((t, v))
    if not sdp.lines or sdp.lines[0] != ("v", "0"):
        raise SdpError("SDP must start with v=0", 400)
    return sdp


# ------------------------------------------------------------------ offer/answer


@dataclass
class NegotiatedMedia:
    """What the media relay needs from a completed offer/answer exchange.

    ``direction`` is *our* direction on this leg (the reverse of the peer's, RFC 3264 §6.1).
    ``remote_crypto`` carries the key the peer encrypts with (our inbound key);
    ``local_crypto`` ours (outbound). ``on_hold`` is set for c=0.0.0.0, sendonly or inactive.
    """

    remote_address: str
    remote_port: int
    remote_rtcp_port: int
    payload_type: int = PCMU_PT
    telephone_event_pt: int | None = None
    ptime: int | None = None
    direction: str = "sendrecv"
    on_hold: bool = False
    remote_crypto: Crypto | None = None
    local_crypto: Crypto | None = None

    @property
    def secure(self) -> bool:
        return self.remote_crypto is not None


@dataclass
class SdpAnswer:
    sdp: SessionDescription
    media: NegotiatedMedia


def _no_usable_crypto(cryptos: list[Crypto], verb: str) -> str:
    """Why none of these crypto lines can be used, naming the reason of the closest one."""
    ours = [c for c in cryptos if c.suite == SRTP_SUITE]
    if ours:
        return f"{SRTP_SUITE} {verb} but {ours[0].unusable_because}"
    return f"No {SRTP_SUITE} crypto {verb}"


@dataclass
class SdpRejection:
    """Negotiation failed: answer the INVITE with ``status`` (488 Not Acceptable Here),
    or, for an unacceptable answer to our offer, ACK and BYE the call."""

    reason: str
    status: int = 488


def _session_lines(address: str, session_id: int | None, version: int, username: str) -> list[tuple[str, str]]:
    sid = str(session_id if session_id is not None else secrets.randbelow(2**62))
    return [
        ("v", "0"),
        ("o", f"{username} {sid} {version} IN {_addrtype(address)} {address}"),
        ("s", "-"),
        ("c", f"IN {_addrtype(address)} {address}"),
        ("t", "0 0"),
    ]


def build_offer(
    address: str,
    port: int,
    *,
    srtp_key: bytes | None = None,
    telephone_event_pt: int = 101,
    ptime: int | None = 20,
    direction: str = "sendrecv",
    session_id: int | None = None,
    session_version: int = 1,
    crypto_tag: int = 1,
    username: str = "-",
) -> SessionDescription:
    """Our offer: PCMU/8000 as PT 0 + telephone-event/8000 (events 0-16).

    With ``srtp_key`` (30 octets key||salt) the profile is RTP/SAVP with one a=crypto line,
    suite AES_CM_128_HMAC_SHA1_80 only.
    """
    if srtp_key is not None and len(srtp_key) != SRTP_KEY_SALT_LEN:
        raise ValueError("srtp_key must be 30 octets (16 key + 14 salt)")
    sdp = SessionDescription(_session_lines(address, session_id, session_version, username))
    te = str(telephone_event_pt)
    media = Media("audio", port, "RTP/SAVP" if srtp_key else "RTP/AVP", [str(PCMU_PT), te])
    media.lines = [("a", "rtpmap:0 PCMU/8000"), ("a", f"rtpmap:{te} telephone-event/8000"), ("a", f"fmtp:{te} 0-16")]
    if ptime:
        media.lines.append(("a", f"ptime:{ptime}"))
    if srtp_key is not None:
        media.lines.append(("a", "crypto:" + Crypto(crypto_tag, SRTP_SUITE, srtp_key).format()))
    media.lines.append(("a", direction))
    sdp.media.append(media)
    return sdp


def hold_offer(previous: SessionDescription, direction: str = "sendonly") -> SessionDescription:
    """A re-INVITE offer putting the peer on hold (RFC 3264 §8.4): same streams, o= version
    incremented, the audio direction set to ``sendonly`` (or ``inactive``); use
    ``direction="sendrecv"`` to resume."""
    sdp = previous.copy()
    origin = sdp.origin
    if origin is not None:
        origin.session_version += 1
        sdp.set_origin(origin)
    for media in sdp.media:
        if media.media == "audio" and media.port:
            media.set_direction(direction)
    return sdp


def _te_pt(media: Media) -> int | None:
    return media.payload_type_for("telephone-event", 8000)


def _remote(sdp: SessionDescription, media: Media) -> tuple[str, int, bool]:
    conn = sdp.media_connection(media)
    if conn is None:
        raise SdpError("No c= line for media", 400)
    rtcp = media.rtcp
    rtcp_port = rtcp[0] if rtcp else media.port + 1
    return conn.address, rtcp_port, conn.is_hold


def answer_offer(
    offer: SessionDescription | bytes,
    address: str,
    port: int,
    *,
    srtp_key: bytes | None = None,
    require_srtp: bool = False,
    session_id: int | None = None,
    username: str = "-",
) -> SdpAnswer | SdpRejection:
    """Answer a peer's offer (RFC 3264 §6): the first audio stream offering PCMU is accepted
    with PCMU + the peer's telephone-event PT; every other m= line is rejected (port 0).
    An RTP/SAVP stream needs an AES_CM_128_HMAC_SHA1_80 crypto line and ``srtp_key``.
    """
    try:
        sdp = offer if isinstance(offer, SessionDescription) else parse_sdp(offer)
    except SdpError as exc:
        return SdpRejection(exc.reason, exc.status)
    answer = SessionDescription(_session_lines(address, session_id, 1, username))
    chosen: NegotiatedMedia | None = None
    why = "No audio stream offered"
    for media in sdp.media:
        accepted: Media | None = None
        if chosen is None and media.media == "audio" and media.port != 0:
            pcmu = media.payload_type_for("PCMU", 8000)
            proto = media.proto.upper()
            remote_crypto: Crypto | None = None
            if pcmu is None:
                why = "PCMU not offered"
            elif proto not in ("RTP/AVP", "RTP/SAVP"):
                why = f"Unsupported transport {media.proto}"
            elif proto == "RTP/AVP" and require_srtp:
                why = "SRTP required"
            elif proto == "RTP/SAVP" and srtp_key is None:
                why = "SRTP offered but not available"
            elif proto == "RTP/SAVP" and not (remote_crypto := next((c for c in media.cryptos if c.usable), None)):
                why = _no_usable_crypto(media.cryptos, "offered")
            else:
                try:
                    remote_address, rtcp_port, c_hold = _remote(sdp, media)
                except SdpError as exc:
                    return SdpRejection(exc.reason, exc.status)
                te = _te_pt(media)
                peer_dir = sdp.media_direction(media)
                if c_hold and peer_dir == "sendrecv":
                    peer_dir = "sendonly"
                ours = _REVERSE[peer_dir]
                accepted = Media("audio", port, media.proto, [str(pcmu)])
                accepted.lines.append(("a", f"rtpmap:{pcmu} PCMU/8000"))
                if te is not None:
                    accepted.formats.append(str(te))
                    accepted.lines.append(("a", f"rtpmap:{te} telephone-event/8000"))
                    accepted.lines.append(("a", f"fmtp:{te} {media.fmtps.get(te) or '0-15'}"))
                if media.ptime:
                    accepted.lines.append(("a", f"ptime:{media.ptime}"))
                local_crypto = None
                if remote_crypto is not None and srtp_key is not None:
                    local_crypto = Crypto(remote_crypto.tag, SRTP_SUITE, srtp_key)
                    accepted.lines.append(("a", "crypto:" + local_crypto.format()))
                accepted.lines.append(("a", ours))
                chosen = NegotiatedMedia(
                    remote_address,
                    media.port,
                    rtcp_port,
                    pcmu,
                    te,
                    media.ptime,
                    ours,
                    c_hold or peer_dir in ("sendonly", "inactive"),
                    remote_crypto,
                    local_crypto,
                )
        if accepted is None:
            # RFC 3264 §6: a rejected stream keeps its place with port 0.
            accepted = Media(media.media, 0, media.proto, media.formats[:1] or ["0"])
        answer.media.append(accepted)
    if chosen is None:
        return SdpRejection(why)
    return SdpAnswer(answer, chosen)


def validate_answer(offer: SessionDescription, answer: SessionDescription | bytes) -> NegotiatedMedia | SdpRejection:
    """Check the peer's answer to our offer: it must keep PCMU on our audio stream and,
    if we offered RTP/SAVP, answer with one of our crypto tags and suite (RFC 4568 §7.1.3)."""
    try:
        sdp = answer if isinstance(answer, SessionDescription) else parse_sdp(answer)
    except SdpError as exc:
        return SdpRejection(exc.reason, exc.status)
    if len(sdp.media) != len(offer.media):
        return SdpRejection("Answer has a different number of m= lines")  # RFC 3264 §6
    for ours, theirs in zip(offer.media, sdp.media, strict=True):
        if ours.media != "audio" or ours.port == 0:
            continue
        if theirs.port == 0:
            return SdpRejection("Audio stream rejected")
        pcmu = theirs.payload_type_for("PCMU", 8000)
        if pcmu is None:
            return SdpRejection("Answer dropped PCMU")
        remote_crypto: Crypto | None = None
        local_crypto: Crypto | None = None
        if ours.proto.upper() == "RTP/SAVP":
            if theirs.proto.upper() != "RTP/SAVP":
                return SdpRejection("Answer dropped SRTP")
            our_tags = {c.tag: c for c in ours.cryptos}
            # Any order, and only tags we offered (RFC 4568 §7.1.3).
            remote_crypto = next((c for c in theirs.cryptos if c.usable and c.tag in our_tags), None)
            if remote_crypto is None:
                return SdpRejection("Answer: " + _no_usable_crypto(
                    [c for c in theirs.cryptos if c.tag in our_tags] or theirs.cryptos, "answered"))
            local_crypto = our_tags[remote_crypto.tag]
        try:
            address, rtcp_port, c_hold = _remote(sdp, theirs)
        except SdpError as exc:
            return SdpRejection(exc.reason, exc.status)
        peer_dir = sdp.media_direction(theirs)
        return NegotiatedMedia(
            address,
            theirs.port,
            rtcp_port,
            pcmu,
            _te_pt(theirs),
            theirs.ptime,
            _REVERSE[peer_dir],
            c_hold or peer_dir in ("sendonly", "inactive"),
            remote_crypto,
            local_crypto,
        )
    return SdpRejection("No audio stream in offer")
