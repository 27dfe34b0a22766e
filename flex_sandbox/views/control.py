"""/_sandbox: the control plane for tests, benchmarks and the demo (never part of Flex's API):
faults, read-only views, token revocation, reset, the webhook subscriber and its delivery log,
and what only Flex's portal can do (a portal refund, a chargeback, resending a webhook)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from ..http import notify, ok, sandbox
from ..later import DECISIONS
from ..lenient import as_decimal, as_int, fold, pick
from ..rules import order_json
from .orders import refund_order

control = Blueprint("control", __name__, url_prefix="/_sandbox")


def _error(status: int, message: str) -> Response:
    return ok({"error": message}, status)


@control.put("/faults/<endpoint>")
def put_fault(endpoint: str) -> Response:
    spec = request.get_json(silent=True, force=True)
    if not isinstance(spec, dict):
        return _error(400, "a JSON object is required")
    sandbox().state.set_fault(endpoint, spec)
    return ok(spec)


@control.delete("/faults")
def delete_faults() -> Response:
    sandbox().state.clear_faults()
    return ok({})


@control.get("/calls")
def calls() -> Response:
    endpoint = request.args.get("endpoint")
    state = sandbox().state
    with state.lock:
        found = [c for c in state.calls if endpoint in (None, c["endpoint"])]
    return ok(found)


@control.get("/sense/<key>")
def sense_data(key: str) -> Response:
    with sandbox().state.lock:
        found = sandbox().state.sense.get(key)
    return ok(found) if found else _error(404, "unknown senseKey")


@control.get("/orders")
def orders() -> Response:
    with sandbox().state.lock:
        return ok([vars(o) for o in sandbox().state.orders.values()])


@control.post("/tokens/expire")
def expire_tokens() -> Response:
    sandbox().tokens.revoke_all()
    return ok({"revoked": True})


@control.post("/reset")
def reset() -> Response:
    sandbox().state.reset()
    sandbox().webhooks.clear()
    return ok({})


@control.put("/webhooks")
def subscribe() -> Response:
    """{"url", "key"} (base64 subscriber key) and/or {"lost_answer_delay": seconds} and/or
    {"submitted_delay": seconds} (when a SUBMITTED evaluation is decided)."""
    body = fold(request.get_json(silent=True, force=True))
    if not isinstance(body, dict):
        return _error(400, "a JSON object is required")
    if "url" in body or "key" in body:
        if not isinstance(body.get("url"), str) or not isinstance(body.get("key"), str):
            return _error(400, "url and key are both required")
        try:
            sandbox().webhooks.subscribe(body["url"], body["key"])
        except ValueError as error:
            return _error(400, str(error))
    for name, setting in (("lost_answer_delay", "lost_answer_webhook_delay"),
                          ("submitted_delay", "submitted_delay")):
        if name in body:
            delay = as_decimal(body[name])
            if delay is None or delay < 0:
                return _error(400, f"{name} must be a number of seconds >= 0")
            sandbox().settings[setting] = float(delay)
    return ok(_subscription())


@control.get("/webhooks")
def deliveries() -> Response:
    """The delivery log, oldest first: event, order, attempts, last status, delivered."""
    return ok(sandbox().webhooks.log())


@control.post("/webhooks/resend/<key>")
def resend(key: str) -> Response:
    if not sandbox().webhooks.resend(key):
        return _error(404, "no webhook was sent for this order")
    return ok({"resent": True})


@control.post("/orders/<key>/refund")
def portal_refund(key: str) -> Response:
    """A refund made in Flex's portal: {"amount_cents": N}; the ledger and order.refunded."""
    cents = as_int(pick(fold(request.get_json(silent=True, force=True)), "amount_cents"))
    if cents is None or cents <= 0:
        return _error(400, "amount_cents must be a positive integer")
    found, left = refund_order(key, cents)
    if found is None:
        return _error(404, "unknown orderSessionKey")
    if left is not None:
        return _error(400, f"at most {left} cents can be refunded")
    return ok({"refunded_cents": found.refunded_cents, "status": found.status})


@control.post("/orders/<key>/decide")
def decide(key: str) -> Response:
    """Decides a SUBMITTED (3-D Secure) order now, instead of after `submitted_delay`:
    {"decision": "APPROVED" | "DECLINED" | …} overrides the test card's; sends its webhook."""
    body = fold(request.get_json(silent=True, force=True)) or {}
    decision = str(pick(body, "decision") or "").upper() or None
    if decision is not None and decision not in DECISIONS:
        return _error(400, f"decision must be one of {', '.join(DECISIONS)}")
    decided = sandbox().later.decide(key, decision)
    if decided is None:
        return _error(404, "unknown orderSessionKey")
    if not decided:
        return _error(409, "this order is not waiting for a decision")
    with sandbox().state.lock:
        return ok(order_json(sandbox().state.orders[key]))


@control.post("/orders/<key>/chargeback")
def chargeback(key: str) -> Response:
    """The cardholder disputed the charge: payment.chargeback.received."""
    with sandbox().state.lock:
        found = sandbox().state.orders.get(key)
        if found is not None:
            found.chargeback = True
    if found is None:
        return _error(404, "unknown orderSessionKey")
    notify(found, "payment.chargeback.received")
    return ok({"chargeback": True})


def _subscription() -> dict:
    sender = sandbox().webhooks
    return {"url": sender.url, "key_set": sender.key is not None,
            "lost_answer_delay": sandbox().settings["lost_answer_webhook_delay"],
            "submitted_delay": sandbox().settings["submitted_delay"]}


@control.get("/webhooks/subscription")
def subscription() -> Response:
    return ok(_subscription())
