"""Safe to run in production as it stands: the cart, file permissions, the merchant login,
who may see an order, the start-up Flex check, database restarts, plain-HTTP warnings."""

from __future__ import annotations

import pytest

from tests.support import checkout_form, fill_cart

TAMPERED_CARTS = {
    "a billion mugs": {"mug": 10**9},
    "negative quantity": {"mug": -3, "tee": 1},
    "quantity as text": {"mug": "5", "tee": 1},
    "unknown product": {"gold-bar": 1, "tee": 1},
    "not a mapping": ["mug", 1],
}


@pytest.mark.parametrize("case", TAMPERED_CARTS, ids=list(TAMPERED_CARTS))
def test_a_tampered_cart_cookie_is_validated_on_read(client, case):
    """The demo's key is public, so anyone can sign a cart: it is checked on every read,
    not only on add. Only lines this shop could have written are shown, priced and paid."""
    with client.session_transaction() as session:
        session["cart"] = TAMPERED_CARTS[case]
    cart = client.get("/cart").text
    assert "18,000,000" not in cart and "-$" not in cart
    expected = 0 if case in ("a billion mugs", "not a mapping") else 1
    assert f"Cart ({expected})" in cart
    if expected:
        assert checkout_form(client)["expected_total_cents"] == "2900"  # one tee


def test_a_cart_cookie_with_too_many_lines_keeps_one_per_product(client):
    fill_cart(client, "mug", 1)
    with client.session_transaction() as session:
        session["cart"] = {**{f"x{i}": 1 for i in range(200)}, "mug": 10, "tee": 10}
    assert "Cart (20)" in client.get("/cart").text
