"""Verify and parse the signed webhooks Flex POSTs to the merchant. Pure: no web framework.

The scheme is the one Flex's webhook documentation describes; we confirmed it by recomputing
the signed example Flex publishes (the unit tests check that example byte for byte):

- `x-fc-content-sha512` is base64(SHA-512(raw body)).
- `x-fc-authorization` is `HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;
  x-fc-content-sha512&Signature=<sig>`, where sig = base64(HMAC-SHA512(key = the base64-decoded
  subscriber key from Flex's portal, message = "POST\\n" + nonce + ";" + date + ";" + host +
  ";" + content hash)).
- `x-fc-nonce` is a random value per delivery (32 hex digits); `x-fc-date` is RFC 1123 GMT.

Beyond the signature, our choices: a delivery dated more than `max_age_seconds` (default 5
minutes) away from our clock is refused, and so is a nonce seen before (a captured request
replayed). The body is JSON text; it is parsed from the raw bytes whatever the content type.

    event = verify(request.get_data(), request.headers, key, nonces=store)  # or WebhookRejected

Flex may deliver an event more than once (`IsResent: true`, or a retry after a slow answer):
store `event.event_id` under a unique constraint and apply each event idempotently.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from enum import StrEnum
from typing import Any, Protocol

SCHEME = "HMAC-SHA512"
SIGNED_HEADERS = ("x-fc-nonce", "x-fc-date", "host", "x-fc-content-sha512")
MAX_NONCE_LENGTH = 128  # Flex sends 32; anything much longer is not Flex's


class EventType(StrEnum):
    """The event names Flex documents. An event not listed here still parses (its raw name)."""

    ORDER_COMPLETED = "order.completed"
    ORDER_REFUNDED = "order.refunded"  # Flex marks this one critical
    ORDER_CANCELLED = "order.cancelled"
    ORDER_EXPIRED = "order.expired"
    ORDER_CAPTURE_REQUIRED = "order.capturerequired"
    CHARGEBACK_RECEIVED = "payment.chargeback.received"
    CHALLENGE_PRESENTED = "challenge.presented"
    CHALLENGE_ATTEMPTED = "challenge.attempted"
    CHALLENGE_PASSED = "challenge.passed"
    CHALLENGE_FAILED = "challenge.failed"
    PAYOUT_CREATED = "payout.created"
    PAYOUT_UPDATED = "payout.updated"


class WebhookRejected(Exception):
    """A delivery that must not be trusted or cannot be read. `reason` is short and safe to
    log: it never contains the body, the key or a signature."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class WebhookUnreadable(WebhookRejected):
    """A delivery whose signature checked out but whose body cannot be read as a Flex event
    (not JSON, a field of the wrong type, a TimeStamp out of range, text that is not valid
    Unicode). Answer it 400, not 401: the sender is Flex, the body is the problem."""


@dataclass(frozen=True)
class WebhookEvent:
    """One verified Flex event. An id Flex leaves out or sends as null is None."""

    event_id: str  # derived idempotency key, the same for every delivery (see event_id_for)
    event_type: EventType | str  # an EventType when known, else the raw name
    timestamp: datetime  # when the event happened (UTC), not when it was delivered
    order_id: str | None  # Flex's orderSessionKey
    external_order_id: str | None  # the merchant's orderId
    confirmation_id: str | None
    is_test_mode: bool
    is_resent: bool  # a redelivery of an event Flex sent before
    event_data: Any = None  # as Flex sent it (usually null)


class NonceStore(Protocol):
    """Remembers delivery nonces to refuse replays. Share one store between every process that
    receives webhooks (e.g. a table with the nonce as primary key)."""

    def seen_before(self, nonce: str, expires_at: float) -> bool:
        """Atomically record `nonce` until `expires_at` (Unix seconds); True if it was already
        recorded and has not expired."""
        ...


class MemoryNonceStore:
    """A NonceStore for one process: thread-safe, forgets nonces once they expire, and holds
    at most `max_entries` (when full, the soonest to expire is forgotten first)."""

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.time):
        self._max_entries = max_entries
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []  # (expires_at, nonce), soonest first
        self._lock = threading.Lock()

    def seen_before(self, nonce: str, expires_at: float) -> bool:
        """Record `nonce` until `expires_at` (Unix seconds); True if it is already recorded."""
        with self._lock:
            # Kept through expires_at itself: verify() still accepts a delivery dated exactly then.
            self._forget(lambda: self._heap and self._heap[0][0] < self._clock())
            if nonce in self._expiry:
                return True
            self._forget(lambda: len(self._expiry) >= self._max_entries)
            self._expiry[nonce] = expires_at
            heapq.heappush(self._heap, (expires_at, nonce))
            return False

    def __len__(self) -> int:
        return len(self._expiry)

    def _forget(self, condition: Callable[[], object]) -> None:
        while condition():
            _, nonce = heapq.heappop(self._heap)
            del self._expiry[nonce]


