"""Walks the demo as the README shows it and screenshots each page.

Written to test-results/screenshots/, or to docs/screenshots/ (the README's pictures) with
UPDATE_SCREENSHOTS=1 (`make screenshots`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .test_journeys import (
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


def shoot(page: Page, name: str) -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=FOLDER / f"{name}.png", full_page=True)


def test_screenshots_of_every_step(page: Page):
    page.set_viewport_size({"width": 1200, "height": 800})
    open_checkout(page)
    fill_checkout(page, RESCUED)
    shoot(page, "checkout")

    for card, label, name in ((RESCUED, "Rescued by Flex", "order-rescued"),
                              (FLEX_DECLINED, "Declined", "order-declined"),
                              (CHALLENGED, "Declined", "order-challenge"),
                              (FLEX_DOWN, "Awaiting confirmation", "order-reconciling"),
                              ("4242 4242 4242 4242", "Paid", "order-paid")):
        if name != "order-rescued":
            open_checkout(page)
            fill_checkout(page, card)
        page.get_by_role("button", name="Pay", exact=True).click()
        expect_status(page, label)
        if name == "order-rescued":
            page.get_by_text("Request").first.click()  # open one body in the timeline
        shoot(page, name)

    page.goto("/orders")
    expect(page.get_by_role("heading", name="Orders")).to_be_visible()
    shoot(page, "orders")
    page.goto("/flex")
    expect(page.get_by_role("heading", name="Flex calls")).to_be_visible()
    shoot(page, "inspector")
