"""One owner per piece of state, one word per concept: checked on the repository's text."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRITES = re.compile(r"\b(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+(orders|refunds)\b", re.I)
# Migrations are history: the ones written before the rename keep the old column names.
HISTORY = {"shop/migrations/001_orders.sql", "shop/migrations/006_recovery_names.sql"}


def _sources(*suffixes: str) -> list[Path]:
    skip = ("tests", "bench", ".venv", ".git", "instance", "node_modules")
    return [path for path in ROOT.rglob("*") if path.suffix in suffixes and path.is_file()
            and not path.relative_to(ROOT).parts[0].startswith(skip)]


def test_only_the_lifecycle_module_writes_orders_and_refunds():
    writers = {str(path.relative_to(ROOT)) for path in _sources(".py")
               if WRITES.search(path.read_text())}
    assert writers == {"shop/lifecycle.py"}


def test_the_word_reconcile_is_gone_from_code_templates_and_docs():
    found = [str(path.relative_to(ROOT)) for path in _sources(".py", ".html", ".sql", ".md", ".js")
             if "reconcil" in path.read_text().lower()
             and str(path.relative_to(ROOT)) not in HISTORY]
    assert found == []
