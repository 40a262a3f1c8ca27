"""SRTP/SRTCP for one leg with pylibsrtp (libsrtp), SDES keys (RFC 4568).

As aiortc does it: one outbound session (our key, protects what we send) and one inbound
session (the peer's key, unprotects what it sends), one policy per direction. Only
AES_CM_128_HMAC_SHA1_80 is offered (RFC 4568 §6.2.1): 16-byte master key + 14-byte salt.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

import pylibsrtp

from proto.messages import SrtpCrypto

from .errors import BadKey, SrtpError

SUITE = "AES_CM_128_HMAC_SHA1_80"
KEY_LEN = 16
SALT_LEN = 14
KEY_SALT_LEN = KEY_LEN + SALT_LEN
MAX_TRAILER = 144
"""What libsrtp may append (SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN): room a buffer keeps."""


def generate_key() -> bytes:
    """30 bytes of master key || master salt from the OS CSPRNG."""
    return secrets.token_bytes(KEY_SALT_LEN)


def crypto_line(key_salt: bytes, tag: int = 1) -> SrtpCrypto:
    return SrtpCrypto(tag=tag, suite=SUITE, key_salt_b64=base64.b64encode(key_salt).decode())


def key_from_crypto(crypto: SrtpCrypto) -> bytes:
    if crypto.suite != SUITE:
        raise BadKey(f"unsupported SRTP suite {crypto.suite!r}")
    try:
        key = base64.b64decode(crypto.key_salt_b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadKey("SDES inline key is not base64") from e
    if len(key) != KEY_SALT_LEN:
        raise BadKey(f"SDES key+salt must be {KEY_SALT_LEN} bytes, got {len(key)}")
    return key


def _policy(key: bytes, ssrc_type: int) -> pylibsrtp.Policy:
    if len(key) != KEY_SALT_LEN:
        raise BadKey(f"SRTP key+salt must be {KEY_SALT_LEN} bytes")
    # ANY_* lets a peer change its SSRC mid-call: libsrtp makes a stream per new SSRC.
    # No allow_repeat_tx: libsrtp refuses to encrypt two packets under one index (keystream
    # reuse, RFC 3711 §9.1); the relay gives repeated packets a fresh sequence number.
    return pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)


class PacketBuffer:
    """One packet buffer for the relay's hot path: the socket reads into it
    (`recvfrom_into`), libsrtp unprotects and protects in it in place, the header is
    rewritten with `struct.pack_into`, and `sendto` sends a slice of `view`. No bytes
    object per packet. `length[0]` is the packet's length around libsrtp calls."""

    def __init__(self, size: int) -> None:
        if _FAST:
            self._c = _ffi.new("char[]", size + MAX_TRAILER)
            self.buf: Any = _ffi.buffer(self._c)
            self.length: Any = _ffi.new("int *")
        else:
            self.buf = bytearray(size + MAX_TRAILER)
            self.length = [0]
        self.view = memoryview(self.buf)


class SrtpLeg:
    """The two SRTP sessions of one secure leg. `inbound` exists once the peer's key is known."""

    def __init__(self, local_key: bytes, remote_key: bytes | None = None) -> None:
        self.local_key = local_key
        self._tx = pylibsrtp.Session(_policy(local_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        self._tx_ctx = self._tx._srtp[0] if _FAST else None  # type: ignore[attr-defined]
        self._rx: pylibsrtp.Session | None = None
        self._rx_ctx: Any = None
        self.remote_key: bytes | None = None
        if remote_key is not None:
            self.set_remote_key(remote_key)

    def set_remote_key(self, key: bytes) -> None:
        """A re-INVITE with the same key keeps the session (and its replay window)."""
        if key == self.remote_key:
            return
        self._rx = pylibsrtp.Session(_policy(key, pylibsrtp.Policy.SSRC_ANY_INBOUND))
        self._rx_ctx = self._rx._srtp[0] if _FAST else None  # type: ignore[attr-defined]
        self.remote_key = key

    @property
    def ready(self) -> bool:
        return self._rx is not None

    def protect(self, rtp: bytes) -> bytes:
        """Raises SrtpError if this index was already used (a duplicate packet)."""
        try:
            return self._tx.protect(rtp)
        except pylibsrtp.Error as e:
            raise SrtpError(str(e)) from None

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        return self._tx.protect_rtcp(rtcp)

    def unprotect(self, srtp: bytes) -> bytes:
        """Raises SrtpError when authentication or the replay check fails (RFC 3711 §3.3)."""
        if self._rx is None:
            raise SrtpError("no inbound key yet")
        try:
            return self._rx.unprotect(srtp)
        except (pylibsrtp.Error, ValueError) as e:
            raise SrtpError(str(e)) from None

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        if self._rx is None:
            raise SrtpError("no inbound key yet")
        try:
            return self._rx.unprotect_rtcp(srtcp)
        except (pylibsrtp.Error, ValueError) as e:
            raise SrtpError(str(e)) from None

    # --- in place, for the relay's packet path (see PacketBuffer) ---------------------

    def unprotect_in(self, pb: PacketBuffer) -> bool:
        """Unprotect the `pb.length[0]` bytes in `pb` in place; False when authentication
        or the replay check fails (or no inbound key yet): the packet must be dropped."""
        if _FAST:
            if self._rx_ctx is None:
                return False
            return _srtp_unprotect(self._rx_ctx, pb._c, pb.length) == 0  # type: ignore[no-any-return]
        try:
            out = self.unprotect(bytes(pb.view[: pb.length[0]]))
        except SrtpError:
            return False
        pb.view[: len(out)] = out
        pb.length[0] = len(out)
        return True

    def protect_in(self, pb: PacketBuffer) -> bool:
        """Protect in place; False if this index was already used (a duplicate)."""
        if _FAST:
            return _srtp_protect(self._tx_ctx, pb._c, pb.length) == 0  # type: ignore[no-any-return]
        try:
            out = self.protect(bytes(pb.view[: pb.length[0]]))
        except SrtpError:
            return False
        pb.view[: len(out)] = out
        pb.length[0] = len(out)
        return True


def _fast_path_works() -> bool:
    """The in-place path calls libsrtp 2's `srtp_protect(ctx, buf, &len)` through
    pylibsrtp's own cffi binding. Check it against pylibsrtp's public API once at import
    (a later pylibsrtp could change the binding); if it differs, use the public API."""
    global _FAST
    try:
        key, peer = generate_key(), generate_key()
        rtp = bytes([0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4]) + bytes(range(160))
        _FAST = True
        a, b = SrtpLeg(key, peer), SrtpLeg(peer, key)
        pb = PacketBuffer(2048)
        pb.view[: len(rtp)] = rtp
        pb.length[0] = len(rtp)
        ok = a.protect_in(pb)
        protected = bytes(pb.view[: pb.length[0]])
        expected = SrtpLeg(key).protect(rtp)
        back = ok and b.unprotect_in(pb) and bytes(pb.view[: pb.length[0]]) == rtp
        return bool(back and protected == expected)
    except Exception:
        return False
    finally:
        _FAST = False


try:
    from pylibsrtp._binding import ffi as _ffi  # type: ignore[import-not-found]
    from pylibsrtp._binding import lib as _lib  # type: ignore[import-not-found]

    _srtp_protect = _lib.srtp_protect
    _srtp_unprotect = _lib.srtp_unprotect
    _FAST = False
    _FAST = _fast_path_works()
except (ImportError, AttributeError):
    _FAST = False
