"""FlexClient: every call this integration makes to Flex's API, one method per endpoint.

Each call builds its request and reads Flex's answer into a typed result; a bearer token is
cached until shortly before it expires and renewed by one thread at a time. What every call
shares is in the private HTTP layer, flex/_http.py: kept-alive connections, explicit
(connect, read) timeouts and one deadline per call (the token fetch and the wait for it
included), bounded jittered retries only where a retry is safe, typed errors, and a hook
that reports each attempt, redacted, for logs and the integration inspector.

API reference: https://docs.flexfactor.io (paths below are relative to `FlexConfig.api_url`).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import quote

import urllib3

from . import payloads
from ._http import Caller, CallReport, Request, transport_for
from .errors import (
    FlexAuthError,
    FlexNotFoundError,
    FlexUnavailableError,
    FlexValidationError,
)
from .models import (
    CancelResult,
    CaptureResult,
    Card,
    CardSummary,
    Evaluation,
    FlexOrder,
    OrderPage,
    OrderStatus,
    Outcome,
    OutcomeResult,
    ProcessorResult,
    Purchase,
    RefundResult,
    TransactionType,
    TransmitResult,
    VaultedCard,
    card_brand,
)

__all__ = ["PRODUCTION_API_URL", "SANDBOX_API_URL", "CallReport", "FlexClient", "FlexConfig"]

# Flex's current hosts (docs.flexfactor.io). Older docs and Flex's Node sample use
# api-sandbox.flex-charge.com / api.flex-charge.com, which serve the same API.
SANDBOX_API_URL = "https://api-sandbox.flexfactor.io/v1"
PRODUCTION_API_URL = "https://api.flexfactor.io/v1"

DONE_WORDS = {"SUCCESS", "APPROVED"}  # refund/capture status words that mean "done"


@dataclass(frozen=True)
class FlexConfig:
    """One Flex environment's credentials and this client's timeouts (seconds)."""

    api_url: str  # SANDBOX_API_URL or PRODUCTION_API_URL (paths are appended; a final / is ok)
    app_key: str
    app_secret: str = field(repr=False)
    mid: str
    tokenization_key: str = field(repr=False)  # sent only as /tokenize ?environment=
    site_id: str = ""  # "" = the MID has one site (siteId is left out)
    # /evaluate's transactionType: PURCHASE (Flex charges at once, APPROVED) or AUTHORIZATION
    # (Flex authorizes, CAPTUREREQUIRED; capture at shipment or cancel). Any case.
    transaction_type: TransactionType | str = TransactionType.PURCHASE
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    max_retries: int = 2  # retries after the first attempt
    deadline: float = 15.0  # seconds per call: token, retries and backoff included
    backoff_base: float = 0.2
    backoff_cap: float = 2.0
    # Kept-alive connections: at least the threads that call Flex at once (a web worker's
    # request threads + CitFlow's vault workers + the relay's senders), or the surplus
    # connections are closed after each call and opened anew.
    pool_size: int = 32

    def __post_init__(self) -> None:
        try:
            kind = TransactionType(str(self.transaction_type).upper())
        except ValueError:
            raise ValueError(f"transaction_type must be PURCHASE or AUTHORIZATION, not "
                             f"{self.transaction_type!r}") from None
        object.__setattr__(self, "transaction_type", kind)


class FlexClient:
    """Flex's REST API over one connection pool. Share one per process; thread-safe.
    Every call takes `ref` (filed with its CallReport) and `deadline` (seconds, narrows
    `FlexConfig.deadline`); every call may raise FlexUnavailableError (outcome unknown)."""

    REFRESH_MARGIN = 60.0  # seconds before `expires` at which the token is renewed

    def __init__(self, config: FlexConfig, *,
                 on_call: Callable[[CallReport], None] | None = None,
                 http: urllib3.PoolManager | None = None):
        """`on_call`: called with a redacted CallReport after every attempt. `http`: a urllib3
        pool manager to send through; by default the environment (proxy, CA bundle) is read
        once, here, as `requests` reads it (flex/_http.py)."""
        self.config = config
        self._http = Caller(config, transport_for(config.api_url, config.pool_size, http),
                            on_call=on_call, bearer=self._bearer)
        self._token: str | None = None
        self._token_expires = 0.0  # epoch seconds
        self._token_lock = threading.Lock()

    # --- payload builders (MID and site id from the config) -----------------------------

    def transmit_payload(self, purchase: Purchase, card: CardSummary,
                         processor: ProcessorResult) -> dict:
        """The /transmit body for a sale the processor approved (JSON-ready; no card number)."""
        return payloads.transmit_body(purchase, card, processor, mid=self.config.mid,
                                      site_id=self.config.site_id)

    def evaluate_payload(self, purchase: Purchase, card: CardSummary, vault_token: str,
                         processor: ProcessorResult, *, idempotency_key: str) -> dict:
        """The /evaluate body for a declined sale (JSON-ready, so it can be kept and replayed
        with the same `idempotency_key`), with the config's `transaction_type`."""
        return payloads.evaluate_body(purchase, card, vault_token, processor,
                                      mid=self.config.mid, site_id=self.config.site_id,
                                      idempotency_key=idempotency_key,
                                      transaction_type=self.config.transaction_type)

    # --- the API -----------------------------------------------------------------------

    def authenticate(self, *, force: bool = False, ref: str | None = None,
                     deadline: float | None = None) -> str:
        """The bearer token, cached ~10 min: fetched (POST /oauth2/token) when missing, near expiry
        or `force`d. Raises FlexAuthError for bad credentials.
        API reference: https://docs.flexfactor.io ("Authentication")."""
        return self._bearer(self._expires(deadline), ref, force=force)

    def tokenize(self, card: Card, *, email: str = "", sense_key: str = "",
                 ref: str | None = None, deadline: float | None = None) -> VaultedCard:
        """Vaults a card (POST /tokenize) and returns its token, BIN and last 4 digits.
        Raises FlexValidationError for a card Flex rejects.
        API reference: https://docs.flexfactor.io ("Tokenize")."""
        body = payloads.tokenize_body(card, email=email, sense_key=sense_key)
        params = {"mid": self.config.mid, "environment": self.config.tokenization_key}
        answer = self._http.call(Request("tokenize", "POST", "/tokenize", self._expires(deadline),
                                     body=body, params=params, ref=ref))
        method = (answer.get("transaction") or {}).get("payment_method") or {}
        if not method.get("token"):
            raise FlexUnavailableError("tokenize answered without a vault token", body=answer)
        return VaultedCard(
            token=method["token"],
            brand=card_brand(card.number),
            bin=str(method.get("first_six_digits") or card.number[:6]),
            last4=str(method.get("last_four_digits") or card.number[-4:]),
        )

    def transmit(self, payload: dict, *, ref: str | None = None,
                 deadline: float | None = None) -> TransmitResult:
        """Tells Flex about a sale the processor approved (POST /transmit); safe to resend.
        Raises FlexValidationError for a malformed payload.
        API reference: https://docs.flexfactor.io ("Transmit")."""
        answer = self._http.call(Request("transmit", "POST", "/transmit", self._expires(deadline),
                                     body=payload, ref=ref))
        return TransmitResult(transmit_id=answer.get("transmitId"), raw=answer)

    def evaluate(self, payload: dict, *, ref: str | None = None,
                 deadline: float | None = None) -> Evaluation:
        """Asks Flex to rescue a declined sale (POST /evaluate): APPROVED, DECLINED, CHALLENGE...
        Replaying the same idempotencyKey returns the first decision. Raises
        FlexValidationError, or FlexUnavailableError when the decision is unknown.
        API reference: https://docs.flexfactor.io ("Evaluate")."""
        answer = self._http.call(Request("evaluate", "POST", "/evaluate", self._expires(deadline),
                                     body=payload, ref=ref))
        status, key = str(answer.get("status") or "").upper(), answer.get("orderSessionKey")
        if status not in Outcome.__members__ or not key:
            raise FlexUnavailableError(
                f"evaluate answered without a known status and orderSessionKey ({status!r})",
                body=answer)
        return Evaluation(status=Outcome(status), order_session_key=key, raw=answer)

    def refund(self, order_session_key: str, amount_cents: int, message: str = "", *,
               ref: str | None = None, deadline: float | None = None) -> RefundResult:
        """Refunds `amount_cents` (integer cents, sent as dollars) of a Flex-charged order.
        POST /orders/{orderSessionKey}/refund; never retried once it may have been sent.
        Raises FlexRefundRefused (e.g. more than is left), FlexNotFoundError,
        FlexValidationError. API reference: https://docs.flexfactor.io ("Refund")."""
        # Flex's refund takes no idempotency key, so a retry after the request may have
        # reached Flex could refund twice: retry only when it provably never left here.
        answer = self._http.call(Request(
            "refund", "POST", f"/orders/{_segment(order_session_key)}/refund",
            self._expires(deadline), body=payloads.refund_body(amount_cents, message), ref=ref,
            retry_unless_sent=True))
        return RefundResult(order_session_key, amount_cents, _done_word("refund", answer),
                            raw=answer)

    def get_order(self, order_session_key: str, *, ref: str | None = None,
                  deadline: float | None = None) -> FlexOrder:
        """One Flex order, amounts in cents (GET /orders/{orderSessionKey}).
        Raises FlexNotFoundError for an unknown key.
        API reference: https://docs.flexfactor.io ("Get order")."""
        answer = self._http.call(Request("order", "GET", f"/orders/{_segment(order_session_key)}",
                                     self._expires(deadline), ref=ref))
        return _order(answer)

    def find_orders(self, *, query: str | None = None, status: OrderStatus | str | None = None,
                    from_: date | str | None = None, to: date | str | None = None,
                    page: int = 1, page_size: int = 20, ref: str | None = None,
                    deadline: float | None = None) -> OrderPage:
        """Searches Flex's orders, newest first, `page_size` (≤ 100) per page (GET /orders).
        `query` matches the merchant's order id or the email; `from_`/`to` are dates on
        orderPlacedDate; `page` counts from 1.
        API reference: https://docs.flexfactor.io ("List orders")."""
        if isinstance(status, OrderStatus):
            status = status.name
        params = {"query": query, "status": status, "from": _iso(from_), "to": _iso(to),
                  "pageNumber": page, "pageSize": page_size}
        answer = self._http.call(Request("orders", "GET", "/orders", self._expires(deadline),
                                     params={k: v for k, v in params.items() if v is not None},
                                     ref=ref))
        items = answer.get("items")
        if not isinstance(items, list):
            raise FlexUnavailableError("orders answered without items", body=answer)
        return OrderPage(items=tuple(_order(item) for item in items),
                         total_count=int(answer.get("totalCount") or len(items)),
                         page=int(answer.get("pageNumber") or page),
                         page_size=int(answer.get("pageSize") or page_size))

    def find_order_by_reference(self, merchant_order_id: str, *, ref: str | None = None,
                                deadline: float | None = None) -> FlexOrder | None:
        """The newest Flex order for the merchant's order id, or None (GET /orders?query=):
        how to settle an /evaluate whose answer never arrived.
        API reference: https://docs.flexfactor.io ("List orders")."""
        page = self.find_orders(query=merchant_order_id, page_size=100, ref=ref,
                                deadline=deadline)
        return next((o for o in page.items if o.merchant_order_id == merchant_order_id), None)

    def outcome(self, order_session_key: str, *, ref: str | None = None,
                deadline: float | None = None) -> OutcomeResult:
        """Deprecated by Flex, use get_order: a Flex order's decision (POST /outcome).
        Status NOTFOUND for an unknown key (`.found` is False). Kept for integrations that
        still call it; warns when called. API reference: https://docs.flexfactor.io ("Outcome")."""
        warnings.warn("Flex deprecated POST /outcome: look the order up with "
                      "FlexClient.get_order (GET /orders/{id})", DeprecationWarning,
                      stacklevel=2)
        answer = self._http.call(Request("outcome", "POST", "/outcome", self._expires(deadline),
                                     body={"orderSessionKey": order_session_key}, ref=ref))
        status = str(answer.get("status") or "").upper()
        if not status:
            raise FlexUnavailableError("outcome answered without a status", body=answer)
        return OutcomeResult(status, answer.get("confirmationId"), raw=answer)

    def capture(self, order_session_key: str, amount_cents: int, currency: str,
                idempotency_key: str, *, ref: str | None = None,
                deadline: float | None = None) -> CaptureResult:
        """Captures `amount_cents` (integer cents, ≤ the authorized amount) (POST /capture).
        For a CAPTUREREQUIRED order. Raises FlexRefused (wrong state, too much),
        FlexConflictError (key reused), FlexNotFoundError.
        API reference: https://docs.flexfactor.io ("Capture")."""
        body = payloads.capture_body(order_session_key, amount_cents, currency, idempotency_key)
        answer = self._http.call(Request("capture", "POST", "/capture", self._expires(deadline),
                                     body=body, ref=ref))
        return CaptureResult(order_session_key, amount_cents, currency,
                             _done_word("capture", answer), raw=answer)

    def cancel(self, order_session_key: str, idempotency_key: str | None = None, *,
               ref: str | None = None, deadline: float | None = None) -> CancelResult:
        """Voids a CAPTUREREQUIRED order (POST /orders/{orderSessionKey}/cancel); repeatable.
        Raises FlexRefused (already captured), FlexNotFoundError, FlexConflictError.
        API reference: https://docs.flexfactor.io ("Cancel order")."""
        answer = self._http.call(Request(
            "cancel", "POST", f"/orders/{_segment(order_session_key)}/cancel",
            self._expires(deadline), body=payloads.cancel_body(idempotency_key), ref=ref))
        return CancelResult(found=True, raw=answer)

    def external_cancel(self, merchant_order_id: str, idempotency_key: str | None = None, *,
                        ref: str | None = None, deadline: float | None = None) -> CancelResult:
        """Voids the order Flex holds for the merchant's order id, if any (external-cancel).
        POST /orders/{merchantOrderId}/external-cancel: the fallback when /evaluate went
        unanswered. No such order: `found` False, not raised.
        API reference: https://docs.flexfactor.io ("External cancel")."""
        try:
            answer = self._http.call(Request(
                "external-cancel", "POST",
                f"/orders/{_segment(merchant_order_id)}/external-cancel", self._expires(deadline),
                body=payloads.cancel_body(idempotency_key), ref=ref))
        except FlexNotFoundError as exc:
            return CancelResult(found=False, raw=exc.body if isinstance(exc.body, dict) else {})
        return CancelResult(found=True, raw=answer)

    def close(self) -> None:
        """Closes the kept-alive connections."""
        self._http.close()

    # --- token -------------------------------------------------------------------------

    def _expires(self, deadline: float | None) -> float:
        """The monotonic time a call must be over by: `deadline` seconds, at most the config's."""
        seconds = self.config.deadline if deadline is None else min(deadline,
                                                                     self.config.deadline)
        return time.monotonic() + seconds

    def _token_fresh(self) -> bool:
        return bool(self._token) and time.time() < self._token_expires - self.REFRESH_MARGIN

    def _bearer(self, expires: float, ref: str | None, *, force: bool = False,
                rejected: str | None = None) -> str:
        """A usable token by `expires`: the cached one, or one thread fetches it while the
        others wait for it, no longer than their own deadlines."""
        if not force and rejected is None and self._token_fresh():
            return self._token
        if not self._token_lock.acquire(timeout=max(0.0, expires - time.monotonic())):
            raise FlexUnavailableError("token: another thread's token fetch outlasted the "
                                       "deadline")
        try:
            stale = force or not self._token_fresh() or (rejected and self._token == rejected)
            if stale:  # nobody renewed it while this thread waited
                self._fetch_token(expires, ref)
            return self._token
        finally:
            self._token_lock.release()

    def _fetch_token(self, expires: float, ref: str | None) -> None:
        body = {"AppKey": self.config.app_key, "AppSecret": self.config.app_secret}
        try:
            answer = self._http.call(Request("token", "POST", "/oauth2/token", expires, body=body,
                                         ref=ref, authed=False))
        except FlexValidationError as exc:  # Flex answers bad credentials with a 400
            raise FlexAuthError("Flex refused the AppKey/AppSecret", status=exc.status) from exc
        token = answer.get("accessToken")
        if not token:
            raise FlexUnavailableError("token endpoint answered without accessToken")
        self._token = token
        expires_ms = answer.get("expires")  # epoch milliseconds
        self._token_expires = expires_ms / 1000 if expires_ms else time.time() + 600

