"""Where the shared test vectors are: ``shared/testdata`` next to the repository (or next to
one of its parents, for a git worktree kept in a sub-folder)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _shared_testdata() -> Path:
    for parent in REPO.parents:
        if (parent / "shared" / "testdata").is_dir():
            return parent / "shared" / "testdata"
    return REPO.parent / "shared" / "testdata"  # where it belongs; the tests then say it is missing


SHARED_TESTDATA = _shared_testdata()
