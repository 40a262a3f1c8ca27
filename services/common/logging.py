"""Structured logging: text by default, JSON with `SWITCHBOARD_LOG_JSON=1`.

Every line logged while handling a call carries its `call_id` (set with `call_context`)."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

current_call_id: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="")


@contextmanager
def call_context(call_id: str) -> Iterator[None]:
    token = current_call_id.set(call_id)
    try:
        yield
    finally:
        current_call_id.reset(token)


class _CallIdFilter(logging.Filter):
    def __init__(self, service: str, node: str) -> None:
        super().__init__()
        self.service = service
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "call_id", ""):
            record.call_id = current_call_id.get()
        record.service = self.service
        record.node = self.node
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "service": getattr(record, "service", ""),
            "node": getattr(record, "node", ""),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        call_id = getattr(record, "call_id", "")
        if call_id:
            out["call_id"] = call_id
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        cid = getattr(record, "call_id", "")
        line = f"{ts} {record.levelname[0]} {record.name}: {record.getMessage()}"
        if cid:
            line += f" call_id={cid}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(service: str, node: str = "", *, json_lines: bool = False, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_CallIdFilter(service, node))
    handler.setFormatter(_JsonFormatter() if json_lines else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("nats", "asyncio", "uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
