"""The 3-D Secure card end to end through the shop: the simulated processor authenticates
it, then declines; /evaluate carries `threeDSecure`; Flex answers SUBMITTED, so the order
awaits confirmation, and Flex's later decision (its webhook) settles it."""

from __future__ import annotations

import dataclasses

import pytest
import requests

import flex_sandbox
from flex.cit import DECLINED, CitFlow
from flex.recovery import LATER, Decision, Recovery, UnansweredEvaluate
from shop.checkout.processor import three_d_secure_result
from tests.support import (
    DECLINE,
    THREE_D_SECURE,
    MemoryStore,
    calls,
    card,
    db_rows,
    pay,
    purchase,
    settles_to,
    status_label,
    wait_for,
)


@pytest.fixture
def sandbox():
    """A sandbox per test (not per module), as in test_shop_webhooks.py: its sender thread,
    with whatever it still means to deliver, ends with the test."""
    with flex_sandbox.serve(port=0) as server:
        yield server


@pytest.fixture
def held(fresh_sandbox):
    """Flex holds its SUBMITTED decisions until the test takes them (control plane)."""
    requests.put(f"{fresh_sandbox.url}/_sandbox/webhooks", json={"submitted_delay": 3600},
                 timeout=5).raise_for_status()
    return fresh_sandbox


def flex_order_key(sandbox, order_id: str) -> str:
    evaluate = [c for c in calls(sandbox, "evaluate") if c["request"]["orderId"] == order_id]
    assert len(evaluate) == 1
    return evaluate[0]["response"]["orderSessionKey"]


def decide(sandbox, key: str, decision: str | None = None) -> None:
    body = {"decision": decision} if decision else {}
    requests.post(f"{sandbox.url}/_sandbox/orders/{key}/decide", json=body,
                  timeout=5).raise_for_status()


def test_3ds_card_is_submitted_awaits_confirmation_then_is_rescued(webhook_shop, client, held,
                                                                   database_url):
    app, _ = webhook_shop
    order_id, page = pay(client, THREE_D_SECURE)
    assert status_label(page) == "Awaiting confirmation"
    assert "Try another card" not in page  # Flex may still charge it: never pay twice
    [call] = [c for c in calls(held, "evaluate") if c["request"]["orderId"] == order_id]
    sent = call["request"]["threeDSecure"]
    assert (sent["threeDsVersion"], sent["EcommerceIndicator"], sent["enrolled"]) == (
        "2.2.0", "05", "Y")
    assert sent["authenticationValue"] and sent["directoryServerTransactionId"]
    assert call["request"]["transaction"]["responseCode"] == "05"
    assert call["request"]["transaction"]["cavvResultCode"] == "2"
    assert call["response"]["status"] == "SUBMITTED"
    assert db_rows(database_url, "SELECT outcome, recovering, flex_status FROM orders"
                                 " WHERE id = ?", order_id) == [("declined", 1, None)]

    decide(held, flex_order_key(held, order_id))  # Flex decides: order.completed
    assert settles_to(app, client, order_id, "Rescued by Flex")


def test_3ds_card_declined_later_is_declined_not_charged(webhook_shop, client, held):
    app, _ = webhook_shop
    order_id, page = pay(client, THREE_D_SECURE)
    assert status_label(page) == "Awaiting confirmation"
    decide(held, flex_order_key(held, order_id), "DECLINED")  # order.cancelled
    assert settles_to(app, client, order_id, "Declined")
    assert wait_for(lambda: "Try another card" in client.get(f"/orders/{order_id}").get_data(
        as_text=True))


def test_without_webhooks_recovery_waits_for_the_decision_then_takes_it(flex_client, held):
    """SUBMITTED resolves like any pending decision: the lookup shows the order still
    processing (check again later, never a replay), then its decision once Flex took it."""
    order_id = "3ds-recovery-1"
    processor = dataclasses.replace(DECLINE, cavv_result="2",
                                    three_d_secure=three_d_secure_result(order_id))
    flow = CitFlow(flex_client)
    try:
        result = flow.pay(purchase(order_id), card(THREE_D_SECURE), lambda *_: processor)
    finally:
        flow.close()
    assert (result.outcome, result.awaiting_confirmation, result.evaluation) == (
        DECLINED, True, None)
    payload = result.evaluate_payload
    assert payload["threeDSecure"]["EcommerceIndicator"] == "05"

    store = MemoryStore([UnansweredEvaluate(order_id, payload, 0)])
    [later] = Recovery(store, flex_client).run_once()
    assert later.result == LATER and "PROCESSING" in later.reason
    assert len(calls(held, "evaluate")) == 1  # looked up, not replayed

    decide(held, flex_order_key(held, order_id))
    [done] = Recovery(store, flex_client).run_once()
    assert done.result == Decision.APPROVED
