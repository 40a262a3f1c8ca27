"""A tiny authoritative DNS server on loopback for RFC 3263 tests (never the system resolver).

    async with FakeDns({("example.com", "NAPTR"): ['10 50 "s" "SIP+D2U" "" _sip._udp.example.com.'],
                        ("_sip._udp.example.com", "SRV"): ["10 60 5060 a.example.com."],
                        ("a.example.com", "A"): ["192.0.2.1"]}) as dns_:
        await locate("sip:example.com", resolver=dns_.resolver)

Names without a trailing dot, record data in zone-file syntax. A name with no record of
the asked type answers NOERROR/empty; a name absent altogether answers NXDOMAIN. Every
question is logged in ``queries`` as (name, type).
"""

from __future__ import annotations

import asyncio

import dns.asyncresolver
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

__all__ = ["FakeDns"]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: FakeDns) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a DatagramTransport, not a subclass

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = self.server.answer(query)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


class FakeDns:
    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = {(n.lower().rstrip("."), t.upper()): v for (n, t), v in records.items()}
        self.queries: list[tuple[str, str]] = []
        self.resolver = dns.asyncresolver.Resolver(configure=False)
        self._transport: asyncio.DatagramTransport | None = None

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        values = self.records.get((name, rdtype))
        if values:
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", rdtype, *values))
        elif not any(n == name for n, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def asked(self, rdtype: str) -> list[str]:
        return [n for n, t in self.queries if t == rdtype]

    async def __aenter__(self) -> FakeDns:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        port = transport.get_extra_info("sockname")[1]
        self.resolver.nameservers = ["127.0.0.1"]
        self.resolver.port = port
        self.resolver.timeout = 2.0
        self.resolver.lifetime = 2.0
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()
