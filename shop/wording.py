"""What the shop says to people: status labels, the shopper's message on an order page, the
account of a capture or cancel, the demo's guided tour (the README's "First two minutes", word
for word), every other sentence a page shows (PAGE_TEXT), moments in UTC (`utc`) and amounts
in dollars (the templates' `money` filter). The data layer (shop/orders/records.py,
authorizations.py) decides where an order stands; this module only words it, so the sentences
live in one place and the templates keep labels and markup only.

The status labels are the UI contract ("Paid", "Rescued by Flex", "Declined", ...): tests
and the docs quote them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import Flask
from markupsafe import Markup, escape

from flex.cit import AUTHORIZED, DECLINED
from shop.money import format_dollars
from shop.orders import authorizations
from shop.orders.records import FLEX_REFUSED_AMOUNT, PENDING, REFUNDABLE, Order, Refund, Status

STATUS_LABELS = {
    Status.AWAITING: "Awaiting confirmation",
    Status.PAID: "Paid",
    Status.RESCUED: "Rescued by Flex",
    Status.DECLINED: "Declined",
    Status.AWAITING_CAPTURE: "Awaiting capture",
    Status.PARTIALLY_REFUNDED: "Partially refunded",
    Status.REFUNDED: "Refunded",
    Status.CHARGEBACK: "Chargeback",
}


# The README's "First two minutes" and the home page's tour, one click per step. The README
# quotes these lines exactly ("1. " + step; tests/unit/test_wording.py checks it); **bold**
# names a button or link, `code` a command or a card number.
TOUR_STEPS = (
    "Run `make demo` and open http://127.0.0.1:5000: the shop, with Flex's sandbox beside it.",
    "Click **Add to cart** under any product.",
    "Click **Checkout**.",
    "Click the rescue card **4000 0000 0000 0002** beside the form: it fills in the whole "
    "form for a demo shopper.",
    "Click **Pay**. The processor declines the card and Flex approves it: the order shows "
    "\"Rescued by Flex\".",
    "Click **Half**: the refund amount is now half of the order.",
    "Click **Refund**. Flex charged the card, so Flex refunds it: \"Partially refunded\".",
    "Open **Simulate Flex's side (demo)** and click **Simulate a refund in Flex's portal**: "
    "Flex's signed webhook brings a \"Flex portal\" refund.",
    "Click **Simulate a chargeback**: the order shows \"Chargeback\", with the disputed "
    "amount and date.",
    "Read the **Flex timeline** at the bottom of the order page: each action to scale, each "
    "call with why it was made. **Flex calls** in the menu lists every call.",
    "Stop the demo with Ctrl-C in its terminal.",
)

# Every other sentence a page shows, by name: templates write `say.cart_empty`, or
# `say.cart_empty|marked(href)` when the sentence has marks (see `marked`).
PAGE_TEXT = {
    # the layout's footer
    "demo_store": "Demo store — test cards only, no real money.",
    "talking_to": "Talking to the {mode}.",
    "open_back_office": "Demo mode: the back office (orders, refunds, Flex calls) is open to "
                        "everyone; production puts it behind a login.",
    # the storefront
    "catalog_lede": "Pick something, check out with a test card, and watch Flex rescue a "
                    "declined payment.",
    "cart_empty": "Your cart is empty. [Back to the shop].",
    "check_the_form": "Please check the payment form",
    "paying": "Processing your payment. Please wait and do not pay again.",
    "test_cards": "Test cards — choose one to fill in the whole form with a demo shopper.",
    "confirming": "We are confirming your payment",
    "confirming_lede": "Our records are catching up, so we cannot show the result yet. Please "
                       "do not pay again.",
    "confirming_next": "Your order's page shows what happened as soon as it is confirmed, "
                       "within a few minutes. You are charged only if the payment went through.",
    # the order page
    "private_link": "Come back to this order any time with its [private link] (keep it to "
                    "yourself).",
    "cart_kept": "Your cart is kept.",
    "demo_tools": "What only Flex's portal or the card network can do. The sandbox does it and "
                  "sends Flex's signed webhook to this shop, which records it below.",
    "no_webhooks_for_order": "None received for this order.",
    "timeline": "The processor authorization and every Flex call for this order, one action at "
                "a time (the checkout, each refund, each webhook's lookups), each to its own "
                "scale, with why each call was made: the vault (/tokenize) runs beside the "
                "authorization.",
    "no_calls_for_order": "No calls recorded for this order.",
    # the back office
    "no_orders": "No orders yet. [Go shopping].",
    "login_lede": "The back office: orders, refunds, captures and the Flex inspector.",
    "no_calls_match": "No Flex calls match.",
    "webhooks_intro": "Flex posts signed events to `{url}`. Each is verified, stored once (a "
                      "redelivery is counted, never applied twice), then applied to its order.",
    "delivery_log": "The embedded sandbox's own [delivery log] (JSON) shows every attempt it "
                    "made.",
    "no_rejections": "None: every delivery so far had a valid signature, a fresh date and a "
                     "new nonce.",
    "no_webhooks": "No webhook received yet.",
}

_MARKS = re.compile(r"\*\*(.+?)\*\*|`(.+?)`|\[(.+?)\]")


def marked(text: str, href: str | None = None, **values: object) -> Markup:
    """A sentence as HTML: **bold** as <strong>, `code` as <code>, [words] as a link to
    `href` (if given), and each {name} replaced by `values[name]`; everything else escaped."""
    def fill(part: str) -> Markup:
        return escape(part).format(**values) if values else escape(part)

    html, last = [], 0
    for match in _MARKS.finditer(text):
        html.append(fill(text[last:match.start()]))
        bold, code, link = match.groups()
        if bold is not None:
            html.append(Markup("<strong>%s</strong>") % fill(bold))
        elif code is not None:
            html.append(Markup("<code>%s</code>") % fill(code))
        elif href is not None:
            html.append(Markup('<a href="%s">%s</a>') % (href, fill(link)))
        else:  # no link to make: the brackets stay, as written
            html.append(fill(match.group(0)))
        last = match.end()
    html.append(fill(text[last:]))
    return Markup("").join(html)


def status_label(order: Order) -> str:
    """The order's status as the order page and the order list show it."""
    return STATUS_LABELS[order.status]