def verify(
    raw_body: bytes,
    headers: Mapping[str, str],
    key: str,
    *,
    nonces: NonceStore | None,
    now: float | None = None,
    max_age_seconds: float = 300,
    host: str | None = None,
) -> WebhookEvent:
    """Check a delivery's content hash, signature, date and nonce, then parse its body.

    `key` is the subscriber key from Flex's portal (base64); `headers` may be any mapping, names
    are matched case-insensitively; `now` is Unix seconds (default: the clock). `nonces` has no
    default so that skipping the replay check (`nonces=None`) is a visible choice. `host`: the
    public host name Flex posted to, when a proxy in front of the app rewrites the Host header
    (default: the Host header).
    Raises WebhookRejected.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    nonce, date, signed_host, content_hash, authorization = (
        _required(lowered, name) for name in (*SIGNED_HEADERS, "x-fc-authorization"))
    if len(nonce) > MAX_NONCE_LENGTH:
        raise WebhookRejected("x-fc-nonce is too long")
    sent_at = _parse_date(date)
    signature = _signature_from(authorization)
    if not hmac.compare_digest(_b64decode(content_hash, "x-fc-content-sha512"),
                               hashlib.sha512(raw_body).digest()):
        raise WebhookRejected("x-fc-content-sha512 does not match the body")
    expected = _hmac(_decode_key(key), nonce, date, host or signed_host, content_hash)
    if not hmac.compare_digest(signature, expected):
        raise WebhookRejected("signature does not match")
    _check_age(sent_at, time.time() if now is None else now, max_age_seconds)
    if nonces is not None and nonces.seen_before(nonce, sent_at + max_age_seconds):
        raise WebhookRejected("x-fc-nonce was used before (replay)")
    return parse(raw_body)


def parse(raw_body: bytes) -> WebhookEvent:
    """Parse a body that was already verified into a WebhookEvent. Raises WebhookUnreadable
    (a WebhookRejected).

    Property names are read case-insensitively (Flex sends PascalCase, and its API is
    case-insensitive elsewhere)."""
    try:
        data = json.loads(raw_body)
    except (UnicodeDecodeError, ValueError):
        raise WebhookUnreadable("body is not JSON") from None
    if not isinstance(data, dict):
        raise WebhookUnreadable("body is not a JSON object")
    fields = {name.lower(): value for name, value in data.items()}
    name = fields.get("event")
    stamp = fields.get("timestamp")
    if not isinstance(name, str) or not name or not _encodable(name):
        raise WebhookUnreadable("body has no Event name")
    if not isinstance(stamp, str) or not _encodable(stamp):
        raise WebhookUnreadable("body has no TimeStamp")
    order_id = _optional_str(fields, "OrderId")
    external_order_id = _optional_str(fields, "ExternalOrderId")
    return WebhookEvent(
        event_id=event_id_for(name, order_id, external_order_id, stamp),
        event_type=_event_type(name),
        timestamp=_parse_timestamp(stamp),
        order_id=order_id,
        external_order_id=external_order_id,
        confirmation_id=_optional_str(fields, "ConfirmationId"),
        is_test_mode=_flag(fields, "IsTestMode"),
        is_resent=_flag(fields, "IsResent"),
        event_data=fields.get("eventdata"),
    )


def event_id_for(event: str, order_id: str | None, external_order_id: str | None,
                 timestamp: str) -> str:
    """A stable idempotency key (64 hex digits) for one event.

    Flex's body carries no event id, so we derive one from what names the event: its type, its
    order and the moment it happened (`TimeStamp`, as sent, to the microsecond). `IsResent` and
    the delivery headers (nonce, date) change between deliveries and are left out, so every
    redelivery of an event maps to the same id. If Flex ever re-stamped a resent event, it would
    get a new id: apply events idempotently by their effect too (a second `order.refunded` for
    an amount already recorded changes nothing).
    """
    identity = json.dumps([event, order_id, external_order_id, timestamp])
    return hashlib.sha256(identity.encode()).hexdigest()


def sign(raw_body: bytes, key: str, host: str, *, nonce: str | None = None,
         date: datetime | None = None) -> dict[str, str]:
    """The headers Flex would send with `raw_body`: for tests and for posting test webhooks to
    your own endpoint. Flex is the real sender; the shop never needs this. `date` must be
    timezone-aware (default: now). Raises WebhookRejected when `key` is not base64."""
    nonce = nonce or secrets.token_hex(16)
    date_header = format_datetime((date or datetime.now(UTC)).astimezone(UTC), usegmt=True)
    content_hash = base64.b64encode(hashlib.sha512(raw_body).digest()).decode()
    signature = base64.b64encode(_hmac(_decode_key(key), nonce, date_header, host, content_hash))
    return {
        "host": host,
        "x-fc-nonce": nonce,
        "x-fc-date": date_header,
        "x-fc-content-sha512": content_hash,
        "x-fc-authorization": (f"{SCHEME} SignedHeaders={';'.join(SIGNED_HEADERS)}"
                               f"&Signature={signature.decode()}"),
    }


def _hmac(key: bytes, nonce: str, date: str, host: str, content_hash: str) -> bytes:
    message = f"POST\n{nonce};{date};{host};{content_hash}"
    return hmac.new(key, message.encode(), hashlib.sha512).digest()


def _required(headers: dict[str, str], name: str) -> str:
    value = headers.get(name, "")
    if not value:
        raise WebhookRejected(f"missing header {name}")
    return value


def _signature_from(authorization: str) -> bytes:
    """The raw signature from `HMAC-SHA512 SignedHeaders=...&Signature=...`."""
    scheme, _, params = authorization.strip().partition(" ")
    if scheme.upper() != SCHEME:
        raise WebhookRejected("x-fc-authorization is not HMAC-SHA512")
    values = {}
    for part in params.split("&"):
        name, _, value = part.partition("=")  # base64 padding keeps its "=": split once
        values[name.strip().lower()] = value.strip()
    signed = tuple(name.strip().lower() for name in values.get("signedheaders", "").split(";"))
    if signed != SIGNED_HEADERS:
        raise WebhookRejected("x-fc-authorization signs unexpected headers")
    if not values.get("signature"):
        raise WebhookRejected("x-fc-authorization has no Signature")
    return _b64decode(values["signature"], "signature")


def _decode_key(key: str) -> bytes:
    if not key:
        raise WebhookRejected("no webhook key configured")
    return _b64decode(key, "webhook key")


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRejected(f"{what} is not base64") from None


def _parse_date(date: str) -> float:
    """Unix seconds of an `x-fc-date` (RFC 1123, e.g. "Mon, 20 Mar 2023 17:16:40 GMT")."""
    try:
        sent = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise WebhookRejected("x-fc-date is not an RFC 1123 date") from None
    return (sent if sent.tzinfo else sent.replace(tzinfo=UTC)).timestamp()


def _check_age(sent_at: float, now: float, max_age_seconds: float) -> None:
    if now - sent_at > max_age_seconds:
        raise WebhookRejected(f"x-fc-date is older than {max_age_seconds:g} s")
    if sent_at - now > max_age_seconds:
        raise WebhookRejected(f"x-fc-date is more than {max_age_seconds:g} s in the future")


def _parse_timestamp(stamp: str) -> datetime:
    try:
        moment = datetime.fromisoformat(stamp)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        moment.timestamp()  # representable as Unix seconds too
    except ValueError:
        raise WebhookUnreadable("body TimeStamp is not an ISO 8601 time") from None
    except OverflowError:  # e.g. 9999-12-31T23:59:59-23:59 is past year 9999 in UTC
        raise WebhookUnreadable("body TimeStamp is out of range") from None
    return moment


def _event_type(name: str) -> EventType | str:
    try:
        return EventType(name)
    except ValueError:
        return name  # an event Flex added after this code was written: keep its name


def _optional_str(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name.lower())
    if value is not None and not isinstance(value, str):
        raise WebhookUnreadable(f"body field {name} is not a string")
    if value is not None and not _encodable(value):
        raise WebhookUnreadable(f"body field {name} is not storable text")
    return value or None


def _encodable(text: str) -> bool:
    """False for text JSON can carry but a database cannot store: a lone surrogate such as
    \\ud800 (not UTF-8) or a NUL character (PostgreSQL's text refuses it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _flag(fields: dict[str, Any], name: str) -> bool:
    value = fields.get(name.lower(), False)
    if not isinstance(value, bool):
        raise WebhookUnreadable(f"body field {name} is not true/false")
    return value
