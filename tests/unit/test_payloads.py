"""Flex request bodies built from plain order data (no I/O)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from flex import Address, Card, LineItem, ProcessorResult, Purchase, ThreeDSecure, payloads

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


def test_evaluate_body_passes_the_processors_three_d_secure_result_through():
    authenticated = dataclasses.replace(DECLINE, cavv_result="2", three_d_secure=ThreeDSecure(
        "2.2.0", "05", "AAABBEg0VhI0VniQEjRWAAAAAAA=", ds_transaction_id="ds-1",
        authentication_value_algorithm="2", directory_response_status="Y",
        authentication_response_status="Y", enrolled="Y"))
    body = payloads.evaluate_body(PURCHASE, CARD.summary, "vault-token", authenticated,
                                  mid="mid-1", idempotency_key="order-1")
    assert body["threeDSecure"] == {
        "threeDsVersion": "2.2.0", "EcommerceIndicator": "05",
        "authenticationValue": "AAABBEg0VhI0VniQEjRWAAAAAAA=",
        "directoryServerTransactionId": "ds-1", "authenticationValueAlgorithm": "2",
        "directoryResponseStatus": "Y", "authenticationResponseStatus": "Y", "enrolled": "Y",
    }  # xid (3-D Secure 1 only) is left out when empty
    assert body["transaction"]["cavvResultCode"] == "2"
    plain = payloads.evaluate_body(PURCHASE, CARD.summary, "vault-token", DECLINE,
                                   mid="mid-1", idempotency_key="order-1")
    assert "threeDSecure" not in plain


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


def test_values_the_merchant_does_not_have_are_left_out_not_sent_empty():
    bare = Purchase("order-2", 1800, "USD", "ada@example.com", PURCHASE.billing)
    unknown = ProcessorResult(False, "txn-2", "05", "", "")
    body = payloads.evaluate_body(bare, CARD.summary, "vault-token", unknown, mid="mid-1",
                                  idempotency_key="order-2")
    assert "customerIp" not in body and "senseKey" not in body and "siteId" not in body
    for name in ("timestampUtc", "responseDescription", "processorName"):
        assert name not in body["transaction"]
    assert body["transaction"]["responseCodeSource"] == "NA"  # required: "not available"
    assert "" not in json.dumps(body).split('"')[1::2]  # no "" anywhere


def test_capture_and_cancel_bodies():
    assert payloads.capture_body("key-1", 1800, "USD", "idem-1") == {
        "idempotencyKey": "idem-1", "orderId": "key-1", "amount": 1800, "currency": "USD"}
    with pytest.raises(ValueError):
        payloads.capture_body("key-1", 18.0, "USD", "idem-1")
    assert payloads.cancel_body(None) is None
    assert payloads.cancel_body("idem-1") == {"idempotencyKey": "idem-1"}


def test_the_client_builds_bodies_with_the_mid_and_site_id_of_its_config():
    from flex import FlexClient, FlexConfig

    client = FlexClient(FlexConfig(api_url="http://127.0.0.1:9/v1", app_key="k",
                                   app_secret="s", mid="mid-1", tokenization_key="t",
                                   site_id="site-1"))
    try:
        evaluate = client.evaluate_payload(PURCHASE, CARD.summary, "vault-token", DECLINE,
                                           idempotency_key="order-1")
        transmit = client.transmit_payload(PURCHASE, CARD.summary, DECLINE)
    finally:
        client.close()
    assert (evaluate["mid"], evaluate["siteId"], transmit["mid"], transmit["siteId"]) == (
        "mid-1", "site-1", "mid-1", "site-1")
    assert evaluate == payloads.evaluate_body(PURCHASE, CARD.summary, "vault-token", DECLINE,
                                              mid="mid-1", site_id="site-1",
                                              idempotency_key="order-1")


@pytest.mark.parametrize("kind", ["AUTHORIZATION", "authorization", "Purchase"])
def test_evaluate_body_carries_the_transaction_type(kind):
    body = payloads.evaluate_body(PURCHASE, CARD.summary, "vault-token", DECLINE,
                                  mid="mid-1", idempotency_key="order-1", transaction_type=kind)
    assert body["transactionType"] == kind.upper()
    assert payloads.is_authorization(json.loads(json.dumps(body))) == (kind.upper()
                                                                       == "AUTHORIZATION")


def test_evaluate_body_is_a_purchase_by_default_and_refuses_an_unknown_type():
    body = payloads.evaluate_body(PURCHASE, CARD.summary, "vault-token", DECLINE,
                                  mid="mid-1", idempotency_key="order-1")
    assert body["transactionType"] == "PURCHASE"
    assert not payloads.is_authorization(body)
    assert not payloads.is_authorization({})  # a body kept before the field existed
    with pytest.raises(ValueError):
        payloads.evaluate_body(PURCHASE, CARD.summary, "vault-token", DECLINE, mid="mid-1",
                               idempotency_key="order-1", transaction_type="SALE")


def test_flex_config_transaction_type_reaches_the_evaluate_payload():
    from flex import FlexClient, FlexConfig, TransactionType

    def config(**extra):
        return FlexConfig(api_url="http://127.0.0.1:9/v1", app_key="k", app_secret="s",
                          mid="mid-1", tokenization_key="t", **extra)

    assert config().transaction_type is TransactionType.PURCHASE
    client = FlexClient(config(transaction_type="authorization"))
    try:
        assert client.config.transaction_type is TransactionType.AUTHORIZATION
        body = client.evaluate_payload(PURCHASE, CARD.summary, "vault-token", DECLINE,
                                       idempotency_key="order-1")
        assert body["transactionType"] == "AUTHORIZATION"
        # /transmit reports a sale the merchant's processor approved: not Flex's to capture.
        assert client.transmit_payload(PURCHASE, CARD.summary, DECLINE)["transactionType"] \
            == "PURCHASE"
    finally:
        client.close()
    with pytest.raises(ValueError, match="PURCHASE or AUTHORIZATION"):
        config(transaction_type="SALE")
