"""The sandbox's own contract, over plain HTTP (what a client of Flex would see)."""

from __future__ import annotations

import json
import time

import pytest
import requests

from flex import sandbox as flex_sandbox

from .conftest import calls, set_fault

CARD = {"first_name": "Ada", "last_name": "Lovelace", "number": "4000000000000002",
        "verification_value": "123", "month": "12", "year": "2034"}


@pytest.fixture
def api(fresh_sandbox):
    """A requests session with a valid bearer."""
    session = requests.Session()
    answer = session.post(f"{fresh_sandbox.api_url}/oauth2/token", timeout=5, json={
        "AppKey": flex_sandbox.DEFAULT_APP_KEY, "AppSecret": flex_sandbox.DEFAULT_APP_SECRET})
    session.headers["Authorization"] = f"Bearer {answer.json()['accessToken']}"
    yield session
    session.close()


def tokenize(api, server, number="4000000000000002") -> str:
    answer = api.post(f"{server.api_url}/tokenize", timeout=5, params={
        "mid": flex_sandbox.DEFAULT_MID, "environment": flex_sandbox.DEFAULT_TOKENIZATION_KEY,
    }, json={"payment_method": {"credit_card": {**CARD, "number": number}}})
    assert answer.status_code == 200, answer.text
    return answer.json()["transaction"]["payment_method"]["token"]


def evaluation(token: str, order_id="o-1", key="k-1", amount=1800) -> dict:
    return {
        "isDeclined": True, "isMIT": False, "mid": flex_sandbox.DEFAULT_MID, "orderId": order_id,
        "idempotencyKey": key, "senseKey": order_id,
        "transaction": {"id": "t", "amount": amount, "currency": "USD", "responseCode": "05",
                        "responseCodeSource": "PSP", "avsResultCode": "NA",
                        "cvvResultCode": "NA", "cavvResultCode": "NA"},
        "payer": {"email": "a@b.co"},
        "billingInformation": {"firstName": "Ada", "lastName": "Lovelace", "country": "US",
                               "addressLine1": "1 Main", "city": "X", "zipcode": "62701"},
        "paymentMethod": {"cardNumber": token, "token": True},
    }


def test_token_envelope_and_jwt(fresh_sandbox):
    answer = requests.post(f"{fresh_sandbox.api_url}/oauth2/token", timeout=5, json={
        "appKey": flex_sandbox.DEFAULT_APP_KEY, "appSecret": flex_sandbox.DEFAULT_APP_SECRET})
    body = answer.json()
    assert answer.status_code == 200 and body["success"] is True
    assert body["accessToken"].count(".") == 2
    assert body["expires"] / 1000 == pytest.approx(time.time() + 600, abs=5)


@pytest.mark.parametrize("credentials", [{"AppKey": "x", "AppSecret": "y"}, {}])
def test_bad_credentials_are_a_400(fresh_sandbox, credentials):
    answer = requests.post(f"{fresh_sandbox.api_url}/oauth2/token", json=credentials, timeout=5)
    assert answer.status_code == 400


@pytest.mark.parametrize("header", [None, "Bearer garbage", "Bearer a.b.c"])
def test_missing_or_bad_bearer_is_a_401(fresh_sandbox, header):
    headers = {"Authorization": header} if header else {}
    answer = requests.post(f"{fresh_sandbox.api_url}/transmit", json={}, headers=headers,
                           timeout=5)
    assert answer.status_code == 401


def test_expired_token_is_a_401():
    with flex_sandbox.serve(config={"token_ttl": 0.2, "faults": {}}) as server:
        token = requests.post(f"{server.api_url}/oauth2/token", timeout=5, json={
            "AppKey": flex_sandbox.DEFAULT_APP_KEY,
            "AppSecret": flex_sandbox.DEFAULT_APP_SECRET}).json()["accessToken"]
        time.sleep(0.3)
        answer = requests.post(f"{server.api_url}/transmit", json={}, timeout=5,
                               headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401


def test_plus_json_content_type_is_accepted(api, fresh_sandbox):
    token = tokenize(api, fresh_sandbox)
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", timeout=5,
                      data=json.dumps(evaluation(token)),
                      headers={"Content-Type": "application/json-patch+json"})
    assert answer.json()["status"] == "APPROVED"
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", data="not json", timeout=5,
                      headers={"Content-Type": "text/plain"})
    assert answer.status_code == 400


def test_missing_fields_are_problem_details(api, fresh_sandbox):
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", json={"isDeclined": True}, timeout=5)
    body = answer.json()
    assert answer.status_code == 400
    assert body["title"] == "One or more validation errors occurred."
    assert body["traceId"].startswith("00-")
    for field in ("OrderId", "IdempotencyKey", "Transaction.Amount", "Payer.Email",
                  "Transaction.CavvResultCode", "BillingInformation.ZipCode"):
        assert field in body["errors"]


@pytest.mark.parametrize(("amount", "status"), [(10, 400), (11, 200), (19999, 200), (20000, 400)])
def test_evaluate_amount_bounds(api, fresh_sandbox, amount, status):
    token = tokenize(api, fresh_sandbox)
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", timeout=5,
                      json=evaluation(token, amount=amount))
    assert answer.status_code == status
    if status == 400:
        assert "Transaction.Amount" in answer.json()["errors"]


