"""Walks the demo as the README shows it and screenshots each page, on a 1280 px desktop
and a 390 px phone.

Written to test-results/screenshots/, or to docs/screenshots/ (the README's pictures) with
UPDATE_SCREENSHOTS=1 (`make screenshots`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .test_journeys import (
    APPROVED,
    CHALLENGED,
    FLEX_DECLINED,
    FLEX_DOWN,
    RESCUED,
    expect_status,
    fill_checkout,
    open_checkout,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / ("docs/screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else
                 "test-results/screenshots")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def shoot(page: Page, name: str) -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=FOLDER / f"{name}.png", full_page=True)


def test_screenshots_of_every_step(page: Page):
    page.set_viewport_size(DESKTOP)
    page.goto("/")
    page.evaluate("localStorage.clear()")
    page.reload()
    expect(page.get_by_role("button", name="Dismiss the tour")).to_be_visible()
    shoot(page, "home")

    open_checkout(page)
    fill_checkout(page, RESCUED)
    shoot(page, "checkout")
    page.get_by_role("button", name="Pay", exact=True).click()
    expect_status(page, "Rescued by Flex")
    page.get_by_label("Refund amount").fill("9.00")  # half, as in the README's first minutes
    page.get_by_role("button", name="Refund").click()
    expect_status(page, "Partially refunded")
    shoot(page, "order-rescued")

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

    page.set_viewport_size(PHONE)
    open_checkout(page)
    shoot(page, "checkout-phone")
