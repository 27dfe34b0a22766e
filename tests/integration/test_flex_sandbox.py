"""The sandbox's own contract, over plain HTTP (what a client of Flex would see): tokens,
vault, /evaluate and /transmit, the error forms, ASP.NET leniency, faults."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

import flex_sandbox
from tests.support import (
    OTHER_MID,
    access_token,
    assert_flat_validation,
    assert_problem,
    calls,
    evaluation,
    set_fault,
)

CARD = {"first_name": "Ada", "last_name": "Lovelace", "number": "4000000000000002",
        "verification_value": "123", "month": "12", "year": "2034"}


def tokenize(api, server, number="4000000000000002") -> str:
    answer = api.post(f"{server.api_url}/tokenize", timeout=5, params={
        "mid": flex_sandbox.DEFAULT_MID, "environment": flex_sandbox.DEFAULT_TOKENIZATION_KEY,
    }, json={"payment_method": {"credit_card": {**CARD, "number": number}}})
    assert answer.status_code == 200, answer.text
    return answer.json()["transaction"]["payment_method"]["token"]


def transmission(**extra) -> dict:
    return {"isDeclined": False, "orderId": "o-9",
            "transaction": {"id": "t", "amount": 1800, "currency": "USD"},
            "payer": {"email": "a@b.co"},
            "paymentMethod": {"cardBinNumber": "42424242", "cardLast4Digits": "4242"}, **extra}


# --- tokens ------------------------------------------------------------------------------


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
    assert_flat_validation(answer, "AppKey")


@pytest.mark.parametrize("header", [None, "Bearer garbage", "Bearer a.b.c"])
def test_missing_or_bad_bearer_is_a_401(fresh_sandbox, header):
    headers = {"Authorization": header} if header else {}
    answer = requests.post(f"{fresh_sandbox.api_url}/transmit", json={}, headers=headers,
                           timeout=5)
    assert_problem(answer, 401)


def test_expired_token_is_a_401():
    with flex_sandbox.serve(config={"token_ttl": 0.2, "faults": {}}) as server:
        token = access_token(server)
        time.sleep(0.3)  # the token's lifetime is the thing under test
        answer = requests.post(f"{server.api_url}/transmit", json={}, timeout=5,
                               headers={"Authorization": f"Bearer {token}"})
        assert_problem(answer, 401)


def test_revoked_tokens_are_a_401(api, fresh_sandbox):
    requests.post(f"{fresh_sandbox.url}/_sandbox/tokens/expire", timeout=5).raise_for_status()
    assert_problem(api.post(f"{fresh_sandbox.api_url}/transmit", json=transmission(),
                            timeout=5), 401)


# --- vault -------------------------------------------------------------------------------


def test_tokenize_answers_an_eight_digit_bin(api, fresh_sandbox):
    answer = api.post(f"{fresh_sandbox.api_url}/tokenize", timeout=5, params={
        "mid": flex_sandbox.DEFAULT_MID, "environment": flex_sandbox.DEFAULT_TOKENIZATION_KEY,
    }, json={"payment_method": {"credit_card": CARD}})
    method = answer.json()["transaction"]["payment_method"]
    assert (method["first_six_digits"], method["last_four_digits"]) == ("40000000", "0002")
    assert method["number"] is None and (method["month"], method["year"]) == (12, 2034)


def test_tokenize_with_a_bearer_needs_no_query(api, fresh_sandbox):
    answer = api.post(f"{fresh_sandbox.api_url}/tokenize", timeout=5,
                      json={"payment_method": {"credit_card": CARD}})
    assert answer.status_code == 200, answer.text


def test_tokenize_query_names_are_case_insensitive(fresh_sandbox):
    answer = requests.post(f"{fresh_sandbox.api_url}/tokenize", timeout=5, params={
        "MID": flex_sandbox.DEFAULT_MID, "Environment": flex_sandbox.DEFAULT_TOKENIZATION_KEY,
    }, json={"Payment_Method": {"Credit_Card": CARD}})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(("params", "bearer", "status"), [
    ({}, False, 401),
    ({"mid": flex_sandbox.DEFAULT_MID}, False, 400),
    ({"mid": flex_sandbox.DEFAULT_MID, "environment": "wrong"}, False, 400),
    ({"mid": OTHER_MID}, True, 400),
    ({"environment": "wrong"}, True, 400),
])
def test_tokenize_refuses_a_missing_or_wrong_merchant(api, fresh_sandbox, params, bearer,
                                                      status):
    session = api if bearer else requests
    answer = session.post(f"{fresh_sandbox.api_url}/tokenize", params=params, timeout=5,
                          json={"payment_method": {"credit_card": CARD}})
    if status == 401:
        assert_problem(answer, 401)
    else:
        assert_flat_validation(answer, "Environment")


def test_tokenize_refuses_a_card_that_fails_luhn(api, fresh_sandbox):
    answer = api.post(f"{fresh_sandbox.api_url}/tokenize", timeout=5, json={
        "payment_method": {"credit_card": {**CARD, "number": "4000000000000003"}}})
    assert_flat_validation(answer, "Payment_method.Credit_card.Number")


# --- evaluate ----------------------------------------------------------------------------


def test_plus_json_content_type_is_accepted(api, fresh_sandbox):
    token = tokenize(api, fresh_sandbox)
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", timeout=5,
                      data=json.dumps(evaluation(token)),
                      headers={"Content-Type": "application/json-patch+json"})
    assert answer.json()["status"] == "APPROVED"
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", data="not json", timeout=5,
                      headers={"Content-Type": "text/plain"})
    assert_flat_validation(answer, "Body")


def test_missing_fields_are_exactly_the_ones_real_flex_names(api, fresh_sandbox):
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", json={"transaction": {}}, timeout=5)
    body = assert_flat_validation(answer)
    assert set(body) - {"TraceId"} == {
        "OrderId", "IsDeclined", "IdempotencyKey", "Transaction.Id", "Transaction.ResponseCode",
        "Transaction.AvsResultCode", "Transaction.CvvResultCode"}
    assert body["OrderId"] == ["Merchant's orderId is required"]
    assert body["IdempotencyKey"] == ["The IdempotencyKey field is required."]
    assert body["Transaction.Id"] == ["The Id field is required."]


def test_a_body_with_only_the_required_fields_is_evaluated(api, fresh_sandbox):
    minimal = {"orderId": "o-min", "isDeclined": True, "idempotencyKey": str(uuid.uuid4()),
               "transaction": {"id": "t-1", "responseCode": "05", "avsResultCode": "NA",
                               "cvvResultCode": "NA"}}
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", json=minimal, timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "DECLINED"  # no card, no amount: nothing to rescue
    # No responseCodeSource, cavvResultCode, payer or billing: a real card is still rescued.
    body = evaluation("4000000000000002")
    del body["transaction"]["responseCodeSource"], body["transaction"]["cavvResultCode"]
    del body["payer"], body["billingInformation"]
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", json=body, timeout=5)
    assert answer.json()["status"] == "APPROVED", answer.text


@pytest.mark.parametrize(("amount", "status"), [(10, 400), (11, 200), (19999, 200), (20000, 400)])
def test_evaluate_amount_bounds(api, fresh_sandbox, amount, status):
    token = tokenize(api, fresh_sandbox)
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", timeout=5,
                      json=evaluation(token, amount=amount))
    assert answer.status_code == status
    if status == 400:
        assert_flat_validation(answer, "Transaction.Amount")


@pytest.mark.parametrize("mid", [None, "absent", flex_sandbox.DEFAULT_MID.upper()])
def test_evaluate_takes_the_mid_from_the_token(api, fresh_sandbox, mid):
    body = evaluation("4000000000000002")
    if mid == "absent":
        del body["mid"]
    else:
        body["mid"] = mid
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", json=body, timeout=5)
    assert answer.json()["status"] == "APPROVED"


@pytest.mark.parametrize(("path", "body"), [
    ("evaluate", evaluation("4000000000000002", mid=OTHER_MID)),
    ("transmit", transmission(mid=OTHER_MID)),
])
def test_a_different_mid_is_a_403(api, fresh_sandbox, path, body):
    body = {**body, "mid": OTHER_MID}
    problem = assert_problem(api.post(f"{fresh_sandbox.api_url}/{path}", json=body,
                                      timeout=5), 403)
    assert problem["title"] == "MID mismatch"
    assert calls(fresh_sandbox, path)[0]["status"] == 403
    assert requests.get(f"{fresh_sandbox.url}/_sandbox/orders", timeout=5).json() == []


@pytest.mark.parametrize(("card", "status"), [
    ("4000000000000127", "CHALLENGE"), ("4000000000009995", "DECLINED"),
    ("4000000000000002", "APPROVED"), ("4242424242424242", "DECLINED"),
])
def test_evaluate_with_a_raw_card_number_and_no_token_field(api, fresh_sandbox, card, status):
    body = evaluation(card)
    assert "token" not in body["paymentMethod"]
    assert api.post(f"{fresh_sandbox.api_url}/evaluate", json=body,
                    timeout=5).json()["status"] == status


def test_raw_card_number_with_token_false(api, fresh_sandbox):
    body = evaluation("4000000000000127")
    body["paymentMethod"]["token"] = False
    assert api.post(f"{fresh_sandbox.api_url}/evaluate", json=body,
                    timeout=5).json()["status"] == "CHALLENGE"


def test_token_true_with_a_card_number_is_a_400(api, fresh_sandbox):
    body = evaluation("4000000000000002")
    body["paymentMethod"]["token"] = True
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", json=body, timeout=5)
    assert_flat_validation(answer, "PaymentMethod.CardNumber")


def test_unknown_vault_token_is_a_field_error(api, fresh_sandbox):
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", timeout=5,
                      json=evaluation("00000000-0000-0000-0000-000000000000"))
    assert_flat_validation(answer, "PaymentMethod.CardNumber")


def test_aspnet_leniency_on_names_numbers_and_unknown_fields(api, fresh_sandbox):
    body = evaluation(tokenize(api, fresh_sandbox))
    body = {key[:1].upper() + key[1:]: value for key, value in body.items()}  # PascalCase
    body["Transaction"] = {**body["Transaction"], "amount": "1500",
                           "timezoneUtcOffset": "-5", "somethingNew": {"x": 1}}
    body["NotAFlexField"] = True
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", json=body, timeout=5)
    assert answer.json()["status"] == "APPROVED", answer.text
    order = requests.get(f"{fresh_sandbox.url}/_sandbox/orders", timeout=5).json()[0]
    assert order["amount_cents"] == 1500


@pytest.mark.parametrize(("field", "value"), [("amount", "15.5"), ("timezoneUtcOffset", "x")])
def test_a_value_that_is_no_number_is_a_400(api, fresh_sandbox, field, value):
    body = evaluation("4000000000000002")
    body["transaction"][field] = value
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", json=body, timeout=5)
    text = assert_flat_validation(answer)
    assert any("could not be converted" in m for v in text.values() for m in v)


def test_authorization_asks_for_capture(api, fresh_sandbox):
    body = evaluation("4000000000000002", transactionType="authorization")
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate", json=body, timeout=5).json()
    assert answer["status"] == "CAPTUREREQUIRED"
    order = api.get(f"{fresh_sandbox.api_url}/orders/{answer['orderSessionKey']}",
                    timeout=5).json()
    assert (order["status"], order["statusName"]) == (5, "CAPTUREREQUIRED")
    assert order["expiryDate"] is not None


def test_idempotent_replay_and_conflict(api, fresh_sandbox):
    token = tokenize(api, fresh_sandbox)
    first = api.post(f"{fresh_sandbox.api_url}/evaluate", json=evaluation(token), timeout=5)
    again = api.post(f"{fresh_sandbox.api_url}/evaluate", json=evaluation(token), timeout=5)
    assert first.json() == again.json()
    other = api.post(f"{fresh_sandbox.api_url}/evaluate", timeout=5,
                     json=evaluation(token, order_id="o-2"))
    assert_problem(other, 409)
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


def test_lost_answer_card_is_decided_but_every_answer_is_a_503(api, fresh_sandbox):
    body = evaluation(tokenize(api, fresh_sandbox, "4000000000000119"), order_id="o-lost")
    for _ in range(2):  # the replay too
        assert_problem(api.post(f"{fresh_sandbox.api_url}/evaluate", json=body, timeout=5), 503)
    found = api.get(f"{fresh_sandbox.api_url}/orders", params={"query": "o-lost"},
                    timeout=5).json()
    assert found["totalCount"] == 1
    assert found["items"][0]["statusName"] == "COMPLETED"


# --- transmit ----------------------------------------------------------------------------


def test_transmit_accepts_a_null_mid_and_answers_a_transmit_id(api, fresh_sandbox):
    answer = api.post(f"{fresh_sandbox.api_url}/transmit", json=transmission(mid=None),
                      timeout=5)
    body = answer.json()
    assert answer.status_code == 200 and body["result"] == "success" and body["transmitId"]


def test_transmit_missing_fields(api, fresh_sandbox):
    answer = api.post(f"{fresh_sandbox.api_url}/transmit", json={"isDeclined": False},
                      timeout=5)
    body = assert_flat_validation(answer, "OrderId", "PaymentMethod.CardBinNumber")
    assert body["OrderId"] == ["Merchant's orderId is required"]


# --- errors are JSON everywhere ------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v1/no-such-thing", 404), ("GET", "/", 404), ("GET", "/v1/evaluate", 405),
    ("DELETE", "/v1/orders/7d8e2f4a-1b3c-4d5e-8f9a-0b1c2d3e4f5a/refund", 405),
    ("PUT", "/v1/oauth2/token", 405),
])
def test_unknown_paths_and_wrong_methods_are_problem_details(api, fresh_sandbox, method, path,
                                                             status):
    answer = api.request(method, f"{fresh_sandbox.url}{path}", timeout=5,
                         allow_redirects=False)
    assert_problem(answer, status)


def test_a_trailing_slash_is_no_redirect(api, fresh_sandbox):
    answer = api.post(f"{fresh_sandbox.api_url}/evaluate/", timeout=5, allow_redirects=False,
                      json=evaluation("4000000000000002"))
    assert answer.status_code == 200 and answer.json()["status"] == "APPROVED"


# --- faults and the call log -----------------------------------------------------------------


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
    assert_problem(answer, 429)


def test_malformed_and_reset_faults(api, fresh_sandbox):
    set_fault(fresh_sandbox, "order", malformed=True, times=1)
    with pytest.raises(ValueError):
        api.get(f"{fresh_sandbox.api_url}/orders/{uuid.uuid4()}", timeout=5).json()
    set_fault(fresh_sandbox, "orders", reset=True, times=1)
    with pytest.raises(requests.ConnectionError):
        api.get(f"{fresh_sandbox.api_url}/orders", timeout=5)
    assert calls(fresh_sandbox, "orders")[0]["error"] == "connection reset"


def test_hang_is_released_when_faults_are_cleared(api, fresh_sandbox):
    set_fault(fresh_sandbox, "outcome", hang=True, times=1)
    with pytest.raises(requests.Timeout):
        api.post(f"{fresh_sandbox.api_url}/outcome", json={"orderSessionKey": "x"},
                 timeout=0.3)
    requests.delete(f"{fresh_sandbox.url}/_sandbox/faults", timeout=5).raise_for_status()
    answer = api.post(f"{fresh_sandbox.api_url}/outcome", json={"orderSessionKey": "x"},
                      timeout=5)
    assert answer.json()["status"] == "NOTFOUND"


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
