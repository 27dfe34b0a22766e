"""Flex orders in the sandbox after the decision, over plain HTTP: lookup and list, the
deprecated /outcome, refunds, and the authorization flow's capture and cancels."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import (
    CHALLENGED,
    FLEX_DECLINED,
    OTHER_MID,
    assert_flat_validation,
    assert_problem,
    decide,
)


def authorize(flex, order_id="o-auth", amount=1800) -> str:
    return decide(flex, order_id=order_id, amount=amount, transactionType="AUTHORIZATION")


def capture(flex, key: str, amount: int, idempotency_key: str | None = None):
    return flex("POST", "/capture", json={"idempotencyKey": idempotency_key or str(uuid.uuid4()),
                                          "orderId": key, "amount": amount, "currency": "USD"})


def status_of(flex, key: str) -> str:
    return flex("GET", f"/orders/{key}").json()["statusName"]


# --- lookup ------------------------------------------------------------------------------


def test_order_lookup_has_the_documented_fields(flex):
    key = decide(flex, order_id="merchant-42", shippingInformation={"city": "Springfield"})
    body = flex("GET", f"/orders/{key}").json()
    assert (body["id"], body["status"], body["statusName"]) == (key, 7, "COMPLETED")
    assert (body["amount"], body["currencyCode"], body["currencySymbol"]) == (1800, "USD", "$")
    assert (body["referenceNumber"], body["email"]) == ("merchant-42", "a@b.co")
    assert (body["firstName"], body["lastName"]) == ("Ada", "Lovelace")
    assert body["billingAddress"]["zipCode"] == "62701"  # sent as "zipcode"
    assert body["shippingAddress"]["city"] == "Springfield"
    assert body["orderPlacedDate"].endswith("Z") and uuid.UUID(body["correlationId"])
    assert (body["refundedAmount"], body["expiryDate"], body["success"]) == (0, None, True)


@pytest.mark.parametrize("card", [FLEX_DECLINED, CHALLENGED])
def test_declined_and_challenged_orders_are_cancelled(flex, card):
    body = flex("GET", f"/orders/{decide(flex, card)}").json()
    assert (body["status"], body["statusName"]) == (2, "CANCELLED")


def test_unknown_order_is_a_404_problem(flex):
    assert_problem(flex("GET", f"/orders/{uuid.uuid4()}"), 404)


# --- list --------------------------------------------------------------------------------


def test_order_list_filters_newest_first(flex):
    first = decide(flex, order_id="m-1")
    second = decide(flex, FLEX_DECLINED, order_id="m-2")
    third = decide(flex, order_id="m-1")  # a merchant orderId may be evaluated again
    everything = flex("GET", "/orders").json()
    assert [o["id"] for o in everything["items"]] == [third, second, first]
    assert (everything["totalCount"], everything["pageNumber"], everything["pageSize"]) == (
        3, 1, 20)
    by_reference = flex("GET", "/orders", params={"query": "m-1"}).json()
    assert [o["id"] for o in by_reference["items"]] == [third, first]
    assert flex("GET", "/orders", params={"query": "A@B.CO"}).json()["totalCount"] == 3
    assert flex("GET", "/orders", params={"query": "m-"}).json()["totalCount"] == 0
    for status in ("CANCELLED", "cancelled", "2"):
        found = flex("GET", "/orders", params={"Status": status}).json()["items"]
        assert [o["id"] for o in found] == [second]
    page = flex("GET", "/orders", params={"PageNumber": 2, "pageSize": 2}).json()
    assert [o["id"] for o in page["items"]] == [first] and page["totalCount"] == 3


def test_order_list_by_date(flex):
    key = decide(flex)
    today = datetime.now(UTC).date()
    found = flex("GET", "/orders", params={"from": today.isoformat(),
                                           "to": today.isoformat()}).json()
    assert [o["id"] for o in found["items"]] == [key]
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert flex("GET", "/orders", params={"from": tomorrow}).json()["totalCount"] == 0
    assert flex("GET", "/orders", params={
        "to": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}).json()["totalCount"] == 0


@pytest.mark.parametrize(("params", "field"), [
    ({"pageSize": 101}, "PageSize"), ({"pageSize": "x"}, "PageSize"),
    ({"pageNumber": 0}, "PageNumber"), ({"status": "PAID"}, "Status"),
    ({"from": "yesterday"}, "From"),
])
def test_order_list_refuses_bad_parameters(flex, params, field):
    assert_flat_validation(flex("GET", "/orders", params=params), field)


# --- outcome -----------------------------------------------------------------------------


def test_outcome_words(flex):
    approved, declined = decide(flex), decide(flex, FLEX_DECLINED, order_id="o-2")
    authorized = authorize(flex)
    cancelled = authorize(flex, order_id="o-void")
    flex("POST", f"/orders/{cancelled}/cancel").raise_for_status()

    def outcome(key):
        return flex("POST", "/outcome", json={"OrderSessionKey": key}).json()

    assert outcome(approved)["status"] == "APPROVED"
    assert len(outcome(approved)["confirmationId"]) == 8
    assert outcome(declined)["status"] == "DECLINED"
    assert outcome(authorized)["status"] == "CAPTUREREQUIRED"
    assert outcome(cancelled)["status"] == "CANCELLED"
    unknown = flex("POST", "/outcome", json={"orderSessionKey": str(uuid.uuid4())})
    assert unknown.status_code == 200
    assert (unknown.json()["status"], unknown.json()["confirmationId"]) == ("NOTFOUND", None)
    assert_flat_validation(flex("POST", "/outcome", json={}), "OrderSessionKey")


# --- refunds -----------------------------------------------------------------------------


def test_refund_rules(flex):
    approved, declined = decide(flex), decide(flex, FLEX_DECLINED, order_id="o-2")

    def refund(key, amount, **extra):
        return flex("POST", f"/orders/{key}/refund",
                    json={"amountToRefund": amount, "refundMessage": "test", **extra})

    done = refund(approved, 12.5, isPartialRefund=True, transactionId="t-1", mid=None)
    assert (done.status_code, done.json()["status"], done.json()["success"]) == (
        200, "SUCCESS", True)
    over = refund(approved, 6)
    assert over.status_code == 400
    assert (over.json()["status"], over.json()["responseCode"]) == ("FAILED", "2001")
    assert over.json()["responseMessage"] == (
        "Amount to refund (6.00) is greater than maximum refund amount in (5.50))")
    assert_flat_validation(refund(approved, 1.234), "AmountToRefund")
    assert_flat_validation(refund(approved, 0), "AmountToRefund")
    assert_flat_validation(refund(approved, -1), "AmountToRefund")
    assert refund(declined, 1).json()["status"] == "FAILED"
    assert_problem(refund("no-such-order", 1), 404)
    assert_problem(refund(approved, 1, mid=OTHER_MID), 403)
    assert refund(approved, "5.50").status_code == 200  # a number in a string
    order = flex("GET", f"/orders/{approved}").json()
    assert (order["statusName"], order["status"], order["refundedAmount"]) == (
        "RETURNED", 6, 1800)


def test_an_authorization_is_not_refundable_before_capture(flex):
    refused = flex("POST", f"/orders/{authorize(flex)}/refund", json={"amountToRefund": 1})
    assert (refused.status_code, refused.json()["status"]) == (400, "FAILED")


# --- capture -----------------------------------------------------------------------------


def test_capture_completes_an_authorization(flex):
    key = authorize(flex, amount=1800)
    answer = capture(flex, key, 1500)
    assert (answer.status_code, answer.json()["status"], answer.json()["success"]) == (
        200, "SUCCESS", True)
    order = flex("GET", f"/orders/{key}").json()
    assert (order["statusName"], order["amount"], order["expiryDate"]) == (
        "COMPLETED", 1500, None)
    refunded = flex("POST", f"/orders/{key}/refund", json={"amountToRefund": 15})
    assert refunded.status_code == 200


def test_capture_refusals(flex):
    key = authorize(flex, amount=1800)
    over = capture(flex, key, 1801)
    assert (over.status_code, over.json()["status"]) == (400, "FAILED")
    assert status_of(flex, key) == "CAPTUREREQUIRED"
    assert_flat_validation(capture(flex, key, 0), "Amount")
    completed = decide(flex, order_id="o-sale")
    assert capture(flex, completed, 100).json()["status"] == "FAILED"
    assert_problem(capture(flex, str(uuid.uuid4()), 100), 404)
    missing = flex("POST", "/capture", json={"orderId": key, "amount": 100, "currency": "USD"})
    body = assert_flat_validation(missing, "IdempotencyKey")
    assert body["IdempotencyKey"] == ["The IdempotencyKey field is required."]
    assert_problem(flex("POST", "/capture", json={
        "idempotencyKey": str(uuid.uuid4()), "orderId": key, "amount": 100, "currency": "USD",
        "mid": OTHER_MID}), 403)


def test_capture_idempotency(flex):
    key = authorize(flex, amount=1800)
    idempotency_key = str(uuid.uuid4())
    first = capture(flex, key, 1800, idempotency_key)
    again = capture(flex, key, 1800, idempotency_key)
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert first.json()["status"] == "SUCCESS"
    assert_problem(capture(flex, key, 1700, idempotency_key), 409)
    assert capture(flex, key, 1800).json()["status"] == "FAILED"  # a new key: already captured


# --- cancel ------------------------------------------------------------------------------


def test_cancel_voids_an_authorization_and_is_safe_to_repeat(flex):
    key = authorize(flex)
    for _ in range(2):
        answer = flex("POST", f"/orders/{key}/cancel")
        assert (answer.status_code, answer.json()) == (200, {})
    assert status_of(flex, key) == "CANCELLED"
    assert capture(flex, key, 100).json()["status"] == "FAILED"


def test_cancel_refusals(flex):
    completed = decide(flex)
    refused = flex("POST", f"/orders/{completed}/cancel")
    assert (refused.status_code, refused.json()["status"]) == (400, "FAILED")
    assert status_of(flex, completed) == "COMPLETED"
    assert_problem(flex("POST", f"/orders/{uuid.uuid4()}/cancel"), 404)


def test_cancel_idempotency_key(flex):
    first, second = authorize(flex, order_id="a-1"), authorize(flex, order_id="a-2")
    body = {"idempotencyKey": str(uuid.uuid4())}
    assert flex("POST", f"/orders/{first}/cancel", json=body).json() == {}
    assert flex("POST", f"/orders/{first}/cancel", json=body).json() == {}
    assert_problem(flex("POST", f"/orders/{second}/cancel", json=body), 409)
    assert status_of(flex, second) == "CAPTUREREQUIRED"


def test_external_cancel_by_the_merchant_order_id(flex):
    key = authorize(flex, order_id="merchant-77")
    answer = flex("POST", "/orders/merchant-77/external-cancel")
    assert (answer.status_code, answer.json()) == (200, {})
    assert status_of(flex, key) == "CANCELLED"
    assert flex("POST", "/orders/merchant-77/external-cancel").json() == {}
    assert_problem(flex("POST", "/orders/nobody-knows/external-cancel"), 404)
