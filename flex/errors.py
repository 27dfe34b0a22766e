"""Typed errors raised by FlexClient. Callers decide by type, never by message text.

    FlexError
    ├── FlexValidationError   400 field errors: the request was wrong; never retried
    ├── FlexAuthError         credentials or bearer refused (400 on /oauth2/token, 401, 403)
    ├── FlexNotFoundError     404: no such order
    ├── FlexConflictError     409: an idempotency key reused with another request
    ├── FlexRefused           Flex answered, and said no (envelope status FAILED)
    │   └── FlexRefundRefused     ... to a refund
    └── FlexUnavailableError  no usable answer in time: the outcome is UNKNOWN
"""

from __future__ import annotations


class FlexError(Exception):
    """Base class: any failure talking to Flex. `status` is the HTTP status, if one came."""

    def __init__(self, message: str, *, status: int | None = None, body: object = None):
        super().__init__(message)
        self.status = status
        self.body = body


class FlexValidationError(FlexError):
    """HTTP 400 with field errors: the request was wrong, so it is not retried.
    `fields` maps each field (e.g. "Transaction.Amount") to its messages; `trace_id` is
    Flex's trace id for support tickets."""

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None,
                 trace_id: str | None = None, **kw):
        super().__init__(message, **kw)
        self.fields = fields or {}
        self.trace_id = trace_id


class FlexAuthError(FlexError):
    """Credentials refused: bad AppKey/AppSecret, a 401 that survived one renewal, or a 403
    (e.g. a `mid` in the body that is not the bearer's)."""


class FlexNotFoundError(FlexError):
    """HTTP 404: Flex has no such order (or no such path)."""


class FlexConflictError(FlexError):
    """HTTP 409: an idempotency key was reused for a different request."""


class FlexRefused(FlexError):
    """Flex took the request and refused it (envelope `status: FAILED`), e.g. a capture
    above the authorized amount. `endpoint` is the call ("capture", "cancel", ...), `code`
    Flex's responseCode, `message` its responseMessage. Nothing happened; do not retry as is."""

    def __init__(self, message: str, *, endpoint: str, code: str | None = None, **kw):
        super().__init__(message, **kw)
        self.endpoint = endpoint
        self.code = code
        self.message = message


class FlexRefundRefused(FlexRefused):
    """Flex refused a refund (e.g. responseCode "2001": more than is left to refund)."""


class FlexUnavailableError(FlexError):
    """Flex gave no usable answer in time: connection error, timeout, 429/5xx after retries,
    a malformed body or an unknown status word. The outcome of the call is unknown."""
