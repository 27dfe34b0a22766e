"""The sandbox's webhook sender, against a real HTTP subscriber on loopback: signing (checked
against Flex's published test vector and recomputed here independently), the events, retries
with backoff, the lost-answer delay, and the control endpoints only Flex's portal has."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid

import pytest
import requests

import flex_sandbox
from flex_sandbox.webhooks import signed_headers
from tests.support import WEBHOOK_KEY, Subscriber, access_token, deliveries, evaluation, set_fault


@pytest.fixture
def subscriber():
    hook = Subscriber()
    yield hook
    hook.close()


@pytest.fixture
def server(subscriber):
    """A sandbox sending to `subscriber`, retrying fast."""
    config = {"faults": {}, "webhook_url": subscriber.url, "webhook_key": WEBHOOK_KEY,
              "webhook_backoff": 0.01, "webhook_attempts": 3, "webhook_timeout": 0.5,
              "lost_answer_webhook_delay": 0}
    with flex_sandbox.serve(config=config) as sandbox:
        yield sandbox


def flex(server, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{server.api_url}{path}", timeout=5, headers={
        "Authorization": f"Bearer {access_token(server)}"}, **kwargs)


def decide(server, card="4000000000000002", order_id="o-1", **extra) -> requests.Response:
    return flex(server, "POST", "/evaluate",
                json=evaluation(card, order_id, str(uuid.uuid4()), **extra))


def settled(server, count: int, timeout: float = 5) -> list[dict]:
    """The delivery log once `count` deliveries are delivered or given up (bounded poll: the
    sender's bookkeeping after the POST has no event to wait on)."""
    deadline = time.monotonic() + timeout
    while True:
        log = deliveries(server)
        if len([d for d in log if d["delivered"] or d["gave_up"]]) >= count:
            return log
        assert time.monotonic() < deadline, log
        time.sleep(0.01)


def test_signer_matches_flexs_published_test_vector():
    body = (b'{"Event":"order.completed","TimeStamp":"2023-03-20T17:16:40.898703Z",'
            b'"EventData":null,"ExternalOrderId":"a9735210-1349-49bf-bfde-b737dd07872a",'
            b'"OrderId":"ac9674ed-cbfe-49aa-bc8b-eb1d2b74c429","ConfirmationId":"22ACD1D9",'
            b'"IsTestMode":true,"IsResent":false}')
    headers = signed_headers(
        "XRmKBxG5uvt1qWzqvp+T6CAbTo0MB89GTxXZD5cHA56RP7Mj4NbnHQOR1Y8uorUU9YQz8ujaVRUdm9vTSkPZSw==",
        "fctestwebhook.free.beeceptor.com", body, nonce="5f1c2de28a76457c9cb79d1740f2260a",
        date="Mon, 20 Mar 2023 17:16:40 GMT")
    assert headers["x-fc-content-sha512"] == (
        "pLs0Op5VWqQM3ZIumqC2NP6MDqcnwFN1znp/oCuw9LcYd8PtvLC8ProyPg8ZDadsRc36NskT3QGKn/PkNqwWfg==")
    assert headers["x-fc-authorization"] == (
        "HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;x-fc-content-sha512&Signature="
        "+HXN8ZewgINLk+uC/UI92HSWmLK7gZOECPxOGEM91ATyfyzScMF/+osEK5B0UjO7OFqahDvesSo8jmUWMZtQnA==")


def test_an_approved_decision_sends_a_signed_order_completed(server, subscriber):
    key = decide(server, order_id="merchant-1").json()["orderSessionKey"]
    [post] = subscriber.wait_for(1)
    event = json.loads(post["body"])
    assert event["Event"] == "order.completed"
    assert (event["OrderId"], event["ExternalOrderId"]) == (key, "merchant-1")
    assert (event["IsTestMode"], event["IsResent"], event["EventData"]) == (True, False, None)
    assert len(event["ConfirmationId"]) == 8 and event["TimeStamp"].endswith("Z")
    confirmation = flex(server, "POST", "/outcome", json={"orderSessionKey": key}).json()
    assert confirmation["confirmationId"] == event["ConfirmationId"]
    # Verify as a merchant would, from the received headers and raw bytes alone.
    headers = {name.lower(): value for name, value in post["headers"].items()}
    assert headers["x-fc-content-sha512"] == base64.b64encode(
        hashlib.sha512(post["body"]).digest()).decode()
    assert len(headers["x-fc-nonce"]) == 32 and headers["x-fc-date"].endswith(" GMT")
    signed = (f"POST\n{headers['x-fc-nonce']};{headers['x-fc-date']};{headers['host']};"
              f"{headers['x-fc-content-sha512']}")
    expected = base64.b64encode(hmac.new(base64.b64decode(WEBHOOK_KEY), signed.encode(),
                                         hashlib.sha512).digest()).decode()
    assert headers["x-fc-authorization"].endswith(f"&Signature={expected}")
    [delivery] = settled(server, 1)
    assert (delivery["event"], delivery["order"], delivery["external_order_id"]) == (
        "order.completed", key, "merchant-1")
    assert (delivery["attempts"], delivery["last_status"], delivery["delivered"]) == (1, 200, True)


def test_no_webhook_for_a_decline(server, subscriber):
    decide(server, "4000000000009995", order_id="o-1")
    decide(server, order_id="o-2")  # events go out in order: a decline's would come first
    [post] = subscriber.wait_for(1)
    assert json.loads(post["body"])["ExternalOrderId"] == "o-2"
    assert [d["event"] for d in deliveries(server)] == ["order.completed"]


def test_every_status_change_sends_its_event(server, subscriber):
    captured = decide(server, order_id="a-1", transactionType="Authorization").json()
    voided = decide(server, order_id="a-2", transactionType="AUTHORIZATION").json()
    captured, voided = captured["orderSessionKey"], voided["orderSessionKey"]
    subscriber.wait_for(2)
    flex(server, "POST", "/capture", json={"idempotencyKey": str(uuid.uuid4()),
                                           "orderId": captured, "amount": 1800,
                                           "currency": "USD"}).raise_for_status()
    flex(server, "POST", f"/orders/{voided}/cancel").raise_for_status()
    flex(server, "POST", f"/orders/{voided}/cancel").raise_for_status()  # no change, no event
    flex(server, "POST", f"/orders/{captured}/refund",
         json={"amountToRefund": 1}).raise_for_status()
    subscriber.wait_for(5)
    seen = [(e["Event"], e["OrderId"]) for e in subscriber.events()]
    assert sorted(seen[:2]) == sorted([("order.capturerequired", captured),
                                       ("order.capturerequired", voided)])
    assert seen[2:] == [("order.completed", captured), ("order.cancelled", voided),
                        ("order.refunded", captured)]
    assert len(settled(server, 5)) == 5


def test_failed_deliveries_are_retried_until_2xx(subscriber, server):
    subscriber.statuses = [500, 503]
    decide(server)
    posts = subscriber.wait_for(3)
    nonces = {p["headers"]["X-Fc-Nonce"] for p in posts}
    assert len(nonces) == 3  # each attempt is signed afresh
    [delivery] = settled(server, 1)
    assert (delivery["attempts"], delivery["last_status"], delivery["delivered"]) == (
        3, 200, True)


def test_retries_are_bounded(subscriber, server):
    subscriber.statuses = [500] * 10
    decide(server)
    [delivery] = settled(server, 1)
    assert (delivery["attempts"], delivery["last_status"]) == (3, 500)
    assert (delivery["delivered"], delivery["gave_up"]) == (False, True)
    assert len(subscriber.received) == 3


def test_a_subscriber_that_times_out_is_retried(subscriber, server):
    subscriber.statuses = [None]  # holds the first answer past the 0.5 s webhook timeout
    decide(server)
    [delivery] = settled(server, 1)
    subscriber.release.set()
    assert (delivery["attempts"], delivery["delivered"]) == (2, True)


def test_the_webhook_fault_fails_an_attempt(subscriber, server):
    set_fault(server, "webhook", status=500, times=1)
    decide(server)
    [delivery] = settled(server, 1)
    assert (delivery["attempts"], delivery["delivered"]) == (2, True)
    assert len(subscriber.received) == 1


def set_lost_answer_delay(server, seconds: float) -> None:
    answer = requests.put(f"{server.url}/_sandbox/webhooks",
                          json={"lost_answer_delay": seconds}, timeout=5)
    assert answer.json()["lost_answer_delay"] == seconds


def test_a_lost_answer_is_delivered_after_the_delay(subscriber, server):
    set_lost_answer_delay(server, 0.3)
    started = time.monotonic()
    assert decide(server, "4000000000000119", order_id="lost-1").status_code == 503
    [post] = subscriber.wait_for(1)
    assert time.monotonic() - started >= 0.3
    event = json.loads(post["body"])
    assert (event["Event"], event["ExternalOrderId"]) == ("order.completed", "lost-1")


def test_only_a_lost_answer_waits(subscriber, server):
    set_lost_answer_delay(server, 30)
    assert decide(server, "4000000000000119", order_id="lost-1").status_code == 503
    decide(server, order_id="quick")
    [post] = subscriber.wait_for(1)
    assert json.loads(post["body"])["ExternalOrderId"] == "quick"
    lost = deliveries(server)[0]
    assert (lost["external_order_id"], lost["attempts"], lost["delivered"]) == (
        "lost-1", 0, False)


def test_portal_refund_chargeback_and_resend(subscriber, server):
    key = decide(server).json()["orderSessionKey"]
    subscriber.wait_for(1)
    refund = requests.post(f"{server.url}/_sandbox/orders/{key}/refund",
                           json={"amount_cents": 500}, timeout=5)
    assert refund.json() == {"refunded_cents": 500, "status": "COMPLETED"}
    assert flex(server, "GET", f"/orders/{key}").json()["refundedAmount"] == 500
    over = requests.post(f"{server.url}/_sandbox/orders/{key}/refund",
                         json={"amount_cents": 1301}, timeout=5)
    assert over.status_code == 400
    requests.post(f"{server.url}/_sandbox/orders/{key}/chargeback",
                  timeout=5).raise_for_status()
    requests.post(f"{server.url}/_sandbox/webhooks/resend/{key}", timeout=5).raise_for_status()
    subscriber.wait_for(4)
    events = subscriber.events()
    assert [(e["Event"], e["IsResent"]) for e in events] == [
        ("order.completed", False), ("order.refunded", False),
        ("payment.chargeback.received", False), ("payment.chargeback.received", True)]
    assert events[3]["TimeStamp"] == events[2]["TimeStamp"]
    assert [d["is_resent"] for d in settled(server, 4)] == [False, False, False, True]


@pytest.mark.parametrize(("path", "body"), [
    ("orders/{key}/refund", {"amount_cents": 100}), ("orders/{key}/chargeback", None),
    ("webhooks/resend/{key}", None),
])
def test_control_endpoints_refuse_an_unknown_order(server, path, body):
    answer = requests.post(f"{server.url}/_sandbox/{path.format(key=uuid.uuid4())}", json=body,
                           timeout=5)
    assert answer.status_code == 404 and answer.json()["error"]


def test_subscribing_at_run_time():
    hook = Subscriber()
    try:
        with flex_sandbox.serve(config={"faults": {}, "webhook_url": None,
                                        "webhook_key": None}) as server:
            decide(server)
            assert deliveries(server)[0]["last_status"] == "no subscriber"
            for bad in ({"url": hook.url, "key": "not base64!"}, {"url": hook.url},
                        {"url": "ftp://x", "key": WEBHOOK_KEY}):
                answer = requests.put(f"{server.url}/_sandbox/webhooks", json=bad, timeout=5)
                assert answer.status_code == 400, bad
            answer = requests.put(f"{server.url}/_sandbox/webhooks", timeout=5,
                                  json={"url": hook.url, "key": WEBHOOK_KEY})
            assert answer.json()["url"] == hook.url and WEBHOOK_KEY not in answer.text
            decide(server, order_id="o-2")
            assert json.loads(hook.wait_for(1)[0]["body"])["ExternalOrderId"] == "o-2"
            other = Subscriber()
            try:
                server.subscribe(other.url, WEBHOOK_KEY)  # what the embedded demo calls
                decide(server, order_id="o-3")
                assert json.loads(other.wait_for(1)[0]["body"])["ExternalOrderId"] == "o-3"
            finally:
                other.close()
    finally:
        hook.close()


def test_shutdown_leaves_no_thread_behind(subscriber):
    before = set(threading.enumerate())
    subscriber.statuses = [500] * 10
    with flex_sandbox.serve(config={"faults": {}, "webhook_url": subscriber.url,
                                    "webhook_key": WEBHOOK_KEY, "webhook_backoff": 30}) as server:
        decide(server)
        subscriber.wait_for(1)  # the sender now waits 30 s before its next attempt
        assert any(t.name == "flex-sandbox-webhooks" for t in threading.enumerate())
        started = time.monotonic()
    assert time.monotonic() - started < 2  # shutdown does not sit out the backoff
    assert set(threading.enumerate()) <= before
