"""What every sandbox view shares: the answer forms Flex uses, and ONE decorator that applies
an endpoint's injected faults and latency, checks the bearer, and records the call."""

from __future__ import annotations

import functools
import json
import secrets
import socket
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Response, current_app, g, request

from flex.redact import redact

from .lenient import json_body, pick

HANG_LIMIT = 60.0  # seconds a "hang" fault holds a request at most
PROBLEM_JSON = "application/problem+json"

# ASP.NET's problem-details `type` for each status (what Flex's API answers).
_PROBLEM_TYPES = {
    400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    401: "https://tools.ietf.org/html/rfc9110#section-15.5.2",
    403: "https://tools.ietf.org/html/rfc9110#section-15.5.4",
    404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    405: "https://tools.ietf.org/html/rfc9110#section-15.5.6",
    409: "https://tools.ietf.org/html/rfc9110#section-15.5.10",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: "https://tools.ietf.org/html/rfc9110#section-15.6.1",
    502: "https://tools.ietf.org/html/rfc9110#section-15.6.3",
    503: "https://tools.ietf.org/html/rfc9110#section-15.6.4",
    504: "https://tools.ietf.org/html/rfc9110#section-15.6.5",
}


def sandbox():
    """The running sandbox (settings, state, tokens, webhook sender) of the current app."""
    return current_app.extensions["flex_sandbox"]


def trace_id() -> str:
    """A W3C trace id, as ASP.NET puts in every error."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def envelope(**fields) -> dict:
    """Flex's response envelope around `fields` (success, result, status, errors, …)."""
    return {**fields, "success": fields.get("success", True), "result": fields.get("result"),
            "status": fields.get("status"), "statusCode": None, "errors": [],
            "customProperties": {}}


def ok(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status, mimetype="application/json")


def problem(status: int, title: str, detail: str | None = None) -> Response:
    """RFC 9457 problem details: every HTTP error except field validation."""
    body = {"type": _PROBLEM_TYPES.get(status, "about:blank"), "title": title,
            "status": status, "detail": detail, "traceId": trace_id()}
    return Response(json.dumps(body), status, mimetype=PROBLEM_JSON)


def invalid(errors: dict[str, list[str]]) -> Response:
    """A validation 400 in the flat form real traffic shows: field -> messages, plus TraceId."""
    return Response(json.dumps({"TraceId": [trace_id()], **errors}), 400,
                    mimetype="application/json")


def refused(code: str, message: str) -> Response:
    """A business refusal: HTTP 400 with the FAILED envelope (as a real refund refusal)."""
    body = {"responseCode": code, "responseMessage": message, "transactionId": None,
            "success": False, "result": None, "status": "FAILED", "statusCode": None,
            "errors": [{"item1": message, "item2": code, "item3": code, "item4": True}],
            "customProperties": {}}
    return Response(json.dumps(body), 400, mimetype="application/json")


def token_mid() -> str | None:
    """The MID of the bearer that authorised this call (JWT claim `custom:mid`)."""
    claims = g.get("flex_claims")
    return claims.get("custom:mid") if claims else None


def mid_mismatch(body: dict | None) -> Response | None:
    """A `mid` in the body may be absent or null (the token's MID is used); a different one
    is refused."""
    mid = pick(body, "mid")
    if mid is None or str(mid).lower() == str(token_mid()).lower():
        return None
    return problem(403, "MID mismatch",
                   "The mid in the request is not the merchant this token belongs to.")


def request_body(*, check_mid: bool = True) -> tuple[dict, Response | None]:
    """The call's JSON body, and the answer refusing it if it must be: an empty body (400),
    or a `mid` that is not the token's (403)."""
    body = json_body()
    if body is None:
        return {}, invalid({"Body": ["A non-empty request body is required."]})
    return body, mid_mismatch(body) if check_mid else None


def flex_call(endpoint: str, *, auth: str = "bearer") -> Callable:
    """Wraps a view as Flex endpoint `endpoint` (the fault/latency knob's name).
    auth: "bearer" (required), "optional" (checked only when sent) or "none"."""
    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def run(*args, **kwargs) -> Response:
            started = time.monotonic()
            fault = sandbox().state.take_fault(endpoint)
            response = _injected(fault)
            if response is None:
                response = _authorised(auth) or view(*args, **kwargs)
                # The decision is taken (and kept) before any delay: a client that timed
                # out can replay and learn it.
                time.sleep(fault.get("delay_ms", 0) / 1000)
                if fault.get("hang"):
                    sandbox().state.unhang.wait(HANG_LIMIT)
            _record(endpoint, None if fault.get("reset") else response, started)
            if fault.get("reset"):
                _abort_connection()
            return response
        return run
    return decorate


def _injected(fault: dict) -> Response | None:
    """The answer a fault gives instead of processing the call, if any."""
    if not fault.get("reset") and not fault.get("status") and not fault.get("malformed"):
        return None
    time.sleep(fault.get("delay_ms", 0) / 1000)
    if fault.get("reset"):
        return Response(status=500)  # never seen by the client: the socket is dropped
    if fault.get("status"):
        response = problem(fault["status"], f"Injected fault {fault['status']}")
        if fault.get("retry_after") is not None:
            response.headers["Retry-After"] = str(fault["retry_after"])
        return response
    return Response('{"success": true, "res', 200, mimetype="application/json")


def _authorised(auth: str) -> Response | None:
    """None when the call may proceed; the 401 otherwise. Keeps the token's claims in `g`."""
    header = request.headers.get("Authorization")
    if auth == "none" or (auth == "optional" and not header):
        return None
    claims = None
    if header and header[:7].lower() == "bearer ":
        claims = sandbox().tokens.claims(header[7:].strip())
    if claims is None:
        return problem(401, "Unauthorized", "A valid bearer token is required.")
    g.flex_claims = claims
    return None


def _record(endpoint: str, response: Response | None, started: float) -> None:
    """Keeps the call for GET /_sandbox/calls; card numbers masked, secrets removed."""
    answer = None
    if response is not None:
        text = response.get_data(as_text=True)
        try:
            answer = json.loads(text)
        except ValueError:
            answer = text[:200]
    sandbox().state.record_call({
        "endpoint": endpoint, "method": request.method, "path": request.path,
        "status": response.status_code if response is not None else None,
        "ms": round((time.monotonic() - started) * 1000), "at": datetime.now(UTC).isoformat(),
        "remote_port": request.environ.get("REMOTE_PORT"),
        "request": redact(request.get_json(silent=True)), "response": redact(answer),
        "error": "connection reset" if response is None else None,
    })


def _abort_connection() -> None:
    """Drops the TCP connection with no HTTP answer (the "reset" fault). Linger 0 makes the
    kernel send a RST; shutdown() ends it at once even though the server holds the socket."""
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)


def notify(order, event: str, delay: float = 0.0) -> None:
    """Queues webhook `event` about `order` (a state.Order) for the subscriber."""
    sandbox().webhooks.send(event, order_session_key=order.order_session_key,
                            external_order_id=order.merchant_order_id,
                            confirmation_id=order.confirmation_id, delay=delay)
