"""A shopper's journeys through the real app in a real Chromium, by role and label."""

from __future__ import annotations

import re
import time

import pytest
import requests
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

APPROVED = "4242 4242 4242 4242"
RESCUED = "4000 0000 0000 0002"
CHALLENGED = "4000 0000 0000 0127"
FLEX_DECLINED = "4000 0000 0000 9995"
FLEX_DOWN = "4000 0000 0000 0119"

CHECKOUT_FIELDS = (
    ("Email", "shopper@example.com"),
    ("Name on card", "Ada Lovelace"),
    ("Card number", None),  # the card under test
    ("Expiry (MM/YY)", "12/34"),
    ("CVC", "123"),
    ("Address", "1 Main St"),
    ("City", "Springfield"),
    ("State", "IL"),
    ("ZIP", "62701"),
    ("Country", "US"),
)


def open_checkout(page: Page, quantity: int = 1) -> str:
    """Puts a Flex Mug in the cart, opens the checkout; returns the page's checkout id."""
    page.goto("/")
    mug = page.get_by_role("article").filter(has_text="Flex Mug")
    mug.get_by_label("Quantity").fill(str(quantity))
    mug.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Checkout").click()
    expect(page).to_have_url(re.compile(r"/checkout$"))
    return page.locator("input[name=checkout_id]").input_value()


def fill_checkout(page: Page, card: str) -> None:
    for label, value in CHECKOUT_FIELDS:
        page.get_by_label(label, exact=True).fill(value or card)


def pay(page: Page, card: str, quantity: int = 1) -> str:
    """Checks out with `card`; returns the order id (the checkout id)."""
    checkout_id = open_checkout(page, quantity)
    fill_checkout(page, card)
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/orders/{checkout_id}$"))
    return checkout_id


def expect_status(page: Page, label: str) -> None:
    expect(page.get_by_text(label, exact=True).first).to_be_visible()


def set_fault(shop, endpoint: str, spec: dict) -> None:
    requests.put(f"{shop.sandbox_url}/_sandbox/faults/{endpoint}", json=spec,
                 timeout=5).raise_for_status()


@pytest.fixture(autouse=True)
def clear_faults(shop):
    yield
    requests.delete(f"{shop.sandbox_url}/_sandbox/faults", timeout=5)


def test_approved_card_is_paid_and_transmitted_once_without_waiting(page: Page, shop):
    set_fault(shop, "transmit", {"delay_ms": 2000})  # a slow Flex must not slow the shopper
    checkout_id = open_checkout(page)
    fill_checkout(page, APPROVED)
    started = time.monotonic()
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/orders/{checkout_id}$"))
    expect_status(page, "Paid")
    assert time.monotonic() - started < 1.5

    transmits = shop.poll_sandbox_calls(
        "transmit", lambda call: call["request"]["orderId"] == checkout_id, timeout=8)
    assert len(transmits) == 1
    time.sleep(0.5)  # a second delivery would have arrived by now
    assert len([c for c in shop.sandbox_calls("transmit")
                if c["request"]["orderId"] == checkout_id]) == 1


def test_declined_card_is_rescued_by_flex(page: Page, shop):
    checkout_id = pay(page, RESCUED)
    expect_status(page, "Rescued by Flex")
    evaluate = [c for c in shop.sandbox_calls("evaluate")
                if c["request"]["orderId"] == checkout_id]
    assert len(evaluate) == 1
    expect(page.get_by_text(evaluate[0]["response"]["orderSessionKey"]).first).to_be_visible()
    expect(page.get_by_text("/v1/evaluate").first).to_be_visible()


@pytest.mark.parametrize("card", [CHALLENGED, FLEX_DECLINED], ids=["challenge", "flex-declined"])
def test_challenge_and_flex_decline_are_declined_with_a_clear_message(page: Page, card):
    pay(page, card)
    expect_status(page, "Declined")
    expect(page.get_by_text("No money was taken", exact=False)).to_be_visible()


