"""PJSUA2 (PyPI `pjsua2-python`, the `pjsip` extra) as the customer's SIP client, in this
process: a local account on 127.0.0.1 that auto-answers over UDP or TLS, with SRTP (SDES)
mandatory or off, plays a tone WAV into the call, records what it hears to a WAV, and
keeps the RFC 4733 digits it receives.

pjsua2 runs its own worker thread (callbacks arrive there); every API call from the test
happens on the thread that created the endpoint. There is one pjsua2 endpoint per
process, so one `Pjsua` at a time."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.peers import free_sip_port, write_tone_wav

needs_pjsua2 = pytest.mark.skipif(importlib.util.find_spec("pjsua2") is None,
                                  reason="pjsua2 is not installed (pip install -e '.[pjsip]')")


class Pjsua:
    def __init__(self, workdir: Path, *, user: str = "carol", tls_cert: str | None = None, tls_key: str | None = None,
                 ca_file: str | None = None, srtp: bool = False, tone_hz: float = 600.0) -> None:
        import pjsua2 as pj

        self.pj = pj
        self.dir = Path(workdir) / f"pjsua-{user}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.tls = tls_cert is not None
        self.srtp = srtp
        self.tone = write_tone_wav(self.dir / f"tone-{int(tone_hz)}.wav", tone_hz, 30.0)
        self.recording = self.dir / "heard.wav"
        self.port = free_sip_port(tls=self.tls)
        self.digits: list[str] = []
        self.states: list[str] = []
        self.media_active = threading.Event()
        self.disconnected = threading.Event()
        self.call: Any = None
        self.closed = False
        self._keep: list[Any] = []  # pjsua2 objects Python must not collect while pjsua uses them

        ep = self.ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.logConfig.level = 4
        cfg.logConfig.consoleLevel = 0
        cfg.logConfig.filename = str(self.dir / "pjsua.log")
        cfg.uaConfig.threadCnt = 1
        cfg.medConfig.noVad = True
        ep.libInit(cfg)
        tc = pj.TransportConfig()
        tc.port = self.port
        tc.boundAddress = "127.0.0.1"
        if self.tls:
            tc.tlsConfig.certFile = tls_cert
            tc.tlsConfig.privKeyFile = tls_key
            if ca_file:
                tc.tlsConfig.CaListFile = ca_file
            ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tc)
        else:
            ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        ep.audDevManager().setNullDev()  # no sound card: the conference bridge runs on a null clock
        for codec in ep.codecEnum2():  # PCMU only, as Switchboard offers
            ep.codecSetPriority(codec.codecId, 255 if codec.codecId.startswith("PCMU/") else 0)
        ep.libStart()

        leg = self

        class Call(pj.Call):  # type: ignore[misc]
            def onCallState(self, prm: Any) -> None:
                info = self.getInfo()
                leg.states.append(info.stateText)
                if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                    leg.disconnected.set()

            def onCallMediaState(self, prm: Any) -> None:
                info = self.getInfo()
                for i, media in enumerate(info.media):
                    if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                        audio = self.getAudioMedia(i)
                        player = pj.AudioMediaPlayer()
                        player.createPlayer(str(leg.tone))
                        recorder = pj.AudioMediaRecorder()
                        recorder.createRecorder(str(leg.recording))
                        player.startTransmit(audio)
                        audio.startTransmit(recorder)
                        leg._keep += [player, recorder]
                        leg.media_active.set()

            def onDtmfDigit(self, prm: Any) -> None:
                leg.digits.append(prm.digit)

        class Account(pj.Account):  # type: ignore[misc]
            def onIncomingCall(self, prm: Any) -> None:
                call = Call(self, prm.callId)
                leg.call = call
                answer = pj.CallOpParam()
                answer.statusCode = 200
                call.answer(answer)

        acc_cfg = pj.AccountConfig()
        scheme = "sips" if self.tls else "sip"
        acc_cfg.idUri = f"{scheme}:{user}@127.0.0.1:{self.port}"
        acc_cfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_MANDATORY if srtp else pj.PJMEDIA_SRTP_DISABLED
        acc_cfg.mediaConfig.srtpSecureSignaling = 0  # our SIP is TLS already; do not insist on sips: URIs
        self.account = Account()
        self.account.create(acc_cfg)

    @property
    def uri(self) -> str:
        if self.tls:
            return f"sips:{self.user}@127.0.0.1:{self.port}"
        return f"sip:{self.user}@127.0.0.1:{self.port}"

    def send_dtmf(self, digits: str) -> None:
        """RFC 4733 events (pjsua's default DTMF method)."""
        self.call.dialDtmf(digits)

    async def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"pjsua: no {what} within {timeout}s; states {self.states}; "
                                     f"log {self.dir / 'pjsua.log'}")
            await asyncio.sleep(0.05)

    def finish_recording(self) -> Path:
        """End pjsua (the recorder's WAV header is written when the library closes it)
        and return what it heard. Call once the call is over."""
        self.close()
        return self.recording

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._keep.clear()
            self.call = None
            self.account.shutdown()
            self.ep.libDestroy()
        except Exception:  # pragma: no cover - teardown of a failed test
            pass
        # The C++ Endpoint is a singleton: it must be gone before the next Pjsua makes one.
        self.account = self.ep = None
        gc.collect()
