"""Bad input refused, nothing leaked, headers set: each test fails if the property breaks."""

from __future__ import annotations

import logging
import re
import uuid

import pytest

import flex_sandbox
from app import DEV_SECRET_KEY, create_app
from flex.cit import DECLINED, CitResult
from flex.models import CardSummary, ProcessorResult
from shop.checkout import payment
from tests.support import (
    PRODUCTION,
    Shopper,
    calls,
    hidden,
    pay,
    sign_in,
    sqlite_files,
    status_label,
)

FLEX_ENDPOINTS = ("tokenize", "transmit", "evaluate", "refund")


def flex_calls(server) -> int:
    return sum(len(calls(server, endpoint)) for endpoint in FLEX_ENDPOINTS)


def authorizations(caplog) -> int:
    return sum("authorization" in r.getMessage() for r in caplog.records
               if r.name == "shop.checkout.processor")


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
    form = Shopper(client).ready_to_pay()
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
    "negative": ("-5", 400, "Enter an amount greater than zero, like 12.34."),
    "zero": ("0", 400, "Enter an amount greater than zero, like 12.34."),
    "non-numeric": ("ten dollars", 400, "Enter an amount in dollars with digits 0-9 only"),
    "more than 2 decimals": ("1.001", 400, "Use at most 2 decimal places (cents)"),
    "exponent": ("1e30", 400, "Enter an amount in dollars with digits 0-9 only"),
    "huge": ("99999999999999999999999999.99", 400, "That amount is too large"),
    "decimal comma": ("10,00", 400, "Type the amount without separators"),
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
    form = {**Shopper(client).ready_to_pay(), "address": "x" * 100_000}
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
    shopper = Shopper(client)
    for number in SENTINEL_CARDS:
        form = {**shopper.ready_to_pay(number), "cvc": SENTINEL_CVC}
        pages.append(client.post("/checkout", data={**form, "zip_code": "bad"}).data)  # re-render
        order = client.post("/checkout", data={**shopper.checkout_form(number),
                                               "cvc": SENTINEL_CVC})
        order_ids.append(order.headers["Location"].rsplit("/", 1)[-1])
    client.post("/checkout", data={**shopper.ready_to_pay("4000000000000002"),
                                   "cvc": SENTINEL_CVC})  # declined -> vault -> evaluate
    services = app.extensions["services"]
    assert services.relay.run_once() == 2
    services.flow.close()  # wait for background vault calls to finish logging
    pages += [client.get(path).data for path in
              ("/orders", "/flex", *(f"/orders/{order_id}" for order_id in order_ids))]

    stored = b"".join(p.read_bytes() for p in sqlite_files(app))
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records).encode()
    bearer = services.client._token.encode()
    for where, data in (("database", stored), ("logs", logs), *(("page", p) for p in pages)):
        for number in SENTINEL_CARDS:
            assert number.encode() not in data, f"card number in {where}"
        assert not CVC_ALONE.search(data), f"CVC in {where}"
        assert flex_sandbox.DEFAULT_APP_SECRET.encode() not in data, f"AppSecret in {where}"
        assert bearer not in data, f"bearer token in {where}"
    assert b"authorization" in logs  # the log was really captured


PAGES = ("/", "/cart", "/checkout", "/orders", "/flex", "/no-such-page")


def test_security_headers_on_every_page(client, fresh_sandbox):
    Shopper(client).fill_cart()
    order_id, _ = pay(client, "4242424242424242")
    Shopper(client).fill_cart()
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
        app = make_app(**{**PRODUCTION, "SHOP_ENV": env})
        response = app.test_client().get("/checkout")  # empty cart: flashes, sets the cookie
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure


@pytest.mark.parametrize(("secret_key", "message"), [
    (None, "SECRET_KEY is not set: "),  # says exactly what is wrong
    ("", "SECRET_KEY is not set: "),
    (DEV_SECRET_KEY, "SECRET_KEY is the development default "),
])
def test_production_refuses_a_missing_or_default_secret_key(tmp_path, monkeypatch, secret_key,
                                                            message):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    settings = {"SHOP_ENV": "production", "DATABASE": str(tmp_path / "x.sqlite"),
                "FLEX_RELAY": False}
    if secret_key is not None:
        settings["SECRET_KEY"] = secret_key
    with pytest.raises(RuntimeError) as refused:
        create_app(settings)
    assert str(refused.value).startswith(message)


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
    Shopper(demo).fill_cart()
    assert "data-demo-shopper" in demo.get("/checkout").text  # a test card fills the form

    production = make_app(DATABASE=str(tmp_path / "live.sqlite"), **PRODUCTION).test_client()
    production.environ_base["wsgi.url_scheme"] = "https"  # the session cookie is Secure
    order_id, _ = pay(production, "4242424242424242")
    sign_in(production)  # the back office is behind the merchant login
    orders_page = production.get("/orders").text
    assert order_id[:8] in orders_page
    assert "Reset demo" not in orders_page
    assert production.get("/flex").status_code == 200
    response = production.post("/orders/reset",
                               data={"csrf_token": hidden(orders_page, "csrf_token")})
    assert response.status_code == 404
    assert order_id[:8] in production.get("/orders").text
    Shopper(production).fill_cart()
    assert "data-demo-shopper" not in production.get("/checkout").text  # never a made-up shopper


def test_hsts_on_every_response_in_production_only(make_app, tmp_path):
    production = make_app(DATABASE=str(tmp_path / "live.sqlite"), **PRODUCTION).test_client()
    production.environ_base["wsgi.url_scheme"] = "https"
    responses = [production.get(path) for path in PAGES]
    responses.append(production.post("/checkout", data={}))  # refused: 400 error page
    responses.append(production.put("/checkout"))  # 405
    assert {r.status_code for r in responses} >= {200, 302, 400, 404, 405}
    for response in responses:
        assert response.headers["Strict-Transport-Security"] == (
            "max-age=31536000; includeSubDomains")

    development = make_app(DATABASE=str(tmp_path / "demo.sqlite")).test_client()
    assert "Strict-Transport-Security" not in development.get("/").headers


def test_cart_above_flex_amount_rule_says_flex_cannot_rescue_it(client, fresh_sandbox):
    """The sandbox evaluates only amounts under $200.00: a declined $290.00 cart cannot be
    rescued, and "try again later" would send the shopper round in circles."""
    order_id, page = pay(client, "4000000000000002", sku="tee", quantity=10)  # $290.00
    evaluate = calls(fresh_sandbox, "evaluate")
    assert [call["status"] for call in evaluate] == [400]
    assert status_label(page) == "Declined"
    assert "Flex cannot rescue a payment of this amount" in page
    assert "No money was taken" in page
    assert "try again" not in page


def test_flex_outage_still_says_the_payment_is_not_confirmed(client, fresh_sandbox):
    """Only the amount rule gets the new message: an unanswered /evaluate does not."""
    _, page = pay(client, "4000000000000119")
    assert "Flex cannot rescue" not in page
    assert "We are confirming this payment with Flex" in page


@pytest.mark.parametrize(("field", "value"), [
    ("name", "José Müller-Łukasiewicz"), ("name", "山田 太郎"), ("name", "O'Brien"),
    ("address", "Straße 5, Wohnung 12"), ("address", "1600 Amphitheatre Pkwy, Apt 1234"),
    ("address", "PO Box 12345 67890"), ("city", "Zürich"), ("email", "anne+shop@exämple.de"),
    ("zip_code", "62701-1234"), ("country", "de"),
])
def test_ordinary_text_is_accepted(app, client, fresh_sandbox, field, value):
    """The refusals above do not catch what real shoppers type."""
    form = {**Shopper(client).ready_to_pay(), field: value}
    response = client.post("/checkout", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]


@pytest.mark.parametrize(("refused_fields", "refused_amount"), [
    (("Transaction.Amount",), True),
    (("transaction.amount", "OrderId"), True),  # names are case-insensitive, as in Flex
    (("OrderId",), False),
    ((), False),  # Flex's answer is unknown, or it was not a field error
])
def test_flex_amount_refusal_is_read_from_the_fields_flex_named(refused_fields, refused_amount):
    """The client parses both error forms (flat, problem details) into the same field names."""
    result = CitResult(
        DECLINED, ProcessorResult(False, "txn", "05", "Do not honor", "Simulated"),
        CardSummary("VISA", "400000", "0002", 12, 2034, "Ada Lovelace"),
        evaluate_payload={"orderId": "o-1"}, flex_error="evaluate: refused",
        refused_fields=refused_fields)
    assert payment.flex_refused_amount(result) is refused_amount
