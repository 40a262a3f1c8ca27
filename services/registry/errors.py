"""Errors of the registry service."""

from __future__ import annotations

from pathlib import Path


class RegistryError(Exception):
    """Base of the registry's own errors."""


class TopologyError(RegistryError):
    """The regions file is malformed: says which file, line and field, so start-up fails
    with something an operator can fix."""

    def __init__(self, path: Path | str, line: int | None, field: str, problem: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {field or '<document>'}: {problem}")
        self.path = str(path)
        self.line = line
        self.field = field
        self.problem = problem


class BadHeartbeat(RegistryError):
    """A heartbeat that does not describe a node we can count (unknown region, bad data)."""


class TrunkInputError(RegistryError):
    """An operator-supplied trunk is invalid; `field` names the offending input."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
