"""Checkout and refunds: the merchant's side of the Standard CIT flow.

The order row is created first, keyed by the checkout id, so a double click or a replayed
POST finds the same order instead of charging twice.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from functools import partial

from flex.calllog import CallLog
from flex.cit import RESCUED, CitResult
from flex.errors import FlexError, FlexRefundRefused, FlexUnavailableError
from flex.models import Address, Card, LineItem, ProcessorResult, Purchase
from flex.purposes import purpose
from shop.checkout.cart import CartLine
from shop.crash import crash_point
from shop.money import format_dollars
from shop.orders import lifecycle, records
from shop.recovery.sweep import refund_reference
from shop.services import Services
from shop.storage.db import Connection

log = logging.getLogger(__name__)

CURRENCY = "USD"


def purchase_for(checkout_id: str, lines: list[CartLine], form, customer_ip: str) -> Purchase:
    """Prices the cart on the server; the client's numbers are never used."""
    items = tuple(
        LineItem(line.product.sku, line.product.name, line.quantity, line.product.price_cents)
        for line in lines
    )
    return Purchase(
        order_id=checkout_id,
        amount_cents=sum(i.total_cents for i in items),
        currency=CURRENCY,
        email=form.email.data.strip(),
        billing=Address(
            line1=form.address.data.strip(),
            city=form.city.data.strip(),
            state=form.state.data.strip(),
            zip_code=form.zip_code.data.strip(),
            country=form.country.data.strip().upper(),
        ),
        items=items,
        customer_ip=customer_ip,
        sense_key=checkout_id,  # the page's SenseJS filed its data under the checkout id
    )


def place_order(conn: Connection, services: Services, purchase: Purchase,
                card: Card) -> records.Order:
    """Runs the checkout once per checkout id; a duplicate gets the order as it is now (a
    pending one shows the "still in progress" page; recovery settles it if its request died)."""
    if not lifecycle.create(conn, purchase, card.summary):
        return records.get(conn, purchase.order_id)
    crash_point("after_order_insert")
    authorize = TimedAuthorize(partial(_authorize, services, purchase.order_id))
    with purpose("checking out"):  # one action on the order's timeline
        result = services.flow.pay(purchase, card, authorize)
        authorize.record(services.call_log, purchase.order_id)
    if flex_refused_amount(result):
        result = dataclasses.replace(
            result, flex_error=f"{records.FLEX_REFUSED_AMOUNT}: {result.flex_error}")
    lifecycle.record_checkout(conn, purchase.order_id, result)
    if result.transmit_payload is not None:
        services.relay.wake()
    return records.get(conn, purchase.order_id)


def flex_refused_amount(result: CitResult) -> bool:
    """True when Flex refused this order's /evaluate naming Transaction.Amount: an amount Flex
    does not evaluate (its sandbox takes only 10 < amount < 20000 cents), so no retry can
    rescue it."""
    return any(name.lower() == "transaction.amount" for name in result.refused_fields)


class TimedAuthorize:
    """Wraps the processor's authorize and times it, so the order's timeline can show it
    beside the Flex vault call that ran at the same time."""

    def __init__(self, authorize):
        self._authorize = authorize
        self.started_at: float | None = None  # epoch seconds
        self.ms = 0
        self.result: ProcessorResult | None = None

    def __call__(self, card: Card, amount_cents: int) -> ProcessorResult:
        self.started_at, began = time.time(), time.perf_counter()
        try:
            self.result = self._authorize(card, amount_cents)
            return self.result
        finally:
            self.ms = round((time.perf_counter() - began) * 1000)

    def record(self, call_log: CallLog, order_id: str) -> None:
        """Files the timed authorization in the order's timeline (no card data)."""
        if self.started_at is None:
            return
        outcome = None if self.result is None else {
            "approved": self.result.approved, "processor": self.result.processor_name,
            "response_code": self.result.response_code,
            "response_description": self.result.response_description,
        }
        call_log.record_step(order_id, "processor.authorize", self.started_at, self.ms,
                             outcome, why="authorizing the card with the processor")


def _authorize(services: Services, order_id: str, card: Card, amount_cents: int):
    """The processor's authorization, idempotent by the merchant's order id."""
    result = services.processor.authorize(card, amount_cents, reference=order_id)
    crash_point("after_authorize")
    return result


class RefundError(Exception):
    """A refund that did not happen; the message is for the person who asked."""


def refund(conn: Connection, services: Services, order: records.Order,
           amount_cents: int) -> None:
    """Refunds part or all of an order, through Flex if Flex charged it."""
    channel = records.FLEX_CHANNEL if order.outcome == RESCUED else records.PROCESSOR_CHANNEL
    refund_id = lifecycle.reserve_refund(conn, order.id, amount_cents, channel)
    if refund_id is None:
        raise RefundError(
            f"Refund refused: only {format_dollars(order.refundable_cents)} can still be refunded."
            if order.refundable_cents else "Refund refused: this order cannot be refunded."
        )
    crash_point("after_refund_reserved")
    try:
        if channel == records.FLEX_CHANNEL:
            with purpose(f"refunding {format_dollars(amount_cents)}, as the merchant asked"):
                services.flow.refund(order.order_session_key, amount_cents, ref=order.id)
        else:
            services.processor.refund(order.processor_txn, amount_cents,
                                      reference=refund_reference(refund_id))
    except FlexRefundRefused as exc:
        lifecycle.release_refund(conn, refund_id, note=f"Flex refused it: {exc}")
        raise RefundError(f"Flex refused the refund: {exc}") from exc
    except FlexUnavailableError as exc:
        # Flex may have refunded: keep the amount reserved so it is never refunded twice.
        lifecycle.refund_unknown(conn, refund_id)
        raise RefundError(
            "Flex did not answer in time. The refund is on hold until Flex confirms it."
        ) from exc
    except FlexError as exc:
        lifecycle.release_refund(conn, refund_id, note=f"not sent: {exc}")
        log.error("refund for order %s failed: %s", order.id, exc)
        raise RefundError("The refund could not be sent to Flex. Please try again.") from exc
    crash_point("after_refund_sent")
    lifecycle.refund_succeeded(conn, refund_id)
