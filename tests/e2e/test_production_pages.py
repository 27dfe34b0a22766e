"""A production node in a real browser: the shopper's own order page, the merchant's login
and the back office behind it, each with zero axe-core violations."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.support import (
    MERCHANT_PASSWORD,
    PRODUCTION,
    RESCUED,
    ShopServer,
    fill_checkout,
    flex_settings,
    open_checkout,
    violations,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def production_shop(shop, tmp_path_factory):
    """A production node (its Flex API: the demo shop's sandbox, as a real Flex would be)."""
    directory = tmp_path_factory.mktemp("e2e-production")
    server = ShopServer({
        **PRODUCTION,
        "DATABASE": str(directory / "shop.sqlite"),
        **flex_settings(shop.sandbox),
        "FLEX_RELAY": "0",
        "PROCESSOR_LATENCY_MS": "50",
    }, directory / "server.log").start()
    yield server
    server.stop()


@pytest.fixture
def production_page(browser, browser_context_args, production_shop):
    # localhost is a secure context: Chromium keeps the Secure session cookie over http.
    context = browser.new_context(**{**browser_context_args,
                                     "base_url": f"http://localhost:{production_shop.port}"})
    yield context.new_page()
    context.close()


def test_the_shopper_and_the_merchant_on_a_production_node(production_page: Page):
    page, found = production_page, []
    open_checkout(page)
    fill_checkout(page, RESCUED)
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Rescued by Flex")
    expect(page.get_by_role("button", name="Refund")).to_have_count(0)
    expect(page.get_by_role("link", name="private link")).to_be_visible()
    found += violations(page, "the shopper's own order")
    order_url = page.url

    page.get_by_role("link", name="Merchant sign-in").click()
    expect(page.get_by_role("heading", name="Merchant sign-in")).to_be_visible()
    found += violations(page, "merchant sign-in")
    page.get_by_label("Username").fill("merchant")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Wrong username or password.")).to_be_visible()
    found += violations(page, "merchant sign-in, refused")
    page.get_by_label("Password").fill(MERCHANT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/orders$"))
    found += violations(page, "orders, signed in")
    page.goto(order_url)
    expect(page.get_by_role("button", name="Refund")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    page.goto("/orders")
    expect(page.get_by_role("heading", name="Merchant sign-in")).to_be_visible()
    assert found == []
