"""What each of Flex's webhook events does to our order, applied once.

An event's effect and the mark "applied" are written in one transaction, so an event is
applied at most once however many deliveries, sweeps or nodes see it; and every effect
checks the order's state first, so an event Flex re-stamps (a new event id for the same
fact) changes nothing either. An event that cannot be applied yet (the checkout is still
running, a refund from this shop is in flight, Flex did not answer a lookup) stays stored
and unapplied: the relay's sweep (`apply_due`) applies it later, with backoff.

Rules (our choices, documented in docs/INTEGRATION.md):
- order.completed: an order awaiting confirmation (Flex never answered its /evaluate)
  becomes "Rescued by Flex" with the event's orderSessionKey; a rescued order is unchanged.
- order.refunded: Flex's refunded total is `refundedAmount` (cents) from GET /orders/{key}
  (our sandbox has it), else the whole amount when the status is 6 RETURNED, else unknown
  (nothing recorded, a warning logged). The difference from what the shop recorded first
  confirms the shop's refunds left "unknown", oldest first, then is recorded as a refund
  through "Flex portal".
- order.cancelled / order.expired: an order awaiting confirmation is Declined, not charged.
- payment.chargeback.received: a rescued order shows "Chargeback" and refunds stop.
- Any other event (or an order we do not have) is stored and ignored.
"""

from __future__ import annotations

import logging
import time

from flex.cit import AUTHORIZED, DECLINED, RESCUED
from flex.errors import FlexError
from flex.models import FlexOrder, OrderStatus
from flex.purposes import purpose
from flex.webhooks import EventType, WebhookEvent, parse

from . import orders
from . import webhook_events as events
from .db import POSTGRESQL, Connection, Database
from .money import format_dollars
from .wording import status_label

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0  # an event being applied is left alone by other sweeps for this long
LOOKUP_DEADLINE = 2.0  # seconds for asking Flex: the receiver must answer fast
RETRY_BASE, RETRY_CAP = 1.0, 300.0  # seconds between tries of an event that must wait


