"""The storefront through the Flask test client, with the Flex sandbox serving real HTTP
on loopback and the shop configured exactly as for Flex's real sandbox (FLEX_API_URL set)."""

from __future__ import annotations

import pytest

from app import create_app
from shop.services import ConfigError
from shop.storage import db
from tests.support import (
    APPROVED,
    CHALLENGED,
    FLEX_DECLINED,
    FLEX_DOWN,
    RESCUED,
    Shopper,
    calls,
    db_rows,
    hidden,
    pay,
    services_of,
    sqlite_files,
    status_label,
)


@pytest.mark.storage
@pytest.mark.parametrize("card", [APPROVED, "5555555555554444", "4111111111111111"])
def test_approved_card_is_paid_and_transmit_is_queued_not_sent(client, fresh_sandbox, card):
    order_id, page = pay(client, card)
    assert status_label(page) == "Paid"
    assert "transmit queued" in page or "pending" in page
    assert calls(fresh_sandbox, "evaluate") == []
    assert calls(fresh_sandbox, "transmit") == []  # the response did not wait for it


@pytest.mark.storage
def test_relay_delivers_the_transmit(app, client, fresh_sandbox):
    order_id, _ = pay(client, APPROVED)
    assert services_of(app).relay.run_once() == 1
    transmits = calls(fresh_sandbox, "transmit")
    assert [call["request"]["orderId"] for call in transmits] == [order_id]
    assert transmits[0]["status"] == 200
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert "delivered" in page
    assert services_of(app).relay.run_once() == 0  # delivered once, not again


@pytest.mark.storage
def test_declined_card_rescued_by_flex(client, fresh_sandbox):
    order_id, page = pay(client, RESCUED)
    assert status_label(page) == "Rescued by Flex"
    evaluate = calls(fresh_sandbox, "evaluate")
    assert len(evaluate) == 1
    body = evaluate[0]["request"]
    assert body["orderId"] == order_id
    assert body["idempotencyKey"] == order_id
    assert body["senseKey"] == order_id
    assert body["transaction"]["responseCode"] == "05"
    assert body["paymentMethod"]["token"] is True
    assert evaluate[0]["response"]["orderSessionKey"] in page
    assert "/v1/evaluate" in page and "/v1/tokenize" in page  # the timeline


@pytest.mark.parametrize("card", [CHALLENGED, FLEX_DECLINED])
def test_challenge_and_flex_decline_are_declines(client, card):
    _, page = pay(client, card)
    assert status_label(page) == "Declined"
    assert "No money was taken" in page


@pytest.mark.storage
def test_flex_unavailable_awaits_confirmation_and_flags_it_for_recovery(client, fresh_sandbox):
    _, page = pay(client, FLEX_DOWN)
    assert status_label(page) == "Awaiting confirmation"
    assert "We are confirming this payment with Flex" in page
    assert "Try another card" not in page  # Flex may yet charge it: no second payment
    assert len(calls(fresh_sandbox, "evaluate")) == 3  # first try + 2 retries, then gave up


@pytest.mark.storage
def test_refunds_partial_then_full_then_refused(client, fresh_sandbox):
    order_id, page = pay(client, RESCUED, quantity=2)  # $36.00
    csrf = hidden(page, "csrf_token")
    response = client.post(f"/orders/{order_id}/refund",
                           data={"csrf_token": csrf, "amount": "10.00"})
    assert response.status_code == 303
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert status_label(page) == "Partially refunded"
    assert hidden(page, "amount") == ""  # nothing prefilled: Full and Half fill it on purpose
    assert 'data-fill-amount="26.00"' in page and 'aria-label="Full: $26.00"' in page
    assert 'data-fill-amount="13.00"' in page and 'aria-label="Half: $13.00"' in page
    for why in ("vaulting the card", "asking Flex to decide the declined payment",
                "authorizing the card with the processor",
                "refunding $10.00, as the merchant asked"):  # each call says why it was made
        assert why in page

    client.post(f"/orders/{order_id}/refund", data={"csrf_token": csrf, "amount": "26.00"})
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert status_label(page) == "Refunded"
    refunds = calls(fresh_sandbox, "refund")
    assert [c["request"]["amountToRefund"] for c in refunds] == [10.0, 26.0]

    response = client.post(f"/orders/{order_id}/refund",
                           data={"csrf_token": csrf, "amount": "1.00"})
    assert response.status_code == 303  # Post/Redirect/Get, errors too
    response = client.get(response.headers["Location"])
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Refund refused" in page
    assert 'aria-invalid="true"' in page
    assert len(calls(fresh_sandbox, "refund")) == 2  # refused before reaching Flex


@pytest.mark.storage
def test_over_refund_refused_and_paid_order_refunds_through_processor(client, fresh_sandbox):
    order_id, page = pay(client, APPROVED)  # $18.00
    csrf = hidden(page, "csrf_token")
    response = client.post(f"/orders/{order_id}/refund",
                           data={"csrf_token": csrf, "amount": "18.01"}, follow_redirects=True)
    assert "Refund refused" in response.get_data(as_text=True)
    assert len(response.history) == 1  # redirected: a reload does not post again
    response = client.post(f"/orders/{order_id}/refund",
                           data={"csrf_token": csrf, "amount": "18.00"}, follow_redirects=True)
    assert status_label(response.get_data(as_text=True)) == "Refunded"
    assert calls(fresh_sandbox, "refund") == []  # not charged by Flex: not refunded by it


