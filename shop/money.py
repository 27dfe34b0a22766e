"""Dollars typed by a person -> integer cents, or a message saying what to type instead.

One parser for every amount the shop reads from a form. It accepts only what a person
means unambiguously: ASCII digits, an optional leading "$" and at most two decimal places.
Everything a general number parser would also take is refused, because each has a reading
that is not the one the person meant: "10,00" is ten euros in much of the world but 1000 to
a parser that drops commas; "1e3", "NaN", "Infinity", "+5", "1_0" and non-ASCII digits are
numbers to Python, not amounts to a shopper.
"""

from __future__ import annotations

import re

MAX_CENTS = 99_999_999_99  # $99,999,999.99: far above any order, far below SQLite's 2**63

_AMOUNT = re.compile(r"\$?[ ]?(?P<dollars>[0-9]*)(?:\.(?P<cents>[0-9]*))?")
_SEPARATORS = re.compile(r"[0-9][,_' ][0-9]")

EXAMPLE = "like 12.34"


class MoneyError(ValueError):
    """The text is not an amount; the message says what to type instead."""


def parse_dollars(text: str | None) -> int:
    """'12.34' or '$12.34' -> 1234 (cents, > 0). Raises MoneyError with a message for people."""
    text = (text or "").strip(" ")
    if not text:
        raise MoneyError(f"Enter an amount in dollars, {EXAMPLE}.")
    if text.startswith(("-", "\N{MINUS SIGN}", "$-")):
        raise MoneyError(f"Enter an amount greater than zero, {EXAMPLE}.")
    if _SEPARATORS.search(text):
        raise MoneyError(f"Type the amount without separators such as ',' or spaces, {EXAMPLE}.")
    match = _AMOUNT.fullmatch(text)
    if not match or not (match["dollars"] or match["cents"]):
        raise MoneyError(f"Enter an amount in dollars with digits 0-9 only, {EXAMPLE}.")
    dollars, cents = match["dollars"].lstrip("0"), match["cents"] or ""
    if len(cents) > 2:
        raise MoneyError(f"Use at most 2 decimal places (cents), {EXAMPLE}.")
    if len(dollars) > len(str(MAX_CENTS // 100)):  # before int(): no huge numbers built
        raise MoneyError(f"That amount is too large: at most ${MAX_CENTS / 100:,.2f}.")
    total = int(dollars or "0") * 100 + int(cents.ljust(2, "0"))
    if total <= 0:
        raise MoneyError(f"Enter an amount greater than zero, {EXAMPLE}.")
    if total > MAX_CENTS:
        raise MoneyError(f"That amount is too large: at most ${MAX_CENTS / 100:,.2f}.")
    return total


def format_dollars(cents: int) -> str:
    """1234 -> '$12.34' (what the shop shows)."""
    return f"${cents / 100:,.2f}"