def test_flex_unavailable_awaits_confirmation_without_a_server_error(page: Page):
    checkout_id = pay(page, FLEX_DOWN)
    expect_status(page, "Awaiting confirmation")
    expect(page.get_by_text("We could not confirm this payment yet", exact=False)).to_be_visible()
    expect(page.get_by_text("Awaiting confirmation from Flex", exact=False)).to_be_visible()
    response = page.goto(f"/orders/{checkout_id}")
    assert response.status == 200
    assert page.goto("/orders").status == 200


def test_rescued_order_partial_then_full_refund_then_refused(page: Page):
    checkout_id = pay(page, RESCUED, quantity=2)  # 2 x $18.00
    page.get_by_label("Refund amount").fill("10.00")
    page.get_by_role("button", name="Refund").click()
    expect_status(page, "Partially refunded")
    expect(page.get_by_label("Refund amount")).to_have_value("26.00")

    stale = page.context.new_page()  # a second tab still offering the old remainder
    stale.goto(f"/orders/{checkout_id}")

    page.get_by_role("button", name="Refund").click()  # the default: everything left
    expect_status(page, "Refunded")

    stale.get_by_role("button", name="Refund").click()
    expect(stale.get_by_text("Refund refused", exact=False)).to_be_visible()
    expect_status(stale, "Refunded")


def test_sensejs_fingerprint_reaches_evaluate_under_the_same_sense_key(page: Page, shop):
    checkout_id = open_checkout(page)
    page.wait_for_function("window.fcWidget && window.fcWidget.sent")
    widget = page.evaluate("({...window.fcWidget})")
    assert widget["initCount"] == 1
    assert widget["senseKey"] == checkout_id
    fingerprint = requests.get(f"{shop.sandbox_url}/_sandbox/sense/{checkout_id}", timeout=5)
    assert fingerprint.status_code == 200

    fill_checkout(page, RESCUED)
    page.get_by_role("button", name="Pay", exact=True).click()
    expect_status(page, "Rescued by Flex")
    evaluate = [c for c in shop.sandbox_calls("evaluate")
                if c["request"]["orderId"] == checkout_id]
    assert evaluate[0]["request"]["senseKey"] == checkout_id


def test_double_click_on_pay_creates_one_order(page: Page, shop):
    checkout_id = open_checkout(page)
    fill_checkout(page, APPROVED)
    page.get_by_role("button", name="Pay", exact=True).dblclick()
    expect(page).to_have_url(re.compile(rf"/orders/{checkout_id}$"))
    expect_status(page, "Paid")
    page.goto("/orders")
    expect(page.get_by_role("link", name=re.compile(checkout_id[:8]))).to_have_count(1)
    tokenizes = [c for c in shop.sandbox_calls("tokenize")
                 if c["request"]["payment_method"].get("sense_key") == checkout_id]
    assert len(tokenizes) == 1


def test_checkout_with_the_keyboard_only(page: Page):
    page.goto("/")
    tab_to(page, lambda el: el["text"] == "Add to cart")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/cart$"))
    tab_to(page, lambda el: el["text"] == "Checkout")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/checkout$"))
    checkout_id = page.locator("input[name=checkout_id]").input_value()

    for label, value in CHECKOUT_FIELDS:
        tab_to(page, lambda el, label=label: el["label"] == label)
        page.keyboard.press("Control+A")
        page.keyboard.type(value or APPROVED)
    tab_to(page, lambda el: el["text"] == "Pay")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/orders/{checkout_id}$"))
    expect_status(page, "Paid")


def tab_to(page: Page, predicate, limit: int = 60) -> None:
    """Presses Tab until the focused element matches `predicate`."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("""() => {
            const el = document.activeElement;
            const label = el.labels && el.labels.length ? el.labels[0].innerText.trim() : "";
            return {text: (el.innerText || el.value || "").trim(), label};
        }""")
        if predicate(focused):
            return
    raise AssertionError("could not reach the element with the keyboard")