@pytest.mark.storage
def test_declined_order_cannot_be_refunded(client):
    order_id, page = pay(client, FLEX_DECLINED)
    assert 'name="amount"' not in page  # no refund form is offered
    csrf = hidden(client.get("/").get_data(as_text=True), "csrf_token")
    response = client.post(f"/orders/{order_id}/refund",
                           data={"csrf_token": csrf, "amount": "1.00"}, follow_redirects=True)
    assert "cannot be refunded" in response.get_data(as_text=True)


@pytest.mark.storage
def test_replayed_checkout_returns_the_same_order(client, fresh_sandbox):
    form = Shopper(client).ready_to_pay()
    first = client.post("/checkout", data=form)
    second = client.post("/checkout", data=form)
    assert first.headers["Location"] == second.headers["Location"]
    orders_page = client.get("/orders").get_data(as_text=True)
    assert orders_page.count(f'href="/orders/{form["checkout_id"]}"') == 1


@pytest.mark.parametrize(("proxies", "customer_ip"), [(0, "127.0.0.1"), (1, "203.0.113.7")])
def test_customer_ip_sent_to_flex_believes_only_trusted_proxies(make_app, fresh_sandbox,
                                                                proxies, customer_ip):
    client = make_app(TRUSTED_PROXIES=proxies).test_client()
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.7"  # as a load balancer adds it
    order_id, _ = pay(client, RESCUED)
    evaluate = [c for c in calls(fresh_sandbox, "evaluate")
                if c["request"]["orderId"] == order_id]
    assert evaluate[0]["request"]["customerIp"] == customer_ip


def test_csrf_is_enforced(client, fresh_sandbox):
    form = Shopper(client).ready_to_pay()
    del form["csrf_token"]
    response = client.post("/checkout", data=form)
    assert response.status_code == 400
    assert "Form expired" in response.get_data(as_text=True)
    assert calls(fresh_sandbox, "tokenize") == []


def test_invalid_card_gets_a_clear_message_and_no_calls(client, fresh_sandbox):
    form = Shopper(client).ready_to_pay()
    form["card_number"] = "4242 4242 4242 4241"
    response = client.post("/checkout", data=form)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "This card number is not valid." in page
    assert "4242 4242 4242 4241" not in page  # the number is not echoed back
    assert calls(fresh_sandbox, "tokenize") == []


def test_card_number_never_reaches_the_database(app, client):
    for card in (APPROVED, RESCUED, FLEX_DECLINED):
        pay(client, card)
    services = services_of(app)
    services.relay.run_once()
    services.flow.close()  # waits for the background vault calls, which log their rows
    for path in sqlite_files(app):
        data = path.read_bytes()
        for card in (APPROVED, RESCUED, FLEX_DECLINED):
            assert card.encode() not in data


def test_real_mode_refuses_to_start_without_a_setting(fresh_sandbox, tmp_path):
    with pytest.raises(ConfigError, match="FLEX_APP_SECRET"):
        create_app({
            "DATABASE": str(tmp_path / "x.sqlite"),
            "FLEX_API_URL": fresh_sandbox.api_url,
            "FLEX_APP_KEY": "key",
            "FLEX_APP_SECRET": "",
            "FLEX_RELAY": False,
        })


def test_processor_authorization_is_timed_on_the_order_timeline(app, client):
    order_id, page = pay(client, RESCUED)
    assert "Processor authorization" in page
    rows = db_rows(db.database_url(app.config), "SELECT ms, response FROM flex_calls"
                   " WHERE order_id = ? AND endpoint = 'processor.authorize'", order_id)
    assert len(rows) == 1
    ms, outcome = rows[0]
    assert ms >= 0 and '"response_code": "05"' in outcome
    assert "4000000000000002" not in outcome  # no card data in the step's record
    assert "processor.authorize" not in client.get("/flex").text  # /flex lists Flex calls


def test_the_order_timeline_shows_each_body_indented_as_stored_on_one_line(app, client):
    order_id, page = pay(client, RESCUED)
    rows = db_rows(db.database_url(app.config), "SELECT request, response FROM flex_calls"
                   " WHERE order_id = ? AND endpoint = 'evaluate'", order_id)
    request, response = rows[0]
    assert "\n" not in request and "\n" not in response
    assert ('<pre tabindex="0">{\n  &#34;billingInformation&#34;: {\n    &#34;addressLine1&#34;:'
            in page)  # the evaluate request, keys sorted
    assert ('{\n  &#34;approved&#34;: false,\n  &#34;processor&#34;: &#34;SimulatedPSP&#34;,'
            in page)  # the processor step's outcome


@pytest.mark.parametrize("query", ["page=abc", "page=-1", "page=999",
                                   "status=bogus&endpoint=nope&order=%25_"])
def test_inspector_answers_any_query(client, query):
    pay(client, APPROVED)
    assert client.get(f"/flex?{query}").status_code == 200
