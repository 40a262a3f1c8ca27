"""TLS contexts for SIP over TLS (RFC 3261 §26.2, RFC 5630) and errors that name their cause.

Client side: TLS 1.2+, SNI with the target's host name, chain and host-name verification on
by default (RFC 5922 §7); per target, trust an extra CA (``ca_pem``), switch verification off
(``verify=False``, for self-signed SBCs) or present a client certificate (mutual TLS).
Server side: our certificate, optionally asking for/requiring a client certificate.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass

__all__ = [
    "ClientTlsOptions",
    "ServerTlsConfig",
    "client_context",
    "describe_tls_error",
    "server_context",
]


@dataclass
class ServerTlsConfig:
    cert_file: str
    key_file: str
    ca_file: str | None = None  # CAs whose client certificates we accept
    require_client_cert: bool = False


@dataclass
class ClientTlsOptions:
    """Per-target options (from the routing decision's TlsOptions)."""

    verify: bool = True
    ca_pem: str | None = None  # trusted in addition to the system store
    client_cert_pem: str | None = None
    client_key_pem: str | None = None  # may be omitted when client_cert_pem holds the key too

    def cache_key(self) -> tuple[object, ...]:
        return (self.verify, self.ca_pem, self.client_cert_pem, self.client_key_pem)


def _base(purpose: ssl.Purpose) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # issue 4: TLS 1.2+
    return ctx


def server_context(config: ServerTlsConfig) -> ssl.SSLContext:
    ctx = _base(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(config.cert_file, config.key_file)
    if config.ca_file:
        ctx.load_verify_locations(cafile=config.ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED if config.require_client_cert else ssl.CERT_OPTIONAL
    elif config.require_client_cert:
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(options: ClientTlsOptions | None) -> ssl.SSLContext:
    options = options or ClientTlsOptions()
    ctx = _base(ssl.Purpose.SERVER_AUTH)
    if not options.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif options.ca_pem:
        ctx.load_verify_locations(cadata=options.ca_pem)
    if options.client_cert_pem:
        _load_client_cert(ctx, options.client_cert_pem, options.client_key_pem)
    return ctx


def _load_client_cert(ctx: ssl.SSLContext, cert_pem: str, key_pem: str | None) -> None:
    # The ssl module loads certificates only from files: write them to a private temporary
    # file (mode 0600), load, delete at once.
    fd, path = tempfile.mkstemp(prefix="sb-client-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(cert_pem if cert_pem.endswith("\n") else cert_pem + "\n")
            if key_pem:
                f.write(key_pem)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)


# OpenSSL X509_V_ERR_* codes (x509_vfy.h) -> our reasons.
_VERIFY_REASONS = {
    2: "tls: unknown CA",  # UNABLE_TO_GET_ISSUER_CERT
    9: "tls: certificate not yet valid",
    10: "tls: certificate expired",
    18: "tls: unknown CA",  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: "tls: unknown CA",  # SELF_SIGNED_CERT_IN_CHAIN
    20: "tls: unknown CA",  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: "tls: unknown CA",  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    23: "tls: certificate revoked",
    62: "tls: wrong host name",  # HOSTNAME_MISMATCH
    64: "tls: wrong host name",  # IP_ADDRESS_MISMATCH
}
# Alerts from the peer and local failures, by OpenSSL reason code.
_SSL_REASONS = {
    "TLSV1_ALERT_UNKNOWN_CA": "tls: peer rejected our certificate (unknown CA)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "tls: peer rejected our certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "tls: peer rejected our certificate (expired)",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "tls: client certificate required",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "tls: client certificate required",
    "WRONG_VERSION_NUMBER": "tls: handshake failed: not TLS",
    "UNSUPPORTED_PROTOCOL": "tls: handshake failed: protocol version",
    "TLSV1_ALERT_PROTOCOL_VERSION": "tls: handshake failed: protocol version",
    "NO_SHARED_CIPHER": "tls: handshake failed: no shared cipher",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "tls: handshake failed: handshake failure alert",
}


def describe_tls_error(exc: BaseException) -> tuple[str, str]:
    """(reason, detail) for an exception raised while setting up a TLS connection."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = _VERIFY_REASONS.get(exc.verify_code)
        if reason is None:
            reason = f"tls: certificate verify failed: {exc.verify_message}"
        return reason, exc.verify_message or detail
    if isinstance(exc, ssl.SSLError):
        code = getattr(exc, "reason", None) or ""
        return _SSL_REASONS.get(code, f"tls: handshake failed: {code.lower() or detail}"), detail
    if isinstance(exc, TimeoutError) or (
        # asyncio's ssl_handshake_timeout surfaces as ConnectionAbortedError("... taking longer ...")
        isinstance(exc, ConnectionAbortedError) and "longer than" in detail
    ):
        return "tls: handshake failed: timeout", detail
    if isinstance(exc, ConnectionError | EOFError):
        return "tls: handshake failed: connection closed by peer", detail
    return f"tls: handshake failed: {detail}", detail
