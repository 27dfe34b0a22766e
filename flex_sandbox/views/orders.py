"""Flex orders after the decision: lookup and list, the deprecated /outcome, refunds, and the
authorization flow's capture and cancels. Every status change sends its webhook."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, request

from ..http import (
    envelope,
    flex_call,
    invalid,
    mid_mismatch,
    notify,
    ok,
    problem,
    refused,
    request_body,
    sandbox,
)
from ..lenient import as_int, json_body, pick, present, query
from ..rules import (
    CAPTURE_REQUIRED,
    STATUS_CODES,
    STATUS_NAMES,
    dollars_to_cents,
    missing,
    not_a_number,
    order_json,
    outcome_status,
    refund_message,
    refundable_cents,
)
from ..state import Kept, Order, State

orders = Blueprint("orders", __name__, url_prefix="/v1")

MAX_PAGE_SIZE = 100
REFUND_APPROVED_CODE = "00"  # our choice: Flex's code for a refund it made is not published
NOT_FOUND = "No order with this id."


# An orderSessionKey is a GUID (any case): `/v1/orders/refund` (a refund sent with an empty
# key, `orders//refund`) is then no route at all, 404 as on Flex, not a 405 for GET.
@orders.get("/orders/<uuid:key>")
@flex_call("order")
def order(key: uuid.UUID) -> Response:
    with sandbox().state.lock:
        found = sandbox().state.orders.get(str(key))
        body = order_json(found) if found else None
    if body is None:
        return problem(404, "Not Found", NOT_FOUND)
    return ok(envelope(**body))


@orders.get("/orders")
@flex_call("orders")
def order_list() -> Response:
    """?query=&status=&from=&to=&pageNumber=&pageSize= -> {items, totalCount, pageNumber,
    pageSize}, newest first (the list envelope is our choice: Flex does not document it)."""
    wanted, errors = _list_filter()
    if errors:
        return invalid(errors)
    page, size = wanted.pop("page"), wanted.pop("size")
    with sandbox().state.lock:
        found = sorted((o for o in sandbox().state.orders.values() if _matches(o, **wanted)),
                       key=lambda o: o.seq, reverse=True)
        items = [order_json(o) for o in found[(page - 1) * size:page * size]]
    return ok({"items": items, "totalCount": len(found), "pageNumber": page, "pageSize": size})


@orders.post("/outcome")
@flex_call("outcome")
def outcome() -> Response:
    """Deprecated but documented: the decision for an orderSessionKey (NOTFOUND if none)."""
    key = pick(json_body(), "orderSessionKey")
    if not present(key):
        return invalid({"OrderSessionKey": ["The OrderSessionKey field is required."]})
    with sandbox().state.lock:
        found = sandbox().state.orders.get(str(key))
        status = outcome_status(found) if found else "NOTFOUND"
    return ok(envelope(status=status, confirmationId=found.confirmation_id if found else None))


@orders.post("/orders/<uuid:key>/refund")
@flex_call("refund")
def refund(key: uuid.UUID) -> Response:
    body = json_body() or {}
    refusal = mid_mismatch(body)
    if refusal is not None:
        return refusal
    cents = dollars_to_cents(pick(body, "amountToRefund"))
    if cents is None:
        return invalid({"AmountToRefund": [
            "A positive amount in dollars with at most 2 decimals is required."]})
    found, left = refund_order(str(key), cents)
    if found is None:
        return problem(404, "Not Found", NOT_FOUND)
    if left is not None:
        return refused("2001", refund_message(cents, left))
    # The refusal's fields, with success: the documented status SUCCESS and the message
    # APPROVED that a published client read from Flex's real sandbox.
    return ok(envelope(responseCode=REFUND_APPROVED_CODE, responseMessage="APPROVED",
                       transactionId=str(uuid.uuid4()), status="SUCCESS"))


def refund_order(key: str, cents: int) -> tuple[Order | None, int | None]:
    """Refunds `cents` (API or portal): (order, None) when done, (order, cents left) when
    refused, (None, None) for an unknown order. One refund at a time: the ledger never goes
    above what was charged."""
    state = sandbox().state
    with state.lock:
        found = state.orders.get(key)
        if found is None:
            return None, None
        left = refundable_cents(found)
        if cents > left:
            return found, left
        found.refunded_cents += cents
        if found.refunded_cents >= found.amount_cents:
            found.status = "RETURNED"
    notify(found, "order.refunded")
    return found, None


@orders.post("/capture")
@flex_call("capture")
def capture() -> Response:
    body, refusal = request_body()
    if refusal is not None:
        return refusal
    errors = missing(body, CAPTURE_REQUIRED)
    amount = as_int(pick(body, "amount"))
    if present(pick(body, "amount")) and amount is None:
        errors.update(not_a_number("amount"))
    elif amount is not None and amount <= 0:
        errors["Amount"] = ["The field Amount must be greater than 0."]
    if errors:
        return invalid(errors)
    key = str(pick(body, "orderId"))
    return _once(f"capture:{pick(body, 'idempotencyKey')}", json.dumps(body, sort_keys=True),
                 lambda state: _capture(state, key, amount))


@orders.post("/orders/<uuid:key>/cancel")
@flex_call("cancel")
def cancel(key: uuid.UUID) -> Response:
    return _cancel(lambda state: state.orders.get(str(key)))


@orders.post("/orders/<merchant_order_id>/external-cancel")
@flex_call("cancel")
def external_cancel(merchant_order_id: str) -> Response:
    """The same as cancel, by the merchant's orderId (for an /evaluate whose answer was lost)."""
    return _cancel(lambda state: state.by_merchant_order_id(merchant_order_id))


