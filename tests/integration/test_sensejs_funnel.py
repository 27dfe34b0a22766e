"""SenseJS on every page of the checkout funnel (cart, checkout, confirmation), `fc('init')`
once per page, one senseKey from the cart to the confirmation, which the shop sends to
Flex; and a CSP that lets the SenseJS origin load the script and post to it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from tests.support import APPROVED, RESCUED, Shopper, calls, hidden


def sense_key(html: str) -> str | None:
    """The senseKey the page gives SenseJS, checking the snippet is there exactly once."""
    keys = re.findall(r"fc\('setOrderId', \"([^\"]+)\"\);", html)
    assert html.count("fc('init', MID, siteId);") == len(keys) <= 1
    return keys[0] if keys else None


def test_one_sense_key_from_cart_to_confirmation(client, fresh_sandbox):
    Shopper(client).fill_cart()
    cart = client.get("/cart").get_data(as_text=True)
    key = sense_key(cart)
    assert key and sense_key(client.get("/cart").get_data(as_text=True)) == key  # stays
    checkout = client.get("/checkout").get_data(as_text=True)
    assert hidden(checkout, "checkout_id") == sense_key(checkout) == key

    response = client.post("/checkout", data=Shopper(client).checkout_form(RESCUED, checkout))
    assert response.headers["Location"].endswith(f"/orders/{key}")
    assert sense_key(client.get(f"/orders/{key}").get_data(as_text=True)) == key
    [evaluate] = [c for c in calls(fresh_sandbox, "evaluate") if c["request"]["orderId"] == key]
    assert evaluate["request"]["senseKey"] == key
    assert any(c["request"]["payment_method"].get("sense_key") == key
               for c in calls(fresh_sandbox, "tokenize"))

    # A new visit to the cart starts a new funnel, with a new key.
    assert sense_key(client.get("/cart").get_data(as_text=True)) not in (None, key)


def test_a_reload_of_checkout_is_a_new_attempt_with_its_own_key(client):
    Shopper(client).fill_cart()
    client.get("/cart")
    first = client.get("/checkout").get_data(as_text=True)
    again = client.get("/checkout").get_data(as_text=True)
    assert hidden(again, "checkout_id") != hidden(first, "checkout_id")
    assert sense_key(again) == hidden(again, "checkout_id")


def test_only_the_shopper_who_placed_an_order_runs_sensejs_on_it(app, client):
    Shopper(client).fill_cart()
    checkout = client.get("/checkout").get_data(as_text=True)
    order_id = hidden(checkout, "checkout_id")
    client.post("/checkout", data=Shopper(client).checkout_form(APPROVED, checkout))
    assert sense_key(client.get(f"/orders/{order_id}").get_data(as_text=True)) == order_id
    someone_else = app.test_client()  # e.g. the merchant: not the shopper's device
    assert sense_key(someone_else.get(f"/orders/{order_id}").get_data(as_text=True)) is None


def test_csp_allows_the_sensejs_origin_for_scripts_and_connections(client, fresh_sandbox):
    Shopper(client).fill_cart()
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(fresh_sandbox.url))
    for path in ("/cart", "/checkout"):
        policy = dict(part.strip().split(" ", 1) for part in client.get(path).headers[
            "Content-Security-Policy"].split(";"))
        assert origin in policy["script-src"].split() and "'self'" in policy["script-src"]
        assert origin in policy["connect-src"].split()
        assert "'unsafe-inline'" not in policy["script-src"]
