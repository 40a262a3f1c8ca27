"""Child processes that die with their parent: `switchboard up` killed outright (SIGKILL, an
OOM kill, a closed terminal) must not leave config, registry or nats-server running as
orphans that hold the ports of the next `up`."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # prctl(2), Linux only


def die_with_parent(parent: int | None = None, sig: int = signal.SIGTERM) -> None:
    """A `preexec_fn`: ask the kernel to send ``sig`` to this child when its parent dies.
    SIGTERM, so a service still drains (BYE to its calls) on its way out. The parent must
    fork from the thread that lives as long as it (PDEATHSIG follows the forking thread):
    `switchboard up` forks from its event loop's, the main thread."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    # The parent may have died between fork and prctl: then nobody will send the signal.
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def child_of_this_process() -> Callable[[], None]:
    """The `preexec_fn` for a child that dies with this process."""
    parent = os.getpid()
    return lambda: die_with_parent(parent)