def shopper_message(order: Order) -> str | None:
    """The sentence under the status on the order page; None when there is nothing to say."""
    if order.outcome == PENDING:  # e.g. a second click while the first is still paying
        return ("This payment is still in progress. Please do not pay again; refresh this "
                "page in a moment to see the result.")
    if order.outcome == AUTHORIZED:
        return "Payment authorized. Your card is charged when your order ships."
    if order.outcome == DECLINED:
        return _declined_message(order)
    if order.outcome in REFUNDABLE and order.chargeback_at is not None:
        return None  # the shopper's bank has told the shopper; merchant_note tells the merchant
    if order.outcome in REFUNDABLE:
        return "Payment approved. Thank you for your order!"
    return None


# The shopper's "What happens next" while the shop asks Flex again for a lost answer.
NEXT_STEPS_WHILE_CONFIRMING = (
    "Flex has not given its decision yet (it did not answer in time, or it is still "
    "deciding, as after 3-D Secure), so the shop asks again automatically, with the same "
    "request: you can never be charged twice.",
    "You are charged only if Flex approved the payment.",
    "This page updates by itself with the result: “Rescued by Flex” or “Declined”.",
)


def merchant_note(order: Order) -> str | None:
    """What the merchant must know about the order, in the merchant's words (the back office's
    sentence under the status); None when the status says it all."""
    if order.chargeback_at is None:
        confirming = order.recovering and not order.authorization_mode  # "What happens next"
        if order.flex_error and order.declined and not confirming:
            return f"Flex did not decide this payment: {order.flex_error}"
        return None
    refunded = (f"; {format_dollars(order.refunded_cents)} of it had been refunded before"
                if order.refunded_cents else "")
    return (f"The cardholder disputed the {format_dollars(order.amount_cents)} charge with "
            f"their bank on {utc(order.chargeback_at)} (Flex's chargeback notice{refunded}). "
            "The bank has returned the money to the cardholder, so this order can no longer "
            "be refunded here.")


def authorization_hint(order: Order) -> str:
    """Authorization mode, before a capture or cancel: what the merchant's two buttons do."""
    return (f"Flex authorized {format_dollars(order.amount_cents)}; nothing is charged until "
            "you capture it. Capture when the order ships (the full amount), or cancel to "
            "release the hold on the shopper's card.")


def disputed_on(order: Order) -> str:
    """When Flex reported the chargeback, for the order's facts (Flex's notice names no
    amount: a dispute is about the charge, so the facts show the charge as disputed)."""
    return utc(order.chargeback_at)


