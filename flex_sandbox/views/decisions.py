"""After the processor answered: POST /v1/transmit (approved) and POST /v1/evaluate
(declined: Flex decides)."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response

from ..http import envelope, flex_call, invalid, notify, ok, problem, request_body, sandbox
from ..later import EVENT_FOR, PENDING, expiry_for, status_for
from ..lenient import as_int, pick, present
from ..rules import (
    AMOUNT_RULE,
    CHALLENGED_WITH_PHONE,
    EVALUATE_REQUIRED,
    LOST_ANSWER_CARDS,
    OTHER_CARDS,
    OUTCOMES,
    TRANSMIT_REQUIRED,
    address,
    is_pan,
    missing,
    not_a_number,
    wire_time,
)
from ..state import Order

decisions = Blueprint("decisions", __name__, url_prefix="/v1")


@decisions.post("/transmit")
@flex_call("transmit")
def transmit() -> Response:
    body, refusal = request_body()
    if refusal is not None:
        return refusal
    errors = {**missing(body, TRANSMIT_REQUIRED), **_number_errors(body)}
    if errors:
        return invalid(errors)
    return ok(envelope(result="success", transmitId=str(uuid.uuid4())))


@decisions.post("/evaluate")
@flex_call("evaluate")
def evaluate() -> Response:
    body, refusal = request_body()
    if refusal is not None:
        return refusal
    number, card_errors = _card_number(body)
    errors = {**missing(body, EVALUATE_REQUIRED), **_number_errors(body), **card_errors}
    amount = as_int(pick(body, "transaction.amount"))
    if amount is not None and not 10 < amount < 20000:
        errors["Transaction.Amount"] = [AMOUNT_RULE]
    if errors:
        return invalid(errors)
    return _decide(body, number)


def _number_errors(body: dict) -> dict[str, list[str]]:
    """Integers may come as strings ("-5"); anything else that is not a number is refused."""
    errors = {}
    for path in ("transaction.amount", "transaction.timezoneUtcOffset"):
        value = pick(body, path)
        if present(value) and as_int(value) is None:
            errors.update(not_a_number(path))
    return errors


def _card_number(body: dict) -> tuple[str | None, dict[str, list[str]]]:
    """The card behind paymentMethod.cardNumber: a raw PAN (Luhn-valid, 12-19 digits, with
    `token` absent or false) or a vault token; and the field error, if any."""
    value = str(pick(body, "paymentMethod.cardNumber") or "")
    as_token = pick(body, "paymentMethod.token")
    if not value:
        return None, {}
    if is_pan(value):
        if as_token is True:
            return None, {"PaymentMethod.CardNumber": [
                "A card number was sent with token: true; send the vault token instead."]}
        return value, {}
    if as_token is False:
        return None, {"PaymentMethod.CardNumber": ["The card number is not valid."]}
    with sandbox().state.lock:
        card = sandbox().state.vault.get(value)
    if card is None:
        return None, {"PaymentMethod.CardNumber": ["Unknown vault token."]}
    return card["number"], {}


def _decide(body: dict, number: str | None) -> Response:
    """One Flex order per idempotencyKey: a replay gets the first answer, another orderId
    with the same key a 409. Card 4000000000000119 is decided, but answered with a 503; an
    evaluate carrying threeDSecure is answered SUBMITTED and decided later."""
    key, order_id = str(pick(body, "idempotencyKey")), str(pick(body, "orderId"))
    state = sandbox().state
    created = False
    with state.lock:
        seen = state.evaluations.get(key)
        if seen is not None and seen[0] != order_id:
            return problem(409, "Conflict", "idempotencyKey was used for another orderId.")
        if seen is None:
            order, created = _new_order(body, number), True
            state.add_order(order)
            state.evaluations[key] = (order_id, order.order_session_key)
        else:
            order = state.orders[seen[1]]
    if created and order.decision == "SUBMITTED":
        sandbox().later.schedule(order.order_session_key, sandbox().settings["submitted_delay"])
    elif created and order.decision in EVENT_FOR:
        delay = sandbox().settings["lost_answer_webhook_delay"] if order.answer_lost else 0.0
        notify(order, EVENT_FOR[order.decision], delay)
    if order.answer_lost:
        return problem(503, "Service Unavailable", "The answer was lost on the way back.")
    return ok(envelope(orderSessionKey=order.order_session_key, senseKey=None,
                       orderId=order.order_session_key, result="Success",
                       status=order.decision))


def _decision(body: dict, number: str | None) -> str:
    """What Flex decides: by test card; DECLINED without an amount, currency or card."""
    if number is None or as_int(pick(body, "transaction.amount")) is None or not present(
            pick(body, "transaction.currency")):
        return "DECLINED"
    decision = OUTCOMES.get(number, OTHER_CARDS)
    if number in CHALLENGED_WITH_PHONE and present(pick(body, "payer.phone")):
        decision = "CHALLENGE"
    kind = str(pick(body, "transactionType") or "").upper()
    return "CAPTUREREQUIRED" if decision == "APPROVED" and kind == "AUTHORIZATION" else decision


def _new_order(body: dict, number: str | None) -> Order:
    decision = _decision(body, number)
    answer_lost = number in LOST_ANSWER_CARDS
    three_d_secure = pick(body, "threeDSecure")
    later = None
    if isinstance(three_d_secure, dict) and three_d_secure and not answer_lost:
        decision, later = "SUBMITTED", decision  # 3-D Secure ran: Flex decides later
    billing = pick(body, "billingInformation")
    currency = pick(body, "transaction.currency")
    return Order(
        order_session_key=str(uuid.uuid4()), merchant_order_id=str(pick(body, "orderId")),
        decision=decision, later=later,
        status=PENDING if later else status_for(decision),
        amount_cents=as_int(pick(body, "transaction.amount")) or 0,
        currency=str(currency).upper() if present(currency) else None, placed_at=wire_time(),
        email=pick(body, "payer.email"), secondary_email=pick(body, "payer.secondaryEmail"),
        phone=pick(body, "payer.phone") or pick(billing, "phone"),
        first_name=pick(billing, "firstName"), last_name=pick(billing, "lastName"),
        billing=address(billing), shipping=address(pick(body, "shippingInformation")),
        sense_key=pick(body, "senseKey"),
        expiry=None if later else expiry_for(decision), answer_lost=answer_lost)
