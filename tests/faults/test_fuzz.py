"""Issue 14 item 12, the short CI run of bench/fuzz.py: mutated RFC 4475 and captured
messages over UDP and TCP at a running stack; afterwards the node still answers OPTIONS and
still connects a call, and no service stopped."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers.sipp import NUMBER, SCENARIOS, carrier, finish, sipp
from tests.helpers.stack import running_stack, udp_free_port

pytestmark = [
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.timeout(180),
]

_spec = importlib.util.spec_from_file_location("bench_fuzz", Path(__file__).resolve().parents[2] / "bench" / "fuzz.py")
assert _spec is not None and _spec.loader is not None
fuzz_module = importlib.util.module_from_spec(_spec)
sys.modules["bench_fuzz"] = fuzz_module  # dataclasses look their module up there
_spec.loader.exec_module(fuzz_module)


async def test_a_short_fuzz_run_leaves_the_stack_serving(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with running_stack(tmp_path, signaling={"invite_rate": 100000.0, "invite_burst": 100000}) as stack:
        report = await fuzz_module.fuzz("127.0.0.1", stack.sip_port, 20000, seed=14)
        print(report.line())
        assert report.sent == 20000 and report.sent_tcp > 0
        assert report.answers_after
        # Bad input is answered or dropped, never an unhandled exception (a bug) in a handler.
        crashes = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert not crashes, crashes[:5]
        for name, task in stack.tasks.items():
            assert not task.done(), f"{name} stopped during the fuzz run"
        # And a real call still connects.
        port = udp_free_port()
        await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{port}", "priority": 1}])
        pbx = await sipp(tmp_path, "pbx", "-sf", str(SCENARIOS / "client_answer.xml"), "-p", str(port),
                         "-mp", str(udp_free_port()), "-m", "1")
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "200")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(pbx, tmp_path, "pbx") == 0