# --- parsing -------------------------------------------------------------------------------

def _done_word(endpoint: str, answer: dict) -> str:
    """The status word of a refund/capture Flex accepted (SUCCESS, success, APPROVED); any
    other word leaves the outcome unknown."""
    for word in (answer.get("status"), answer.get("responseMessage")):
        if str(word or "").upper() in DONE_WORDS:
            return str(word)
    raise FlexUnavailableError(f"{endpoint} answered without a known status", body=answer)


def _order(answer: dict) -> FlexOrder:
    key = answer.get("id")
    if not key:
        raise FlexUnavailableError("order answered without an id", body=answer)
    code = answer.get("status")
    try:
        status: OrderStatus | int = OrderStatus(int(code))
    except (TypeError, ValueError):
        status = int(code) if isinstance(code, int) else -1
    return FlexOrder(
        order_session_key=str(key), status=status,
        status_name=str(answer.get("statusName") or getattr(status, "name", "")),
        merchant_order_id=answer.get("referenceNumber"), amount_cents=answer.get("amount"),
        currency=answer.get("currencyCode"), placed_at=answer.get("orderPlacedDate"),
        email=answer.get("email"), correlation_id=answer.get("correlationId"),
        refunded_cents=answer.get("refundedAmount"), raw=answer,
    )


def _segment(value: str) -> str:
    """An id as one URL path segment (a merchant order id may hold any character)."""
    return quote(str(value), safe="")


def _iso(value: date | str | None) -> str | None:
    return value.isoformat() if isinstance(value, date) else value