class NotYet(Exception):
    """The event cannot be applied now; `reason` says why (shown in the inspector)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _AlreadyApplied(Exception):
    """Another process applied the event first: roll ours back."""


def apply(conn: Connection, client, event: WebhookEvent, order_id: str | None,
          attempts: int = 0) -> str | None:
    """Applies one stored event that the caller holds (just stored, or claimed); returns what
    it changed, or None when it must wait (then the sweep tries again after a backoff)."""
    try:
        return _apply(conn, client, event, order_id)
    except NotYet as wait:
        events.retry_later(conn, event.event_id, wait.reason,
                           min(RETRY_CAP, RETRY_BASE * 2 ** min(attempts, 16)))
        return None
    except _AlreadyApplied:
        return None


def apply_due(database: Database, client, limit: int = 20) -> int:
    """The sweep (run by the relay loop): applies stored events that wait and are due;
    returns how many were applied."""
    applied = 0
    with database.connection() as conn:
        for event_id in events.claim_due(conn, LEASE_SECONDS, limit):
            try:
                body, order_id, attempts = events.body_of(conn, event_id)
                applied += apply(conn, client, parse(body), order_id, attempts) is not None
            except Exception:  # one bad event must not stop the others
                log.exception("applying webhook event %s failed", event_id)
                events.retry_later(conn, event_id, "error, see the log", RETRY_CAP)
    return applied


def _apply(conn: Connection, client, event: WebhookEvent, order_id: str | None) -> str:
    if order_id is None:
        return _record(conn, event, "unknown order")
    handler = _HANDLERS.get(event.event_type)
    if handler is None:
        return _record(conn, event, "ignored: this shop does not act on it")
    return handler(conn, client, event, order_id)


def _record(conn: Connection, event: WebhookEvent, outcome: str) -> str:
    with conn:
        _mark(conn, event, outcome)
    return outcome


def _mark(conn: Connection, event: WebhookEvent, outcome: str) -> None:
    if not events.mark_applied(conn, event.event_id, outcome):
        raise _AlreadyApplied


def _locked(conn: Connection, order_id: str) -> orders.Order:
    """The order, its row locked until the caller's transaction ends (SQLite: the whole
    database is, by BEGIN IMMEDIATE)."""
    if conn.engine == POSTGRESQL:
        conn.execute("SELECT id FROM orders WHERE id = ? FOR UPDATE", (order_id,))
    return orders.get(conn, order_id)


def _awaiting(order: orders.Order) -> bool:
    """Declined for the shopper only because Flex never answered its /evaluate."""
    return order.outcome == DECLINED and order.flex_status is None


def _unchanged(order: orders.Order, event: WebhookEvent) -> str:
    log.warning("webhook %s for order %s (%s) changes nothing", event.event_type, order.id,
                status_label(order))
    return f"no change: the order is {status_label(order)}"


def _completed(conn: Connection, client, event: WebhookEvent, order_id: str) -> str:
    with conn:
        order = _locked(conn, order_id)
        if order.outcome == orders.PENDING:
            raise NotYet("the checkout is still running")
        if order.outcome == RESCUED:
            outcome = "no change: already Rescued by Flex"
        elif _awaiting(order) and event.order_id:
            before = status_label(order)
            conn.execute(
                "UPDATE orders SET outcome = ?, flex_status = 'APPROVED', order_session_key = ?,"
                " flex_error = NULL, reconcile = 0, reconcile_at = NULL WHERE id = ?",
                (RESCUED, event.order_id, order_id))
            outcome = f"{before} → Rescued by Flex"
        else:
            outcome = _unchanged(order, event)
        _mark(conn, event, outcome)
    return outcome


def _closed(conn: Connection, client, event: WebhookEvent, order_id: str) -> str:
    """order.cancelled / order.expired: Flex will not charge this order."""
    with conn:
        order = _locked(conn, order_id)
        if order.outcome == orders.PENDING:
            raise NotYet("the checkout is still running")
        if _awaiting(order):
            before = status_label(order)
            conn.execute(
                "UPDATE orders SET flex_status = ?, flex_error = NULL, reconcile = 0,"
                " reconcile_at = NULL, order_session_key = COALESCE(order_session_key, ?)"
                " WHERE id = ?",
                (str(event.event_type).rsplit(".", 1)[-1].upper(), event.order_id, order_id))
            outcome = f"{before} → Declined, not charged"
        elif order.outcome == AUTHORIZED:  # Flex voided the hold (expired, or cancelled there)
            before = status_label(order)
            conn.execute("UPDATE orders SET outcome = ? WHERE id = ? AND outcome = ?",
                         (DECLINED, order_id, AUTHORIZED))
            outcome = f"{before} → Declined: authorization {event.event_type}, not charged"
        elif order.outcome == DECLINED:
            outcome = "no change: already Declined"
        else:
            outcome = _unchanged(order, event)
        _mark(conn, event, outcome)
    return outcome


def _chargeback(conn: Connection, client, event: WebhookEvent, order_id: str) -> str:
    with conn:
        order = _locked(conn, order_id)
        if order.chargeback_at is not None:
            outcome = "no change: already Chargeback"
        elif order.outcome == RESCUED and order.order_session_key == event.order_id:
            before = status_label(order)
            conn.execute("UPDATE orders SET chargeback_at = ? WHERE id = ?",
                         (event.timestamp.timestamp(), order_id))
            outcome = f"{before} → Chargeback"
        else:
            outcome = _unchanged(order, event)
        _mark(conn, event, outcome)
    return outcome


def _refunded(conn: Connection, client, event: WebhookEvent, order_id: str) -> str:
    order = orders.get(conn, order_id)
    if order.outcome != RESCUED or order.order_session_key != event.order_id:
        return _record(conn, event, _unchanged(order, event))
    _no_refund_in_flight(conn, order_id)  # its own answer will record it: do not count twice
    try:
        with purpose(f"checking the refunded total after Flex's {event.event_type} webhook"):
            flex_order = client.get_order(order.order_session_key, ref=order_id,
                                          deadline=LOOKUP_DEADLINE)
    except FlexError as exc:
        raise NotYet(f"Flex did not say how much was refunded ({exc})") from exc
    refunded = flex_refunded_cents(flex_order, order.amount_cents)
    if refunded is None:
        log.warning("order %s: Flex reports a refund but not its amount; check Flex's portal",
                    order_id)
        return _record(conn, event, "no change: Flex did not say how much was refunded; "
                                    "check Flex's portal")
    with conn:
        order = _locked(conn, order_id)
        _no_refund_in_flight(conn, order_id)
        changes = _settle_refunds(conn, order, refunded)
        after = status_label(orders.get(conn, order_id))
        outcome = f"{'; '.join(changes)} ({after})" if changes else (
            "no change: the refund was already recorded")
        _mark(conn, event, outcome)
    return outcome


def flex_refunded_cents(flex_order: FlexOrder, amount_cents: int) -> int | None:
    """How much Flex says it refunded, in cents: `refundedAmount` where Flex gives it (our
    sandbox does), else all of it once the order is RETURNED, else unknown (None)."""
    if flex_order.refunded_cents is not None:
        return flex_order.refunded_cents
    if flex_order.status == OrderStatus.RETURNED:
        return amount_cents
    return None


def _no_refund_in_flight(conn: Connection, order_id: str) -> None:
    if conn.execute("SELECT 1 FROM refunds WHERE order_id = ? AND status = 'pending'",
                    (order_id,)).fetchone():
        raise NotYet("a refund from this shop is in flight")


def _settle_refunds(conn: Connection, order: orders.Order, flex_total: int) -> list[str]:
    """Brings the order's Flex refunds up to Flex's total; returns what changed."""
    rows = conn.execute(
        "SELECT id, amount_cents, status FROM refunds WHERE order_id = ? AND channel IN (?, ?)"
        " ORDER BY id", (order.id, orders.FLEX_CHANNEL, orders.PORTAL_CHANNEL)).fetchall()
    missing = flex_total - sum(amount for _, amount, status in rows if status == "succeeded")
    changes, unknown = [], [(rid, amount) for rid, amount, status in rows if status == "unknown"]
    for refund_id, amount in list(unknown):
        if amount <= missing:  # Flex made it after all
            conn.execute("UPDATE refunds SET status = 'succeeded' WHERE id = ?", (refund_id,))
            unknown.remove((refund_id, amount))
            missing -= amount
            changes.append(f"confirmed the {format_dollars(amount)} refund Flex had not answered")
    if missing <= 0:
        return changes
    reserved = order.refund_reserved_cents
    if reserved + missing > order.amount_cents:
        # Flex's total leaves no room for the unconfirmed ones: Flex refuses more than was
        # charged, so they never happened and never will.
        for refund_id, amount in unknown:
            conn.execute("DELETE FROM refunds WHERE id = ?", (refund_id,))
            reserved -= amount
            changes.append(f"released the {format_dollars(amount)} refund Flex did not make")
    missing = min(missing, order.amount_cents - reserved)
    if missing <= 0:
        return changes
    conn.execute("UPDATE orders SET refund_reserved_cents = ? WHERE id = ?",
                 (reserved + missing, order.id))
    conn.execute("INSERT INTO refunds (order_id, amount_cents, channel, status, created_at)"
                 " VALUES (?, ?, ?, 'succeeded', ?)",
                 (order.id, missing, orders.PORTAL_CHANNEL, time.time()))
    changes.append(f"recorded a {format_dollars(missing)} refund made in Flex's portal")
    return changes


_HANDLERS = {
    EventType.ORDER_COMPLETED: _completed,
    EventType.ORDER_REFUNDED: _refunded,
    EventType.ORDER_CANCELLED: _closed,
    EventType.ORDER_EXPIRED: _closed,
    EventType.CHARGEBACK_RECEIVED: _chargeback,
}
