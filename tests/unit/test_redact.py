"""Redaction of card data and secrets before anything is logged, stored or shown."""

from __future__ import annotations

from flex.redact import mask_card_numbers, redact


def test_nested_card_fields_and_secrets():
    data = {"payment_method": {"credit_card": {"Number": "4242424242424242",
                                               "Verification_Value": "123"}},
            "AppSecret": "s3cret", "accessToken": "jwt", "items": [{"cvv": "999"}]}
    assert redact(data) == {
        "payment_method": {"credit_card": {"Number": "424242******4242",
                                           "Verification_Value": "***"}},
        "AppSecret": "[redacted]", "accessToken": "[redacted]", "items": [{"cvv": "***"}],
    }
    assert data["AppSecret"] == "s3cret"  # the input is not modified


def test_vault_token_uuid_is_kept():
    token = "9b2f6c1e-1111-2222-3333-444455556666"
    assert redact({"cardNumber": token}) == {"cardNumber": token}


def test_card_numbers_in_free_text_are_masked():
    assert mask_card_numbers("card 4242 4242 4242 4242 ok") == "card 424242******4242 ok"
    assert mask_card_numbers("pan=5555-5555-5555-4444") == "pan=555555******4444"


def test_uuids_are_not_mistaken_for_card_numbers():
    # "3526-7002-4126-9" is 13 Luhn-valid digits, but it is part of an order id.
    order_id = "385d3526-7002-4126-9be8-930839b48509"
    assert redact({"orderId": order_id, "note": f"order {order_id}"}) == {
        "orderId": order_id, "note": f"order {order_id}"}


def test_ordinary_numbers_survive():
    data = {"amount": 1800, "orderSessionKey": "e97b1ff1-4449-46da-bc6c-a76d23f16353",
            "timestampUtc": "2026-11-24T12:00:00.000Z", "expires": 1712237948565,
            "note": "order 1234567890123 shipped"}  # 13 digits but not Luhn-valid
    assert redact(data) == data

