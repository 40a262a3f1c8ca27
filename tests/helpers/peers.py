"""Real SIP peers for interop tests: SIPp scenarios and baresip, on loopback only.

Import from a test module::

    from tests.helpers.peers import Baresip, SippPeer, dominant_frequency

(``tests/interop/conftest.py`` offers fixtures over them.)

Everything here is asyncio (the B2BUA under test may run in the same event loop), logs go to
the test's tmp dir, and assertion messages carry the tail of the peer's logs.

SIPp (``SippPeer``)
    ``scenario`` is ``"uac"``/``"uas"`` (SIPp's embedded ones), a name of an XML file in
    ``tests/interop/scenarios`` (``"carrier_call"``) or a path. A peer without ``remote`` is a
    server (UAS) listening on ``port`` (a free one by default). ``await peer.wait()`` returns a
    ``SippResult``: exit code, successful/failed calls (from ``-trace_stat``), per-message counts
    (from ``-trace_screen``), and ``assert_ok()`` which raises with the error log's tail.

baresip (``Baresip``), as found in Debian's baresip-core 1.0.0
    One process per instance with its own config dir; SIP on 127.0.0.1:``sip_port`` (UDP and
    TCP) and TLS on ``sip_port + 1``; PCMU only; sends a tone WAV through ``aufile`` (the call is
    hung up by baresip when the file ends, so the WAV is ``call_seconds`` long); records what it
    sent and heard with ``sndfile`` (``recorded_wav("dec")`` is what it heard); driven and
    observed through ``ctrl_tcp`` (``dial``, ``accept``, ``hangup``, ``send_dtmf``,
    ``wait_for_event``).

Audio helpers: ``write_tone_wav``, ``read_wav``, ``dominant_frequency``, ``rms``, ``tone_level``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import math
import re
import shutil
import socket
import struct
import time
import wave
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.tls import TestCA

__all__ = [
    "LOOPBACK",
    "SCENARIOS",
    "Baresip",
    "BaresipError",
    "SippPeer",
    "SippResult",
    "TlsFiles",
    "baresip_path",
    "dominant_frequency",
    "free_sip_port",
    "free_tcp_port",
    "free_udp_port",
    "make_tls_files",
    "needs_baresip",
    "needs_sipp",
    "read_wav",
    "rms",
    "sipp_path",
    "tone_level",
    "write_tone_wav",
]

LOOPBACK = "127.0.0.1"
SCENARIOS = Path(__file__).resolve().parents[1] / "interop" / "scenarios"
BARESIP_MODULES = Path("/usr/lib/baresip/modules")


def sipp_path() -> str | None:
    return shutil.which("sipp")


def baresip_path() -> str | None:
    return shutil.which("baresip")


def _tail(path: Path | None, lines: int = 40) -> str:
    """The last ``lines`` non-empty lines of a log (SIPp and baresip redraw with CR)."""
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").replace("\r", "\n")
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


# --------------------------------------------------------------------------- ports

_handed_out: set[tuple[str, int]] = set()


def _bindable(kind: int, port: int) -> bool:
    s = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _free_port(kind: int, label: str) -> int:
    for _ in range(200):
        s = socket.socket(socket.AF_INET, kind)
        s.bind((LOOPBACK, 0))
        port = s.getsockname()[1]
        s.close()
        if (label, port) not in _handed_out:
            _handed_out.add((label, port))
            return port
    raise RuntimeError("no free port")


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that is free now (not handed out before by this process)."""
    return _free_port(socket.SOCK_DGRAM, "udp")


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (not handed out before by this process)."""
    return _free_port(socket.SOCK_STREAM, "tcp")


def free_sip_port(*, tls: bool = False, even: bool = False) -> int:
    """A port P free for both UDP and TCP (and P+1 for TCP when ``tls``, baresip's TLS port).

    ``even`` asks for an even P with P+1 free for UDP too (an RTP/RTCP pair).
    """
    for _ in range(500):
        port = _free_port(socket.SOCK_DGRAM, "sip")
        if port >= 65534 or (even and port % 2):
            continue
        ok = _bindable(socket.SOCK_STREAM, port)
        if tls:
            ok = ok and _bindable(socket.SOCK_STREAM, port + 1) and ("sip", port + 1) not in _handed_out
        if even:
            ok = ok and _bindable(socket.SOCK_DGRAM, port + 1) and ("sip", port + 1) not in _handed_out
        if ok:
            _handed_out.add(("sip", port + 1))
            return port
    raise RuntimeError("no free SIP port")


def _udp_in_use(port: int) -> bool:
    return not _bindable(socket.SOCK_DGRAM, port)


def _tcp_listening(port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.2)
        return s.connect_ex((LOOPBACK, port)) == 0


# --------------------------------------------------------------------------- SIPp

# Scenario screen lines: a client shows "INVITE ---------->" (sent) and "180 <----------"
# (received); a server shows "----------> INVITE" (received) and "<---------- 180" (sent).
_COUNTS = r"\s+(?:[EB]-RTD\d\s+)?(?P<count>\d+)(?:\s+(?P<retrans>\d+))?(?:\s+(?P<timeout>\d+))?(?:\s+(?P<unexpected>\d+))?"
_SCREEN_MSG_CLIENT = re.compile(r"^\s*(?P<label>[\w.-]+)\s+(?P<arrow><-{3,}|-{3,}>)" + _COUNTS)
_SCREEN_MSG_SERVER = re.compile(r"^\s*(?P<arrow><-{3,}|-{3,}>)\s+(?P<label>[\w.-]+)" + _COUNTS)


@dataclass
class SippMessage:
    """One line of SIPp's scenario screen: a message sent (``->``) or received (``<-``)."""

    label: str  # "INVITE", "180", "ACK", ...
    direction: str  # "sent" or "received"
    count: int
    retrans: int = 0
    timeout: int = 0
    unexpected: int = 0


@dataclass
class SippResult:
    """How a SIPp run ended. ``returncode``: 0 all calls succeeded, 1 some failed, 97 stopped
    by an internal command, 99 exited without processing calls, 255/-1 fatal error, -2 bind error,
    None killed by the harness after its timeout."""

    name: str
    returncode: int | None
    stats: dict[str, str]
    messages: list[SippMessage]
    screen: str
    error_log: Path
    message_log: Path
    stdout_log: Path
    timed_out: bool = False

    def _cumulative(self, key: str) -> int:
        value = self.stats.get(f"{key}(C)", self.stats.get(key, "0"))
        try:
            return int(value)
        except ValueError:
            return 0

    @property
    def successful(self) -> int:
        return self._cumulative("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self._cumulative("FailedCall")

    @property
    def total_created(self) -> int:
        return self._cumulative("TotalCallCreated")

    @property
    def retransmissions(self) -> int:
        return self._cumulative("Retransmissions")

    def count(self, label: str, direction: str | None = None) -> int:
        """How many times the scenario line ``label`` ("INVITE", "486", ...) was seen."""
        return sum(
            m.count
            for m in self.messages
            if m.label == label and (direction is None or m.direction == direction)
        )

    def received(self, label: str) -> int:
        return self.count(label, "received")

    def sent(self, label: str) -> int:
        return self.count(label, "sent")

    def describe(self) -> str:
        lines = [
            f"sipp {self.name}: exit {self.returncode}{' (timed out, killed)' if self.timed_out else ''}, "
            f"{self.successful} successful, {self.failed} failed call(s)",
        ]
        reasons = {
            k[: -len("(C)")]: v
            for k, v in self.stats.items()
            if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)" and v not in {"", "0"}
        }
        if reasons:
            lines.append("  failure kinds: " + ", ".join(f"{k}={v}" for k, v in reasons.items()))
        table = "\n".join(
            f"  {m.label:>10} {'->' if m.direction == 'sent' else '<-'} {m.count} "
            f"(retrans {m.retrans}, timeout {m.timeout}, unexpected {m.unexpected})"
            for m in self.messages
        )
        if table:
            lines.append(table)
        for title, path in (("error log", self.error_log), ("output", self.stdout_log)):
            tail = _tail(path, 30)
            if tail:
                lines.append(f"--- {title} {path} (tail) ---\n{tail}")
        return "\n".join(lines)

    def assert_ok(self, calls: int = 1) -> SippResult:
        """Exit 0 with ``calls`` successful calls and none failed, else AssertionError with logs."""
        if self.returncode != 0 or self.successful != calls or self.failed != 0:
            raise AssertionError(f"expected {calls} successful call(s)\n{self.describe()}")
        return self

    def assert_failed(self, calls: int = 1) -> SippResult:
        """Exit 1 with ``calls`` failed calls (what a scenario does when its peer misbehaves)."""
        if self.returncode != 1 or self.failed != calls:
            raise AssertionError(f"expected {calls} failed call(s)\n{self.describe()}")
        return self


def _resolve_scenario(scenario: str | Path) -> tuple[list[str], str]:
    if isinstance(scenario, str) and scenario in {"uac", "uas", "uac_pcap", "regexp", "3pcc-C-A", "branchc"}:
        return ["-sn", scenario], scenario
    path = Path(scenario)
    if not path.suffix:
        path = path.with_suffix(".xml")
    if not path.is_absolute() and not path.exists():
        path = SCENARIOS / path
    if not path.exists():
        raise FileNotFoundError(f"SIPp scenario not found: {scenario} (looked in {SCENARIOS})")
    return ["-sf", str(path)], path.stem


class SippPeer:
    """One SIPp process running a scenario on 127.0.0.1.

    Server (no ``remote``)::

        client = SippPeer("client_auth_answer", log_dir=tmp_path, variables={"user": "u", "pass": "p"},
                          rtp_echo=True)
        await client.start()              # returns once the port is bound
        ... client.port / client.uri ...
        (await client.wait(timeout=15)).assert_ok()

    Client::

        carrier = SippPeer("carrier_call", log_dir=tmp_path, remote=f"127.0.0.1:{port}",
                           service="+15550001", call_length_ms=2000,
                           variables={"caller": "+15551234", "rtp_ip": "127.0.0.1", "rtp_port": 40000})
        result = await carrier.run(timeout=15)

    ``calls`` is SIPp's ``-m`` (a server exits after that many calls too). ``timeout`` (seconds)
    is passed to SIPp as ``-timeout`` and enforced by the harness (kill, ``timed_out=True``).
    """

    def __init__(
        self,
        scenario: str | Path,
        *,
        log_dir: Path,
        remote: str | None = None,
        port: int | None = None,
        transport: str = "u1",
        variables: Mapping[str, object] | None = None,
        service: str | None = None,
        calls: int = 1,
        rate: float | None = None,
        call_length_ms: int | None = None,
        rtp_echo: bool = False,
        media_port: int | None = None,
        recv_timeout_ms: int | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float = 30.0,
        name: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        if transport not in {"u1", "t1", "un", "tn"}:
            raise ValueError(f"transport {transport!r}: use u1, t1 (un/tn for many sockets)")
        self.scenario_args, stem = _resolve_scenario(scenario)
        self.name = name or f"{stem}-{'uac' if remote else 'uas'}"
        self.log_dir = Path(log_dir) / "sipp"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.remote = remote
        self._port_given = port is not None
        self.port = port if port is not None else free_sip_port()
        self.transport = transport
        self.variables = dict(variables or {})
        self.service = service
        self.calls = calls
        self.rate = rate
        self.call_length_ms = call_length_ms
        self.rtp_echo = rtp_echo
        self.media_port = media_port if media_port is not None else free_sip_port(even=True)
        self.recv_timeout_ms = recv_timeout_ms
        self.auth = auth
        self.timeout = timeout
        self.extra_args = list(extra_args)
        self.proc: asyncio.subprocess.Process | None = None
        self.result: SippResult | None = None
        self._timed_out = False
        self._run = 0

    # paths of this run's logs
    def _path(self, suffix: str) -> Path:
        return self.log_dir / f"{self.name}.{self._run}.{suffix}"

    @property
    def is_server(self) -> bool:
        return self.remote is None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def uri(self) -> str:
        """A SIP URI of this peer, e.g. a target for the B2BUA (``;transport=tcp`` for t1)."""
        return f"sip:{LOOPBACK}:{self.port}" + (";transport=tcp" if self.transport.startswith("t") else "")

    def command(self) -> list[str]:
        exe = sipp_path() or "sipp"
        args = [exe]
        if self.remote:
            args.append(self.remote)
        args += self.scenario_args
        args += ["-i", LOOPBACK, "-mi", LOOPBACK, "-p", str(self.port), "-t", self.transport]
        args += [
            "-m",
            str(self.calls),
            "-nostdin",
            "-timeout",
            f"{max(1, int(self.timeout))}s",
            "-timeout_error",
        ]
        if self.rate is not None:
            args += ["-r", str(self.rate)]
        if self.service is not None:
            args += ["-s", self.service]
        if self.call_length_ms is not None:
            args += ["-d", str(self.call_length_ms)]
        if self.rtp_echo:
            args.append("-rtp_echo")
        if self.media_port is not None:
            args += ["-mp", str(self.media_port)]
        if self.recv_timeout_ms is not None:
            args += ["-recv_timeout", str(self.recv_timeout_ms)]
        if self.auth is not None:  # what [authentication] (no arguments) in a scenario uses
            args += ["-au", self.auth[0], "-ap", self.auth[1]]
        for key, value in self.variables.items():
            args += ["-set", key, str(value)]
        args += ["-trace_stat", "-stf", str(self._path("stat.csv")), "-fd", "1"]
        args += ["-trace_screen", "-screen_file", str(self._path("screen.log"))]
        args += ["-trace_err", "-error_file", str(self._path("errors.log"))]
        args += ["-trace_msg", "-message_file", str(self._path("messages.log"))]
        args += self.extra_args
        return args

    async def start(self, ready_timeout: float = 5.0) -> SippPeer:
        """Start SIPp; a server returns once its port is bound. Retries on a port clash."""
        if sipp_path() is None:
            raise RuntimeError("sipp is not installed (Debian package sip-tester)")
        for attempt in range(3):
            self._run += 1
            stdout = open(self._path("out.log"), "wb")  # noqa: SIM115 - closed in wait()
            self._stdout = stdout
            self.proc = await asyncio.create_subprocess_exec(
                *self.command(), stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=asyncio.subprocess.STDOUT,
                cwd=self.log_dir,
            )  # fmt: skip
            if not self.is_server:
                return self
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    break
                bound = (
                    _udp_in_use(self.port) if self.transport.startswith("u") else _tcp_listening(self.port)
                )
                if bound:
                    return self
                await asyncio.sleep(0.02)
            if self.proc.returncode is None:
                raise AssertionError(
                    f"sipp {self.name} did not bind {self.address}\n{_tail(self._path('out.log'))}"
                )
            stdout.close()
            out = _tail(self._path("out.log"))
            if self._port_given or attempt == 2 or "bind" not in out.lower():
                raise AssertionError(f"sipp {self.name} exited {self.proc.returncode} at start\n{out}")
            self.port = free_sip_port()
        return self

    async def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to exit (killing it after ``timeout``, default the peer's timeout + 5 s)."""
        assert self.proc is not None, "start() first"
        limit = timeout if timeout is not None else self.timeout + 5
        try:
            await asyncio.wait_for(self.proc.wait(), limit)
        except TimeoutError:
            self._timed_out = True
            await self.stop()
        self._stdout.close()
        self.result = self._collect()
        return self.result

    async def run(self, timeout: float | None = None) -> SippResult:
        await self.start()
        return await self.wait(timeout)

    async def stop(self) -> None:
        """Kill SIPp if it still runs (SIGTERM, then SIGKILL)."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 3)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def __aenter__(self) -> SippPeer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _collect(self) -> SippResult:
        stats: dict[str, str] = {}
        stat_file = self._path("stat.csv")
        if stat_file.exists():
            rows = list(csv.reader(io.StringIO(stat_file.read_text(errors="replace")), delimiter=";"))
            rows = [r for r in rows if r]
            if len(rows) >= 2:
                stats = dict(zip(rows[0], rows[-1], strict=False))
        screen_file = self._path("screen.log")
        screen = screen_file.read_text(errors="replace") if screen_file.exists() else ""
        messages: list[SippMessage] = []
        # The first screen in the file is the scenario screen with the message table.
        scenario_part = screen.split("Statistics Screen")[0]
        for line in scenario_part.splitlines():
            m = _SCREEN_MSG_CLIENT.match(line)
            outward = ">"
            if m is None:
                m = _SCREEN_MSG_SERVER.match(line)
                outward = "<"
            if not m or m["label"].lower() in {"pause", "nop"}:
                continue
            messages.append(
                SippMessage(
                    label=m["label"],
                    direction="sent" if outward in m["arrow"] else "received",
                    count=int(m["count"]),
                    retrans=int(m["retrans"] or 0),
                    timeout=int(m["timeout"] or 0),
                    unexpected=int(m["unexpected"] or 0),
                )
            )
        rc = self.proc.returncode if self.proc else None
        return SippResult(
            name=self.name,
            returncode=None if self._timed_out else rc,
            stats=stats,
            messages=messages,
            screen=screen,
            error_log=self._path("errors.log"),
            message_log=self._path("messages.log"),
            stdout_log=self._path("out.log"),
            timed_out=self._timed_out,
        )


# --------------------------------------------------------------------------- TLS files


@dataclass
class TlsFiles:
    """What baresip needs for TLS: its certificate and key in one PEM file, and the CA to trust."""

    cert_and_key: Path
    ca_file: Path


def make_tls_files(directory: Path, *names: str, ca: Any = None) -> tuple[Any, TlsFiles]:
    """A test CA (``tests.helpers.tls.TestCA``, or ``ca``) and a server
    certificate for ``names`` (default 127.0.0.1 and localhost) in baresip's format."""
    directory = Path(directory)
    if ca is None:
        ca = TestCA(directory / "ca")
    issued = ca.issue(*(names or (LOOPBACK, "localhost")))
    bundle = directory / f"baresip-{Path(issued.cert_file).stem}.pem"
    bundle.write_text(issued.cert_pem + issued.key_pem)
    bundle.chmod(0o600)
    return ca, TlsFiles(cert_and_key=bundle, ca_file=Path(ca.cert_file))


# --------------------------------------------------------------------------- baresip


class BaresipError(AssertionError):
    pass


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


EventPredicate = str | Callable[[dict[str, Any]], bool]


class Baresip:
    """A baresip 1.0.0 user agent on 127.0.0.1, driven over ``ctrl_tcp``.

    ``mediaenc``: None (RTP/AVP), ``"srtp"`` (SRTP if offered), ``"srtp-mand"`` (RTP/SAVP only,
    SDES ``a=crypto``), ``"srtp-mandf"``. ``tls`` (``make_tls_files``) enables SIP over TLS on
    ``tls_port`` (= ``sip_port + 1``). ``auto_answer`` answers incoming calls at once.
    The tone WAV (``tone_hz``, ``call_seconds``; or your own 8 kHz mono 16-bit ``source_wav``)
    is what baresip sends; baresip ends the call when the file ends.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        name: str = "bob",
        user: str | None = None,
        sip_port: int | None = None,
        tls: TlsFiles | None = None,
        mediaenc: str | None = None,
        auto_answer: bool = False,
        tone_hz: float = 1000.0,
        call_seconds: float = 30.0,
        source_wav: Path | None = None,
        rtp_ports: tuple[int, int] | None = None,
        extra_config: Iterable[str] = (),
        account_params: str = "",
        sip_trace: bool = True,
    ) -> None:
        if mediaenc not in {None, "srtp", "srtp-mand", "srtp-mandf"}:
            raise ValueError(f"mediaenc {mediaenc!r}")
        self.name = name
        self.user = user or name
        self.dir = Path(workdir) / f"baresip-{name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.record_dir = self.dir / "recordings"
        self.record_dir.mkdir(exist_ok=True)
        self._port_given = sip_port is not None
        self.sip_port = sip_port if sip_port is not None else free_sip_port(tls=True)
        self.ctrl_port = free_tcp_port()
        self.tls = tls
        self.mediaenc = mediaenc
        self.auto_answer = auto_answer
        self.source_wav = Path(source_wav) if source_wav else self.dir / f"tone-{int(tone_hz)}hz.wav"
        if source_wav is None:
            write_tone_wav(self.source_wav, tone_hz, call_seconds)
        self.rtp_ports = rtp_ports
        self.extra_config = list(extra_config)
        self.account_params = account_params
        self.sip_trace = sip_trace
        self.log_path = self.dir / "baresip.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []  # every event, in order
        self._pending: list[dict[str, Any]] = []  # events not yet returned by wait_for_event
        self._responses: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._reader_task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._cmd_lock = asyncio.Lock()
        self._token = 0

    # ---- addresses

    @property
    def tls_port(self) -> int:
        return self.sip_port + 1

    def uri(self, transport: str = "udp") -> str:
        """This UA's SIP URI over ``udp``, ``tcp`` or ``tls`` (TLS listens on ``sip_port + 1``)."""
        if transport == "tls":
            return f"sip:{self.user}@{LOOPBACK}:{self.tls_port};transport=tls"
        if transport == "tcp":
            return f"sip:{self.user}@{LOOPBACK}:{self.sip_port};transport=tcp"
        return f"sip:{self.user}@{LOOPBACK}:{self.sip_port}"

    # ---- config

    def config_text(self) -> str:
        lines = [
            "poll_method epoll",
            f"sip_listen {LOOPBACK}:{self.sip_port}",
            # An address, not "lo": "net_interface lo" fails here (no IPv4 found for lo).
            f"net_interface {LOOPBACK}",
            "call_local_timeout 120",
            "call_max_calls 4",
            # aufile reads 8 kHz mono S16LE for PCMU; there is no null player: aubridge is one.
            f"audio_source aufile,{self.source_wav}",
            f"audio_player aubridge,{self.name}-play",
            f"audio_alert aubridge,{self.name}-alert",
            "audio_level no",
            "ausrc_format s16",
            "auplay_format s16",
            "auenc_format s16",
            "audec_format s16",
            "audio_buffer 20-160",
            "rtcp_mux no",
            "jitter_buffer_delay 5-10",
            "rtp_stats yes",
            f"module_path {BARESIP_MODULES}",
            "module g711.so",
            "module sndfile.so",
            "module aubridge.so",
            "module aufile.so",
            "module srtp.so",
            "module_tmp uuid.so",
            "module_tmp account.so",
            "module_app menu.so",  # the dial/accept/hangup/sndcode commands
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen {LOOPBACK}:{self.ctrl_port}",
            f"snd_path {self.record_dir}",
        ]
        if self.rtp_ports:
            lines.append(f"rtp_ports {self.rtp_ports[0]}-{self.rtp_ports[1]}")
        if self.tls:
            lines += [f"sip_certificate {self.tls.cert_and_key}", f"sip_cafile {self.tls.ca_file}"]
        return "\n".join(lines + self.extra_config) + "\n"

    def account_line(self) -> str:
        # No ;transport= in the AOR: baresip appends the account's transport to every dialled
        # URI, so the URI given to dial() decides the transport.
        params = ";regint=0;audio_codecs=pcmu"
        if self.mediaenc:
            params += f";mediaenc={self.mediaenc}"
        if self.auto_answer:
            params += ";answermode=auto"
        return f"<sip:{self.user}@{LOOPBACK}:{self.sip_port}>{params}{self.account_params}\n"

    # ---- process

    async def start(self, ready_timeout: float = 5.0) -> Baresip:
        exe = baresip_path()
        if exe is None:
            raise RuntimeError("baresip is not installed (Debian package baresip-core)")
        for attempt in range(3):
            (self.dir / "config").write_text(self.config_text())
            (self.dir / "accounts").write_text(self.account_line())
            (self.dir / "contacts").write_text("")
            args = [exe, "-f", str(self.dir), "-v"] + (["-s"] if self.sip_trace else [])
            log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            self._log = log
            self.proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.dir,
            )
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline and self.proc.returncode is None:
                try:
                    reader, writer = await asyncio.open_connection(LOOPBACK, self.ctrl_port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                self._writer = writer
                self._reader_task = asyncio.create_task(self._read_events(reader))
                if await self._sip_ready(deadline):
                    return self
                break
            await self._kill()
            log.close()
            tail = self.log_tail()
            if self._port_given or attempt == 2:
                raise BaresipError(f"baresip {self.name} did not start\n{tail}")
            self.sip_port = free_sip_port(tls=True)
            self.ctrl_port = free_tcp_port()
        raise BaresipError(f"baresip {self.name} did not start")

    async def _sip_ready(self, deadline: float) -> bool:
        # ctrl_tcp comes up after the SIP transports; check they are there (TLS too).
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.returncode is not None:
                return False
            ok = _udp_in_use(self.sip_port) and _tcp_listening(self.sip_port)
            if ok and self.tls:
                ok = _tcp_listening(self.tls_port)
            if ok:
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        """Hang up (so the recordings are closed), then quit baresip."""
        if self.proc is None:
            return
        if self.proc.returncode is None and self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.command("quit", check=False), 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 3)
        await self._kill()
        self._log.close()

    async def _kill(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(BaseException):
                await self._reader_task
            self._reader_task = None
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 3)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def __aenter__(self) -> Baresip:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- ctrl_tcp

    async def _read_events(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                length = await reader.readuntil(b":")
                body = await reader.readexactly(int(length[:-1]))
                await reader.readexactly(1)  # the ","
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                self._changed.set()
                return
            try:
                msg = json.loads(body)
            except ValueError:
                continue
            if msg.get("response"):
                self._responses.put_nowait(msg)
            elif msg.get("event"):
                msg["_time"] = time.monotonic()
                self.events.append(msg)
                self._pending.append(msg)
                self._changed.set()

    async def command(self, command: str, params: str = "", *, check: bool = True, timeout: float = 5) -> str:
        """Send one ctrl_tcp command (a menu command: dial, accept, hangup, sndcode, ...)."""
        if self._writer is None:
            raise BaresipError(f"baresip {self.name} is not running\n{self.log_tail()}")
        async with self._cmd_lock:
            self._token += 1
            token = f"t{self._token}"
            payload = json.dumps({"command": command, "params": params, "token": token}).encode()
            self._writer.write(_netstring(payload))
            await self._writer.drain()
            while True:
                try:
                    resp = await asyncio.wait_for(self._responses.get(), timeout)
                except TimeoutError:
                    raise BaresipError(
                        f"baresip {self.name}: no response to {command}\n{self.log_tail()}"
                    ) from None
                if resp.get("token") == token:
                    break
        if check and not resp.get("ok"):
            raise BaresipError(f"baresip {self.name}: {command} {params!r} failed: {resp.get('data')}")
        return str(resp.get("data", ""))

    async def dial(self, uri: str) -> None:
        """Call ``uri`` (e.g. ``other.uri("tls")``, or the B2BUA's ``sip:...;transport=tls``)."""
        await self.command("dial", uri)

    async def accept(self) -> None:
        await self.command("accept")

    async def hangup(self) -> None:
        await self.command("hangup")

    async def send_dtmf(self, digits: str, gap: float = 0.3) -> None:
        """Send DTMF (RFC 4733 telephone-events) in the current call, one digit per ``gap`` s."""
        for i, digit in enumerate(digits):
            if i:
                await asyncio.sleep(gap)
            await self.command("sndcode", digit)

    async def wait_for_event(self, match: EventPredicate, timeout: float = 10.0) -> dict[str, Any]:
        """The first event not returned before that matches: an event type ("CALL_ESTABLISHED",
        "CALL_INCOMING", "CALL_CLOSED", "CALL_DTMF_START", "CALL_MENC", ...) or a predicate on the
        event dict (keys: type, class, param, peeruri, id, direction, ...). Events that do not
        match stay available for later waits."""

        def matches(ev: dict[str, Any]) -> bool:
            return ev.get("type") == match if isinstance(match, str) else bool(match(ev))

        deadline = time.monotonic() + timeout
        while True:
            for ev in self._pending:
                if matches(ev):
                    self._pending.remove(ev)
                    return ev
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.proc is not None and self.proc.returncode is not None):
                seen = ", ".join(f"{e.get('type')}({e.get('param', '')})" for e in self.events) or "none"
                raise BaresipError(
                    f"baresip {self.name}: no event matching {match!r} within {timeout} s; events: {seen}\n"
                    f"{self.log_tail()}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_for_dtmf(self, count: int, timeout: float = 10.0) -> str:
        """The next ``count`` digits received (CALL_DTMF_START events), as a string."""
        digits = ""
        deadline = time.monotonic() + timeout
        while len(digits) < count:
            ev = await self.wait_for_event("CALL_DTMF_START", max(0.1, deadline - time.monotonic()))
            digits += str(ev.get("param", ""))
        return digits

    # ---- results

    def recorded_wavs(self) -> list[Path]:
        """The sndfile recordings, oldest first: ``dump-<time>-enc.wav`` (sent) and
        ``dump-<time>-dec.wav`` (heard). Complete once the call is closed."""
        return sorted(self.record_dir.glob("dump-*.wav"), key=lambda p: (p.stat().st_mtime, p.name))

    def recorded_wav(self, kind: str = "dec") -> Path:
        """The latest recording of ``kind``: "dec" (what baresip heard) or "enc" (what it sent)."""
        wavs = [p for p in self.recorded_wavs() if p.stem.endswith(f"-{kind}")]
        if not wavs:
            raise BaresipError(
                f"baresip {self.name}: no {kind} recording in {self.record_dir}\n{self.log_tail()}"
            )
        return wavs[-1]

    def log_tail(self, lines: int = 40) -> str:
        return f"--- {self.log_path} (tail) ---\n{_tail(self.log_path, lines)}"


# --------------------------------------------------------------------------- audio


def write_tone_wav(path: Path, freq: float, seconds: float, rate: int = 8000, amplitude: float = 0.3) -> Path:
    """A mono 16-bit WAV with a sine tone (what baresip's aufile source reads)."""
    n = int(seconds * rate)
    scale = amplitude * 32767
    step = 2 * math.pi * freq / rate
    frames = struct.pack(f"<{n}h", *(int(scale * math.sin(step * i)) for i in range(n)))
    path = Path(path)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def read_wav(path: Path) -> tuple[list[int], int]:
    """Samples (first channel, 16-bit) and the sample rate of a WAV file."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit WAV is supported")
        rate, channels, n = w.getframerate(), w.getnchannels(), w.getnframes()
        data = w.readframes(n)
    samples = list(struct.unpack(f"<{len(data) // 2}h", data))
    return samples[::channels], rate


def _window(samples: list[int], rate: int, skip: float, seconds: float | None) -> list[int]:
    start = min(int(skip * rate), len(samples))
    end = len(samples) if seconds is None else min(len(samples), start + int(seconds * rate))
    return samples[start:end]


def _goertzel(samples: Sequence[int], rate: int, freq: float) -> float:
    """Amplitude of ``freq`` in ``samples`` (a sine of amplitude A gives about A)."""
    n = len(samples)
    if n == 0:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return 2 * math.sqrt(max(power, 0.0)) / n


def tone_level(path: Path, freq: float, *, skip: float = 0.5, seconds: float | None = 1.0) -> float:
    """Amplitude (in 16-bit sample units) of ``freq`` in a WAV, past the first ``skip`` s."""
    samples, rate = read_wav(path)
    return _goertzel(_window(samples, rate, skip, seconds), rate, freq)


def dominant_frequency(
    path: Path,
    candidates: Iterable[float] | None = None,
    *,
    skip: float = 0.5,
    seconds: float | None = 1.0,
) -> float:
    """The strongest of ``candidates`` (default 100..3900 Hz every 25 Hz) in a WAV, measured
    with Goertzel over ``seconds`` after the first ``skip`` seconds. 0.0 if the file is silent."""
    samples, rate = read_wav(path)
    window = _window(samples, rate, skip, seconds)
    if not window or not any(window):
        return 0.0
    freqs = list(candidates) if candidates is not None else [f for f in range(100, 3901, 25)]
    levels = {f: _goertzel(window, rate, f) for f in freqs}
    return max(levels, key=lambda f: levels[f])


def rms(path: Path, *, skip: float = 0.0, seconds: float | None = None) -> float:
    """Root mean square of a WAV's samples (16-bit units; silence is 0)."""
    samples, rate = read_wav(path)
    window = _window(samples, rate, skip, seconds)
    if not window:
        return 0.0
    return math.sqrt(sum(x * x for x in window) / len(window))


# --------------------------------------------------------------------------- pytest marks

try:
    import pytest as _pytest

    needs_sipp = _pytest.mark.skipif(
        sipp_path() is None, reason="sipp is not installed (Debian sip-tester; .ci/run installs it)"
    )
    needs_baresip = _pytest.mark.skipif(
        baresip_path() is None or not (BARESIP_MODULES / "ctrl_tcp.so").exists(),
        reason="baresip is not installed (Debian baresip-core; .ci/run installs it)",
    )
except ImportError:  # pragma: no cover - peers.py used outside pytest
    pass
