"""FlexClient: every call this integration makes to Flex's API.

One pooled `requests.Session`; a bearer token cached until shortly before it expires and
renewed by one thread at a time; explicit (connect, read) timeouts and a total deadline on
every call; bounded, jittered retries only where a retry is safe; typed errors; and a hook
that reports each attempt, redacted, for logs and the integration inspector.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from . import payloads
from .errors import (
    FlexAuthError,
    FlexError,
    FlexRefundRefused,
    FlexUnavailableError,
    FlexValidationError,
)
from .models import Card, Evaluation, VaultedCard, card_brand
from .redact import redact

log = logging.getLogger("flex")


@dataclass(frozen=True)
class FlexConfig:
    api_url: str  # e.g. "https://api-sandbox.flexfactor.io/v1" (paths are appended)
    app_key: str
    app_secret: str = field(repr=False)
    mid: str
    tokenization_key: str = field(repr=False)  # sent only as /tokenize ?environment=
    site_id: str = ""
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    max_retries: int = 2  # retries after the first attempt
    deadline: float = 15.0  # seconds per call, retries and backoff included
    backoff_base: float = 0.2
    backoff_cap: float = 2.0
    # Kept-alive connections: at least the threads that call Flex at once (a web worker's
    # request threads + CitFlow's vault workers + the relay's senders), or the surplus
    # connections are closed after each call and opened anew.
    pool_size: int = 32


@dataclass(frozen=True)
class CallReport:
    """One HTTP attempt, safe to store and show: bodies are redacted."""

    endpoint: str  # token | tokenize | transmit | evaluate | refund | order
    method: str
    path: str
    status: int | None  # None: no HTTP answer (timeout, connection error)
    ms: int
    attempt: int
    request: object
    response: object
    error: str | None
    ref: str | None  # the caller's reference, e.g. the merchant order id


class _NoAnswer(Exception):
    """An attempt that got no HTTP response."""

    def __init__(self, message: str, *, never_sent: bool):
        super().__init__(message)
        self.never_sent = never_sent


class FlexClient:
    REFRESH_MARGIN = 60.0  # seconds before `expires` at which the token is renewed

    def __init__(self, config: FlexConfig, *,
                 on_call: Callable[[CallReport], None] | None = None,
                 session: requests.Session | None = None):
        self.config = config
        self._on_call = on_call
        self._session = session or _pooled_session(config.api_url, config.pool_size)
        self._base = config.api_url.rstrip("/")
        self._token: str | None = None
        self._token_expires = 0.0  # epoch seconds
        self._token_lock = threading.Lock()

    # --- the API -----------------------------------------------------------------------

    def authenticate(self, *, force: bool = False, ref: str | None = None) -> str:
        """The bearer token: cached, or fetched when missing, near expiry or `force`d."""
        with self._token_lock:  # single flight: waiting threads reuse the new token
            if force or not self._token_fresh():
                self._fetch_token(ref)
            return self._token

    def tokenize(self, card: Card, *, email: str = "", sense_key: str = "",
                 ref: str | None = None) -> VaultedCard:
        body = payloads.tokenize_body(card, email=email, sense_key=sense_key)
        params = {"mid": self.config.mid, "environment": self.config.tokenization_key}
        answer = self._call("tokenize", "POST", "/tokenize", body=body, params=params, ref=ref)
        method = (answer.get("transaction") or {}).get("payment_method") or {}
        if not method.get("token"):
            raise FlexUnavailableError("tokenize answered without a vault token", body=answer)
        return VaultedCard(
            token=method["token"],
            brand=card_brand(card.number),
            first6=method.get("first_six_digits") or card.number[:6],
            last4=method.get("last_four_digits") or card.number[-4:],
        )

    def transmit(self, payload: dict, *, ref: str | None = None) -> dict:
        return self._call("transmit", "POST", "/transmit", body=payload, ref=ref)

    def evaluate(self, payload: dict, *, ref: str | None = None,
                 deadline: float | None = None) -> Evaluation:
        """`deadline` (seconds) narrows config.deadline, e.g. to what is left of a checkout."""
        answer = self._call("evaluate", "POST", "/evaluate", body=payload, ref=ref,
                            deadline=deadline)
        status, key = answer.get("status"), answer.get("orderSessionKey")
        if not status or not key:
            raise FlexUnavailableError("evaluate answered without status or orderSessionKey",
                                       body=answer)
        return Evaluation(status=str(status).upper(), order_session_key=key, raw=answer)

    def refund(self, order_session_key: str, amount_cents: int, message: str = "", *,
               ref: str | None = None) -> dict:
        # Flex's refund takes no idempotency key, so a retry after the request may have
        # reached Flex could refund twice: retry only when it provably never left here.
        answer = self._call("refund", "POST", f"/orders/{order_session_key}/refund",
                            body=payloads.refund_body(amount_cents, message), ref=ref,
                            retry_unless_sent=True)
        outcome = {str(answer.get("status", "")).upper(),
                   str(answer.get("responseMessage", "")).upper()}
        if not outcome & {"SUCCESS", "APPROVED"}:
            raise FlexUnavailableError("refund answered without a success status", body=answer)
        return answer

    def get_order(self, order_session_key: str, *, ref: str | None = None) -> dict:
        return self._call("order", "GET", f"/orders/{order_session_key}", ref=ref)

    def close(self) -> None:
        self._session.close()

    # --- token -------------------------------------------------------------------------

    def _token_fresh(self) -> bool:
        return bool(self._token) and time.time() < self._token_expires - self.REFRESH_MARGIN

    def _fetch_token(self, ref: str | None) -> None:
        body = {"AppKey": self.config.app_key, "AppSecret": self.config.app_secret}
        try:
            answer = self._call("token", "POST", "/oauth2/token", body=body, ref=ref,
                                authed=False)
        except FlexValidationError as exc:  # Flex answers bad credentials with a 400
            raise FlexAuthError("Flex refused the AppKey/AppSecret", status=exc.status) from exc
        token = answer.get("accessToken")
        if not token:
            raise FlexUnavailableError("token endpoint answered without accessToken")
        self._token = token
        expires_ms = answer.get("expires")
        self._token_expires = expires_ms / 1000 if expires_ms else time.time() + 600

    def _bearer(self, ref: str | None) -> str:
        if self._token_fresh():
            return self._token
        return self.authenticate(ref=ref)

    def _renew_after_401(self, rejected: str, ref: str | None) -> None:
        with self._token_lock:
            if self._token == rejected:  # nobody renewed it meanwhile
                self._fetch_token(ref)

    # --- transport ---------------------------------------------------------------------

    def _call(self, endpoint: str, method: str, path: str, *, body: dict | None = None,
              params: dict | None = None, ref: str | None = None, authed: bool = True,
              retry_unless_sent: bool = False, deadline: float | None = None) -> dict:
        """One logical call: attempts, retries within the deadline, and error mapping."""
        deadline = time.monotonic() + min(deadline or self.config.deadline, self.config.deadline)
        attempt = retries = 0
        renewed = False
        while True:
            attempt += 1
            token = self._bearer(ref) if authed else None
            try:
                response = self._attempt(endpoint, method, path, body, params, token,
                                         deadline, attempt, ref)
            except _NoAnswer as exc:
                retryable = exc.never_sent or not retry_unless_sent
                if retryable and self._may_retry(retries, deadline, None):
                    retries += 1
                    continue
                raise FlexUnavailableError(f"{endpoint}: {exc}") from None

            status = response.status_code
            if status == 401 and authed and not renewed:
                renewed = True  # the token expired or was revoked: renew once, replay once
                self._renew_after_401(token, ref)
                continue
            if status == 429 or status >= 500:
                if not retry_unless_sent and self._may_retry(retries, deadline,
                                                             response.headers.get("Retry-After")):
                    retries += 1
                    continue
                raise FlexUnavailableError(f"{endpoint}: HTTP {status}", status=status,
                                           body=_text(response))
            return self._parse(endpoint, response)

    def _may_retry(self, retries: int, deadline: float, retry_after: str | None) -> bool:
        """Sleeps before a retry and returns True, or False if none is left or time is up."""
        if retries >= self.config.max_retries:
            return False
        ceiling = min(self.config.backoff_cap, self.config.backoff_base * 2**retries)
        pause = random.uniform(0, ceiling)  # noqa: S311 - full jitter, not cryptography
        if retry_after and retry_after.isdigit():
            pause = max(pause, float(retry_after))
        if time.monotonic() + pause >= deadline:
            return False
        time.sleep(pause)
        return True

    def _attempt(self, endpoint: str, method: str, path: str, body: dict | None,
                 params: dict | None, token: str | None, deadline: float, attempt: int,
                 ref: str | None) -> requests.Response:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _NoAnswer("deadline passed", never_sent=True)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        timeout = (min(self.config.connect_timeout, left), min(self.config.read_timeout, left))
        started = time.monotonic()
        response = error = None
        try:
            response = self._session.request(method, self._base + path, json=body,
                                             params=params, headers=headers, timeout=timeout)
            return response
        except requests.RequestException as exc:
            error = _describe(exc)
            raise _NoAnswer(error, never_sent=_never_sent(exc)) from None
        finally:
            ms = round((time.monotonic() - started) * 1000)
            status = response.status_code if response is not None else None
            if status is not None and status >= 400:
                error = f"HTTP {status}"
            full_path = urlsplit(self._base + path).path
            log.info("flex %s %s -> %s in %d ms (attempt %d)", method, full_path,
                     status or error, ms, attempt)
            self._report(CallReport(
                endpoint=endpoint, method=method, path=full_path, status=status, ms=ms,
                attempt=attempt, request=redact(body), response=_redacted_body(response),
                error=error, ref=ref,
            ))

    def _parse(self, endpoint: str, response: requests.Response) -> dict:
        try:
            answer = response.json()
        except ValueError:
            raise FlexUnavailableError(f"{endpoint}: malformed JSON (HTTP "
                                       f"{response.status_code})", status=response.status_code,
                                       body=_text(response)) from None
        if not isinstance(answer, dict):
            raise FlexUnavailableError(f"{endpoint}: unexpected body",
                                       status=response.status_code)
        status = response.status_code
        if str(answer.get("status", "")).upper() == "FAILED":
            message = answer.get("responseMessage") or "Flex refused the request"
            raise FlexRefundRefused(message, response_code=answer.get("responseCode"),
                                    status=status, body=answer)
        if status == 400:
            errors = _field_errors(answer)
            summary = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
            raise FlexValidationError(f"{endpoint}: {summary or answer.get('title', 'HTTP 400')}",
                                      field_errors=errors, status=status, body=answer)
        if status == 401:
            raise FlexAuthError(f"{endpoint}: bearer token refused", status=status)
        if status >= 300:
            raise FlexError(f"{endpoint}: HTTP {status}", status=status, body=answer)
        return answer

    def _report(self, report: CallReport) -> None:
        if self._on_call is None:
            return
        try:
            self._on_call(report)
        except Exception:  # a broken hook must never break a payment
            log.exception("flex on_call hook failed")


def _pooled_session(api_url: str, pool_size: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update({"Accept": "application/json", "User-Agent": "flex-cit-reference"})
    # Proxy and CA-bundle settings (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE) are read from
    # the environment once, here: by default requests re-reads them, and ~/.netrc, on every
    # call, a fifth of a call's CPU. It also keeps a .netrc entry from replacing the bearer.
    settings = session.merge_environment_settings(api_url, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    session.trust_env = False
    return session


def _field_errors(answer: dict) -> dict[str, list[str]]:
    """Problem details keep field errors under "errors"; Flex's sandbox also sent them flat."""
    errors = answer.get("errors")
    if isinstance(errors, dict):
        source = errors
    else:
        source = {k: v for k, v in answer.items() if isinstance(v, list) and k != "errors"}
    return {str(k): [str(m) for m in v] if isinstance(v, list) else [str(v)]
            for k, v in source.items()}


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably did not reach the server (connect failed)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, requests.ReadTimeout):
        return "read timeout"
    if isinstance(exc, requests.ConnectionError):
        return "connection error" if not _never_sent(exc) else "connection refused"
    return type(exc).__name__


def _text(response: requests.Response) -> str:
    return redact(response.text[:500])


def _redacted_body(response: requests.Response | None) -> object:
    if response is None:
        return None
    try:
        return redact(response.json())
    except ValueError:
        return _text(response)

