"""SRTP/SRTCP for one leg with pylibsrtp (libsrtp), SDES keys (RFC 4568).

As aiortc does it: one outbound session (our key, protects what we send) and one inbound
session (the peer's key, unprotects what it sends), one policy per direction. Only
AES_CM_128_HMAC_SHA1_80 is offered (RFC 4568 §6.2.1): 16-byte master key + 14-byte salt.
"""

from __future__ import annotations

import base64
import binascii
import secrets

import pylibsrtp

from proto.messages import SrtpCrypto

from .errors import BadKey, SrtpError

SUITE = "AES_CM_128_HMAC_SHA1_80"
KEY_LEN = 16
SALT_LEN = 14
KEY_SALT_LEN = KEY_LEN + SALT_LEN


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


class SrtpLeg:
    """The two SRTP sessions of one secure leg. `inbound` exists once the peer's key is known."""

    def __init__(self, local_key: bytes, remote_key: bytes | None = None) -> None:
        self.local_key = local_key
        self._tx = pylibsrtp.Session(_policy(local_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        self._rx: pylibsrtp.Session | None = None
        self.remote_key: bytes | None = None
        if remote_key is not None:
            self.set_remote_key(remote_key)

    def set_remote_key(self, key: bytes) -> None:
        """A re-INVITE with the same key keeps the session (and its replay window)."""
        if key == self.remote_key:
            return
        self._rx = pylibsrtp.Session(_policy(key, pylibsrtp.Policy.SSRC_ANY_INBOUND))
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
