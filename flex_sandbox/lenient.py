"""Reading JSON and query strings the lenient ASP.NET way Flex's API does: property and
parameter names case-insensitive, numbers accepted inside strings, unknown fields ignored."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from flask import request

_INTEGER = re.compile(r"^\s*-?\d+\s*$")


def fold(value):
    """A deep copy with every object key lower-cased, so lookups ignore case."""
    if isinstance(value, dict):
        return {str(key).lower(): fold(item) for key, item in value.items()}
    if isinstance(value, list):
        return [fold(item) for item in value]
    return value


def json_body() -> dict | None:
    """The request's JSON object with folded keys; None when the body is not a JSON object.
    Accepts application/json and application/*+json (Flex's examples send the latter)."""
    data = request.get_json(silent=True)
    return fold(data) if isinstance(data, dict) else None


def pick(data: dict | None, path: str):
    """pick(body, "transaction.amount"): the value at a dotted path, names in any case."""
    value = data
    for part in path.lower().split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def present(value) -> bool:
    return value is not None and value != ""


def as_int(value) -> int | None:
    """An integer, or an integer written as a string ("-5"); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.match(value):
        return int(value)
    return None


def as_decimal(value) -> Decimal | None:
    """A finite number, or one written as a string ("12.50"); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def query(name: str) -> str | None:
    """A query parameter by name in any case (`Environment=` and `environment=` both work)."""
    wanted = name.lower()
    for key, value in request.args.items():
        if key.lower() == wanted:
            return value
    return None
