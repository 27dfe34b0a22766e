"""A shopper's journeys through the real app in a real Chromium, by role and label."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support import (
    APPROVED,
    CHALLENGED,
    CHECKOUT_FIELDS,
    FLEX_DECLINED,
    FLEX_DOWN,
    RESCUED,
    calls,
    clear_faults,
    expect_status,
    fill_checkout,
    open_checkout,
    pay_in_browser,
    sense_post,
    set_fault,
    spaced,
    wait_for,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def no_fault_left(shop):
    yield
    clear_faults(shop.sandbox)


def test_approved_card_is_paid_without_waiting_for_the_transmit(page: Page, shop):
    set_fault(shop.sandbox, "transmit", hang=True)  # Flex holds every /transmit unanswered
    checkout_id = open_checkout(page)
    fill_checkout(page, APPROVED)
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/orders/{checkout_id}$"))
    expect_status(page, "Paid")

    def outbox_row() -> tuple | None:
        with closing(sqlite3.connect(shop.database)) as conn:
            return conn.execute("SELECT state, attempts FROM flex_outbox WHERE order_id = ?",
                                (checkout_id,)).fetchone()

    # The shopper sees "Paid" while Flex has not answered the /transmit: it is not on the path.
    assert outbox_row()[0] == "pending"
    clear_faults(shop.sandbox)  # Flex answers now

    assert wait_for(lambda: outbox_row()[0] == "delivered"), outbox_row()
    transmits = wait_for(lambda: [call for call in calls(shop.sandbox, "transmit")
                                  if call["request"]["orderId"] == checkout_id], timeout=8)
    # The relay counts every send and sends only pending rows: Flex got one transmit per
    # attempt (one, unless the held call outlived its deadline and was sent again).
    assert len(transmits) == outbox_row()[1] >= 1


def test_declined_card_is_rescued_by_flex(page: Page, shop):
    checkout_id = pay_in_browser(page, RESCUED)
    expect_status(page, "Rescued by Flex")
    evaluate = [c for c in calls(shop.sandbox, "evaluate")
                if c["request"]["orderId"] == checkout_id]
    assert len(evaluate) == 1
    expect(page.get_by_text(evaluate[0]["response"]["orderSessionKey"]).first).to_be_visible()
    expect(page.get_by_text("/v1/evaluate").first).to_be_visible()


@pytest.mark.parametrize("card", [CHALLENGED, FLEX_DECLINED], ids=["challenge", "flex-declined"])
def test_challenge_and_flex_decline_are_declined_with_a_clear_message(page: Page, card):
    pay_in_browser(page, card)
    expect_status(page, "Declined")
    expect(page.get_by_text("No money was taken", exact=False)).to_be_visible()


def test_unknown_flex_answer_awaits_confirmation_in_a_neutral_look(page: Page):
    checkout_id = pay_in_browser(page, FLEX_DOWN)
    expect_status(page, "Awaiting confirmation")
    status = page.get_by_role("status")
    # Both colours from one document once its stylesheet has loaded (the page reloads itself
    # every few seconds while it waits; on a busy machine a read could catch a bare one).
    color, red = status.evaluate("""async el => {
        if (document.readyState !== 'complete') {
            await new Promise(done => addEventListener('load', done, {once: true}));
        }
        return [getComputedStyle(el).color,
                getComputedStyle(document.documentElement).getPropertyValue('--bad')];
    }""")
    assert red.strip() and color != _rgb(red)
    assert "declined" not in (status.get_attribute("class") or "")
    expect(page.get_by_text("We are confirming this payment with Flex")).to_be_visible()
    expect(page.get_by_text("Please do not pay again", exact=False).first).to_be_visible()
    expect(page.get_by_role("heading", name="What happens next")).to_be_visible()
    expect(page.get_by_role("link", name="Try another card")).to_have_count(0)
    response = page.goto(f"/orders/{checkout_id}")
    assert response.status == 200
    page.goto("/orders")
    row = page.get_by_role("row").filter(has_text=checkout_id[:8])
    expect(row.get_by_text("Awaiting confirmation", exact=True)).to_be_visible()


def test_awaiting_confirmation_page_updates_by_itself(page: Page, shop):
    set_fault(shop.sandbox, "evaluate", status=503)  # Flex's answer does not arrive
    checkout_id = pay_in_browser(page, RESCUED)
    expect_status(page, "Awaiting confirmation")
    clear_faults(shop.sandbox)  # Flex is back
    with closing(sqlite3.connect(shop.database)) as conn, conn:  # the replay is due now
        conn.execute("UPDATE orders SET recover_at = 0 WHERE id = ?", (checkout_id,))
    # The relay replays /evaluate; the open page notices and shows the result, no reload.
    expect(page.get_by_role("status")).to_have_text("Rescued by Flex", timeout=20_000)


def _rgb(hex_color: str) -> str:
    value = hex_color.strip().lstrip("#")
    return "rgb({}, {}, {})".format(*(int(value[i:i + 2], 16) for i in (0, 2, 4)))


def test_declined_order_offers_another_card_with_the_cart_kept(page: Page):
    pay_in_browser(page, FLEX_DECLINED, quantity=2)
    expect_status(page, "Declined")
    page.get_by_role("link", name="Try another card").click()
    expect(page).to_have_url(re.compile(r"/checkout$"))
    expect(page.get_by_text("2 × Flex Mug")).to_be_visible()
    checkout_id = page.locator("input[name=checkout_id]").input_value()
    fill_checkout(page, APPROVED)
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/orders/{checkout_id}$"))
    expect_status(page, "Paid")
    expect(page.get_by_text("$36.00 USD")).to_be_visible()


def test_pay_button_shows_processing_and_announces_it(page: Page, shop):
    set_fault(shop.sandbox, "evaluate", delay_ms=1500)  # a decline Flex takes its time over
    seen = []
    # While the POST is in flight Playwright cannot query the old page (it waits for the new
    # one), so the page reports what the shopper sees once app.js has handled the submit.
    page.expose_binding("reportPayButton", lambda _source, state: seen.append(state))
    page.add_init_script("""
        document.addEventListener('submit', () => setTimeout(() => setTimeout(() => {
            const button = document.querySelector('.pay-form button[type=submit]');
            const live = document.querySelector('.pay-form [aria-live=polite]');
            window.reportPayButton({text: button.innerText.trim(), disabled: button.disabled,
                                    spinner: !!button.querySelector('.spinner'),
                                    live: live.textContent});
        })));
    """)
    checkout_id = open_checkout(page)
    fill_checkout(page, RESCUED)
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/orders/{checkout_id}$"))
    assert seen == [{"text": "Processing…", "disabled": True, "spinner": True,
                     "live": "Processing your payment. Please wait and do not pay again."}]
    expect_status(page, "Rescued by Flex")


def test_checkout_errors_are_marked_at_each_field(page: Page):
    open_checkout(page)
    fill_checkout(page, "4242 4242 4242 4241")  # fails the Luhn check
    page.get_by_label("CVC", exact=True).fill("")
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Please check the payment form")
    for label in ("Card number", "CVC"):
        field = page.get_by_label(label, exact=True)
        expect(field).to_have_attribute("aria-invalid", "true")
        error = page.locator(f"#{field.get_attribute('aria-describedby')}")
        expect(error).to_have_class("error")
        expect(error).to_have_text(re.compile(r"\w"))  # the field's own message, beside it
    expect(page.get_by_label("Email", exact=True)).not_to_have_attribute("aria-invalid", "true")


def test_test_card_button_fills_the_card_field_on_a_phone(page: Page):
    page.set_viewport_size({"width": 390, "height": 844})
    open_checkout(page)
    table = page.get_by_role("table").filter(has_text="Test cards")
    box = table.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # nothing clipped or scrolled
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.get_by_role("button", name="Use test card 4000 0000 0000 0002").click()
    expect(page.get_by_label("Card number", exact=True)).to_have_value("4000 0000 0000 0002")
    expect(page.get_by_label("Card number", exact=True)).to_be_focused()


def test_rescued_order_partial_then_full_refund_then_refused(page: Page):
    checkout_id = pay_in_browser(page, RESCUED, quantity=2)  # 2 x $18.00
    amount = page.get_by_label("Refund amount")
    amount.fill("ten dollars")
    page.get_by_role("button", name="Refund").click()
    expect(amount).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#{amount.get_attribute('aria-describedby').split()[0]}")).to_have_text(
        "Enter an amount in dollars with digits 0-9 only, like 12.34.")
    expect(page).to_have_url(re.compile(rf"/orders/{checkout_id}#refund$"))  # redirected

    amount.fill("10.00")
    page.get_by_role("button", name="Refund").click()
    expect_status(page, "Partially refunded")
    expect(amount).to_have_value("")  # nothing prefilled: a careless click refunds nothing
    expect(page.get_by_text("Amount refunded", exact=True)).to_be_visible()
    expect(page.get_by_text("Refunded", exact=True)).to_have_count(0)  # the label is not a fact
    page.reload()  # Post/Redirect/Get: a reload asks for the page, it refunds nothing
    expect(page.get_by_role("row").filter(has_text="$10.00")).to_have_count(1)

    stale = page.context.new_page()  # a second tab still offering the old remainder
    stale.goto(f"/orders/{checkout_id}")

    page.get_by_role("button", name="Full: $26.00").click()  # what is left
    expect(amount).to_have_value("26.00")
    page.get_by_role("button", name="Refund", exact=True).click()
    expect_status(page, "Refunded")

    stale.get_by_role("button", name="Full", exact=False).click()  # its old remainder, $26.00
    stale.get_by_role("button", name="Refund", exact=True).click()
    expect(stale.get_by_text("Refund refused", exact=False)).to_be_visible()
    expect(stale.get_by_label("Refund amount")).to_have_attribute("aria-invalid", "true")
    expect_status(stale, "Refunded")


def test_timeline_is_a_waterfall_of_the_checkout(page: Page):
    pay_in_browser(page, RESCUED)
    chart = page.get_by_role("region", name="Checkout")
    steps = {name: chart.get_by_role("listitem").filter(has_text=name)
             for name in ("Processor authorization", "tokenize", "evaluate")}
    timing = {}
    for name, step in steps.items():
        expect(step).to_have_count(1)
        started, took = re.search(r"starts at \+(\d+) ms, takes (\d+) ms",
                                  step.inner_text()).groups()
        x, width = (float(step.locator("rect.span").get_attribute(a)) for a in ("x", "width"))
        timing[name] = (int(started), int(took), x, width)
    span = int(re.search(r"(\d+) ms in all", chart.inner_text())[1])
    for started, took, x, width in timing.values():  # drawn to the chart's one scale
        assert abs(x - 1000 * started / span) <= 2
        assert abs(width - max(1000 * took / span, 2)) <= 2
    authorize, tokenize, evaluate = timing.values()
    assert authorize[0] == 0 or tokenize[0] == 0  # the checkout starts with both
    assert evaluate[0] >= authorize[0] + authorize[1] - 1  # /evaluate needs the decline …
    assert evaluate[0] >= tokenize[0] + tokenize[1] - 1  # … and the vault token


def test_sensejs_runs_once_per_funnel_page_under_one_sense_key(page: Page, shop):
    """Cart, checkout and confirmation each load SenseJS and init it once, all filing under
    one senseKey: the checkout id, which /evaluate then carries."""
    page.goto("/")
    mug = page.get_by_role("article").filter(has_text="Flex Mug")
    with page.expect_response(sense_post) as on_cart:  # the widget's POST, not a polled flag
        mug.get_by_role("button", name="Add to cart").click()
    assert on_cart.value.ok
    cart = page.evaluate("({...window.fcWidget})")
    with page.expect_response(sense_post) as on_checkout:
        page.get_by_role("link", name="Checkout").click()
    assert on_checkout.value.ok
    checkout = page.evaluate("({...window.fcWidget})")
    checkout_id = page.locator("input[name=checkout_id]").input_value()
    assert cart["senseKey"] == checkout["senseKey"] == checkout_id
    assert cart["initCount"] == checkout["initCount"] == 1
    fingerprint = requests.get(f"{shop.sandbox.url}/_sandbox/sense/{checkout_id}", timeout=5)
    assert fingerprint.status_code == 200 and len(fingerprint.json()) == 2

    fill_checkout(page, RESCUED)
    with page.expect_response(sense_post) as on_confirmation:
        page.get_by_role("button", name="Pay", exact=True).click()
    assert on_confirmation.value.ok
    expect_status(page, "Rescued by Flex")
    confirmation = page.evaluate("({...window.fcWidget})")
    assert (confirmation["senseKey"], confirmation["initCount"]) == (checkout_id, 1)
    evaluate = [c for c in calls(shop.sandbox, "evaluate")
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
    # The approved path does not wait for its vault call: it may land after the page.
    tokenizes = wait_for(lambda: [c for c in calls(shop.sandbox, "tokenize")
                                  if c["request"]["payment_method"].get("sense_key")
                                  == checkout_id])
    assert len(tokenizes) == 1


def test_checkout_and_refund_with_the_keyboard_only(page: Page):
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
        page.keyboard.type(value or spaced(RESCUED))
    tab_to(page, lambda el: el["text"] == "Pay")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/orders/{checkout_id}$"))
    expect_status(page, "Rescued by Flex")

    expect(page.get_by_label("Refund amount")).to_have_value("")  # nothing prefilled
    tab_to(page, lambda el: el["text"] == "Half")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Refund amount")).to_have_value("9.00")
    tab_to(page, lambda el: el["text"] == "Refund")
    page.keyboard.press("Enter")
    expect_status(page, "Partially refunded")
    expect(page.get_by_role("row").filter(has_text="$9.00")).to_have_count(1)
    expect(page.get_by_label("Refund amount")).to_have_value("")


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
