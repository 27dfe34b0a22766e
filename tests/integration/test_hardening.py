"""Bad input refused, nothing leaked, headers set: each test fails if the property breaks."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path

import pytest

from app import create_app
from flex import sandbox as flex_sandbox
from tests.support import checkout_form, fill_cart, hidden

from .conftest import calls
from .test_shop import pay

FLEX_ENDPOINTS = ("tokenize", "transmit", "evaluate", "refund")


def flex_calls(server) -> int:
    return sum(len(calls(server, endpoint)) for endpoint in FLEX_ENDPOINTS)


def authorizations(caplog) -> int:
    return sum("authorization" in r.getMessage() for r in caplog.records
               if r.name == "shop.processor")


CHECKOUT_CASES = {
    "bad Luhn": ({"card_number": "4242 4242 4242 4241"}, 400, "This card number is not valid."),
    "expired card": ({"expiry": "01/20"}, 400, "This card has expired."),
    "bad expiry": ({"expiry": "13/30"}, 400, "Use MM/YY"),
    "short CVC": ({"cvc": "12"}, 400, "The CVC is the 3 or 4 digits"),
    "missing email": ({"email": ""}, 400, "This field is required."),
    "missing name": ({"name": ""}, 400, "This field is required."),
    "bad ZIP": ({"zip_code": "ABCDE"}, 400, "Use 5 or 9 digits."),
    "tampered total": ({"expected_total_cents": "1"}, 409, "Your cart changed"),
    "stale checkout id": ({"checkout_id": str(uuid.uuid4())}, 400, "checkout page has expired"),
    "forged CSRF token": ({"csrf_token": "forged"}, 400, "Form expired"),
    "missing CSRF token": ({"csrf_token": None}, 400, "Form expired"),
}


@pytest.mark.parametrize("case", CHECKOUT_CASES, ids=list(CHECKOUT_CASES))
def test_bad_checkout_input_is_refused_before_any_payment_call(client, fresh_sandbox, caplog,
                                                               case):
    caplog.set_level(logging.INFO)
    changes, status, message = CHECKOUT_CASES[case]
    fill_cart(client)
    form = checkout_form(client)
    form.update(changes)
    response = client.post("/checkout", data={k: v for k, v in form.items() if v is not None})
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    assert authorizations(caplog) == 0
    assert flex_calls(fresh_sandbox) == 0


CART_CASES = {
    "non-numeric quantity": {"sku": "mug", "quantity": "abc"},
    "negative quantity": {"sku": "mug", "quantity": "-1"},
    "huge quantity": {"sku": "mug", "quantity": "1000000"},
    "unknown product": {"sku": "no-such-thing", "quantity": "1"},
}


@pytest.mark.parametrize("case", CART_CASES, ids=list(CART_CASES))
def test_bad_cart_input_is_refused(client, case):
    csrf = hidden(client.get("/").get_data(as_text=True), "csrf_token")
    response = client.post("/cart/add", data={"csrf_token": csrf, **CART_CASES[case]})
    assert response.status_code == 400
    assert "Choose a product and a quantity" in response.get_data(as_text=True)
    assert "Cart (0)" in client.get("/").get_data(as_text=True)


REFUND_CASES = {
    "negative": ("-5", 400, "Enter an amount in dollars greater than zero"),
    "zero": ("0", 400, "Enter an amount in dollars greater than zero"),
    "non-numeric": ("ten dollars", 400, "Enter an amount in dollars greater than zero"),
    "more than 2 decimals": ("1.001", 400, "Enter an amount in dollars greater than zero"),
    "above remaining": ("18.01", 409, "Refund refused: only $18.00 can still be refunded."),
}


@pytest.mark.parametrize("case", REFUND_CASES, ids=list(REFUND_CASES))
def test_bad_refund_input_is_refused(client, fresh_sandbox, case):
    amount, status, message = REFUND_CASES[case]
    order_id, page = pay(client, "4000000000000002")  # rescued, $18.00
    response = client.post(f"/orders/{order_id}/refund",
                           data={"csrf_token": hidden(page, "csrf_token"), "amount": amount},
                           follow_redirects=True)
    assert [r.status_code for r in response.history] == [303]  # a reload cannot resend it
    assert response.status_code == status  # the page showing the refusal
    assert message in response.get_data(as_text=True)
    assert calls(fresh_sandbox, "refund") == []
    assert client.get(f"/orders/{order_id}").status_code == 200  # said once


def test_refund_of_an_unknown_order_is_a_404(client, fresh_sandbox):
    csrf = hidden(client.get("/").get_data(as_text=True), "csrf_token")
    response = client.post(f"/orders/{uuid.uuid4()}/refund", data={"csrf_token": csrf,
                                                                   "amount": "1.00"})
    assert response.status_code == 404
    assert "There is no order with this id." in response.get_data(as_text=True)
    assert calls(fresh_sandbox, "refund") == []


def test_oversized_body_is_a_413(client, fresh_sandbox):
    fill_cart(client)
    form = {**checkout_form(client), "address": "x" * 100_000}
    response = client.post("/checkout", data=form)
    assert response.status_code == 413
    assert flex_calls(fresh_sandbox) == 0


SENTINEL_CARDS = ("4000056655665556", "5200828282828210")  # Luhn-valid, used nowhere else
SENTINEL_CVC = "7391"
# A 4-digit run can occur by chance inside UUID hex or a number; a CVC that leaked would
# stand alone (in JSON quotes, an attribute, a log field), so search it between non-alnums.
CVC_ALONE = re.compile(rb"(?<![0-9A-Za-z])" + SENTINEL_CVC.encode() + rb"(?![0-9A-Za-z])")


def test_card_data_and_secrets_never_stored_logged_or_shown(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    pages, order_ids = [], []
    for number in SENTINEL_CARDS:
        fill_cart(client)
        form = {**checkout_form(client), "card_number": number, "cvc": SENTINEL_CVC}
        pages.append(client.post("/checkout", data={**form, "zip_code": "bad"}).data)  # re-render
        order = client.post("/checkout", data={**checkout_form(client), "card_number": number,
                                               "cvc": SENTINEL_CVC})
        order_ids.append(order.headers["Location"].rsplit("/", 1)[-1])
    fill_cart(client)
    client.post("/checkout", data={**checkout_form(client), "card_number": "4000000000000002",
                                   "cvc": SENTINEL_CVC})  # declined -> vault -> evaluate
    payments = app.extensions["payments"]
    assert payments.relay.run_once() == 2
    payments.flow.close()  # wait for background vault calls to finish logging
    pages += [client.get(path).data for path in
              ("/orders", "/flex", *(f"/orders/{order_id}" for order_id in order_ids))]

    database = Path(app.config["DATABASE"])
    stored = b"".join(p.read_bytes() for p in (database, Path(f"{database}-wal")) if p.exists())
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records).encode()
    bearer = payments.client._token.encode()
    for where, data in (("database", stored), ("logs", logs), *(("page", p) for p in pages)):
        for number in SENTINEL_CARDS:
            assert number.encode() not in data, f"card number in {where}"
        assert not CVC_ALONE.search(data), f"CVC in {where}"
        assert flex_sandbox.DEFAULT_APP_SECRET.encode() not in data, f"AppSecret in {where}"
        assert bearer not in data, f"bearer token in {where}"
    assert b"authorization" in logs  # the log was really captured


PAGES = ("/", "/cart", "/checkout", "/orders", "/flex", "/no-such-page")


def test_security_headers_on_every_page(client, fresh_sandbox):
    fill_cart(client)
    order_id, _ = pay(client, "4242424242424242")
    fill_cart(client)
    nonces = set()
    for path in (*PAGES, f"/orders/{order_id}"):
        response = client.get(path)
        policy = response.headers["Content-Security-Policy"]
        nonce = re.search(r"'nonce-([^']+)'", policy)[1]
        nonces.add(nonce)
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == f"'self' 'nonce-{nonce}' {fresh_sandbox.url}"
        assert directives["connect-src"] == f"'self' {fresh_sandbox.url}"
        assert directives["frame-ancestors"] == "'none'"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        if path == "/checkout":
            assert f'<script nonce="{nonce}">' in response.get_data(as_text=True)
    assert len(nonces) == len(PAGES) + 1  # a fresh nonce per response


def test_session_cookie_flags(make_app):
    for env, secure in (("development", False), ("production", True)):
        app = make_app(SHOP_ENV=env, SECRET_KEY="a-long-random-test-secret")
        response = app.test_client().get("/checkout")  # empty cart: flashes, sets the cookie
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure


def test_production_refuses_the_default_secret_key(tmp_path):
    with pytest.raises(RuntimeError, match="SECRET_KEY is the development default"):
        create_app({"SHOP_ENV": "production", "DATABASE": str(tmp_path / "x.sqlite"),
                    "FLEX_RELAY": False})


def test_demo_reset_and_inspector_exist_only_outside_production(make_app, tmp_path):
    demo = make_app(DATABASE=str(tmp_path / "demo.sqlite")).test_client()
    pay(demo, "4242424242424242")
    orders_page = demo.get("/orders").text
    assert "Flex calls" in orders_page and "Reset demo" in orders_page
    assert demo.get("/flex").status_code == 200
    reset = demo.post("/orders/reset", data={"csrf_token": hidden(orders_page, "csrf_token")},
                      follow_redirects=True)
    assert "Demo reset: every order was removed." in reset.text
    assert "No orders yet" in reset.text

    production = make_app(DATABASE=str(tmp_path / "live.sqlite"), SHOP_ENV="production",
                          SECRET_KEY="a-long-random-test-secret").test_client()
    production.environ_base["wsgi.url_scheme"] = "https"  # the session cookie is Secure
    order_id, order_page = pay(production, "4242424242424242")
    orders_page = production.get("/orders").text
    assert order_id[:8] in orders_page
    assert "Flex calls" not in orders_page and "Reset demo" not in orders_page
    assert production.get("/flex").status_code == 404
    response = production.post("/orders/reset",
                               data={"csrf_token": hidden(order_page, "csrf_token")})
    assert response.status_code == 404
    assert order_id[:8] in production.get("/orders").text
