"""What Flex's own clients send and read, answered as Flex does: empty path segments, the
refund success body, phone and secondaryEmail on lookups, and a 3-D Secure evaluation
answered SUBMITTED and decided later."""

from __future__ import annotations

import uuid

import pytest
import requests

from flex import FlexRefundRefused
from tests.support import FLEX_DECLINED, RESCUED, decide, evaluation, wait_for

THREE_D_SECURE = {  # the object a published Flex client sends when the processor ran 3DS
    "threeDsVersion": "2.2.0", "EcommerceIndicator": "05",
    "authenticationValue": "AAABBEg0VhI0VniQEjRWAAAAAAA=",
    "directoryServerTransactionId": "f25084f0-5b16-4c0a-ae5d-b24808a95e4b", "xid": None,
    "authenticationValueAlgorithm": "2", "directoryResponseStatus": "Y",
    "authenticationResponseStatus": "Y", "enrolled": "Y",
}


def control(sandbox, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{sandbox.url}/_sandbox{path}", timeout=5, **kwargs)


# --- empty path segments -------------------------------------------------------------------


def test_double_slashes_answer_as_the_single_slash_paths(flex, fresh_sandbox, api):
    """Flex's Node sample joins a base URL ending in "/" with "/outcome" and
    "/orders/{id}/refund"."""
    key = decide(flex)
    base = fresh_sandbox.url
    outcome = api.post(f"{base}/v1//outcome", json={"orderSessionKey": key}, timeout=5)
    assert (outcome.status_code, outcome.json()["status"]) == (200, "APPROVED")
    refund = api.post(f"{base}/v1//orders/{key}/refund", json={"amountToRefund": 1}, timeout=5)
    assert (refund.status_code, refund.json()["status"]) == (200, "SUCCESS")
    lookup = api.get(f"{base}//v1///orders//{key}", timeout=5)
    assert lookup.json()["refundedAmount"] == 100
    evaluate = api.post(f"{base}/v1//evaluate", timeout=5,
                        json=evaluation(FLEX_DECLINED, "o-2", str(uuid.uuid4())))
    assert evaluate.json()["status"] == "DECLINED"
    token = requests.post(f"{base}/v1//oauth2//token", timeout=5, json={
        "AppKey": "sandbox-app-key", "AppSecret": "sandbox-app-secret"})
    assert token.status_code == 200 and token.json()["accessToken"]
    # Still no redirect anywhere, and an unknown path stays a JSON 404.
    assert api.get(f"{base}/v1//nowhere", timeout=5).status_code == 404


# --- refund success --------------------------------------------------------------------------


def test_refund_success_has_the_fields_of_the_refusal(flex):
    key = decide(flex)
    done = flex("POST", f"/orders/{key}/refund", json={"amountToRefund": 5}).json()
    refused = flex("POST", f"/orders/{key}/refund", json={"amountToRefund": 50}).json()
    assert set(done) == set(refused)
    assert (done["success"], done["status"], done["responseMessage"]) == (
        True, "SUCCESS", "APPROVED")
    assert done["responseCode"] and uuid.UUID(done["transactionId"])
    assert (refused["success"], refused["status"], refused["responseCode"]) == (
        False, "FAILED", "2001")


def test_the_client_reads_both_refund_answers(flex_client, fresh_sandbox, api):
    key = decide_with(api, fresh_sandbox)
    result = flex_client.refund(key, 500)
    assert result.status == "SUCCESS" and result.raw["responseMessage"] == "APPROVED"
    with pytest.raises(FlexRefundRefused, match="greater than maximum refund amount"):
        flex_client.refund(key, 5000)


def decide_with(api, sandbox, card=RESCUED, **extra) -> str:
    answer = api.post(f"{sandbox.api_url}/evaluate", timeout=5,
                      json=evaluation(card, "o-c", str(uuid.uuid4()), **extra))
    return answer.json()["orderSessionKey"]


# --- lookup ----------------------------------------------------------------------------------


def test_lookup_has_phone_and_secondary_email(flex):
    body = evaluation(RESCUED, "o-p", str(uuid.uuid4()))
    body["payer"] = {"email": "a@b.co", "phone": "+15555550100",
                     "secondaryEmail": "ada@example.org"}
    key = flex("POST", "/evaluate", json=body).json()["orderSessionKey"]
    order = flex("GET", f"/orders/{key}").json()
    assert (order["phone"], order["secondaryEmail"]) == ("+15555550100", "ada@example.org")
    bare = flex("GET", f"/orders/{decide(flex, order_id='o-q')}").json()
    assert "phone" in bare and "secondaryEmail" in bare and bare["secondaryEmail"] is None


# --- 3-D Secure: SUBMITTED, decided later -------------------------------------------------------


@pytest.fixture
def held(fresh_sandbox):
    """The sandbox holds SUBMITTED decisions until a test decides them."""
    control(fresh_sandbox, "PUT", "/webhooks", json={"submitted_delay": 3600})
    yield fresh_sandbox
    control(fresh_sandbox, "PUT", "/webhooks", json={"submitted_delay": 5})


def test_three_d_secure_is_submitted_then_decided(flex, held):
    answer = flex("POST", "/evaluate", json=evaluation(
        RESCUED, "o-3ds", str(uuid.uuid4()), threeDSecure=THREE_D_SECURE)).json()
    assert answer["status"] == "SUBMITTED" and answer["success"] is True
    key = answer["orderSessionKey"]
    order = flex("GET", f"/orders/{key}").json()
    assert (order["status"], order["statusName"]) == (4, "PROCESSING")
    assert flex("POST", "/outcome", json={"orderSessionKey": key}).json()["status"] == (
        "SUBMITTED")
    assert flex("GET", "/orders", params={"query": "o-3ds"}).json()["items"][0]["id"] == key

    decided = control(held, "POST", f"/orders/{key}/decide")
    assert decided.status_code == 200 and decided.json()["statusName"] == "COMPLETED"
    assert flex("GET", f"/orders/{key}").json()["status"] == 7
    assert flex("POST", "/outcome", json={"orderSessionKey": key}).json()["status"] == (
        "APPROVED")
    sent = [d for d in control(held, "GET", "/webhooks").json() if d["order"] == key]
    assert [d["event"] for d in sent] == ["order.completed"]
    assert control(held, "POST", f"/orders/{key}/decide").status_code == 409  # once only


def test_a_submitted_decline_sends_order_cancelled(flex, held):
    key = flex("POST", "/evaluate", json=evaluation(
        FLEX_DECLINED, "o-3ds-d", str(uuid.uuid4()), threeDSecure=THREE_D_SECURE)).json()[
        "orderSessionKey"]
    assert control(held, "POST", f"/orders/{key}/decide").json()["statusName"] == "CANCELLED"
    sent = [d["event"] for d in control(held, "GET", "/webhooks").json() if d["order"] == key]
    assert sent == ["order.cancelled"]
    assert control(held, "POST", f"/orders/{uuid.uuid4()}/decide").status_code == 404


def test_the_delay_is_a_setting_and_the_decision_comes_by_itself(flex, fresh_sandbox):
    control(fresh_sandbox, "PUT", "/webhooks", json={"submitted_delay": 0})
    try:
        key = flex("POST", "/evaluate", json=evaluation(
            RESCUED, "o-3ds-t", str(uuid.uuid4()), threeDSecure=THREE_D_SECURE)).json()[
            "orderSessionKey"]
        assert wait_for(lambda: flex("GET", f"/orders/{key}").json()["status"] == 7)
    finally:
        control(fresh_sandbox, "PUT", "/webhooks", json={"submitted_delay": 5})


def test_an_empty_three_d_secure_object_is_decided_at_once(flex):
    answer = flex("POST", "/evaluate", json=evaluation(
        RESCUED, "o-no3ds", str(uuid.uuid4()), threeDSecure={})).json()
    assert answer["status"] == "APPROVED"


# --- Flex's Node sample, as published (only its base URL changed) ------------------------------


def _node_sample_order(**overrides) -> dict:
    """The order body Flex's Node sample builds for /evaluate and /transmit (its shape and
    values, condensed): `mid: null`, a raw test PAN, a 5-digit BIN, `zipcode` in lower case."""
    address = {"firstName": "Test", "lastName": "User", "phone": "1234567890", "country": "US",
               "countryCode": "US", "addressLine1": "123 Main St", "addressLine2": None,
               "state": "CA", "city": "Los Angeles", "zipcode": "90001"}
    return {
        "mid": None, "orderSource": "Site1",
        "transaction": {"id": "TRX-12345", "timestampUtc": "2026-12-06T12:00:00.000Z",
                        "timezoneUtcOffset": 0, "transactionType": "Credit", "amount": 100,
                        "currency": "USD", "responseCode": "100",
                        "responseDescription": "Approved", "responseStatus": "Approved",
                        "responseSubStatus": None, "responseCodeSource": "Gateway",
                        "processorName": "ProcessorName", "avsResultCode": "M",
                        "cvvResultCode": "M", "cavvResultCode": "Y", "cardNotPresent": True},
        "payer": {"id": "PAYER-12345", "birthdate": None, "email": "test@email.com",
                  "phone": "1234567890"},
        "orderItems": [{"sku": "SKU-12345", "name": "Test Item", "amount": 100,
                        "discountAmount": 0, "tax": 0, "discountType": None, "quantity": 1}],
        "billingInformation": address, "shippingInformation": address,
        "paymentMethod": {"holderName": "Test User", "cardType": "Credit", "cardBrand": "Visa",
                          "cardCountry": "US", "expirationMonth": 9, "expirationYear": 2025,
                          "cardNumber": "4111111111111111", "cardBinNumber": "41111",
                          "cardLast4Digits": "1111"},
        **overrides,
    }


def test_flex_node_sample_flows_all_answer(fresh_sandbox):
    base = f"{fresh_sandbox.api_url}/"  # the sample's base URL ends in "/"
    token = requests.post(base + "oauth2/token", timeout=5, json={
        "appKey": "sandbox-app-key", "appSecret": "sandbox-app-secret"}).json()["accessToken"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    body = _node_sample_order(idempotencyKey=str(uuid.uuid4()), isDeclined=True,
                              orderId=f"order-{uuid.uuid4()}")
    evaluated = requests.post(base + "evaluate", headers=headers, timeout=5, json=body)
    assert evaluated.status_code == 200, evaluated.text
    key = evaluated.json()["orderSessionKey"]

    transmitted = requests.post(base + "transmit", headers=headers, timeout=5,
                                json=_node_sample_order(isDeclined=False, orderId="ORD-12345",
                                                        isMIT=False, merchant=None))
    assert transmitted.status_code == 200 and transmitted.json()["transmitId"]

    outcome = requests.post(f"{base}/outcome", headers=headers, timeout=5,
                            json={"orderSessionKey": key})
    assert (outcome.status_code, outcome.json()["status"]) == (200, "DECLINED")

    # Its refund asks for 0 dollars of a declined order: answered (a 400 naming the amount),
    # not a 404 for the path.
    refund = requests.post(f"{base}/orders/{key}/refund", headers=headers, timeout=5,
                           json={"amountToRefund": 0, "isPartialRefund": True})
    assert refund.status_code == 400 and "AmountToRefund" in refund.json()
