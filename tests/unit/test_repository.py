"""The repository is self-contained: nothing in it points at notes that live outside it.

Flex's API facts live in docs/FLEX_API.md. Earlier drafts cited working notes kept next to the
repository (a Flex API reference and a design note); a reader who copies the code cannot
follow such a citation, so no tracked file may name them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Spelled in pieces so that this file does not match itself.
OUTSIDE_NOTES = re.compile("|".join((
    r"shared/" + r"flex-api",
    r"shared/" + r"DESIGN",
    r"\bflex-api" + r"\.md\b",
    r"\bDESIGN" + r"\.md\b",
)))


def tracked_text_files() -> list[Path]:
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                                 capture_output=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    files = [ROOT / name for name in listing.decode().split("\0") if name]
    return [path for path in files if path.is_file() and b"\0" not in path.read_bytes()[:8192]]


def mentions(text: str) -> list[str]:
    return [f"line {number}: {match.group(0)}"
            for number, line in enumerate(text.splitlines(), 1)
            for match in OUTSIDE_NOTES.finditer(line)]


def test_the_pattern_catches_outside_notes_and_spares_our_own_reference():
    api, design = "flex-" + "api", "DES" + "IGN"
    assert mentions(f"see shared/{api}.md §15") == [f"line 1: shared/{api}"]
    assert mentions(f"x\n(shared/{design}.md)") == [f"line 2: shared/{design}"]
    assert mentions(f"the {design}.md note") == [f"line 1: {design}.md"]
    assert mentions(f"the {api}.md note") == [f"line 1: {api}.md"]
    assert mentions("docs/FLEX_API.md, docs/SANDBOX.md, flex/README.md") == []


def test_no_tracked_file_cites_notes_outside_the_repository():
    files = tracked_text_files()
    assert ROOT / "README.md" in files  # the listing really is the repository
    offenders = {str(path.relative_to(ROOT)): found for path in files
                 if (found := mentions(path.read_text(encoding="utf-8", errors="replace")))}
    assert offenders == {}, "cite docs/FLEX_API.md (or nothing) instead"
