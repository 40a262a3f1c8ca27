"""A typed bus client over nats-py.

Requests and replies are `proto.messages` models serialized as JSON. A handler that gets a
message it cannot parse, or that fails, answers an ErrorReply with the nats.micro error
headers instead of leaving the requester to time out; nothing a peer sends can kill the
subscriber.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import StorageType, StreamConfig
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from proto import subjects
from proto.messages import ErrorReply

from .errors import BadReply, BusTimeout, HandlerError, NoResponders, RemoteError
from .metrics import BUS_REQUEST_SECONDS, family

log = logging.getLogger("switchboard.bus")

T = TypeVar("T", bound=BaseModel)
M = TypeVar("M", bound=BaseModel)

ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"

Handler = Callable[[M], Awaitable[BaseModel | None]]


class CallsStreamSettings(BaseSettings):
    """Limits of the CALLS stream, from SWITCHBOARD_CALLS_STREAM_* environment variables
    (every process that creates the stream applies the same ones)."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_CALLS_STREAM_", extra="ignore")

    max_age: float = 7 * 24 * 3600.0
    """Seconds an event is kept."""
    max_bytes: int = 1 << 30
    """Bytes the stream keeps at most (the oldest events go first)."""
    replicas: int = 1
    """JetStream replicas (1 for one server, 3 in a cluster)."""


