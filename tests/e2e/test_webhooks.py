"""Flex's webhooks in the demo: the embedded sandbox, subscribed by the shop itself, delivers
signed events that a person triggers from the order page and watches arrive."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support import RESCUED, expect_status, pay_in_browser

pytestmark = pytest.mark.e2e


def test_portal_refund_then_chargeback_arrive_as_webhooks(page: Page, shop):
    pay_in_browser(page, RESCUED, quantity=2)  # 2 x $18.00
    expect_status(page, "Rescued by Flex")
    webhooks = page.get_by_role("table").filter(has_text="What it changed")

    demo_tools = page.get_by_text("Simulate Flex's side (demo)")  # folded away by default
    demo_tools.click()
    page.get_by_role("button", name="Simulate a refund in Flex's portal").click()
    expect_status(page, "Partially refunded")  # half of what remained: $18.00
    expect(webhooks.get_by_role("row").filter(has_text="order.refunded")).to_contain_text(
        "recorded a $18.00 refund made in Flex's portal")
    expect(page.get_by_role("row").filter(has_text="Flex portal")).to_contain_text("$18.00")

    page.get_by_role("button", name="Simulate a chargeback").click()  # the tools stay open
    expect_status(page, "Chargeback")
    expect(webhooks.get_by_role("row").filter(has_text="payment.chargeback.received")
           ).to_contain_text("Partially refunded → Chargeback")
    expect(page.get_by_role("button", name="Refund")).to_have_count(0)

    page.goto("/flex/webhooks")
    expect(page.get_by_role("row").filter(has_text="payment.chargeback.received").first
           ).to_be_visible()
    # The demo's subscriber key: generated once beside the database, readable by us only.
    key_file = Path(shop.database).parent / "flex-webhook.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
