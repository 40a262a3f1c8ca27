"""SIP transports over asyncio: UDP, TCP and TLS listeners and clients (RFC 3261 §18).

:class:`TransportLayer` is thin on purpose: it moves whole SIP messages (as bytes) between
the network and the endpoint, which parses them. It frames streams by Content-Length
(:mod:`.framing`), answers CRLF keep-alives (RFC 5626 §3.5.1), reuses connections in both
directions by (transport, host, port) (RFC 3261 §18.2.2, §18.1.1), caps connections per
source IP, cuts slow or endless messages, reaps idle connections, and reports every failure
as a :class:`TransportError` (``send``) or an ``on_error(addr, reason)`` call (inbound
connections, framing, TLS handshakes) -- never as an exception escaping into the loop.

Addresses are :class:`Addr` with the host as a bare IP (no IPv6 brackets) once resolved.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import cast

from services.signaling.errors import TransportError
from services.signaling.sip.core import MTU_LIMIT, Addr, choose_transport  # pure: re-exported

from .framing import FramingError, StreamFramer
from .tls import ClientTlsOptions, ServerTlsConfig, client_context, describe_tls_error, server_context

__all__ = [
    "DEFAULT_PORTS",
    "MTU_LIMIT",
    "Addr",
    "ClientTlsOptions",
    "Limits",
    "ServerTlsConfig",
    "Stats",
    "TransportError",
    "TransportLayer",
    "choose_transport",
]

log = logging.getLogger(__name__)

TRANSPORTS = ("udp", "tcp", "tls")
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}  # RFC 3261 §19.1.2


@dataclass
class Limits:
    max_message_size: int = 65535
    max_connections: int = 10000  # stream connections, both directions
    max_connections_per_ip: int = 64  # inbound connections from one source IP
    message_timeout: float = 32.0  # a message still incomplete after this is cut (slow loris)
    idle_timeout: float = 600.0  # no traffic either way: close
    connect_timeout: float = 10.0
    tls_handshake_timeout: float = 10.0
    max_write_buffer: int = 4 * 1024 * 1024  # a peer that does not read is cut off
    reap_interval: float = 1.0


@dataclass
class Stats:
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: int = 0  # datagrams/messages not delivered (oversize, callback failure, truncated)
    malformed_framing: int = 0  # streams closed for bad framing + garbage resyncs
    garbage_bytes: int = 0
    keepalives_in: int = 0
    pongs_out: int = 0
    connections: int = 0  # currently open stream connections
    connections_opened: int = 0  # outbound
    connections_accepted: int = 0  # inbound
    connections_rejected: int = 0  # over a cap
    connections_closed: int = 0
    connections_timed_out: int = 0  # idle or slow-loris cut
    tls_failures: int = 0
    send_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@functools.lru_cache(maxsize=4096)
def _norm_host(host: str) -> str:
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


@functools.lru_cache(maxsize=4096)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _sock_addr(transport: str, sockname: tuple[object, ...]) -> Addr:
    return Addr(transport, _norm_host(str(sockname[0])), int(sockname[1]))  # type: ignore[call-overload]


def _connect_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        if exc.errno in (errno.EHOSTUNREACH,):
            return "host unreachable"
        if exc.errno in (errno.ENETUNREACH,):
            return "network unreachable"
        if isinstance(exc, ConnectionResetError):
            return "connection reset"
        if isinstance(exc, socket.gaierror):
            return "unknown host"
        return f"connect failed: {exc.strerror or exc}"
    return f"connect failed: {exc}"


OnMessage = Callable[[bytes, Addr, Addr], None]
OnError = Callable[[Addr, str], None]


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, layer: TransportLayer) -> None:
        self.layer = layer
        self.transport: asyncio.DatagramTransport | None = None
        self.local: Addr | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's datagram transport does not subclass DatagramTransport: no isinstance.
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.local = _sock_addr("udp", transport.get_extra_info("sockname"))

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        layer = self.layer
        stats = layer.stats
        stats.bytes_in += len(data)
        # RFC 5626 §3.5.1: CRLF keep-alives are for streams; over UDP they are ignored.
        if not data.strip(b"\r\n"):
            stats.keepalives_in += 1
            return
        if len(data) > layer.limits.max_message_size:
            stats.dropped += 1
            return
        assert self.local is not None
        layer._deliver(data, _sock_addr("udp", addr), self.local)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors on an unconnected socket cannot be tied to a peer reliably.
        log.debug("udp %s: %s", self.local, exc)
        self.layer.stats.send_errors += 1


class _StreamProtocol(asyncio.Protocol):
    """One TCP or TLS connection, inbound or outbound."""

    def __init__(self, layer: TransportLayer, transport: str, *, inbound: bool,
                 server_ctx: ssl.SSLContext | None = None) -> None:  # fmt: skip
        self.layer = layer
        self.kind = transport
        self.inbound = inbound
        self.server_ctx = server_ctx
        self.transport: asyncio.Transport | None = None
        self.framer = StreamFramer(layer.limits.max_message_size)
        self.peer: Addr | None = None
        self.local: Addr | None = None
        self.keys: list[tuple[str, str, int]] = []
        self.counted_ip: str | None = None
        self.ready = False  # TLS handshake done (always True for TCP once connected)
        self.closed = False
        loop = asyncio.get_running_loop()
        self.last_activity = loop.time()
        self.partial_since: float | None = None
        # inbound TLS only (see connection_made)
        self.sslobj: ssl.SSLObject | None = None
        self._in_bio: ssl.MemoryBIO | None = None
        self._out_bio: ssl.MemoryBIO | None = None
        self.handshake_since: float | None = None

    # -- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        layer = self.layer
        self.peer = _sock_addr(self.kind, transport.get_extra_info("peername"))
        self.local = _sock_addr(self.kind, transport.get_extra_info("sockname"))
        layer._streams.add(self)
        layer.stats.connections += 1
        if not self.inbound:
            layer.stats.connections_opened += 1
            self.ready = True
            layer._register(self)
            return
        layer.stats.connections_accepted += 1
        ip = self.peer.host
        # Caps: a peer that opens 1,000 connections is cut off without hurting others.
        if layer._per_ip[ip] >= layer.limits.max_connections_per_ip or (
            len(layer._streams) > layer.limits.max_connections
        ):
            layer.stats.connections_rejected += 1
            transport.abort()
            if ip not in layer._capped:  # once per burst, not once per connection
                layer._capped.add(ip)
                log.warning("%s: connection cap reached, refusing more from %s", self.peer, ip)
                layer._report(self.peer, "connection cap reached")
            return
        layer._per_ip[ip] += 1
        self.counted_ip = ip
        if self.server_ctx is None:
            self.ready = True
            layer._register(self)
        else:
            # Server-side TLS runs over memory BIOs in this protocol rather than through
            # create_server(ssl=...) or start_tls(): asyncio only debug-logs a failed server
            # handshake, and uvloop starts reading before start_tls() can take over. Here a
            # failure is ours to report, the same on both loops.
            self._in_bio = ssl.MemoryBIO()
            self._out_bio = ssl.MemoryBIO()
            self.sslobj = self.server_ctx.wrap_bio(self._in_bio, self._out_bio, server_side=True)
            self.handshake_since = layer._now()

    def data_received(self, data: bytes) -> None:
        layer = self.layer
        now = layer._now()
        self.last_activity = now
        layer.stats.bytes_in += len(data)
        if self.sslobj is not None:
            plain = self._tls_received(data)
            if not plain:
                return
            data = plain
        try:
            result = self.framer.feed(data)
        except FramingError as exc:
            layer.stats.malformed_framing += 1
            log.info("%s: framing error, closing: %s", self.peer, exc.reason)
            self.abort()
            assert self.peer is not None
            layer._report(self.peer, f"framing: {exc.reason}")
            return
        if result.garbage:
            layer.stats.malformed_framing += 1
            layer.stats.garbage_bytes += result.garbage
        if result.pongs and not self.closed:
            layer.stats.keepalives_in += result.pongs
            layer.stats.pongs_out += result.pongs
            self._write(b"\r\n" * result.pongs)  # RFC 5626 §3.5.1 pong
        assert self.peer is not None and self.local is not None
        for message in result.messages:
            layer._deliver(message, self.peer, self.local)
            if self.closed:
                return
        if self.framer.pending:
            if self.partial_since is None or result.messages:
                self.partial_since = now
        else:
            self.partial_since = None

    def _tls_received(self, data: bytes) -> bytes:
        """Feed TLS records in; returns the plaintext now available (b"" if none)."""
        sslobj = self.sslobj
        assert sslobj is not None and self._in_bio is not None
        self._in_bio.write(data)
        if not self.ready:
            try:
                sslobj.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                return b""
            except (ssl.SSLError, ssl.CertificateError) as exc:
                self._flush()  # the alert, so the peer learns why
                self.tls_failed(exc)
                return b""
            self._flush()
            self.ready = True
            self.handshake_since = None
            self.layer._register(self)
        chunks: list[bytes] = []
        try:
            while True:
                chunk = sslobj.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self.close()  # close_notify from the peer
        except ssl.SSLError as exc:
            log.info("%s: tls error, closing: %s", self.peer, exc)
            self.abort()
            assert self.peer is not None
            self.layer._report(self.peer, f"tls: {getattr(exc, 'reason', None) or exc}")
        self._flush()  # e.g. TLS 1.3 key updates
        return b"".join(chunks)

    def tls_failed(self, exc: BaseException) -> None:
        reason, detail = describe_tls_error(exc)
        self.layer.stats.tls_failures += 1
        log.info("%s: %s (%s)", self.peer, reason, detail)
        if self.transport is not None:
            self.transport.close()  # after the flushed alert
        self._lost()
        assert self.peer is not None
        self.layer._report(self.peer, reason)

    def _flush(self) -> None:
        if self._out_bio is not None and self._out_bio.pending and self.transport is not None:
            self.transport.write(self._out_bio.read())

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        if self.sslobj is not None:
            self.sslobj.write(data)
            self._flush()
        else:
            self.transport.write(data)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sslobj is not None and not self.ready and not self.closed:
            self.tls_failed(exc or ConnectionResetError("connection closed during the TLS handshake"))
            return
        if self.framer.pending:
            self.layer.stats.dropped += 1  # a truncated message
        self._lost()

    # -- ours

    def _lost(self) -> None:
        if self.closed:
            return
        self.closed = True
        layer = self.layer
        if self in layer._streams:
            layer._streams.discard(self)
            layer.stats.connections -= 1
            layer.stats.connections_closed += 1
        if self.counted_ip is not None:
            layer._per_ip[self.counted_ip] -= 1
            layer._capped.discard(self.counted_ip)
            if layer._per_ip[self.counted_ip] <= 0:
                del layer._per_ip[self.counted_ip]
            self.counted_ip = None
        for key in self.keys:
            if layer._conns.get(key) is self:
                del layer._conns[key]
        self.keys.clear()

    def write(self, data: bytes) -> None:
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            raise TransportError("connection closed")
        if transport.get_write_buffer_size() > self.layer.limits.max_write_buffer:
            self.abort()
            raise TransportError("send buffer full")
        if not self.ready:
            raise TransportError("connection not ready")
        self._write(data)
        self.last_activity = self.layer._now()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._lost()

    def close(self) -> None:
        if self.transport is not None:
            if self.sslobj is not None and self.ready:
                try:
                    self.sslobj.unwrap()  # close_notify (RFC 8446 §6.1)
                except ssl.SSLError:
                    pass
                self._flush()
            self.transport.close()
        self._lost()


class TransportLayer:
    """All SIP sockets of one endpoint.

    ``on_message(data, source, local)`` gets one complete SIP message (framing done) from
    ``source``, received on ``local`` (the listener's address for UDP, the connection's local
    address for TCP/TLS). ``on_error(addr, reason)`` reports failures that no ``send`` call
    can raise: an inbound TLS handshake that failed, a stream closed for bad framing or a
    message that never completed. Exceptions raised by the callbacks are logged and counted
    as ``dropped``; they never reach the transport.
    """

    def __init__(self, on_message: OnMessage, on_error: OnError | None = None, *,
                 limits: Limits | None = None) -> None:  # fmt: skip
        self.on_message = on_message
        self.on_error = on_error
        self.limits = limits or Limits()
        self.stats = Stats()
        self._udp: list[_UdpProtocol] = []
        self._servers: list[tuple[Addr, asyncio.Server]] = []
        self._streams: set[_StreamProtocol] = set()
        self._conns: dict[tuple[str, str, int], _StreamProtocol] = {}
        self._connecting: dict[tuple[str, str, int], asyncio.Future[_StreamProtocol]] = {}
        self._per_ip: Counter[str] = Counter()
        self._capped: set[str] = set()  # source IPs refused since they last dropped below the cap
        self._client_ctx: dict[tuple[object, ...], ssl.SSLContext] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # -- public API

    @property
    def listeners(self) -> list[Addr]:
        return [p.local for p in self._udp if p.local is not None] + [a for a, _ in self._servers]

    def local_addr(self, transport: str) -> Addr | None:
        """The listener to put in Via/Contact for ``transport`` (the first one opened)."""
        for addr in self.listeners:
            if addr.transport == transport:
                return addr
        return None

    @property
    def connection_count(self) -> int:
        return len(self._streams)

    async def listen(
        self, transport: str, host: str, port: int, *, tls: ServerTlsConfig | None = None
    ) -> Addr:
        """Open a listener (``port`` 0: any free port); returns the bound address."""
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}")
        loop = asyncio.get_running_loop()
        host = _norm_host(host)
        try:
            if transport == "udp":
                _, proto = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self), local_addr=(host, port)
                )
                assert proto.local is not None
                self._udp.append(proto)
                addr = proto.local
            else:
                ctx: ssl.SSLContext | None = None
                if transport == "tls":
                    if tls is None:
                        raise ValueError("a TLS listener needs a ServerTlsConfig")
                    ctx = server_context(tls)
                server = await loop.create_server(
                    lambda: _StreamProtocol(self, transport, inbound=True, server_ctx=ctx),
                    host, port, reuse_address=True, backlog=1024,
                )  # fmt: skip
                addr = _sock_addr(transport, server.sockets[0].getsockname())
                self._servers.append((addr, server))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise TransportError("address in use", f"{transport} {host}:{port}") from exc
            raise TransportError(
                f"cannot listen: {exc.strerror or exc}", f"{transport} {host}:{port}"
            ) from exc
        self._start_reaper()
        return addr

    async def send(self, data: bytes, dest: Addr, *, tls: ClientTlsOptions | None = None,
                   server_name: str | None = None) -> Addr:  # fmt: skip
        """Send one message to ``dest``; returns the local address it left from.

        TCP/TLS: reuses an open connection to (transport, host, port) -- including one the
        peer opened to us (RFC 3261 §18.2.2: responses go back over it) -- or opens one.
        TLS verifies the peer against ``server_name`` (default ``dest.host``), also sent as
        SNI. Raises :class:`TransportError` naming the cause.
        """
        if self._closed:
            raise TransportError("transport closed")
        if len(data) > self.limits.max_message_size:
            self.stats.send_errors += 1
            raise TransportError("message too large")
        if dest.transport == "udp":
            return await self._send_udp(data, dest)
        if dest.transport not in TRANSPORTS:
            raise TransportError(f"unsupported transport {dest.transport!r}")
        conn = await self._connection(dest, tls, server_name)
        try:
            conn.write(data)
        except TransportError:
            self.stats.send_errors += 1
            raise
        self.stats.messages_out += 1
        self.stats.bytes_out += len(data)
        assert conn.local is not None
        return conn.local

    async def close(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for _, server in self._servers:
            server.close()
        for conn in list(self._streams):
            conn.abort()
        for proto in self._udp:
            if proto.transport is not None:
                proto.transport.close()
        for fut in self._connecting.values():
            fut.cancel()
        for task in list(self._tasks):
            task.cancel()
        self._servers.clear()
        self._udp.clear()
        await asyncio.sleep(0)

    # -- sending

    def send_udp_now(self, data: bytes, dest: Addr) -> bool:
        """Send a UDP datagram to an IP address at once, without a task, when nothing needs
        awaiting (a listener of that family exists, the size is fine). False means the
        caller must use :meth:`send` (which also reports the errors)."""
        if self._closed or dest.transport != "udp" or len(data) > self.limits.max_message_size:
            return False
        host = _norm_host(dest.host)
        if not _is_ip(host):
            return False
        v6 = ":" in host
        proto = next((p for p in self._udp if p.local is not None and (":" in p.local.host) == v6), None)
        if proto is None or proto.transport is None:
            return False
        proto.transport.sendto(data, (host, dest.port))
        self.stats.messages_out += 1
        self.stats.bytes_out += len(data)
        return True

    async def _send_udp(self, data: bytes, dest: Addr) -> Addr:
        host = _norm_host(dest.host)
        if not _is_ip(host):
            host = await self._resolve(host, dest.port)
        v6 = ":" in host
        proto = next((p for p in self._udp if p.local is not None and (":" in p.local.host) == v6), None)
        if proto is None:
            # No listener of that family: open an ephemeral one so the answer can come back.
            await self.listen("udp", "::" if v6 else "0.0.0.0", 0)
            proto = self._udp[-1]
        assert proto.transport is not None and proto.local is not None
        proto.transport.sendto(data, (host, dest.port))
        self.stats.messages_out += 1
        self.stats.bytes_out += len(data)
        return proto.local

    async def _resolve(self, host: str, port: int) -> str:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            self.stats.send_errors += 1
            raise TransportError("unknown host", f"{host}: {exc}") from exc
        return _norm_host(str(infos[0][4][0]))

    async def _connection(
        self, dest: Addr, tls: ClientTlsOptions | None, server_name: str | None
    ) -> _StreamProtocol:
        key = (dest.transport, _norm_host(dest.host), dest.port)
        conn = self._conns.get(key)
        if conn is not None and not conn.closed:
            return conn
        pending = self._connecting.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[_StreamProtocol] = asyncio.get_running_loop().create_future()
        self._connecting[key] = fut
        try:
            conn = await self._open(dest, tls, server_name)
            if key not in conn.keys:
                conn.keys.append(key)
                self._conns[key] = conn
            fut.set_result(conn)
            return conn
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters re-raise it, nobody else must log it
            raise
        finally:
            del self._connecting[key]

    async def _open(
        self, dest: Addr, tls: ClientTlsOptions | None, server_name: str | None
    ) -> _StreamProtocol:
        loop = asyncio.get_running_loop()
        limits = self.limits
        if len(self._streams) >= limits.max_connections:
            self.stats.send_errors += 1
            raise TransportError("too many connections")
        proto = _StreamProtocol(self, dest.transport, inbound=False)
        ctx: ssl.SSLContext | None = None
        sni: str | None = None
        timeout = limits.connect_timeout
        if dest.transport == "tls":
            ctx = self._client_context(tls)
            sni = server_name or _norm_host(dest.host)
            timeout += limits.tls_handshake_timeout
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    lambda: proto, dest.host, dest.port, ssl=ctx, server_hostname=sni,
                    ssl_handshake_timeout=limits.tls_handshake_timeout if ctx else None,
                )  # fmt: skip
        except (OSError, ssl.SSLError, TimeoutError, EOFError) as exc:
            self.stats.send_errors += 1
            if ctx is not None and not isinstance(exc, ConnectionRefusedError | socket.gaierror):
                if isinstance(exc, ssl.SSLError | ssl.CertificateError) or isinstance(
                    exc, ConnectionResetError | ConnectionAbortedError | EOFError
                ):
                    self.stats.tls_failures += 1
                    reason, detail = describe_tls_error(exc)
                    raise TransportError(reason, detail) from exc
            raise TransportError(_connect_reason(exc), f"{dest}: {exc}") from exc
        return proto

    def _client_context(self, options: ClientTlsOptions | None) -> ssl.SSLContext:
        options = options or ClientTlsOptions()
        key = options.cache_key()
        ctx = self._client_ctx.get(key)
        if ctx is None:
            try:
                ctx = client_context(options)
            except (ssl.SSLError, ValueError, OSError) as exc:
                raise TransportError("tls: bad client configuration", str(exc)) from exc
            self._client_ctx[key] = ctx
        return ctx

    # -- internals used by the protocols

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _register(self, conn: _StreamProtocol) -> None:
        assert conn.peer is not None
        key = (conn.kind, conn.peer.host, conn.peer.port)
        if key not in conn.keys:
            conn.keys.append(key)
        self._conns[key] = conn  # the newest connection to a peer wins (RFC 5923 spirit)

    def _deliver(self, data: bytes, source: Addr, local: Addr) -> None:
        self.stats.messages_in += 1
        try:
            self.on_message(data, source, local)
        except Exception:
            self.stats.dropped += 1
            log.exception("on_message failed for a message from %s", source)

    def _report(self, addr: Addr, reason: str) -> None:
        if self.on_error is None:
            return
        try:
            self.on_error(addr, reason)
        except Exception:
            log.exception("on_error failed for %s", addr)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap_loop())

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.limits.reap_interval)
            self.reap()

    def reap(self) -> None:
        """Close idle connections and those holding a message that never completes."""
        now = self._now()
        limits = self.limits
        for conn in list(self._streams):
            if conn.handshake_since is not None and now - conn.handshake_since > limits.tls_handshake_timeout:
                self.stats.connections_timed_out += 1
                conn.tls_failed(TimeoutError("no TLS handshake"))
                continue
            if conn.partial_since is not None and now - conn.partial_since > limits.message_timeout:
                reason = "incomplete message timeout"
            elif now - conn.last_activity > limits.idle_timeout:
                reason = "idle"
            else:
                continue
            self.stats.connections_timed_out += 1
            log.info("%s: closing: %s", conn.peer, reason)
            if reason == "idle":
                conn.close()
            else:
                conn.abort()
                assert conn.peer is not None
                self._report(conn.peer, reason)
