"""What each of Flex's webhook events does to our order: the lifecycle table's cell, applied once.

The cell for the order's state and the event (shop/orders/lifecycle.py `TABLE`, printed in
docs/LIFECYCLE.md) says whether the event applies now, waits, or needs Flex's record first
(GET /v1/orders/{id}, asked here, outside any transaction). Its effect and the mark "applied"
are written in one transaction, so an event is applied at most once however many
deliveries, sweeps or nodes see it; every effect checks the order's state first, so an event
Flex re-stamps (a new event id for the same fact) changes nothing either.

No event is dropped: one that cannot apply yet (the checkout is still running, the order awaits
Flex's decision, a capture, cancel or refund is in flight, Flex did not answer the lookup) stays
stored and unapplied; the order's settling makes it due at once and the relay's sweep
(`apply_due`) applies it, else it is retried with backoff. Each attempt appends a line to the
event's history (shop/webhooks/events.py): what a delivery did at the time is never rewritten.
"""

from __future__ import annotations

import logging

from flex.backoff import backoff_delay
from flex.errors import FlexError, FlexNotFoundError
from flex.purposes import purpose
from flex.webhooks import EventType, WebhookEvent, parse
from shop.orders import lifecycle, records
from shop.storage.db import Connection, Database
from shop.webhooks import events
from shop.wording import status_label

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0  # an event being applied is left alone by other sweeps for this long
LOOKUP_DEADLINE = 2.0  # seconds for asking Flex: the receiver must answer fast
RETRY_BASE, RETRY_CAP = 1.0, 300.0  # seconds between tries of an event that must wait


class _AlreadyApplied(Exception):
    """Another process applied the event first: roll ours back."""


class _NoSuchOrder(Exception):
    """Flex answered that the order the event names does not exist: recorded, no change."""


def apply(conn: Connection, client, event: WebhookEvent, order_id: str | None,
          attempts: int = 0) -> str | None:
    """Applies one stored event that the caller holds (just stored, or claimed); returns what
    it changed, or None when it must wait (then the sweep tries again after a backoff)."""
    try:
        return _apply(conn, client, event, order_id)
    except lifecycle.Wait as wait:
        events.retry_later(conn, event.event_id, wait.reason,
                           backoff_delay(attempts, base=RETRY_BASE, cap=RETRY_CAP))
        return None
    except _AlreadyApplied:
        return None


def apply_due(database: Database, client, limit: int = 20, *,
              due_by: float | None = None) -> int:
    """The sweep (run by the relay loop): applies stored events that wait and are due by
    `due_by` (epoch seconds; default: now); returns how many were applied."""
    applied = 0
    with database.connection() as conn:
        for event_id in events.claim_due(conn, LEASE_SECONDS, limit, due_by=due_by):
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
    order = records.get(conn, order_id)
    flex_order = None
    if lifecycle.rule(order, event.event_type) is lifecycle.Rule.ASK:
        try:
            flex_order = _flex_record(client, order, event)
        except _NoSuchOrder as missing:
            return _record(conn, event, str(missing))
    with conn:
        order = lifecycle.lock(conn, order_id)
        before = status_label(order)
        note = lifecycle.apply_event(conn, order, event.event_type, event.order_id,
                                     event.timestamp, flex_order)
        after = status_label(records.get(conn, order_id))
        if before == after:
            effect = note or f"no change: the order is {after}"
        else:
            effect = f"{before} → {after}" + (f": {note}" if note else "")
        if not events.mark_applied(conn, event.event_id, effect):
            raise _AlreadyApplied
    return effect


def _record(conn: Connection, event: WebhookEvent, effect: str) -> str:
    with conn:
        if not events.mark_applied(conn, event.event_id, effect):
            raise _AlreadyApplied
    return effect


# Why the order is looked up, on its timeline (flex.purposes).
_WHY = {EventType.ORDER_REFUNDED: "checking the refunded total",
        None: "checking Flex's record of the order"}


def _flex_record(client, order: records.Order, event: WebhookEvent):
    """Flex's record of the order the event is about: GET /v1/orders/{id} by our key (else
    the event's), or by our order id when neither is known. Raises Wait when Flex does not
    answer or has no such order yet, so the event is kept and asked about again."""
    key = order.order_session_key or event.order_id
    try:
        with purpose(f"{_WHY.get(event.event_type, _WHY[None])} after Flex's "
                     f"{event.event_type} webhook"):
            if key:
                return client.get_order(key, ref=order.id, deadline=LOOKUP_DEADLINE)
            found = client.find_order_by_reference(order.id, ref=order.id,
                                                   deadline=LOOKUP_DEADLINE)
    except FlexNotFoundError:
        raise _NoSuchOrder(f"kept: Flex has no order {key}") from None
    except FlexError as exc:
        raise lifecycle.Wait(f"Flex did not answer the lookup ({exc})") from exc
    if found is None:
        raise lifecycle.Wait("Flex has no order for it yet")
    return found
