"""RFC 4475's 49 torture messages sent over UDP to a running stack, each answered (or not)
as the RFC allows (verdicts from testdata/rfc4475/INDEX.md).

The messages name documentation addresses in their Via; the changes made to them are an
`rport` parameter in the top Via (RFC 3581), so the answer comes back to the test's socket,
and the file's name appended to the top Via's branch: many files share a branch and a
sent-by, and sent together they would be retransmissions of each other (§17.2.3)."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

from tests.helpers.stack import running_stack
from tests.helpers.testdata import SHARED_TESTDATA

TESTDATA = SHARED_TESTDATA / "rfc4475"

ANY = "any answer"
NOT_400 = "an answer other than 400 (the message is valid)"
SILENCE = None  # a response: never answered
EITHER = "an answer or none"

ALLOWED: dict[str, object] = {
    # §3.1.1 valid: MUST ACCEPT
    **{n: NOT_400 for n in ("wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
                            "semiuri", "transports", "mpart01")},
    "unreason": SILENCE, "noreason": SILENCE,
    # §3.1.2 invalid
    "badinv01": {400}, "clerr": {400}, "ncl": {400}, "scalar02": {400}, "scalarlg": SILENCE, "quotbal": {400},
    "ltgtruri": ANY, "lwsruri": ANY, "lwsstart": ANY, "trws": ANY, "escruri": ANY, "baddate": ANY,
    "regbadct": ANY, "badaspec": ANY, "baddn": {400}, "badvers": {505}, "mismatch01": {400},
    "mismatch02": {400, 501}, "bigcode": SILENCE,
    # §3.2, §3.3
    "badbranch": ANY, "insuf": {400}, "unkscm": {416}, "novelsc": {416, 404}, "unksm2": ANY, "bext01": {420},
    "invut": NOT_400, "regaut01": NOT_400, "multi01": {400}, "mcl01": {400}, "bcast": EITHER, "zeromf": NOT_400,
    "cparam01": NOT_400, "cparam02": NOT_400, "regescrt": NOT_400, "sdp01": ANY,
    # §3.4: "should be accepted by RFC 3261 elements that want to maintain backwards
    # compatibility" with RFC 2543; we do not (no branch, no From tag): answered 400.
    "inv2543": {400},
}


def prepared(name: str, data: bytes) -> bytes:
    text = with_rport(data).decode("latin-1")
    if name != "badbranch":  # its empty branch is the point of it
        text = re.sub(r"(;branch=[^;,\s]*)", rf"\1-{name}", text, count=1)
    return text.encode("latin-1")


def with_rport(data: bytes) -> bytes:
    text = data.decode("latin-1")
    if re.search(r"(?im)^(via|v)\s*:.*rport", text):
        return data
    via = re.search(r"(?im)^(via|v)\s*:", text)
    assert via is not None
    branch = text.find(";branch=", via.start())
    next_header = re.compile(r"\r?\n\S").search(text, via.start())
    if branch != -1 and (next_header is None or branch < next_header.start() + 200):
        text = text[:branch] + ";rport" + text[branch:]
    else:
        text = re.sub(r"(?im)^((?:via|v)\s*:\s*SIP\s*/\s*2\.0\s*/\s*\w+\s+[^;,\s]+)", r"\1;rport", text, count=1)
    return text.encode("latin-1")


async def answer_to(port: int, data: bytes, wait: float) -> tuple[int | None, str]:
    """The final status we got back (None: none within ``wait`` seconds) and its text."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        await loop.sock_sendto(s, data, ("127.0.0.1", port))
        deadline = loop.time() + wait
        while (left := deadline - loop.time()) > 0:
            try:
                reply = await asyncio.wait_for(loop.sock_recv(s, 65535), left)
            except TimeoutError:
                break
            text = reply.decode("utf-8", "replace")
            m = re.match(r"SIP/2\.0 (\d{3})", text)
            if m and int(m.group(1)) >= 200:
                return int(m.group(1)), text
    return None, ""


def allowed(expected: object, status: int | None) -> bool:
    if expected is SILENCE:
        return status is None
    if expected == EITHER:
        return True
    if expected == ANY:
        return status is not None
    if expected == NOT_400:
        return status is not None and status != 400
    assert isinstance(expected, set)
    return status in expected


async def test_rfc4475_over_the_wire(tmp_path: Path) -> None:
    files = sorted(TESTDATA.glob("*.dat"))
    assert sorted(p.stem for p in files) == sorted(ALLOWED)
    async with running_stack(tmp_path) as stack:
        results = await asyncio.gather(*(
            answer_to(stack.sip_port, prepared(p.stem, p.read_bytes()), 1.5 if ALLOWED[p.stem] is SILENCE else 5.0)
            for p in files))
        # OPTIONS is answered with what we support (RFC 3261 §11.2), and the node still works.
        options = (b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKopt1;rport\r\n"
                   b"From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: opt1@test\r\n"
                   b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        status, text = await answer_to(stack.sip_port, options, 5.0)
    by_name = {p.stem: r for p, r in zip(files, results, strict=True)}
    wrong = {n: s for n, (s, _) in by_name.items() if not allowed(ALLOWED[n], s)}
    print(f"RFC 4475 over UDP: {len(files) - len(wrong)} of {len(files)} answered as the RFC allows; "
          f"not: {wrong}")
    assert not wrong
    # §8.2.2.3: the 420 lists what we do not support.
    assert "Unsupported: nothingSupportsThis, nothingSupportsThisEither" in by_name["bext01"][1]
    assert status == 200
    for header in ("Allow: INVITE", "Accept: application/sdp", "Supported: timer"):
        assert header in text, text
