"""Walks the demo as the README shows it and screenshots each page, on a 1280 px desktop
and a 390 px phone.

Runs only when `-m screenshots` asks for it (tests/conftest.py deselects it otherwise):
`make screenshots` writes docs/screenshots/ (the README's pictures, UPDATE_SCREENSHOTS=1);
`pytest -m screenshots` alone writes test-results/screenshots/."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import Page, expect

from tests.support import (
    APPROVED,
    CHALLENGED,
    FLEX_DECLINED,
    FLEX_DOWN,
    RESCUED,
    ROOT,
    expect_status,
    fill_checkout,
    open_checkout,
    spaced,
)

pytestmark = [pytest.mark.e2e, pytest.mark.screenshots]  # only `make screenshots` runs it

FOLDER = ROOT / ("docs/screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else
                 "test-results/screenshots")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def shoot(page: Page, name: str, *, full_page: bool = True) -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=FOLDER / f"{name}.png", full_page=full_page)


def test_screenshots_of_every_step(page: Page):
    page.set_viewport_size(DESKTOP)
    page.goto("/")
    page.evaluate("localStorage.clear()")
    page.reload()
    expect(page.get_by_role("button", name="Dismiss the tour")).to_be_visible()
    shoot(page, "home")

    open_checkout(page)
    # A demo shopper too.
    page.get_by_role("button", name=f"Use test card {spaced(RESCUED)}").click()
    shoot(page, "checkout", full_page=False)  # what a 1280x800 screen shows: cards and Pay
    page.get_by_role("button", name="Pay", exact=True).click()
    expect_status(page, "Rescued by Flex")
    page.get_by_role("button", name="Half", exact=False).click()  # as in the README
    page.get_by_role("button", name="Refund", exact=True).click()
    expect_status(page, "Partially refunded")
    # What only Flex's side can do, through the demo tools: its webhooks land on the page.
    demo_tools = page.get_by_text("Simulate Flex's side (demo)")
    demo_tools.click()
    shoot(page, "order-rescued")
    rescued = page.url
    page.get_by_role("button", name="Simulate a refund in Flex's portal").click()
    expect(page.get_by_role("row").filter(has_text="Flex portal")).to_be_visible()
    page.get_by_role("button", name="Simulate a chargeback").click()  # the tools stay open
    expect_status(page, "Chargeback")
    shoot(page, "order-chargeback")

    for card, label, name in ((FLEX_DECLINED, "Declined", "order-declined"),
                              (CHALLENGED, "Declined", "order-challenge"),
                              (FLEX_DOWN, "Awaiting confirmation", "order-awaiting-confirmation"),
                              (APPROVED, "Paid", "order-paid")):
        open_checkout(page)
        fill_checkout(page, card)
        page.get_by_role("button", name="Pay", exact=True).click()
        expect_status(page, label)
        shoot(page, name)

    page.goto("/orders")
    expect(page.get_by_role("heading", name="Orders")).to_be_visible()
    shoot(page, "orders")
    page.goto("/flex")
    expect(page.get_by_role("heading", name="Flex calls", level=1)).to_be_visible()
    shoot(page, "inspector")
    page.goto("/flex/webhooks")
    expect(page.get_by_role("row").filter(has_text="payment.chargeback.received").first
           ).to_be_visible()
    shoot(page, "inspector-webhooks")

    page.set_viewport_size(PHONE)
    open_checkout(page)
    shoot(page, "checkout-phone")
    page.goto(rescued)
    expect_status(page, "Chargeback")
    shoot(page, "order-chargeback-phone")
    page.goto("/flex/webhooks")
    shoot(page, "inspector-webhooks-phone")


def test_screenshot_of_awaiting_capture(authorization_page: Page, authorization_shop):
    page = authorization_page
    page.set_viewport_size(DESKTOP)
    page.goto(f"/orders/{authorization_shop.buy(RESCUED)}")
    expect_status(page, "Awaiting capture")
    expect(page.get_by_role("button", name="Capture", exact=True)).to_be_visible()
    shoot(page, "order-awaiting-capture")
    page.set_viewport_size(PHONE)
    shoot(page, "order-awaiting-capture-phone")
