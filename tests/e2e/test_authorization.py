"""Authorization mode in a real Chromium, against a shop started with
FLEX_TRANSACTION_TYPE=AUTHORIZATION: Flex authorizes the rescued sale ("Awaiting capture"),
then the merchant captures it at shipment or cancels it, from the order page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.support import RESCUED, calls, expect_status, pay_in_browser

pytestmark = pytest.mark.e2e


def test_authorize_then_capture_at_shipment(authorization_page: Page, authorization_shop):
    page = authorization_page
    order_id = pay_in_browser(page, RESCUED)
    expect_status(page, "Awaiting capture")
    expect(page.get_by_text("Your card is charged when your order ships.")).to_be_visible()
    expect(page.get_by_label("Refund amount")).to_have_count(0)  # nothing charged yet

    page.get_by_role("button", name="Capture", exact=True).click()
    expect_status(page, "Rescued by Flex")
    expect(page.get_by_text("Capture of $18.00 confirmed by Flex").first).to_be_visible()
    expect(page.get_by_role("button", name="Capture", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Full: $18.00")).to_be_visible()  # refundable now
    capture = page.get_by_role("region", name="Later: capturing the authorized amount")
    expect(capture.get_by_role("listitem").filter(has_text="capture")).to_have_count(1)

    captures = [c for c in calls(authorization_shop.sandbox, "capture")
                if c["request"]["orderId"] == flex_order_key(page)]
    assert [(c["request"]["amount"], c["status"]) for c in captures] == [(1800, 200)]
    evaluates = [c for c in calls(authorization_shop.sandbox, "evaluate")
                 if c["request"]["orderId"] == order_id]
    assert [c["request"]["transactionType"] for c in evaluates] == ["AUTHORIZATION"]


def test_authorize_then_cancel(authorization_page: Page, authorization_shop):
    page = authorization_page
    order_id = pay_in_browser(page, RESCUED)
    expect_status(page, "Awaiting capture")

    page.get_by_role("button", name="Cancel", exact=True).click()
    expect_status(page, "Declined")
    expect(page.get_by_text("Authorization cancelled, not charged").first).to_be_visible()
    expect(page.get_by_role("link", name="Try another card")).to_be_visible()
    expect(page.get_by_label("Refund amount")).to_have_count(0)
    cancel = page.get_by_role("region", name="Later: cancelling the authorization")
    expect(cancel.get_by_role("listitem").filter(has_text="cancel")).to_have_count(1)

    cancels = calls(authorization_shop.sandbox, "cancel")
    assert [(c["path"].split("/")[-2], c["status"]) for c in cancels] == [
        (flex_order_key(page), 200)]
    assert cancels[0]["request"]["idempotencyKey"]  # the key the shop recorded first
    assert not [c for c in calls(authorization_shop.sandbox, "capture")
                if c["request"]["orderId"] == flex_order_key(page)]
    assert order_id in page.url


def flex_order_key(page: Page) -> str:
    """The order page's Flex orderSessionKey."""
    return page.get_by_text("Flex orderSessionKey").locator("xpath=following-sibling::dd[1]"
                                                             ).inner_text().strip()
