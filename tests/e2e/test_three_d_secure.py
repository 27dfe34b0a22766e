"""The 3-D Secure card in a real browser: the processor authenticates the shopper, then
declines; Flex answers /evaluate SUBMITTED, so the order page says "Awaiting confirmation"
(neutral, "do not pay again"); when Flex decides, the open page shows the decision by
itself. Flex's decision is taken through the sandbox's control plane (the e2e shop's sandbox
holds it otherwise), so nothing here waits on a clock. axe-clean in both states."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support import THREE_D_SECURE, calls, expect_status, pay_in_browser, violations

pytestmark = pytest.mark.e2e


def decide(shop, order_id: str, decision: str | None = None) -> None:
    [evaluate] = [c for c in calls(shop.sandbox, "evaluate")
                  if c["request"]["orderId"] == order_id]
    assert evaluate["response"]["status"] == "SUBMITTED"
    assert evaluate["request"]["threeDSecure"]["authenticationResponseStatus"] == "Y"
    key = evaluate["response"]["orderSessionKey"]
    requests.post(f"{shop.sandbox.url}/_sandbox/orders/{key}/decide", timeout=5,
                  json={"decision": decision} if decision else {}).raise_for_status()


def test_3ds_card_awaits_confirmation_then_is_rescued(page: Page, shop):
    order_id = pay_in_browser(page, THREE_D_SECURE)
    expect_status(page, "Awaiting confirmation")
    expect(page.get_by_text("Please do not pay again", exact=False).first).to_be_visible()
    expect(page.get_by_role("link", name="Try another card")).to_have_count(0)
    assert violations(page, "3DS awaiting confirmation") == []

    decide(shop, order_id)  # Flex approves: order.completed reaches the shop
    # The page checks its status every few seconds and reloads once it has changed.
    expect(page.get_by_role("status")).to_have_text("Rescued by Flex", timeout=20_000)
    assert violations(page, "3DS rescued") == []
    # (A later DECLINED, order.cancelled, is covered without a browser:
    # tests/integration/test_three_d_secure.py.)

