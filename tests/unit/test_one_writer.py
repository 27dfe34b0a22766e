"""One owner per piece of state, one word per concept: checked on the repository's text."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import ROOT

WRITES = re.compile(r"\b(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+(orders|refunds)\b", re.I)
# Migrations are history: the ones written before the rename keep the old column names.
HISTORY = {"shop/storage/migrations/001_orders.sql",
           "shop/storage/migrations/006_recovery_names.sql"}


def _sources(*suffixes: str) -> list[Path]:
    skip = ("tests", "bench", ".venv", ".git", "instance", "node_modules")
    return [path for path in ROOT.rglob("*") if path.suffix in suffixes and path.is_file()
            and not path.relative_to(ROOT).parts[0].startswith(skip)]


def test_only_the_lifecycle_module_writes_orders_and_refunds():
    writers = {str(path.relative_to(ROOT)) for path in _sources(".py")
               if WRITES.search(path.read_text())}
    assert writers == {"shop/orders/lifecycle.py"}


def test_the_word_reconcile_is_gone_from_code_templates_and_docs():
    found = [str(path.relative_to(ROOT)) for path in _sources(".py", ".html", ".sql", ".md", ".js")
             if "reconcil" in path.read_text().lower()
             and str(path.relative_to(ROOT)) not in HISTORY]
    assert found == []


def test_one_backoff_rule():
    """Doubling delays are computed in flex/backoff.py only (the HTTP layer's pause between
    retries inside one call, flex/_http.py, is its own, bounded by the call's deadline; the
    sandbox is Flex's stand-in, not the shop)."""
    doubling = re.compile(r"\*\s*2\s*\*\*\s*[(\w]")
    found = {str(path.relative_to(ROOT)) for path in _sources(".py")
             if doubling.search(path.read_text())
             and path.relative_to(ROOT).parts[0] != "flex_sandbox"}
    assert found <= {"flex/backoff.py", "flex/_http.py"}


def test_backoff_doubles_from_base_to_cap_with_jitter_in_the_upper_half():
    from flex.backoff import backoff_delay

    assert [backoff_delay(n, base=10, cap=600, jitter=False) for n in (0, 1, 2, 3, 7, 50)] == [
        10, 10, 20, 40, 600, 600]
    assert all(20 <= backoff_delay(3, base=10, cap=600) <= 40 for _ in range(50))
