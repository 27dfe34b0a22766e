"""Removes card data and secrets from anything about to be logged, stored or shown."""

from __future__ import annotations

import re
from typing import Any

from .models import luhn_valid

_PAN_KEYS = {"number", "cardnumber", "pan", "card_number"}
_CVC_KEYS = {"verification_value", "cvv", "cvc", "securitycode", "security_code"}
_SECRET_KEYS = {"appsecret", "app_secret", "accesstoken", "access_token", "refreshtoken",
                "refresh_token", "authorization", "password"}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# 13-19 digits, optionally separated by single spaces or dashes (how people type cards),
# standing alone: digits inside a UUID or another token (e.g. "385d3526-7002-4126-9be8-…")
# are not a card number.
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z-])\d(?:[ -]?\d){12,18}(?![0-9A-Za-z-])")


def redact(value: Any) -> Any:
    """A deep copy of JSON-like data with card numbers masked and secrets removed."""
    if isinstance(value, dict):
        return {key: _redact_field(str(key).lower(), item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return mask_card_numbers(value)
    return value


def mask_card_numbers(text: str) -> str:
    """Masks every Luhn-valid 13-19 digit run in free text."""
    def mask_if_card(match: re.Match) -> str:
        return _mask(match.group()) if luhn_valid(_digits(match.group())) else match.group()

    return _DIGIT_RUN.sub(mask_if_card, text)


def _redact_field(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in _SECRET_KEYS:
        return "[redacted]"
    if key in _CVC_KEYS:
        return "***"
    if key in _PAN_KEYS and isinstance(value, str | int) and not _UUID.match(str(value)):
        return _mask(str(value))  # a vault token (UUID) is safe to keep
    return redact(value)


def _mask(number: str) -> str:
    digits = _digits(number)
    if len(digits) < 10:
        return "*" * len(digits)
    return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)
