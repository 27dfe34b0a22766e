"""A local stand-in for Flex's sandbox API and SenseJS host (docs/FLEX_API.md).

Same paths, envelopes and status codes as the real sandbox as far as they are documented or
were seen in real traffic; where Flex's docs are silent, the choices are written down in
docs/SANDBOX.md. Outcomes are deterministic by test card. Faults and latency can be injected
per endpoint. It shares no state with the client: it is a separate WSGI app.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import struct
import time
import uuid
from datetime import UTC, datetime
from importlib import resources

from flask import Flask, Response, jsonify, request

from ..redact import redact
from .rules import (
    EVALUATE_REQUIRED,
    OTHER_CARDS,
    OUTCOMES,
    TOKENIZE_REQUIRED,
    TRANSMIT_REQUIRED,
    dollars_to_cents,
    lookup,
    lower_keys,
    missing,
    order_status,
    refund_failed,
    valid_card_number,
)
from .state import Order, State
from .tokens import Tokens

DEFAULT_APP_KEY = "sandbox-app-key"
DEFAULT_APP_SECRET = "sandbox-app-secret"  # noqa: S105 - the simulator's public test value
DEFAULT_MID = "8f7c2e1a-3b4d-4c5e-9f60-1a2b3c4d5e6f"
DEFAULT_SITE_ID = "5d0c9b8a-7e6f-4a3b-8c2d-1e0f9a8b7c6d"
DEFAULT_TOKENIZATION_KEY = "sandbox-tokenization-key"
HANG_LIMIT = 60.0  # seconds a "hang" fault holds a request at most


def config_from_env() -> dict:
    return {
        "app_key": os.environ.get("FLEX_SANDBOX_APP_KEY", DEFAULT_APP_KEY),
        "app_secret": os.environ.get("FLEX_SANDBOX_APP_SECRET", DEFAULT_APP_SECRET),
        "mid": os.environ.get("FLEX_SANDBOX_MID", DEFAULT_MID),
        "tokenization_key": os.environ.get("FLEX_SANDBOX_TOKENIZATION_KEY",
                                           DEFAULT_TOKENIZATION_KEY),
        "token_ttl": float(os.environ.get("FLEX_SANDBOX_TOKEN_TTL", "600")),
        "faults": json.loads(os.environ.get("FLEX_SANDBOX_FAULTS") or "{}"),
    }


def create_sandbox_app(config: dict | None = None) -> Flask:
    settings = {**config_from_env(), **(config or {})}
    app = Flask(__name__)
    state = State()
    for endpoint, spec in settings["faults"].items():
        state.set_fault(endpoint, spec)
    tokens = Tokens(settings["app_key"], settings["mid"], settings["token_ttl"])
    app.extensions["sandbox_state"] = state

    # --- plumbing ----------------------------------------------------------------------

    def envelope(**fields) -> dict:
        return {**fields, "success": fields.get("success", True), "result": fields.get("result"),
                "status": fields.get("status"), "statusCode": None, "errors": [],
                "customProperties": {}}

    def problem(status: int, title: str, errors: dict | None = None) -> tuple[dict, int]:
        trace = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
        body = {"status": status, "title": title, "traceId": trace}
        if errors:
            body["errors"] = errors
        return body, status

    def validation(errors: dict) -> tuple[dict, int]:
        return problem(400, "One or more validation errors occurred.", errors)

    def body_json() -> dict | None:
        data = request.get_json(silent=True)  # application/json and application/*+json
        return data if isinstance(data, dict) else None

    def bearer_ok() -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and tokens.valid(header[7:])

    def with_faults(endpoint: str, handler, *, authed: bool = True) -> Response:
        """Runs a handler inside the endpoint's fault spec, and records the call."""
        started = time.monotonic()
        fault = state.take_fault(endpoint)
        delay = fault.get("delay_ms", 0) / 1000
        if fault.get("reset"):
            time.sleep(delay)
            record(endpoint, None, started, "connection reset")
            abort_connection()
            return Response(status=500)  # not reached by the client: the socket is gone
        if fault.get("status"):
            time.sleep(delay)
            body, status = problem(fault["status"], f"Injected fault {fault['status']}")
            response = jsonify(body)
            response.status_code = status
            if fault.get("retry_after") is not None:
                response.headers["Retry-After"] = str(fault["retry_after"])
            return finish(endpoint, response, started)
        if fault.get("malformed"):
            time.sleep(delay)
            return finish(endpoint, Response('{"success": true, "res', 200,
                                             mimetype="application/json"), started)

        if authed and not bearer_ok():
            body, status = problem(401, "Unauthorized")
        else:
            body, status = handler()  # the decision is taken (and kept) before any delay
        time.sleep(delay)
        if fault.get("hang"):
            state.unhang.wait(HANG_LIMIT)
        response = jsonify(body)
        response.status_code = status
        return finish(endpoint, response, started)

    def finish(endpoint: str, response: Response, started: float) -> Response:
        record(endpoint, response, started)
        return response

    def record(endpoint: str, response: Response | None, started: float,
               error: str | None = None) -> None:
        answer = None
        if response is not None:
            try:
                answer = json.loads(response.get_data(as_text=True))
            except ValueError:
                answer = response.get_data(as_text=True)[:200]
        state.record_call({
            "endpoint": endpoint, "method": request.method, "path": request.path,
            "status": response.status_code if response is not None else None,
            "ms": round((time.monotonic() - started) * 1000),
            "at": datetime.now(UTC).isoformat(),
            "remote_port": request.environ.get("REMOTE_PORT"),
            "request": redact(request.get_json(silent=True)), "response": redact(answer),
            "error": error,
        })

    # --- tokens ------------------------------------------------------------------------

    @app.post("/v1/oauth2/token")
    def token():
        def handle():
            data = lower_keys(body_json() or {})
            if (data.get("appkey") != settings["app_key"]
                    or data.get("appsecret") != settings["app_secret"]):
                return validation({"AppKey": ["Invalid AppKey or AppSecret."]})
            token, expires = tokens.issue()
            return envelope(accessToken=token, refreshToken=secrets.token_urlsafe(32),
                            expires=int(expires * 1000), id=str(uuid.uuid4()),
                            session=None, daysToEnforceMFA=None, skipAvailable=None), 200
        return with_faults("token", handle, authed=False)

    # --- vault -------------------------------------------------------------------------

    @app.post("/v1/tokenize")
    def tokenize():
        def handle():
            header = request.headers.get("Authorization")
            if header and not bearer_ok():  # the bearer is optional here, but checked if sent
                return problem(401, "Unauthorized")
            if (request.args.get("mid") != settings["mid"]
                    or request.args.get("environment") != settings["tokenization_key"]):
                return validation({"Environment": ["Unknown mid or tokenization key."]})
            data = body_json()
            if data is None:
                return validation({"Body": ["A JSON body is required."]})
            errors = missing(data, TOKENIZE_REQUIRED)
            card = lookup(data, "payment_method.credit_card") or {}
            number = str(card.get("number") or "")
            if number and not valid_card_number(number):
                errors["payment_method.credit_card.number"] = ["The card number is not valid."]
            if errors:
                return validation(errors)
            vault_token = str(uuid.uuid4())
            with state.lock:
                state.vault[vault_token] = {"number": number}
            first, last = card.get("first_name"), card.get("last_name")
            return envelope(transaction={
                "on_test_gateway": True, "succeeded": True,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00",
                                                                                      "Z"),
                "payment_method": {
                    "token": vault_token, "last_four_digits": number[-4:],
                    "first_six_digits": number[:6], "first_name": first, "last_name": last,
                    "month": int(card.get("month") or 0), "year": int(card.get("year") or 0),
                    "number": None,
                },
            }, cardBinInfo=None), 200
        return with_faults("tokenize", handle, authed=False)

    # --- transmit / evaluate -----------------------------------------------------------

    @app.post("/v1/transmit")
    def transmit():
        def handle():
            data = body_json()
            if data is None:
                return validation({"Body": ["A JSON body is required."]})
            errors = missing(data, TRANSMIT_REQUIRED)
            if errors:
                return validation(errors)
            return envelope(result="success", transmitId=str(uuid.uuid4())), 200
        return with_faults("transmit", handle)

    @app.post("/v1/evaluate")
    def evaluate():
        def handle():
            data = body_json()
            if data is None:
                return validation({"Body": ["A JSON body is required."]})
            errors = missing(data, EVALUATE_REQUIRED)
            amount = lookup(data, "transaction.amount")
            if amount is not None and (not isinstance(amount, int) or not 10 < amount < 20000):
                errors["Transaction.Amount"] = [
                    "Amount must be greater than 10 and less than 20000 cents in sandbox."]
            number = card_number(data)
            if lookup(data, "paymentMethod.cardNumber") and number is None:
                errors["PaymentMethod.CardNumber"] = ["Unknown vault token."]
            if errors:
                return validation(errors)
            key, order_id = str(lookup(data, "idempotencyKey")), str(lookup(data, "orderId"))
            with state.lock:
                seen = state.evaluations.get(key)
                if seen:
                    if seen[0] != order_id:
                        return problem(409, "idempotencyKey was used for another order")
                    return seen[1], 200  # a replay gets the first answer
                decision = OUTCOMES.get(number, OTHER_CARDS)
                if decision is None:
                    return problem(503, "Service Unavailable")
                session_key = str(uuid.uuid4())
                state.orders[session_key] = Order(
                    session_key, order_id, decision, amount,
                    str(lookup(data, "transaction.currency")), lookup(data, "senseKey"),
                    datetime.now(UTC).isoformat())
                answer = envelope(orderSessionKey=session_key, senseKey=None,
                                  orderId=session_key, result="Success", status=decision)
                state.evaluations[key] = (order_id, answer)
            return answer, 200
        return with_faults("evaluate", handle)

    def card_number(data: dict) -> str | None:
        method = lookup(data, "paymentMethod") or {}
        value = str(lower_keys(method).get("cardnumber") or "")
        if lower_keys(method).get("token") is False:
            return value or None
        with state.lock:
            card = state.vault.get(value)
        return card["number"] if card else None

    # --- orders and refunds ------------------------------------------------------------

    @app.post("/v1/orders/<key>/refund")
    def refund(key: str):
        def handle():
            data = lower_keys(body_json() or {})
            raw = data.get("amounttorefund")
            cents = dollars_to_cents(raw)
            if cents is None:
                return validation({"AmountToRefund": [
                    "A positive amount in dollars with at most 2 decimals is required."]})
            with state.lock:  # the ledger: one refund at a time, never above the amount
                order = state.orders.get(key)
                if order is None:
                    return problem(404, "Order not found")
                left = order.amount_cents - order.refunded_cents if order.status == (
                    "APPROVED") else 0
                if cents > left:
                    return refund_failed(cents, left), 400
                order.refunded_cents += cents
            return envelope(status="SUCCESS", result=None), 200
        return with_faults("refund", handle)

    @app.get("/v1/orders/<key>")
    def order(key: str):
        def handle():
            with state.lock:
                found = state.orders.get(key)
            if found is None:
                return problem(404, "Order not found")
            code, name = order_status(found)
            return envelope(id=key, status=code, statusName=name,
                            orderPlacedDate=found.placed_at, currencyCode=found.currency,
                            amount=found.amount_cents, refundedAmount=found.refunded_cents,
                            externalOrderId=found.merchant_order_id), 200
        return with_faults("order", handle)

    # --- SenseJS -----------------------------------------------------------------------

    @app.get("/widget.js")
    def widget():
        script = resources.files(__package__).joinpath("widget.js").read_text()
        return Response(script, mimetype="application/javascript",
                        headers={"Cache-Control": "no-cache"})

    @app.route("/v1/sense", methods=("POST", "OPTIONS"))
    def sense():
        if request.method == "OPTIONS":  # CORS preflight: the shop's page is another origin
            return cors(Response(status=204))

        def handle():
            data = request.get_json(silent=True, force=True)  # sendBeacon posts text/plain
            if not isinstance(data, dict) or not data.get("senseKey"):
                return validation({"SenseKey": ["The senseKey field is required."]})
            fingerprint = {k: data.get(k) for k in (
                "mid", "siteId", "timezone", "screen", "language", "userAgent")}
            with state.lock:
                state.sense.setdefault(str(data["senseKey"]), []).append(fingerprint)
            return envelope(result="success"), 200
        return cors(with_faults("sense", handle, authed=False))

    # --- control plane for tests and benchmarks ------------------------------------------

    @app.put("/_sandbox/faults/<endpoint>")
    def put_fault(endpoint: str):
        state.set_fault(endpoint, request.get_json(force=True) or {})
        return jsonify(state.faults.get(endpoint, {}))

    @app.delete("/_sandbox/faults")
    def delete_faults():
        state.clear_faults()
        return jsonify({})

    @app.get("/_sandbox/calls")
    def calls():
        endpoint = request.args.get("endpoint")
        with state.lock:
            found = [c for c in state.calls if endpoint in (None, c["endpoint"])]
        return jsonify(found)

    @app.get("/_sandbox/sense/<key>")
    def sense_data(key: str):
        with state.lock:
            found = state.sense.get(key)
        return (jsonify(found), 200) if found else (jsonify({"error": "unknown senseKey"}), 404)

    @app.get("/_sandbox/orders")
    def orders():
        with state.lock:
            return jsonify([vars(o) for o in state.orders.values()])

    @app.post("/_sandbox/tokens/expire")
    def expire_tokens():
        tokens.revoke_all()
        return jsonify({"revoked": True})

    @app.post("/_sandbox/reset")
    def reset():
        state.reset()
        return jsonify({})

    return app


def cors(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    return response


def abort_connection() -> None:
    """Drops the TCP connection with no HTTP answer (the "reset" fault). Linger 0 makes the
    kernel send a RST; shutdown() ends it at once even though the server holds the socket."""
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