def test_evaluate_with_a_raw_card_number(api, fresh_sandbox):
    body = evaluation("4000000000000127")
    body["paymentMethod"]["token"] = False
    assert api.post(f"{fresh_sandbox.api_url}/evaluate", json=body,
                    timeout=5).json()["status"] == "CHALLENGE"


def test_unknown_vault_token_is_a_field_error(api, fresh_sandbox):
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", timeout=5,
                      json=evaluation("00000000-0000-0000-0000-000000000000"))
    assert "PaymentMethod.CardNumber" in answer.json()["errors"]


def test_idempotent_replay_and_conflict(api, fresh_sandbox):
    token = tokenize(api, fresh_sandbox)
    first = api.post(f"{fresh_sandbox.api_url}/evaluate", json=evaluation(token), timeout=5)
    again = api.post(f"{fresh_sandbox.api_url}/evaluate", json=evaluation(token), timeout=5)
    assert first.json() == again.json()
    other = api.post(f"{fresh_sandbox.api_url}/evaluate", timeout=5,
                     json=evaluation(token, order_id="o-2"))
    assert other.status_code == 409
    orders = requests.get(f"{fresh_sandbox.url}/_sandbox/orders", timeout=5).json()
    assert len(orders) == 1


def test_decision_is_kept_even_when_the_answer_is_late(api, fresh_sandbox):
    token = tokenize(api, fresh_sandbox)
    set_fault(fresh_sandbox, "evaluate", delay_ms=500, times=1)
    with pytest.raises(requests.Timeout):
        api.post(f"{fresh_sandbox.api_url}/evaluate", json=evaluation(token), timeout=0.2)
    replay = api.post(f"{fresh_sandbox.api_url}/evaluate", json=evaluation(token), timeout=5)
    assert replay.json()["status"] == "APPROVED"
    assert len(requests.get(f"{fresh_sandbox.url}/_sandbox/orders", timeout=5).json()) == 1


def test_refund_rules(api, fresh_sandbox):
    approved = api.post(f"{fresh_sandbox.api_url}/evaluate", timeout=5,
                        json=evaluation(tokenize(api, fresh_sandbox))).json()["orderSessionKey"]
    declined = api.post(f"{fresh_sandbox.api_url}/evaluate", timeout=5, json=evaluation(
        tokenize(api, fresh_sandbox, "4000000000009995"), "o-2", "k-2")).json()["orderSessionKey"]

    def refund(key, amount):
        return api.post(f"{fresh_sandbox.api_url}/orders/{key}/refund", timeout=5,
                        json={"amountToRefund": amount, "refundMessage": "test"})

    assert refund(approved, 12.5).json()["status"] == "SUCCESS"
    over = refund(approved, 6)
    assert over.status_code == 400
    assert over.json()["status"] == "FAILED"
    assert over.json()["responseMessage"] == (
        "Amount to refund (6.00) is greater than maximum refund amount in (5.50))")
    assert refund(approved, 1.234).status_code == 400
    assert refund(approved, 0).status_code == 400
    assert refund(declined, 1).json()["status"] == "FAILED"
    assert refund("no-such-order", 1).status_code == 404
    assert refund(approved, 5.5).status_code == 200
    order = api.get(f"{fresh_sandbox.api_url}/orders/{approved}", timeout=5).json()
    assert (order["statusName"], order["refundedAmount"]) == ("RETURNED", 1800)


def test_fault_times_applies_to_the_next_calls_only(api, fresh_sandbox):
    set_fault(fresh_sandbox, "tokenize", status=500, times=2)
    url = f"{fresh_sandbox.api_url}/tokenize"
    statuses = [api.post(url, json={}, timeout=5).status_code for _ in range(3)]
    assert statuses == [500, 500, 400]


def test_retry_after_and_delay(api, fresh_sandbox):
    set_fault(fresh_sandbox, "transmit", status=429, retry_after=3, delay_ms=200)
    started = time.monotonic()
    answer = api.post(f"{fresh_sandbox.api_url}/transmit", json={}, timeout=5)
    assert time.monotonic() - started >= 0.2
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "3")


def test_call_view_masks_card_data(api, fresh_sandbox):
    tokenize(api, fresh_sandbox)
    text = requests.get(f"{fresh_sandbox.url}/_sandbox/calls", timeout=5).text
    assert "4000000000000002" not in text
    assert '"verification_value":"123"' not in text.replace(" ", "")
    assert flex_sandbox.DEFAULT_APP_SECRET not in text
    assert calls(fresh_sandbox, "tokenize")[0]["request"]["payment_method"]["credit_card"][
        "number"] == "400000******0002"


def test_sensejs_widget_and_collector(fresh_sandbox):
    widget = requests.get(f"{fresh_sandbox.url}/widget.js", timeout=5)
    assert widget.headers["Content-Type"].startswith("application/javascript")
    assert "setOrderId" in widget.text
    preflight = requests.options(f"{fresh_sandbox.api_url}/sense", timeout=5, headers={
        "Origin": "http://127.0.0.1:5000", "Access-Control-Request-Method": "POST"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    posted = requests.post(f"{fresh_sandbox.api_url}/sense", timeout=5, json={
        "senseKey": "sk-1", "timezone": "UTC", "screen": "1280x720", "language": "en",
        "userAgent": "test"})
    assert posted.status_code == 200
    stored = requests.get(f"{fresh_sandbox.url}/_sandbox/sense/sk-1", timeout=5).json()
    assert stored[0]["screen"] == "1280x720"
