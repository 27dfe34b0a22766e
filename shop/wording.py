"""What the shop says to people: status labels, the shopper's message on an order page, the
account of a capture or cancel, and amounts in dollars (the templates' `money` filter). The
data layer (orders.py, authorizations.py) decides where an order stands; this module only
words it, so the sentences live in one place.

The status labels are the UI contract ("Paid", "Rescued by Flex", "Declined", ...): tests
and the docs quote them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask

from flex.cit import AUTHORIZED, DECLINED

from . import authorizations
from .money import format_dollars
from .orders import FLEX_REFUSED_AMOUNT, PENDING, REFUNDABLE, Order, Status

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
        return "You disputed this payment with your bank: the bank has returned it to you."
    if order.outcome in REFUNDABLE:
        return "Payment approved. Thank you for your order!"
    return None


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
    `order|shopper_message`, `action|authorization_summary`, `cents|money`."""
    for wording in (status_label, shopper_message, authorization_summary):
        app.add_template_filter(wording)
    app.add_template_filter(format_dollars, "money")
