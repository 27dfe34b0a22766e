"""FlexClient: every call this integration makes to Flex's API.

One pool of kept-alive connections (urllib3's, which `requests` is built on, used directly:
see `_transport`); a bearer token cached until shortly before it expires and renewed by one
thread at a time; explicit (connect, read) timeouts and a total deadline on
every call, the token fetch and the wait for it included; bounded, jittered retries only
where a retry is safe; typed results and errors; and a hook that reports each attempt,
redacted, for logs and the integration inspector.

API reference: https://docs.flexfactor.io (paths below are relative to `FlexConfig.api_url`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import quote, urlencode, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProxyError,
    ReadTimeoutError,
)

from . import payloads, purposes
from .errors import (
    FlexAuthError,
    FlexConflictError,
    FlexError,
    FlexNotFoundError,
    FlexRefundRefused,
    FlexRefused,
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
from .redact import redact

log = logging.getLogger("flex")

# Flex's current hosts (docs.flexfactor.io). Older docs and Flex's Node sample use
# api-sandbox.flex-charge.com / api.flex-charge.com, which serve the same API.
SANDBOX_API_URL = "https://api-sandbox.flexfactor.io/v1"
PRODUCTION_API_URL = "https://api.flexfactor.io/v1"

DONE_WORDS = {"SUCCESS", "APPROVED"}  # refund/capture status words that mean "done"
REFUSED_WORDS = {"FAILED", "FAIL"}  # ... and "refused" (compared upper-cased)


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


@dataclass(frozen=True)
class CallReport:
    """One HTTP attempt, safe to store and show: bodies are redacted."""

    endpoint: str  # token, tokenize, transmit, evaluate, refund, order, orders, outcome,
    #                capture, cancel or external-cancel
    method: str
    path: str
    status: int | None  # None: no HTTP answer (timeout, connection error)
    ms: int
    attempt: int
    request: object
    response: object
    error: str | None
    ref: str | None  # the caller's reference, e.g. the merchant order id
    # Why the call was made and the action it belongs to: by default from the caller's
    # `flex.purpose(...)` block around the call (flex/purposes.py), read where it is made.
    purpose: str | None = None
    action: str | None = None

    def __post_init__(self):
        if self.purpose is None:
            why, action = purposes.for_call(self.endpoint)
            object.__setattr__(self, "purpose", why)
            object.__setattr__(self, "action", self.action or action)


@dataclass(frozen=True)
class _Request:
    """One logical call, as the transport needs it."""

    endpoint: str  # the name in CallReport and in error messages
    method: str
    path: str
    expires: float  # time.monotonic() by which the call, retries included, must be over
    body: dict | None = None
    params: dict | None = None
    ref: str | None = None
    authed: bool = True
    retry_unless_sent: bool = False  # not idempotent: retry only what never left here


class _NoAnswer(Exception):
    """An attempt that got no HTTP response."""

    def __init__(self, message: str, *, never_sent: bool):
        super().__init__(message)
        self.never_sent = never_sent


@dataclass(frozen=True)
class _Answer:
    """An HTTP answer, read in full."""

    status: int
    headers: urllib3.HTTPHeaderDict
    content: bytes


class FlexClient:
    """Flex's REST API over one connection pool. Share one per process; thread-safe.
    Every call takes `ref` (filed with its CallReport) and `deadline` (seconds, narrows
    `FlexConfig.deadline`); every call may raise FlexUnavailableError (outcome unknown)."""

    REFRESH_MARGIN = 60.0  # seconds before `expires` at which the token is renewed

    def __init__(self, config: FlexConfig, *,
                 on_call: Callable[[CallReport], None] | None = None,
                 http: urllib3.PoolManager | None = None):
        """`http`: the urllib3 pool manager to send through; by default one set up from the
        environment (proxy, CA bundle) as `requests` would, once, here."""
        self.config = config
        self._on_call = on_call
        self._http = http or _transport(config.api_url, config.pool_size)
        self._base = config.api_url.rstrip("/")
        self._base_path = urlsplit(self._base).path
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
        """The bearer token: cached, or fetched (POST /oauth2/token) when missing, near expiry
        or `force`d. Raises FlexAuthError for bad credentials."""
        return self._bearer(self._expires(deadline), ref, force=force)

    def tokenize(self, card: Card, *, email: str = "", sense_key: str = "",
                 ref: str | None = None, deadline: float | None = None) -> VaultedCard:
        """Vaults a card (POST /tokenize, API reference "Tokenize"); returns its token and
        BIN. Raises FlexValidationError for a card Flex rejects."""
        body = payloads.tokenize_body(card, email=email, sense_key=sense_key)
        params = {"mid": self.config.mid, "environment": self.config.tokenization_key}
        answer = self._call(_Request("tokenize", "POST", "/tokenize", self._expires(deadline),
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
        """Tells Flex about a sale the processor approved (POST /transmit, API reference
        "Transmit"). Safe to resend. Raises FlexValidationError for a malformed payload."""
        answer = self._call(_Request("transmit", "POST", "/transmit", self._expires(deadline),
                                     body=payload, ref=ref))
        return TransmitResult(transmit_id=answer.get("transmitId"), raw=answer)

    def evaluate(self, payload: dict, *, ref: str | None = None,
                 deadline: float | None = None) -> Evaluation:
        """Asks Flex to rescue a declined sale (POST /evaluate, API reference "Evaluate").
        Replaying the same idempotencyKey returns the first decision. Raises
        FlexValidationError, or FlexUnavailableError when the decision is unknown."""
        answer = self._call(_Request("evaluate", "POST", "/evaluate", self._expires(deadline),
                                     body=payload, ref=ref))
        status, key = str(answer.get("status") or "").upper(), answer.get("orderSessionKey")
        if status not in Outcome.__members__ or not key:
            raise FlexUnavailableError(
                f"evaluate answered without a known status and orderSessionKey ({status!r})",
                body=answer)
        return Evaluation(status=Outcome(status), order_session_key=key, raw=answer)

    def refund(self, order_session_key: str, amount_cents: int, message: str = "", *,
               ref: str | None = None, deadline: float | None = None) -> RefundResult:
        """Refunds `amount_cents` (integer cents; sent as dollars) of a Flex-charged order
        (POST /orders/{orderSessionKey}/refund, API reference "Refund"). Raises
        FlexRefundRefused (e.g. more than is left), FlexNotFoundError, FlexValidationError."""
        # Flex's refund takes no idempotency key, so a retry after the request may have
        # reached Flex could refund twice: retry only when it provably never left here.
        answer = self._call(_Request(
            "refund", "POST", f"/orders/{_segment(order_session_key)}/refund",
            self._expires(deadline), body=payloads.refund_body(amount_cents, message), ref=ref,
            retry_unless_sent=True))
        return RefundResult(order_session_key, amount_cents, _done_word("refund", answer),
                            raw=answer)

    def get_order(self, order_session_key: str, *, ref: str | None = None,
                  deadline: float | None = None) -> FlexOrder:
        """One Flex order (GET /orders/{orderSessionKey}, API reference "Get order").
        Raises FlexNotFoundError for an unknown key."""
        answer = self._call(_Request("order", "GET", f"/orders/{_segment(order_session_key)}",
                                     self._expires(deadline), ref=ref))
        return _order(answer)

    def find_orders(self, *, query: str | None = None, status: OrderStatus | str | None = None,
                    from_: date | str | None = None, to: date | str | None = None,
                    page: int = 1, page_size: int = 20, ref: str | None = None,
                    deadline: float | None = None) -> OrderPage:
        """Searches Flex's orders, newest first (GET /orders, API reference "List orders").
        `query` matches the merchant's order id or the email; `from_`/`to` are dates on
        orderPlacedDate; `page` counts from 1; `page_size` at most 100."""
        if isinstance(status, OrderStatus):
            status = status.name
        params = {"query": query, "status": status, "from": _iso(from_), "to": _iso(to),
                  "pageNumber": page, "pageSize": page_size}
        answer = self._call(_Request("orders", "GET", "/orders", self._expires(deadline),
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
        """The newest Flex order for the merchant's order id, or None: how to settle an
        /evaluate whose answer never arrived (GET /orders?query=)."""
        page = self.find_orders(query=merchant_order_id, page_size=100, ref=ref,
                                deadline=deadline)
        return next((o for o in page.items if o.merchant_order_id == merchant_order_id), None)

    def outcome(self, order_session_key: str, *, ref: str | None = None,
                deadline: float | None = None) -> OutcomeResult:
        """Deprecated by Flex: use get_order (GET /orders/{id}). A Flex order's decision
        (POST /outcome, API reference "Outcome"); status NOTFOUND for an unknown key
        (`.found` is False). Kept for integrations that still call it; warns when called."""
        warnings.warn("Flex deprecated POST /outcome: look the order up with "
                      "FlexClient.get_order (GET /orders/{id})", DeprecationWarning,
                      stacklevel=2)
        answer = self._call(_Request("outcome", "POST", "/outcome", self._expires(deadline),
                                     body={"orderSessionKey": order_session_key}, ref=ref))
        status = str(answer.get("status") or "").upper()
        if not status:
            raise FlexUnavailableError("outcome answered without a status", body=answer)
        return OutcomeResult(status, answer.get("confirmationId"), raw=answer)

    def capture(self, order_session_key: str, amount_cents: int, currency: str,
                idempotency_key: str, *, ref: str | None = None,
                deadline: float | None = None) -> CaptureResult:
        """Captures `amount_cents` (integer cents, at most the authorized amount) of a
        CAPTUREREQUIRED order (POST /capture, API reference "Capture"). Raises FlexRefused
        (wrong state, too much), FlexConflictError (key reused), FlexNotFoundError."""
        body = payloads.capture_body(order_session_key, amount_cents, currency, idempotency_key)
        answer = self._call(_Request("capture", "POST", "/capture", self._expires(deadline),
                                     body=body, ref=ref))
        return CaptureResult(order_session_key, amount_cents, currency,
                             _done_word("capture", answer), raw=answer)

    def cancel(self, order_session_key: str, idempotency_key: str | None = None, *,
               ref: str | None = None, deadline: float | None = None) -> CancelResult:
        """Voids a CAPTUREREQUIRED order (POST /orders/{orderSessionKey}/cancel, API reference
        "Cancel order"); safe to repeat. Raises FlexRefused (already captured),
        FlexNotFoundError, FlexConflictError."""
        answer = self._call(_Request(
            "cancel", "POST", f"/orders/{_segment(order_session_key)}/cancel",
            self._expires(deadline), body=payloads.cancel_body(idempotency_key), ref=ref))
        return CancelResult(found=True, raw=answer)

    def external_cancel(self, merchant_order_id: str, idempotency_key: str | None = None, *,
                        ref: str | None = None, deadline: float | None = None) -> CancelResult:
        """Voids the order Flex holds for the merchant's order id (POST
        /orders/{merchantOrderId}/external-cancel, API reference "External cancel"): the
        fallback when /evaluate went unanswered. No such order: `found` False, not raised."""
        try:
            answer = self._call(_Request(
                "external-cancel", "POST",
                f"/orders/{_segment(merchant_order_id)}/external-cancel", self._expires(deadline),
                body=payloads.cancel_body(idempotency_key), ref=ref))
        except FlexNotFoundError as exc:
            return CancelResult(found=False, raw=exc.body if isinstance(exc.body, dict) else {})
        return CancelResult(found=True, raw=answer)

    def close(self) -> None:
        """Closes the pooled connections."""
        self._http.clear()

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
            answer = self._call(_Request("token", "POST", "/oauth2/token", expires, body=body,
                                         ref=ref, authed=False))
        except FlexValidationError as exc:  # Flex answers bad credentials with a 400
            raise FlexAuthError("Flex refused the AppKey/AppSecret", status=exc.status) from exc
        token = answer.get("accessToken")
        if not token:
            raise FlexUnavailableError("token endpoint answered without accessToken")
        self._token = token
        expires_ms = answer.get("expires")  # epoch milliseconds
        self._token_expires = expires_ms / 1000 if expires_ms else time.time() + 600

    # --- transport ---------------------------------------------------------------------

    def _call(self, request: _Request) -> dict:
        """One logical call: attempts, retries within the deadline, and error mapping."""
        attempt = retries = 0
        token = rejected = None
        renewed = False
        while True:
            attempt += 1
            if request.authed:
                token = self._bearer(request.expires, request.ref, rejected=rejected)
            try:
                response = self._attempt(request, token, attempt)
            except _NoAnswer as exc:
                retryable = exc.never_sent or not request.retry_unless_sent
                if retryable and self._may_retry(retries, request.expires, None):
                    retries += 1
                    continue
                raise FlexUnavailableError(f"{request.endpoint}: {exc}") from None

            status = response.status
            if status == 401 and request.authed and not renewed:
                renewed, rejected = True, token  # expired or revoked: renew once, replay once
                continue
            rejected = None
            if status == 429 or status >= 500:
                retry_after = response.headers.get("Retry-After")
                if not request.retry_unless_sent and self._may_retry(retries, request.expires,
                                                                     retry_after):
                    retries += 1
                    continue
                raise FlexUnavailableError(f"{request.endpoint}: HTTP {status}", status=status,
                                           body=_text(response))
            return _parse(request.endpoint, response)

    def _may_retry(self, retries: int, expires: float, retry_after: str | None) -> bool:
        """Sleeps before a retry and returns True, or False if none is left or time is up."""
        if retries >= self.config.max_retries:
            return False
        ceiling = min(self.config.backoff_cap, self.config.backoff_base * 2**retries)
        pause = random.uniform(0, ceiling)  # noqa: S311 - full jitter, not cryptography
        if retry_after and retry_after.isdigit():
            pause = max(pause, float(retry_after))
        if time.monotonic() + pause >= expires:
            return False
        time.sleep(pause)
        return True

    def _attempt(self, request: _Request, token: str | None, attempt: int) -> _Answer:
        left = request.expires - time.monotonic()
        if left <= 0:
            raise _NoAnswer("deadline passed", never_sent=True)
        headers = dict(HEADERS)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = None
        if request.body is not None:
            body = json.dumps(request.body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        url = self._base + request.path
        if request.params:
            url += "?" + urlencode(request.params)
        timeout = urllib3.Timeout(connect=min(self.config.connect_timeout, left),
                                  read=min(self.config.read_timeout, left))
        started = time.monotonic()
        response = error = None
        try:
            # No retries or redirects here: _call decides what may be retried, and a bearer
            # token is never sent on to another URL.
            raw = self._http.urlopen(request.method, url, body=body, headers=headers,
                                     timeout=timeout, retries=False, redirect=False)
            response = _Answer(raw.status, raw.headers, raw.data)
            return response
        except (HTTPError, OSError) as exc:
            error = _describe(exc)
            raise _NoAnswer(error, never_sent=_never_sent(exc)) from None
        finally:
            self._log_attempt(request, response, error, started, attempt)

    def _log_attempt(self, request: _Request, response: _Answer | None,
                     error: str | None, started: float, attempt: int) -> None:
        ms = round((time.monotonic() - started) * 1000)
        status = response.status if response is not None else None
        if status is not None and status >= 400:
            error = f"HTTP {status}"
        path = self._base_path + request.path
        log.info("flex %s %s -> %s in %d ms (attempt %d)", request.method, path,
                 status or error, ms, attempt)
        report = CallReport(endpoint=request.endpoint, method=request.method, path=path,
                            status=status, ms=ms, attempt=attempt, request=redact(request.body),
                            response=_redacted_body(response), error=error, ref=request.ref)
        if self._on_call is None:
            return
        try:
            self._on_call(report)
        except Exception:  # a broken hook must never break a payment
            log.exception("flex on_call hook failed")


# --- parsing -------------------------------------------------------------------------------

def _parse(endpoint: str, response: _Answer) -> dict:
    """The JSON body of an answer, or the typed error it stands for."""
    status = response.status
    try:
        answer = json.loads(response.content) if response.content else {}
    except ValueError:
        raise FlexUnavailableError(f"{endpoint}: malformed JSON (HTTP {status})", status=status,
                                   body=_text(response)) from None
    if not isinstance(answer, dict):
        raise FlexUnavailableError(f"{endpoint}: unexpected body", status=status)
    if str(answer.get("status") or "").upper() in REFUSED_WORDS:
        message = str(answer.get("responseMessage") or "Flex refused the request")
        refused = FlexRefundRefused if endpoint == "refund" else FlexRefused
        raise refused(message, endpoint=endpoint, code=answer.get("responseCode"),
                      status=status, body=answer)
    if status < 300:
        return answer
    detail = answer.get("detail") or answer.get("title") or f"HTTP {status}"
    if status == 400:
        raise _validation_error(endpoint, answer)
    if status in (401, 403):
        raise FlexAuthError(f"{endpoint}: {detail}", status=status, body=answer)
    if status == 404:
        raise FlexNotFoundError(f"{endpoint}: {detail}", status=status, body=answer)
    if status == 409:
        raise FlexConflictError(f"{endpoint}: {detail}", status=status, body=answer)
    raise FlexError(f"{endpoint}: {detail}", status=status, body=answer)


def _validation_error(endpoint: str, answer: dict) -> FlexValidationError:
    """Both forms of a 400: problem details (field errors under "errors", "traceId") and the
    flat map real traffic shows (field -> messages at the top level, "TraceId" among them)."""
    nested = answer.get("errors")
    source = nested if isinstance(nested, dict) else {
        k: v for k, v in answer.items() if isinstance(v, list) and k != "errors"}
    fields = {str(k): [str(m) for m in v] if isinstance(v, list) else [str(v)]
              for k, v in source.items()}
    trace = fields.pop("TraceId", None) or fields.pop("traceId", None) or answer.get("traceId")
    trace_id = trace[0] if isinstance(trace, list) and trace else trace
    summary = "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items())
    return FlexValidationError(f"{endpoint}: {summary or answer.get('title') or 'HTTP 400'}",
                               fields=fields, trace_id=trace_id, status=400, body=answer)


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


HEADERS = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate",
           "User-Agent": "flex-cit-reference"}


def _transport(api_url: str, pool_size: int) -> urllib3.PoolManager:
    """urllib3's pool manager for `api_url`, set up from the environment exactly as
    `requests` does (HTTPS_PROXY/NO_PROXY, proxy credentials, REQUESTS_CA_BUNDLE), once.
    The calls then go to urllib3 directly: a `requests.Session` call costs ~0.23 ms more
    CPU than the same call through its own urllib3 pool (merging settings, hooks, cookie
    jars, building a Response), on every call (docs/PERFORMANCE.md). It also keeps ~/.netrc
    from replacing the bearer token."""
    with requests.Session() as session:
        settings = session.merge_environment_settings(api_url, {}, None, None, None)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    proxy = requests.utils.select_proxy(api_url, settings["proxies"])
    manager = adapter.proxy_manager_for(proxy) if proxy else adapter.poolmanager
    verify = settings["verify"]
    if verify is False:
        manager.connection_pool_kw["cert_reqs"] = "CERT_NONE"
    else:
        bundle = requests.utils.DEFAULT_CA_BUNDLE_PATH if verify is True else verify
        manager.connection_pool_kw["cert_reqs"] = "CERT_REQUIRED"
        manager.connection_pool_kw["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = \
            bundle
    return manager


def _cause(exc: Exception) -> Exception:
    """What failed underneath a proxy error (the proxy itself could not be reached)."""
    return exc.original_error if isinstance(exc, ProxyError) else exc


def _never_sent(exc: Exception) -> bool:
    """True when the request provably did not reach the server (connect failed)."""
    return isinstance(_cause(exc), ConnectTimeoutError)  # NewConnectionError is one too


def _describe(exc: Exception) -> str:
    cause = _cause(exc)
    if isinstance(cause, NewConnectionError):
        return "connection refused"
    if isinstance(cause, ConnectTimeoutError):
        return "connect timeout"
    if isinstance(cause, ReadTimeoutError):
        return "read timeout"
    return "connection error"


def _text(response: _Answer) -> str:
    return redact(response.content[:500].decode("utf-8", "replace"))


def _redacted_body(response: _Answer | None) -> object:
    if response is None:
        return None
    try:
        return redact(json.loads(response.content)) if response.content else ""
    except ValueError:
        return _text(response)
