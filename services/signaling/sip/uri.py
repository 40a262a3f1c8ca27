"""The SIP core's URIs: the parser lives in :mod:`proto.sip.uri`, so that config validates
the targets users provision with the very parser that dials them (RFC 3261 §19.1)."""

from proto.sip.uri import (
    AbsoluteUri,
    SipUri,
    TelUri,
    Uri,
    escape,
    parse_uri,
    split_hostport,
    unescape,
    uris_equal,
)

__all__ = [
    "AbsoluteUri",
    "SipUri",
    "TelUri",
    "Uri",
    "escape",
    "parse_uri",
    "split_hostport",
    "unescape",
    "uris_equal",
]