class BusAuth(BaseSettings):
    """How to authenticate to NATS, from SWITCHBOARD_NATS_* environment variables: the
    embedded server of `switchboard up` (a credentials file it generates), or an external
    one (user/password, token, NKey seed or JWT .creds file, TLS with a CA and a client
    certificate). SIP passwords travel in `routing.resolve` replies: never on an open bus."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_NATS_", extra="ignore")

    credentials_file: str = ""
    """A JSON file {"user": ..., "password": ...} (mode 0600), as `switchboard up` writes."""
    user: str = ""
    password: str = Field(default="", repr=False)
    token: str = Field(default="", repr=False)
    creds: str = ""
    """A NATS .creds file (JWT and NKey seed)."""
    nkey_seed: str = ""
    """A file holding an NKey seed."""
    tls_ca: str = ""
    """CA bundle to verify the server with; setting any tls_* turns TLS on."""
    tls_cert: str = ""
    tls_key: str = ""
    """A client certificate and its key, for servers that verify clients."""

    @classmethod
    def from_file(cls, path: Path) -> BusAuth:
        return cls(credentials_file=str(path))

    def connect_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        user, password = self.user, self.password
        if self.credentials_file:
            data = json.loads(Path(self.credentials_file).read_text())
            user, password = str(data["user"]), str(data["password"])
        if user:
            opts.update(user=user, password=password)
        if self.token:
            opts["token"] = self.token
        if self.creds:
            opts["user_credentials"] = self.creds
        if self.nkey_seed:
            opts["nkeys_seed"] = self.nkey_seed
        if self.tls_ca or self.tls_cert:
            ctx = ssl.create_default_context(cafile=self.tls_ca or None)
            if self.tls_cert:
                ctx.load_cert_chain(self.tls_cert, self.tls_key or None)
            opts["tls"] = ctx
        return opts


def servers_of(url: str) -> list[str]:
    """`nats://a:4222,nats://b:4222`: the servers of a cluster, tried in turn."""
    return [u.strip() for u in url.split(",") if u.strip()]


def encode(msg: BaseModel) -> bytes:
    return msg.model_dump_json().encode()


class Bus:
    """One NATS connection with typed helpers. Create with `await Bus.connect(...)`."""

    def __init__(self, nc: NatsClient, name: str) -> None:
        self.nc = nc
        self.name = name
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = [False]

    @classmethod
    async def connect(
        cls,
        url: str,
        name: str,
        *,
        connect_timeout: float = 2.0,
        max_reconnect_attempts: int = -1,
        on_state: Callable[[str], Awaitable[None]] | None = None,
        auth: BusAuth | None = None,
    ) -> Bus:
        closing_flag = [False]

        async def disconnected() -> None:
            if closing_flag[0]:
                return
            log.warning("bus disconnected from %s", url)
            if on_state:
                await on_state("disconnected")

        async def reconnected() -> None:
            log.info("bus reconnected to %s", url)
            if on_state:
                await on_state("reconnected")

        async def error(e: Exception) -> None:
            log.debug("bus error: %s", e)

        # nats-py keeps retrying a first connect that fails when asked for 0 attempts (or
        # for no reconnection at all): a one-shot tool asking for 0 gets 1, and an error.
        if max_reconnect_attempts == 0:
            max_reconnect_attempts = 1
        nc = await nats.connect(
            servers_of(url),  # every server of a cluster: a first connect works with one down
            name=name,
            connect_timeout=connect_timeout,
            max_reconnect_attempts=max_reconnect_attempts,
            reconnect_time_wait=0.5,
            allow_reconnect=True,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
            **(auth if auth is not None else BusAuth()).connect_options(),
        )
        bus = cls(nc, name)
        bus._closing = closing_flag
        return bus

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def request(self, subject: str, msg: BaseModel, reply_type: type[T], timeout: float = 1.0) -> T:
        """Send `msg`, wait for one answer parsed as `reply_type`.

        Raises BusTimeout, NoResponders, RemoteError (the responder answered an error) or
        BadReply (the answer does not parse)."""
        started = time.perf_counter()
        try:
            reply = await self.nc.request(subject, encode(msg), timeout=timeout)
        except nats.errors.NoRespondersError:
            BUS_REQUEST_SECONDS.labels(family(subject), "no-responders").observe(time.perf_counter() - started)
            raise NoResponders(subject) from None
        except nats.errors.TimeoutError:
            BUS_REQUEST_SECONDS.labels(family(subject), "timeout").observe(time.perf_counter() - started)
            raise BusTimeout(subject, timeout) from None
        except nats.errors.ConnectionClosedError as e:
            raise NoResponders(subject) from e
        BUS_REQUEST_SECONDS.labels(family(subject), "ok").observe(time.perf_counter() - started)
        headers = reply.headers or {}
        if ERROR_HEADER in headers:
            code = int(headers.get(ERROR_CODE_HEADER, "500") or 500)
            try:
                err = ErrorReply.model_validate_json(reply.data)
                raise RemoteError(subject, code, err.error, err.detail)
            except ValidationError:
                raise RemoteError(subject, code, headers[ERROR_HEADER]) from None
        try:
            return reply_type.model_validate_json(reply.data)
        except ValidationError as e:
            raise BadReply(f"{subject!r} answered something that is not a {reply_type.__name__}: {e}") from e

    async def publish(self, subject: str, msg: BaseModel) -> None:
        await self.nc.publish(subject, encode(msg))

    async def calls_stream_exists(self, timeout: float = 1.0) -> bool:
        """Whether the CALLS stream exists (False only when JetStream says it does not)."""
        try:
            await self.nc.jetstream().stream_info(subjects.CALLS_STREAM)
            return True
        except nats.js.errors.NotFoundError:
            return False
        except Exception:
            return True  # cannot tell now: assume it does, the acknowledgement will tell

    async def publish_acked(self, subject: str, msg: BaseModel, msg_id: str, timeout: float = 2.0) -> bool:
        """Publish and wait for JetStream's acknowledgement: True once a stream stored it,
        False when no stream takes the subject (core subscribers still got it). Raises on
        a timeout or a lost connection (a stream leader being elected, NATS away): then
        the caller keeps the message and tries again; ``msg_id`` (Nats-Msg-Id) makes the
        stream drop the copy of one that was stored but whose ack was lost."""
        try:
            await self.nc.jetstream().publish(subject, encode(msg), timeout=timeout,
                                              headers={"Nats-Msg-Id": msg_id})
            return True
        except (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError):
            return False

    async def subscribe(
        self,
        subject: str,
        handler: Callable[[Any], Awaitable[BaseModel | None]],
        msg_type: type[BaseModel],
        *,
        queue: str = "",
        concurrent: bool = True,
    ) -> Subscription:
        """Call `handler(parsed)` for each message; if the message was a request, answer
        with what the handler returns (or an ErrorReply when it fails).

        `concurrent=True` runs each handler in its own task so one slow request does not
        hold up the others; False keeps the order of messages (events)."""

        async def run(m: Msg) -> None:
            try:
                parsed = msg_type.model_validate_json(m.data)
            except ValidationError as e:
                log.warning("bad message on %s: %s", m.subject, _short(e))
                await self._answer_error(m, 400, "bad message", {"errors": _errors(e)})
                return
            try:
                result = await handler(parsed)
            except HandlerError as e:
                await self._answer_error(m, e.code, e.error, e.detail)
                return
            except Exception as e:  # a bug must not kill the subscription
                log.exception("handler for %s failed", m.subject)
                await self._answer_error(m, 500, f"internal error: {type(e).__name__}")
                return
            if m.reply and result is not None:
                try:
                    await m.respond(encode(result))
                except Exception:  # requester gone, connection closing
                    log.debug("could not answer on %s", m.subject)

        async def cb(m: Msg) -> None:
            if concurrent:
                t = asyncio.create_task(run(m))
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)
            else:
                await run(m)

        sub = await self.nc.subscribe(subject, queue=queue, cb=cb)
        self._subs.append(sub)
        return sub

    async def _answer_error(self, m: Msg, code: int, error: str, detail: dict[str, Any] | None = None) -> None:
        if not m.reply:
            return
        body = ErrorReply(code=code, error=error, detail=detail or {})
        try:
            await self.nc.publish(
                m.reply,
                encode(body),
                headers={ERROR_HEADER: error, ERROR_CODE_HEADER: str(code)},
            )
        except Exception:
            log.debug("could not answer error on %s", m.subject)

    async def ensure_calls_stream(
        self, *, max_age: float | None = None, max_bytes: int | None = None, replicas: int | None = None
    ) -> None:
        """Create (or update) the CALLS stream that keeps every call event. Limits not
        given come from `CallsStreamSettings` (the environment)."""
        if max_age is None or max_bytes is None or replicas is None:
            env = CallsStreamSettings()
            max_age = env.max_age if max_age is None else max_age
            max_bytes = env.max_bytes if max_bytes is None else max_bytes
            replicas = env.replicas if replicas is None else replicas
        js = self.nc.jetstream()
        cfg = StreamConfig(
            name=subjects.CALLS_STREAM,
            subjects=[subjects.call_events_all()],
            storage=StorageType.FILE,
            max_age=max_age,
            max_bytes=max_bytes,
            num_replicas=replicas,
        )
        try:
            await js.add_stream(cfg)
        except nats.js.errors.BadRequestError:
            await js.update_stream(cfg)

    async def close(self, timeout: float = 2.0) -> None:
        self._closing[0] = True
        for t in list(self._tasks):
            t.cancel()
        try:
            if not self.nc.is_connected:
                raise ConnectionError("not connected: nothing to drain")
            await asyncio.wait_for(self.nc.drain(), timeout)
        except Exception:
            try:
                await self.nc.close()
            except Exception:
                pass


def _errors(e: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(err["loc"]), "msg": err["msg"]} for err in e.errors()[:10]]


def _short(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()[:3])
