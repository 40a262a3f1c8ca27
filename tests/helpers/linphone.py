"""linphonec (Debian `linphone-cli`) as the customer's SIP client: auto-answers on
127.0.0.1 over UDP (TLS is configurable, but belle-sip accepts no incoming TLS
connection: see tests/interop/test_b2bua_linphone.py), with SRTP (SDES) mandatory or off, in file mode (no sound card:
it plays a tone WAV into the call and records what it hears), driven over its stdin.

linphonec prints `Receiving tone <d>` for each RFC 4733 digit it gets; a line holding one
DTMF character sends that digit."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers.peers import free_sip_port, free_udp_port, write_tone_wav

needs_linphone = pytest.mark.skipif(shutil.which("linphonec") is None,
                                    reason="linphonec is not installed (Debian linphone-cli; .ci/run installs it)")


class Linphone:
    def __init__(self, workdir: Path, *, user: str = "dave", tls_cert: str | None = None, tls_key: str | None = None,
                 ca_file: str | None = None, srtp: bool = False, tone_hz: float = 600.0) -> None:
        self.dir = Path(workdir) / f"linphone-{user}"
        self.dir.mkdir(parents=True, exist_ok=True)
        # Without its database directory (under $HOME) linphone's core never starts listening.
        (self.dir / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        self.user = user
        self.tls = tls_cert is not None
        self.port = free_sip_port(tls=self.tls)
        self.tone = write_tone_wav(self.dir / f"tone-{int(tone_hz)}.wav", tone_hz, 30.0)
        self.recording = self.dir / "heard.wav"
        self.log_path = self.dir / "linphone.log"
        self.output: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        rtp = free_udp_port()
        sip = [
            "[sip]",
            f"sip_port={-1 if self.tls else self.port}",
            "sip_tcp_port=-1",
            f"sip_tls_port={self.port if self.tls else -1}",
            "bind_address=127.0.0.1",
            "guess_hostname=0",
            f"contact=sip:{user}@127.0.0.1",
            "ipv6=0",
            "media_encryption=" + ("srtp" if srtp else "none"),
            f"media_encryption_mandatory={1 if srtp else 0}",
            "srtp_crypto_suites=AES_CM_128_HMAC_SHA1_80",
            "inc_timeout=60",
            "auto_net_state_mon=0",  # loopback only: no network monitor deciding we are offline
        ]
        if self.tls:
            sip += [f"client_cert_chain={tls_cert}", f"client_cert_key={tls_key}", f"root_ca={ca_file}",
                    "verify_server_certs=0", "verify_server_cn=0"]
        config = sip + [
            "[rtp]", f"audio_rtp_port={rtp}", "audio_jitt_comp=60", "audio_adaptive_jitt_comp_enabled=0",
            "[net]", "firewall_policy=0", "auto_net_state_mon=0",
            "[sound]", "echocancellation=0",
            "[audio_codec_0]", "mime=PCMU", "rate=8000", "channels=1", "enabled=1",
            "[video]", "enabled=0", "capture=0", "display=0",
        ]
        self.config = self.dir / "linphonerc"
        self.config.write_text("\n".join(config) + "\n")

    @property
    def uri(self) -> str:
        if self.tls:
            return f"sip:{self.user}@127.0.0.1:{self.port};transport=tls"
        return f"sip:{self.user}@127.0.0.1:{self.port}"

    async def start(self) -> Linphone:
        self.proc = await asyncio.create_subprocess_exec(
            "linphonec", "-c", str(self.config), "-d", "4", "-l", str(self.log_path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={"HOME": str(self.dir), "PATH": "/usr/bin:/bin"})
        self._reader = asyncio.create_task(self._read())
        for command in ("soundcard use files", f"play {self.tone}", f"record {self.recording}",
                        "autoanswer enable"):
            await self.command(command)
        await self.wait_for(lambda: any("Auto answer enabled" in line or "autoanswer" in line.lower()
                                        for line in self.output), "auto-answer")
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.output.append(line.decode(errors="replace").rstrip())

    async def command(self, text: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def send_dtmf(self, digit: str) -> None:
        await self.command(digit)

    @property
    def digits(self) -> str:
        return "".join(m.group(1) for line in self.output if (m := re.search(r"Receiving tone (\S)", line)))

    def said(self, text: str) -> bool:
        return any(text in line for line in self.output)

    async def wait_for(self, predicate: object, what: str, timeout: float = 15.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        check = predicate if callable(predicate) else (lambda: self.said(str(predicate)))
        while not check():
            if loop.time() > deadline:
                raise AssertionError(f"linphonec: no {what} within {timeout}s:\n" + "\n".join(self.output[-30:]))
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            await self.command("quit")
            await asyncio.wait_for(self.proc.wait(), 10)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader
