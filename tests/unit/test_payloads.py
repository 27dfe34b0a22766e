"""Flex request bodies built from plain order data (no I/O)."""

from __future__ import annotations

import json

import pytest

from flex import Address, Card, LineItem, ProcessorResult, Purchase, payloads

CARD = Card("4000000000000002", "123", 3, 2031, "Ada King Lovelace")
PURCHASE = Purchase(
    "order-1", 3600, "USD", "ada@example.com",
    Address("1 Main St", "Springfield", "IL", "62701-1234", "US"),
    items=(LineItem("mug", "Flex Mug", 2, 1800),), customer_ip="203.0.113.9",
    sense_key="order-1",
)
DECLINE = ProcessorResult(False, "txn-9", "05", "Do not honor", "SimulatedPSP",
                          avs_result="Y", cvv_result="M", timestamp_utc="2026-11-24T12:00:00Z")


def test_tokenize_body():
    body = payloads.tokenize_body(CARD, email="ada@example.com", sense_key="order-1")
    credit_card = body["payment_method"]["credit_card"]
    assert credit_card == {"first_name": "Ada King", "last_name": "Lovelace",
                           "number": "4000000000000002", "verification_value": "123",
                           "month": "03", "year": "2031"}
    assert body["payment_method"]["sense_key"] == "order-1"


def test_evaluate_body_carries_the_vault_token_and_processor_answer():
    body = payloads.evaluate_body(PURCHASE, CARD.summary, "vault-token", DECLINE,
                                  mid="mid-1", site_id="site-1", idempotency_key="order-1")
    assert body["isDeclined"] is True and body["isMIT"] is False
    assert (body["mid"], body["siteId"], body["orderId"], body["idempotencyKey"]) == (
        "mid-1", "site-1", "order-1", "order-1")
    assert body["paymentMethod"]["cardNumber"] == "vault-token"
    assert body["paymentMethod"]["token"] is True
    assert body["transaction"]["amount"] == 3600
    assert isinstance(body["transaction"]["amount"], int)
    assert body["transaction"]["responseCode"] == "05"
    assert body["transaction"]["cavvResultCode"] == "NA"
    assert body["billingInformation"]["zipCode"] == "627011234"
    assert body["customerIp"] == "203.0.113.9" and body["senseKey"] == "order-1"
    assert body["orderItems"] == [{"sku": "mug", "name": "Flex Mug", "quantity": 2,
                                   "amount": 1800, "totalAmount": 3600}]


def test_transmit_body_has_no_card_number():
    approved = ProcessorResult(True, "txn-1", "00", "Approved", "SimulatedPSP")
    body = payloads.transmit_body(PURCHASE, CARD.summary, approved, mid="mid-1")
    assert body["isDeclined"] is False
    assert "cardNumber" not in body["paymentMethod"]
    assert "idempotencyKey" not in body
    assert CARD.number not in json.dumps(body)
    assert (body["paymentMethod"]["cardBinNumber"], body["paymentMethod"]["cardLast4Digits"]) == (
        "400000", "0002")


@pytest.mark.parametrize(("cents", "dollars", "text"), [
    (1, 0.01, "0.01"), (10, 0.1, "0.1"), (1999, 19.99, "19.99"), (123456, 1234.56, "1234.56"),
    (100, 1.0, "1.0"),
])
def test_refund_dollars_are_exact(cents, dollars, text):
    body = payloads.refund_body(cents, "Customer request")
    assert body["amountToRefund"] == dollars
    assert json.dumps(body["amountToRefund"]) == text


@pytest.mark.parametrize("bad", [0, -5, 12.5, True, "100", None])
def test_refund_rejects_anything_but_positive_cents(bad):
    with pytest.raises(ValueError):
        payloads.refund_body(bad)


def test_order_amount_must_be_whole_cents():
    with pytest.raises(ValueError):
        payloads.transmit_body(Purchase("o", 12.5, "USD", "a@b.co", PURCHASE.billing),
                               CARD.summary, DECLINE, mid="m")


def test_card_repr_never_shows_the_number():
    assert "4000000000000002" not in repr(CARD) and "123" not in repr(CARD)
