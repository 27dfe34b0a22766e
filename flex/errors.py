"""Typed errors raised by FlexClient. Callers decide by type, never by message text."""

from __future__ import annotations


class FlexError(Exception):
    """Base class: any failure talking to Flex."""

    def __init__(self, message: str, *, status: int | None = None, body: object = None):
        super().__init__(message)
        self.status = status
        self.body = body


class FlexValidationError(FlexError):
    """400 problem details: the request was wrong, so it is not retried.
    `field_errors` maps each field to its messages."""

    def __init__(self, message: str, *, field_errors: dict[str, list[str]] | None = None, **kw):
        super().__init__(message, **kw)
        self.field_errors = field_errors or {}


class FlexAuthError(FlexError):
    """Credentials refused (bad AppKey/AppSecret, or a 401 that survived one renewal)."""


class FlexUnavailableError(FlexError):
    """Flex could not answer in time: connection error, timeout, 429/5xx after retries,
    or a malformed body. The outcome of the call is unknown."""


class FlexRefundRefused(FlexError):
    """Flex answered the refund with status FAILED; `message` is its responseMessage."""

    def __init__(self, message: str, *, response_code: str | None = None, **kw):
        super().__init__(message, **kw)
        self.response_code = response_code
