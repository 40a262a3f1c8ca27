"""The bus contract: subjects are built only in proto/subjects.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from proto import subjects

REPO = Path(__file__).resolve().parents[3]
# The first token of every subject family proto defines.
ROOTS = ("routing", "config", "media", "call", "callctl", "signaling", "heartbeat", "registry", "$SRV")
SUBJECT_LITERAL = re.compile("^(" + "|".join(re.escape(r) for r in ROOTS) + r")\.[A-Za-z0-9_*>{$-]")


def string_constants(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
    return out


def test_no_subject_literal_outside_proto() -> None:
    offenders = []
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if rel.parts[0] in {".venv", "proto", "build"} or "site-packages" in rel.parts:
            continue
        if rel.parts[0] == "tests" and rel.name == "test_subjects.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(rel))
        for lineno, value in string_constants(tree):
            # A subject literal starts with one of proto's roots followed by a dot.
            if SUBJECT_LITERAL.match(value):
                offenders.append(f"{rel}:{lineno}: {value!r}")
    assert not offenders, "subject literals outside proto/subjects.py:\n" + "\n".join(offenders)


def test_grep_catches_a_literal(tmp_path: Path) -> None:
    """The check above is not vacuous: a planted literal is found."""
    tree = ast.parse('x = "routing.resolve"\ny = "media.worker.w1.update"\n')
    found = [v for _, v in string_constants(tree) if SUBJECT_LITERAL.match(v)]
    assert found == ["routing.resolve", "media.worker.w1.update"]


def test_variable_tokens_are_checked() -> None:
    assert subjects.call_event("abc-1", "ringing") == "call.abc-1.ringing"
    for bad in ("a.b", "*", ">", "has space", ""):
        with pytest.raises(subjects.SubjectError):
            subjects.media_allocate(bad)
