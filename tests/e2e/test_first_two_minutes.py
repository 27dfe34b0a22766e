"""The README's "First two minutes", as a newcomer does it: one click per step, nothing typed,
on a 1280x800 screen, checking what each page says. The steps are shop/wording.py's
TOUR_STEPS, which the README quotes word for word (tests/unit/test_wording.py)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from shop.wording import TOUR_STEPS
from tests.support import RESCUED, expect_status, spaced

pytestmark = pytest.mark.e2e

SCREEN = {"width": 1280, "height": 800}
CHECKOUT_LABELS = ("Email", "Name on card", "Card number", "Expiry (MM/YY)", "CVC", "Address",
                   "City", "State", "ZIP", "Country")


def plain(step: str) -> str:
    """A tour step as the page shows it: without its **bold** and `code` marks."""
    return re.sub(r"\*\*(.+?)\*\*|`(.+?)`", lambda m: m[1] or m[2], step)


def dollars(text: str) -> int:
    """Cents in the first "$12.34" of `text`."""
    whole, cents = re.search(r"\$(\d+)\.(\d\d)", text).groups()
    return int(whole) * 100 + int(cents)


def test_the_first_two_minutes_one_click_per_step(page: Page):
    page.set_viewport_size(SCREEN)
    clicks = 0

    def click(target: Locator) -> None:
        nonlocal clicks
        clicks += 1
        target.click()

    # 1. The home page, with the guided tour: the README's steps, word for word.
    page.goto("/")
    tour = page.get_by_role("region", name="Your first two minutes with the demo")
    expect(tour.get_by_role("listitem")).to_have_text([plain(step) for step in TOUR_STEPS])
    expect(page.get_by_role("heading", name="Merch for payment people")).to_be_visible()

    # 2. Add to cart, under any product: the first.
    click(page.get_by_role("button", name="Add to cart").first)
    expect(page).to_have_url(re.compile(r"/cart$"))
    expect(page.get_by_text(re.compile(r"^Added .+ to your cart\.$"))).to_be_visible()

    # 3. Checkout: the test cards sit beside the form, on screen with Pay.
    click(page.get_by_role("link", name="Checkout"))
    expect(page.get_by_role("heading", name="Checkout", level=1)).to_be_visible()
    rescue = page.get_by_role("button", name=f"Use test card {spaced(RESCUED)}")
    pay = page.get_by_role("button", name="Pay", exact=True)
    expect(rescue).to_be_in_viewport()
    expect(pay).to_be_in_viewport()
    for label in CHECKOUT_LABELS[:2] + CHECKOUT_LABELS[3:5]:
        expect(page.get_by_label(label, exact=True)).to_have_value("")  # nothing typed yet

    # 4. The rescue card fills the whole form: a demo shopper.
    click(rescue)
    expect(page.get_by_label("Card number", exact=True)).to_have_value(spaced(RESCUED))
    for label in CHECKOUT_LABELS:
        expect(page.get_by_label(label, exact=True)).not_to_have_value("")
    expect(page.get_by_label("Expiry (MM/YY)", exact=True)).to_have_value(re.compile(r"^12/\d\d$"))

    # 5. Pay: the processor declines, Flex approves.
    click(pay)
    expect_status(page, "Rescued by Flex")
    expect(page.get_by_text("Payment approved. Thank you for your order!")).to_be_visible()
    amount = page.get_by_label("Refund amount")
    expect(amount).to_have_value("")  # nothing prefilled
    total = dollars(page.locator("dt:text-is('Amount') + dd").inner_text())

    # 6. Half fills the amount.
    click(page.get_by_role("button", name="Half", exact=False))
    half = total // 2
    expect(amount).to_have_value(f"{half // 100}.{half % 100:02d}")

    # 7. Refund: through Flex, which charged the card.
    click(page.get_by_role("button", name="Refund", exact=True))
    expect_status(page, "Partially refunded")
    refunds = page.get_by_role("table").filter(has_text="Through")
    expect(refunds.get_by_role("row").filter(has_text="Flex")).to_contain_text(
        f"${half // 100}.{half % 100:02d}")

    # 8. The demo tools (folded away: they act as Flex, not as the shop), a portal refund.
    click(page.get_by_text("Simulate Flex's side (demo)"))
    click(page.get_by_role("button", name="Simulate a refund in Flex's portal"))
    expect(refunds.get_by_role("row").filter(has_text="Flex portal")).to_be_visible()
    webhooks = page.get_by_role("table").filter(has_text="What it changed")
    expect(webhooks.get_by_role("row").filter(has_text="made in Flex's portal")).to_be_visible()

    # 9. A chargeback (the demo tools stay open): the amount and date, in the merchant's words.
    click(page.get_by_role("button", name="Simulate a chargeback"))
    expect_status(page, "Chargeback")
    charge = f"${total // 100}.{total % 100:02d}"
    expect(page.get_by_text(re.compile(
        rf"^The cardholder disputed the \{charge} charge with their bank on "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"))).to_be_visible()
    expect(page.locator("dt:text-is('Disputed amount') + dd")).to_have_text(
        f"{charge} (the whole charge)")
    expect(page.locator("dt:text-is('Disputed on') + dd")).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    expect(page.get_by_text(re.compile(r"\byou disputed\b", re.IGNORECASE))).to_have_count(0)
    expect(page.get_by_role("button", name="Refund", exact=True)).to_have_count(0)

    # 10. The timeline: one chart per action, each call with why it was made.
    checkout = page.get_by_role("region", name="Checkout")
    for why in ("authorizing the card with the processor", "vaulting the card",
                "asking Flex to decide the declined payment"):
        expect(checkout.get_by_text(why, exact=True)).to_have_count(1)
    refund = page.get_by_role("region", name=re.compile(r"^Later: refunding \$[\d.]+, as the"))
    expect(refund.get_by_role("listitem")).to_have_count(1)  # the refund alone, its own time
    # Flex's order.refunded webhooks: the portal refund's lookup at least (the shop's own
    # refund's webhook may still wait for the relay's sweep), each an action of its own.
    lookups = page.get_by_role("region", name=re.compile(r"^Later: checking the refunded total"))
    expect(lookups.first).to_be_visible()
    for chart in lookups.all():
        expect(chart.get_by_role("listitem")).to_have_count(1)
    click(page.get_by_role("link", name="Flex calls"))
    expect(page.get_by_role("heading", name="Flex calls", level=1)).to_be_visible()
    calls = page.locator(".timeline")
    for why in ("vaulting the card", "asking Flex to decide the declined payment",
                "checking the refunded total after Flex's order.refunded webhook"):
        expect(calls.get_by_text(why, exact=True).first).to_be_visible()

    # 11. Ctrl-C: the e2e shop's fixture stops it and checks nothing stale is left behind.
    # Steps 2 to 10 one click each, and step 8 one more to unfold the demo tools; nothing typed.
    assert clicks == len(TOUR_STEPS) - 2 + 1
