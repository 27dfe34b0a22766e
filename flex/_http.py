"""FlexClient's HTTP layer (private: flex/client.py is the public client).

What every call shares, whatever its endpoint: kept-alive connections, explicit (connect,
read) timeouts inside one deadline per call, bounded jittered retries only where a retry is
safe, the mapping of HTTP answers to typed errors, and one redacted `CallReport` per attempt
for logs and the integration inspector.

Connections: the environment is read once, as `requests` reads it (HTTPS_PROXY/NO_PROXY, proxy
credentials, REQUESTS_CA_BUNDLE), when the client is created. Without a proxy for Flex's host
(the usual case) the calls go through a small pool of the standard library's kept-alive
`http.client` connections; through a proxy, or a urllib3 pool manager the caller hands in,
they go through urllib3, which `requests` is built on. Why not `requests` or urllib3 for
every call: per call, in CPU, a `requests` session costs about three times urllib3's pool,
which costs about 1.7 times `http.client`, on every checkout (docs/PERFORMANCE.md, lever 1:
the HTTP layer). Why not less than `http.client`: the HTTP parser of a payment client should
be one that is maintained and reviewed by many, not our own.
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import os
import random
import select
import ssl
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from urllib.parse import urlencode, urlsplit

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

from . import purposes
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
from .redact import redact

log = logging.getLogger("flex")

HEADERS = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate",
           "User-Agent": "flex-cit-reference"}
REFUSED_WORDS = {"FAILED", "FAIL"}  # a status word that means "refused" (upper-cased)


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
class Request:
    """One logical call, as the transport needs it."""

    endpoint: str  # the name in CallReport and in error messages
    method: str
    path: str  # below the API URL, e.g. "/transmit"
    expires: float  # time.monotonic() by which the call, retries included, must be over
    body: dict | None = None
    params: dict | None = None
    ref: str | None = None
    authed: bool = True
    retry_unless_sent: bool = False  # not idempotent: retry only what never left here


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, read in full (and decompressed)."""

    status: int
    headers: Mapping[str, str]  # case-insensitive `get`
    content: bytes

    @cached_property
    def json(self) -> object:
        """The body parsed as JSON ("" for an empty body), once for both the report and the
        caller; raises ValueError if it is not JSON."""
        return json.loads(self.content) if self.content else ""


class NoAnswer(Exception):
    """An attempt that got no HTTP response."""

    def __init__(self, message: str, *, never_sent: bool):
        super().__init__(message)
        self.never_sent = never_sent