def _cancel(find: Callable[[State], Order | None]) -> Response:
    body = json_body() or {}  # no body at all is the usual call
    key = pick(body, "idempotencyKey")
    if not present(key):
        with sandbox().state.lock:
            return _cancel_order(sandbox().state, find)
    payload = json.dumps({"path": request.path, **body}, sort_keys=True)
    return _once(f"cancel:{key}", payload, lambda state: _cancel_order(state, find))


def _once(key: str, payload: str, act: Callable[[State], Response]) -> Response:
    """Runs `act` once per idempotency key (kept 24 h): the same payload again gets the first
    answer, another payload a 409. An unknown order (404) is not kept: nothing happened."""
    state = sandbox().state
    with state.lock:
        kept = state.recall(key)
        if kept is not None:
            if kept.request != payload:
                return problem(409, "Conflict",
                               "This idempotencyKey was used with another request.")
            return Response(kept.body, kept.status, mimetype="application/json")
        response = act(state)
        if response.status_code != 404:
            state.kept[key] = Kept(payload, response.status_code, response.get_data(True))
    return response


def _capture(state: State, key: str, amount: int) -> Response:
    """Completes an authorization (caller holds the lock); at most the authorized amount."""
    found = state.orders.get(key)
    if found is None:
        return problem(404, "Not Found", NOT_FOUND)
    if found.status != "CAPTUREREQUIRED":
        return refused("2002", f"Order cannot be captured in status {found.status}.")
    if amount > found.amount_cents:
        return refused("2001", f"Amount to capture ({amount / 100:.2f}) is greater than the "
                               f"authorized amount ({found.amount_cents / 100:.2f})")
    found.amount_cents, found.status, found.expiry = amount, "COMPLETED", None
    notify(found, "order.completed")
    return ok(envelope(status="SUCCESS"))


def _cancel_order(state: State, find: Callable[[State], Order | None]) -> Response:
    """Voids an authorization (caller holds the lock); cancelling again is safe."""
    found = find(state)
    if found is None:
        return problem(404, "Not Found", NOT_FOUND)
    if found.status not in ("CAPTUREREQUIRED", "CANCELLED"):
        return refused("2003", f"Order cannot be cancelled in status {found.status}.")
    changed = found.status == "CAPTUREREQUIRED"
    found.status, found.expiry = "CANCELLED", None
    if changed:
        notify(found, "order.cancelled")
    return ok({})


def _list_filter() -> tuple[dict, dict[str, list[str]]]:
    """The list's query parameters (names in any case), and field errors for bad values."""
    errors: dict[str, list[str]] = {}
    status = query("status")
    if status is not None:
        code = as_int(status)
        status = STATUS_NAMES.get(code) if code is not None else status.upper()
        if status not in STATUS_CODES:
            errors["Status"] = [f"The value '{query('status')}' is not valid for Status."]
    page, size = _page_value("pageNumber", 1, errors), _page_value("pageSize", 20, errors)
    if size is not None and not 1 <= size <= MAX_PAGE_SIZE:
        errors["PageSize"] = [f"The field PageSize must be between 1 and {MAX_PAGE_SIZE}."]
    if page is not None and page < 1:
        errors["PageNumber"] = ["The field PageNumber must be at least 1."]
    dates = {name: _date_value(name, errors) for name in ("from", "to")}
    return {"text": query("query"), "status": status, "page": page, "size": size,
            **dates}, errors


def _page_value(name: str, default: int, errors: dict) -> int | None:
    raw = query(name)
    if raw is None:
        return default
    value = as_int(raw)
    if value is None:
        errors[name[:1].upper() + name[1:]] = [f"The value '{raw}' is not valid for {name}."]
    return value


def _date_value(name: str, errors: dict) -> tuple[datetime, bool] | None:
    """(moment, whole day?) for an ISO date or date-time; a bare date means the whole day."""
    raw = query(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        errors[name.title()] = [f"The value '{raw}' is not valid for {name.title()}."]
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment, len(raw) == 10


def _matches(found: Order, text: str | None, status: str | None, **dates) -> bool:
    placed = datetime.fromisoformat(found.placed_at)  # wire_time output; 3.11 reads "Z"
    if text is not None and text != found.merchant_order_id and (
            text.lower() != (found.email or "").lower()):
        return False
    if status is not None and found.status != status:
        return False
    start, end = dates.get("from"), dates.get("to")
    if start is not None and placed < start[0]:
        return False
    if end is not None:
        moment, whole_day = end
        return placed < moment + timedelta(days=1) if whole_day else placed <= moment
    return True