def utc(when: datetime | float, time_only: bool = False) -> str:
    """A moment as every page and sentence shows it: "2026-12-06 18:35:02 UTC", or with
    `time_only` "18:35:02 UTC" (where the date is beside it). `when` is a datetime (naive
    means UTC) or epoch seconds. The templates' `utc` filter."""
    if not isinstance(when, datetime):
        when = datetime.fromtimestamp(when, UTC)
    elif when.tzinfo is None:  # the database's times are UTC
        when = when.replace(tzinfo=UTC)
    shown = when.astimezone(UTC).strftime("%H:%M:%S" if time_only else "%Y-%m-%d %H:%M:%S")
    return f"{shown} UTC"


def _declined_message(order: Order) -> str:
    if order.recovering and order.authorization_mode:
        return ("The payment did not go through. You are not charged: any hold on "
                "your card is released. Please try again or use another card.")
    if order.authorization_cancelled:
        return "Authorization cancelled, not charged: the hold on your card is released."
    if order.recovering:  # Flex may have charged the card: do not promise otherwise
        return ("We are confirming this payment with Flex. Please do not pay again: "
                "this page updates by itself within minutes with the result, and you "
                "are not charged unless it went through.")
    if order.flex_error and order.recover_attempts:  # replays gave up: still unknown
        return "We could not confirm this payment. Please contact us before paying again."
    if order.processor_code is None:  # recovery: the checkout died before the charge
        return ("This payment was interrupted before your card was charged. No money "
                "was taken; please try again.")
    if order.flex_error and order.flex_error.startswith(FLEX_REFUSED_AMOUNT):
        return ("Your bank declined this payment, and Flex cannot rescue a payment of "
                "this amount. No money was taken; please use another card.")
    if order.flex_error:
        return ("We could not complete this payment right now. No money was taken; "
                "please try again in a few minutes or use another card.")
    return "Your bank declined this payment. No money was taken; please try another card."


def refund_status(refund: Refund) -> str:
    """A refund's status in the order page's list of refunds."""
    if refund.unknown:
        return "unknown: Flex did not answer, held until confirmed"
    return refund.status


def refund_help(order: Order) -> str:
    """Under the refund amount: how much is left, and who pays it back."""
    if not order.refundable_cents:
        return "Nothing is left to refund."
    through = "Flex" if order.rescued else "the processor"
    return f"Up to {format_dollars(order.refundable_cents)}, refunded by {through}."


def authorization_summary(action: authorizations.Action) -> str:
    """What became of a capture or cancel, for the order page (times in UTC)."""
    name = "Capture" if action.action == authorizations.CAPTURE else "Cancel"
    what = f"{name} of {format_dollars(action.amount_cents)}" if action.amount_cents else name
    tries = f"{action.attempts} attempt{'s' if action.attempts != 1 else ''}"
    if action.state == authorizations.DONE:
        when = utc(action.settled_at or action.created_at)
        if action.action == authorizations.CANCEL:
            return f"Authorization cancelled, not charged ({when}, {tries})."
        return f"{what} confirmed by Flex ({when}, {tries})."
    if action.state == authorizations.PENDING:
        return (f"{what} sent to Flex, not confirmed yet ({tries} so far): the shop asks "
                "again automatically with the same idempotency key, so it happens once.")
    refused = action.state == authorizations.REFUSED
    verdict = "refused by Flex" if refused else "not confirmed by Flex"
    return f"{what} {verdict} after {tries}: {action.last_error}"


def register(app: Flask) -> None:
    """Makes the wording available to templates as filters: `order|status_label`,
    `order|shopper_message`, `order|merchant_note`, `order|disputed_on`,
    `order|authorization_hint`, `order|refund_help`, `refund|refund_status`,
    `action|authorization_summary`, `text|marked`, `when|utc`, `cents|money`; and as
    globals, `say` (PAGE_TEXT), `tour_steps` and `next_steps`."""
    for wording in (status_label, shopper_message, merchant_note, disputed_on,
                    authorization_hint, refund_help, refund_status, authorization_summary,
                    marked, utc):
        app.add_template_filter(wording)
    app.jinja_env.globals["say"] = PAGE_TEXT
    app.jinja_env.globals["tour_steps"] = TOUR_STEPS
    app.jinja_env.globals["next_steps"] = NEXT_STEPS_WHILE_CONFIRMING
    app.add_template_filter(format_dollars, "money")
