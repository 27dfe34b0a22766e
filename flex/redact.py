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


_SENSITIVE_KEYS = _PAN_KEYS | _CVC_KEYS | _SECRET_KEYS
_MIN_CARD_LENGTH = 13  # characters: text shorter than this holds no card number


def redact(value: Any) -> Any:
    """A deep copy of JSON-like data with card numbers masked and secrets removed."""
    # Runs on every body of every Flex call: the commonest kinds first, tuples of types
    # (not `list | tuple`, a new object per call), and short text returned as it is.
    if isinstance(value, str):
        return mask_card_numbers(value) if len(value) >= _MIN_CARD_LENGTH else value
    if isinstance(value, dict):
        return {key: _redact_field(str(key).lower(), item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):  # noqa: UP038 - faster than a union, per call
        return [redact(item) for item in value]
    return value


def mask_card_numbers(text: str) -> str:
    """Masks every Luhn-valid 13-19 digit run in free text."""
    return _DIGIT_RUN.sub(_mask_if_card, text)


def _mask_if_card(match: re.Match) -> str:
    return _mask(match.group()) if luhn_valid(_digits(match.group())) else match.group()


def _redact_field(key: str, value: Any) -> Any:
    if key not in _SENSITIVE_KEYS or value is None:
        return redact(value)
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