class Caller:
    """Sends `Request`s: attempts, retries within the deadline, a 401 renewed once, typed
    errors, and a redacted CallReport per attempt to `on_call`."""

    def __init__(self, config, transport: KeptAlive | Urllib3, *,
                 on_call: Callable[[CallReport], None] | None,
                 bearer: Callable[..., str]):
        """`config`: the client's FlexConfig (timeouts, retries, backoff); `bearer(expires,
        ref, rejected=...)`: a usable token by `expires`, not `rejected` (one Flex refused)."""
        self.config = config
        self.transport = transport
        self._on_call = on_call
        self._bearer = bearer
        self._base_path = urlsplit(config.api_url.rstrip("/")).path

    def call(self, request: Request) -> dict:
        """One logical call: its answer's JSON object, or the typed error it stands for."""
        attempt = retries = 0
        token = rejected = None
        renewed = False
        while True:
            attempt += 1
            if request.authed:
                token = self._bearer(request.expires, request.ref, rejected=rejected)
            try:
                response = self._attempt(request, token, attempt)
            except NoAnswer as exc:
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
            return parse(request.endpoint, response)

    def close(self) -> None:
        """Closes the kept-alive connections."""
        self.transport.close()

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

    def _attempt(self, request: Request, token: str | None, attempt: int) -> Answer:
        left = request.expires - time.monotonic()
        if left <= 0:
            raise NoAnswer("deadline passed", never_sent=True)
        headers = dict(HEADERS)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = None
        if request.body is not None:
            body = json.dumps(request.body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        target = request.path
        if request.params:
            target += "?" + _query(tuple(request.params.items()))
        started = time.monotonic()
        response = error = None
        try:
            response = self.transport.send(request.method, target, body, headers,
                                           min(self.config.connect_timeout, left),
                                           min(self.config.read_timeout, left))
            return response
        except NoAnswer as exc:
            error = str(exc)
            raise
        finally:
            self._report(request, response, error, started, attempt)

    def _report(self, request: Request, response: Answer | None, error: str | None,
                started: float, attempt: int) -> None:
        ms = round((time.monotonic() - started) * 1000)
        status = response.status if response is not None else None
        if status is not None and status >= 400:
            error = f"HTTP {status}"
        path = self._base_path + request.path
        log.info("flex %s %s -> %s in %d ms (attempt %d)", request.method, path,
                 status or error, ms, attempt)
        if self._on_call is None:
            return
        report = CallReport(endpoint=request.endpoint, method=request.method, path=path,
                            status=status, ms=ms, attempt=attempt, request=redact(request.body),
                            response=_redacted_body(response), error=error, ref=request.ref)
        try:
            self._on_call(report)
        except Exception:  # a broken hook must never break a payment
            log.exception("flex on_call hook failed")


@lru_cache(maxsize=64)
def _query(params: tuple[tuple[str, object], ...]) -> str:
    """A query string, kept for the next call with the same parameters (/tokenize's are the
    same on every call)."""
    return urlencode(params)


# --- transports ----------------------------------------------------------------------------

def transport_for(api_url: str, pool_size: int, http: urllib3.PoolManager | None = None
                  ) -> KeptAlive | Urllib3:
    """How calls to `api_url` are sent: through `http` if given; else set up from the
    environment exactly as `requests` would, once: through urllib3's proxy manager when a
    proxy covers the host, else over kept-alive `http.client` connections."""
    if http is not None:
        return Urllib3(http, api_url)
    with requests.Session() as session:
        settings = session.merge_environment_settings(api_url, {}, None, None, None)
    proxy = requests.utils.select_proxy(api_url, settings["proxies"])
    verify = settings["verify"]
    if proxy:
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        manager = adapter.proxy_manager_for(proxy)
        if verify is False:
            manager.connection_pool_kw["cert_reqs"] = "CERT_NONE"
        else:
            bundle = _bundle(verify)
            manager.connection_pool_kw["cert_reqs"] = "CERT_REQUIRED"
            manager.connection_pool_kw["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] \
                = bundle
        return Urllib3(manager, api_url)
    parts = urlsplit(api_url)
    context = None
    if parts.scheme == "https":
        context = ssl.create_default_context()
        if verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            bundle = _bundle(verify)
            context.load_verify_locations(**{"capath" if os.path.isdir(bundle) else "cafile":
                                             bundle})
    return KeptAlive(parts.scheme, parts.hostname, parts.port, parts.path.rstrip("/"),
                     pool_size, context)


def _bundle(verify: bool | str) -> str:
    return requests.utils.DEFAULT_CA_BUNDLE_PATH if verify is True else verify


class KeptAlive:
    """Up to `size` idle `http.client` connections to one origin, reused newest first; a
    connection the server closed meanwhile is dropped before it is used (as urllib3 does)."""

    def __init__(self, scheme: str, host: str, port: int | None, base_path: str, size: int,
                 context: ssl.SSLContext | None):
        self._scheme, self._host, self._port = scheme, host, port
        self._base_path = base_path
        self._size = size
        self._context = context
        self._idle: deque[http.client.HTTPConnection] = deque()
        self._closed = False

    def send(self, method: str, target: str, body: bytes | None, headers: dict,
             connect_timeout: float, read_timeout: float) -> Answer:
        """One HTTP exchange; raises NoAnswer (`never_sent` if it never left here)."""
        conn = self._take()
        if conn.sock is None:
            conn.timeout = connect_timeout
            try:
                conn.connect()
            except OSError as exc:  # ssl.SSLError is one: a certificate Flex's CA does not sign
                conn.close()
                reason = ("connect timeout" if isinstance(exc, TimeoutError)
                          else "TLS handshake failed" if isinstance(exc, ssl.SSLError)
                          else "connection refused")
                raise NoAnswer(reason, never_sent=True) from None
        conn.sock.settimeout(read_timeout)
        try:
            conn.request(method, self._base_path + target, body=body, headers=headers)
            response = conn.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NoAnswer("read timeout" if isinstance(exc, TimeoutError)
                           else "connection error", never_sent=False) from None
        if response.will_close:
            conn.close()
        else:
            self._give(conn)
        encoding = (response.headers.get("Content-Encoding") or "").lower()
        return Answer(response.status, response.headers, _decoded(content, encoding))

    def close(self) -> None:
        """Closes the idle connections (and those in use, when they come back)."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    def _take(self) -> http.client.HTTPConnection:
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                break
            if not _dropped(conn):
                return conn
            conn.close()
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, context=self._context)
        return http.client.HTTPConnection(self._host, self._port)

    def _give(self, conn: http.client.HTTPConnection) -> None:
        if self._closed or len(self._idle) >= self._size:
            conn.close()
        else:
            self._idle.append(conn)


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """True when an idle connection is readable: the server closed it (or sent what no
    request asked for), so it cannot carry the next request."""
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([conn.sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    return bool(poller.poll(0))


def _decoded(content: bytes, encoding: str) -> bytes:
    """The body without its Content-Encoding (gzip or deflate; as sent if it will not
    decompress, so it reads as malformed)."""
    try:
        if encoding == "gzip":
            return gzip.decompress(content)
        if encoding == "deflate":
            try:
                return zlib.decompress(content)
            except zlib.error:  # raw deflate, as some servers send it
                return zlib.decompress(content, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error):
        pass
    return content


class Urllib3:
    """Sends through a urllib3 pool manager (a proxy's, or one the caller handed in)."""

    def __init__(self, manager: urllib3.PoolManager, api_url: str):
        self._manager = manager
        self._base = api_url.rstrip("/")

    def send(self, method: str, target: str, body: bytes | None, headers: dict,
             connect_timeout: float, read_timeout: float) -> Answer:
        """One HTTP exchange; raises NoAnswer (`never_sent` if it never left here)."""
        try:
            # No retries or redirects here: the Caller decides what may be retried, and a
            # bearer token is never sent on to another URL.
            raw = self._manager.urlopen(
                method, self._base + target, body=body, headers=headers,
                timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
                retries=False, redirect=False)
        except (HTTPError, OSError) as exc:
            raise NoAnswer(_describe(exc), never_sent=_never_sent(exc)) from None
        return Answer(raw.status, raw.headers, raw.data)

    def close(self) -> None:
        """Closes the pooled connections."""
        self._manager.clear()


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


# --- answers -------------------------------------------------------------------------------

def parse(endpoint: str, response: Answer) -> dict:
    """The JSON body of an answer, or the typed error it stands for."""
    status = response.status
    try:
        answer = response.json if response.content else {}
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


def _text(response: Answer) -> str:
    return redact(response.content[:500].decode("utf-8", "replace"))


def _redacted_body(response: Answer | None) -> object:
    if response is None:
        return None
    try:
        body = response.json
    except ValueError:
        return _text(response)
    return redact(body)
