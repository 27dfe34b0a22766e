"""What the shop says to people: status labels, the shopper's message on an order page, the
account of a capture or cancel, the demo's guided tour (the README's "First two minutes", word
for word), and amounts in dollars (the templates' `money` filter). The
data layer (orders.py, authorizations.py) decides where an order stands; this module only
words it, so the sentences live in one place.

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
from shop.orders.records import FLEX_REFUSED_AMOUNT, PENDING, REFUNDABLE, Order, Status

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

_MARKS = re.compile(r"\*\*(.+?)\*\*|`(.+?)`")


def tour_step(step: str) -> Markup:
    """A tour step as HTML: **bold** as <strong>, `code` as <code>, the rest escaped."""
    html, last = [], 0
    for match in _MARKS.finditer(step):
        html.append(escape(step[last:match.start()]))
        bold, code = match.groups()
        html.append(Markup("<strong>%s</strong>") % bold if bold is not None
                    else Markup("<code>%s</code>") % code)
        last = match.end()
    html.append(escape(step[last:]))
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
            f"their bank on {_utc(order.chargeback_at)} (Flex's chargeback notice{refunded}). "
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
    return _utc(order.chargeback_at)


def _utc(epoch_seconds: float) -> str:
    return f"{datetime.fromtimestamp(epoch_seconds, UTC):%Y-%m-%d %H:%M:%S} UTC"


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


def authorization_summary(action: authorizations.Action) -> str:
    """What became of a capture or cancel, for the order page (times in UTC)."""
    name = "Capture" if action.action == authorizations.CAPTURE else "Cancel"
    what = f"{name} of {format_dollars(action.amount_cents)}" if action.amount_cents else name
    tries = f"{action.attempts} attempt{'s' if action.attempts != 1 else ''}"
    if action.state == authorizations.DONE:
        when = datetime.fromtimestamp(action.settled_at or action.created_at, UTC)
        if action.action == authorizations.CANCEL:
            return f"Authorization cancelled, not charged ({when:%Y-%m-%d %H:%M:%S} UTC, {tries})."
        return f"{what} confirmed by Flex ({when:%Y-%m-%d %H:%M:%S} UTC, {tries})."
    if action.state == authorizations.PENDING:
        return (f"{what} sent to Flex, not confirmed yet ({tries} so far): the shop asks "
                "again automatically with the same idempotency key, so it happens once.")
    refused = action.state == authorizations.REFUSED
    verdict = "refused by Flex" if refused else "not confirmed by Flex"
    return f"{what} {verdict} after {tries}: {action.last_error}"


def register(app: Flask) -> None:
    """Makes the wording available to templates as filters: `order|status_label`,
    `order|shopper_message`, `order|merchant_note`, `order|disputed_on`,
    `order|authorization_hint`, `action|authorization_summary`, `step|tour_step`,
    `cents|money`; and as globals, `tour_steps` and `next_steps`."""
    for wording in (status_label, shopper_message, merchant_note, disputed_on,
                    authorization_hint, authorization_summary, tour_step):
        app.add_template_filter(wording)
    app.jinja_env.globals["tour_steps"] = TOUR_STEPS
    app.jinja_env.globals["next_steps"] = NEXT_STEPS_WHILE_CONFIRMING
    app.add_template_filter(format_dollars, "money")
