"""axe-core on every page the shopper and the integrator see, on a desktop and a phone:
zero violations of any impact."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.support import (
    APPROVED,
    CHALLENGED,
    FLEX_DECLINED,
    FLEX_DOWN,
    RESCUED,
    Shopper,
    hidden,
    open_checkout,
    violations,
    wait_for,
)

pytestmark = pytest.mark.e2e

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def orders(shop) -> dict[str, str]:
    """One order of each outcome, made once for the module: outcome -> order id."""
    made = {name: shop.buy(card) for name, card in (
        ("paid", APPROVED), ("rescued", RESCUED), ("challenge", CHALLENGED),
        ("declined", FLEX_DECLINED), ("awaiting", FLEX_DOWN),
    )}
    made["chargeback"] = shop.buy(RESCUED)
    made["partially-refunded"] = shop.buy(RESCUED, quantity=2)  # last: the refund error below
    with Shopper(shop.url) as merchant:
        assert merchant.refund(made["partially-refunded"], "5.00").status_code == 303
        page = merchant.get(f"/orders/{made['chargeback']}")
        assert merchant.post(f"/orders/{made['chargeback']}/simulate/chargeback",
                             {"csrf_token": hidden(page, "csrf_token")}).status_code == 303
        charged_back = wait_for(lambda: "status-chargeback" in merchant.get(  # Flex's webhook
            f"/orders/{made['chargeback']}"), timeout=30)
    assert charged_back, "the chargeback webhook never arrived"
    return made


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_page_has_no_axe_violation(page: Page, shop, orders, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    found = []

    page.goto("/")
    page.evaluate("localStorage.clear()")
    page.reload()
    expect(page.get_by_role("region", name="Your first two minutes with the demo")).to_be_visible()
    found += violations(page, "catalog with the guided tour")

    open_checkout(page)  # also fills the cart
    found += violations(page, "checkout")
    page.get_by_label("Card number", exact=True).fill("4242 4242 4242 4241")
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page.get_by_role("alert")).to_be_visible()
    found += violations(page, "checkout with errors")
    page.goto("/cart")
    found += violations(page, "cart")

    for outcome, order_id in orders.items():
        page.goto(f"/orders/{order_id}")
        expect(page.get_by_role("status")).to_be_visible()
        found += violations(page, f"order {outcome}")
        if outcome == "rescued":  # with the demo's folded-away tools open
            page.get_by_text("Simulate Flex's side (demo)").click()
            found += violations(page, "order rescued, demo tools open")
    page.get_by_label("Refund amount").fill("0")  # the last order is partially refunded
    page.get_by_role("button", name="Refund").click()
    expect(page.get_by_label("Refund amount")).to_have_attribute("aria-invalid", "true")
    found += violations(page, "order with a refund error")

    page.goto("/orders")
    found += violations(page, "orders")
    page.goto("/flex")
    found += violations(page, "flex inspector")
    page.goto("/flex/webhooks")
    found += violations(page, "flex inspector, webhooks")
    assert found == []


def test_the_tour_stays_dismissed(page: Page):
    page.goto("/")
    page.evaluate("localStorage.clear()")
    page.reload()
    tour = page.get_by_role("region", name="Your first two minutes with the demo")
    expect(tour).to_contain_text("4000 0000 0000 0002")
    page.get_by_role("button", name="Dismiss the tour").click()
    expect(tour).to_be_hidden()
    page.reload()
    expect(page.get_by_role("heading", name="Merch for payment people")).to_be_visible()
    expect(tour).to_be_hidden()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_awaiting_capture_page_has_no_axe_violation(authorization_page: Page,
                                                     authorization_shop, viewport):
    page = authorization_page
    page.set_viewport_size(VIEWPORTS[viewport])
    page.goto(f"/orders/{authorization_shop.buy(RESCUED)}")
    expect(page.get_by_role("status")).to_have_text("Awaiting capture")
    expect(page.get_by_role("button", name="Capture", exact=True)).to_be_visible()
    assert violations(page, "order awaiting capture") == []
