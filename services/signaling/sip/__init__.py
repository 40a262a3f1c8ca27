"""Sans-IO SIP wire layer: bytes in, typed objects out, and back. No asyncio, no sockets.

Errors (``errors``)
    ``SipError(reason, status)`` base; ``SipParseError`` (400 by default; 505 bad version,
    513 over the size bounds; ``.headers``/``.is_request`` for a stateless 400);
    ``SdpError`` (488); ``DigestError``. Parsers raise nothing else on bad input.

Messages (``message``, RFC 3261 §7, §18.3)
    ``parse_message(data, *, max_size=65535, max_headers=256, max_header_length=16384,
    rfc2543=False) -> Request | Response``; ``Request.parse(data)``, ``Response.parse(data)``;
    ``bytes(msg)`` (always writes Content-Length = len(body)).
    ``Request(method, uri: str, headers, body)`` -- ``uri`` is the Request-URI exactly as sent,
    ``parsed_uri()`` gives the typed one; ``stamp_received(ip, port)`` (§18.2.1, RFC 3581).
    ``Response(status, reason, headers, body)``, ``is_provisional``, ``is_success``.
    Typed accessors on both: ``call_id``, ``cseq``, ``from_``, ``to``, ``vias``, ``top_via``,
    ``set_top_via(via)``, ``max_forwards``, ``contacts``, ``contact_is_star``, ``routes``,
    ``record_routes``, ``content_type``, ``content_length``, ``expires``, ``retry_after``,
    ``reasons``, ``auth_headers(name)``.
    ``Headers``: ordered, case-insensitive, compact forms expanded: ``add``, ``add_first``,
    ``set``, ``remove``, ``get``, ``get_all`` (per line), ``values`` (comma lists split),
    iteration over (name, value).
    ``split_stream(buffer, *, max_size) -> (message_bytes | None, rest)`` frames TCP/TLS.
    Builders: ``make_request(method, uri, *, from_, to, call_id, cseq, via, max_forwards=70,
    contact=None, route=(), headers=(), body=b"", content_type=None)``,
    ``make_response(request, status, reason=None, *, to_tag=None, headers=(), body=b"",
    content_type=None)`` (§8.2.6), ``make_ack(invite, non2xx_response)`` (§17.1.1.3),
    ``make_cancel(request)`` (§9.1), ``new_branch()``, ``new_tag()``, ``new_call_id(host)``,
    ``REASON_PHRASES``.

URIs (``uri``, §19.1, RFC 3966)
    ``parse_uri(text) -> SipUri | TelUri | AbsoluteUri``; ``SipUri(host, user, port, scheme,
    password, params, headers)`` with ``transport``, ``lr``, ``maddr``, ``user_param``,
    ``secure``, ``host_address``; ``uris_equal(a, b)`` (§19.1.4); ``escape``/``unescape``;
    ``split_hostport``.

Header values (``headers``)
    ``NameAddress.parse`` (From/To/Contact/Route: ``uri``, ``display_name``, ``params``,
    ``tag``, ``expires``, ``q``, ``sip_uri``), ``Via`` (``branch``, ``received``, ``rport``,
    ``rport_requested``, ``stamp``, ``response_address``), ``CSeq``, ``ContentType``,
    ``RetryAfter``, ``Reason`` (RFC 3326), ``AuthHeader`` (any auth scheme), helpers
    ``split_list``, ``parse_params``, ``quote``, ``unquote``.

SDP (``sdp``, RFC 4566/3264/4568)
    ``parse_sdp(body) -> SessionDescription`` (lossless; ``bytes()`` back), ``Media``,
    ``Connection``, ``Origin``, ``RtpMap``, ``Crypto``; ``build_offer(address, port, *,
    srtp_key=None, telephone_event_pt=101, ...)``, ``answer_offer(offer, address, port, *,
    srtp_key=None, require_srtp=False, ...) -> SdpAnswer | SdpRejection(488)``,
    ``validate_answer(our_offer, answer) -> NegotiatedMedia | SdpRejection``,
    ``hold_offer(previous, "sendonly" | "inactive" | "sendrecv")``.

UA core (``core``, RFC 3261 §8, §12-§18, RFC 3263 §4.3, RFC 3581)
    ``UACore(timers=, local_addr=, public_host=, user_agent=, auto_487=)`` ties transactions
    and dialogs: ``receive(data, source, local, now)``, ``send_request(request, candidates,
    now)`` (failover), ``cancel``, ``send_ack``, ``respond``, ``transport_error``,
    ``next_timer``/``handle_timer`` -> ``Transmit`` and TU events (``NewRequest``,
    ``Cancelled``, ``ResponseIn``, ``MessageIn``, ``Route``). ``Addr``, ``choose_transport``
    (§18.1.1), ``redact``.

Digest (``digest``, RFC 3261 §22, RFC 7616, RFC 8760)
    ``answer_challenge(response_401_or_407, request, *, username, password) -> AuthAnswer |
    None`` (``header``, ``value``, ``stale``); ``Challenge.parse``, ``select_challenge``,
    ``build_authorization``, ``compute_response``, ``DigestCredentials``; server side
    ``DigestServer(realm, secret).challenge(now)`` / ``.verify(value, method=, password=,
    now=) -> VerifyResult``.
"""
