"""What the shop reads about orders: orders, their items, refunds and timelines, in the shop's
database (shop/storage/db.py). Every write of `orders` and `refunds` is a transition in
shop/orders/lifecycle.py; this module only reads (and appends to an order's timeline).

A checkout id is the order's primary key, so a replayed checkout finds its order instead of
charging twice, whichever web node it reaches.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from flex import outbox
from flex.cit import AUTHORIZED, DECLINED, PAID, RESCUED, CitOutcome
from flex.models import Address, CardSummary, LineItem, Outcome, Purchase
from flex.payloads import is_authorization
from shop.storage.db import Connection

PENDING = "pending"  # `orders.outcome` before the checkout's result (flex.cit.CitOutcome after)
REFUNDABLE = (PAID, RESCUED)
# Refund channels, stored with each refund and shown on the order page.
FLEX_CHANNEL, PROCESSOR_CHANNEL, PORTAL_CHANNEL = "Flex", "processor", "Flex portal"
# flex_error prefix of an order whose /evaluate Flex refused on its amount rule.
FLEX_REFUSED_AMOUNT = "Flex does not evaluate this amount"


class RefundStatus(StrEnum):
    """Where one refund attempt stands (`refunds.status`)."""

    PENDING = "pending"  # reserved, the call is in flight
    SUCCEEDED = "succeeded"
    UNKNOWN = "unknown"  # Flex did not answer: reserved until recovery or a webhook settles it
    HELD = "held"  # recovery could not tell: stays reserved, no longer checked
    RELEASED = "released"  # it did not happen: the amount can be refunded again


class Status(StrEnum):
    """What the order page and the order list show; shop/wording.py words each one."""

    AWAITING = "awaiting"  # the result is not known yet: neutral, never DECLINED
    PAID = "paid"
    RESCUED = "rescued"
    DECLINED = "declined"
    AWAITING_CAPTURE = "awaiting_capture"  # authorization mode: Flex authorized, not captured
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CHARGEBACK = "chargeback"  # the cardholder disputed the charge: no more refunds from us


_STATUS = {PENDING: Status.AWAITING, PAID: Status.PAID, RESCUED: Status.RESCUED,
           DECLINED: Status.DECLINED, AUTHORIZED: Status.AWAITING_CAPTURE}


@dataclass(frozen=True)
class Order:
    id: str
    created_at: datetime
    outcome: CitOutcome | str  # a CitOutcome, or PENDING while the checkout runs
    amount_cents: int
    refund_reserved_cents: int  # succeeded, pending or unknown refunds
    refunded_cents: int  # succeeded refunds only
    currency: str
    email: str
    card_brand: str | None
    card_first6: str | None
    card_last4: str | None
    processor_txn: str | None
    processor_code: str | None
    processor_message: str | None
    flex_status: str | None
    order_session_key: str | None
    flex_error: str | None
    recovering: bool  # Flex's answer to /evaluate is unknown: recovery settles it
    recover_attempts: int
    evaluate_payload: str | None
    transmit: outbox.OutboxRow | None = field(default=None, compare=False)
    chargeback_at: float | None = None  # epoch seconds: payment.chargeback.received
    authorization_in_flight: bool = False  # a capture or cancel was sent, not answered yet

    @property
    def status(self) -> Status:
        """Where the order stands for the shopper and the merchant."""
        if self.chargeback_at is not None:
            return Status.CHARGEBACK
        if self.outcome in REFUNDABLE and self.refunded_cents:
            if self.refunded_cents >= self.amount_cents:
                return Status.REFUNDED
            return Status.PARTIALLY_REFUNDED
        if self.recovering and not self.authorization_mode:  # Flex may yet approve it
            return Status.AWAITING
        return _STATUS[self.outcome]

    @property
    def authorization_mode(self) -> bool:
        """True when this order's /evaluate asked for an authorization (transactionType
        AUTHORIZATION). If its answer never arrived, the order is settled with
        external-cancel, never captured: the shopper is told it did not go through."""
        return bool(self.evaluate_payload) and is_authorization(json.loads(self.evaluate_payload))

    @property
    def authorization_cancelled(self) -> bool:
        """Flex authorized this order and the merchant cancelled it: nothing was charged."""
        return self.outcome == DECLINED and self.flex_status == Outcome.CAPTUREREQUIRED

    @property
    def can_retry_with_another_card(self) -> bool:
        """Declined for sure (no Flex answer outstanding), so paying again is safe."""
        # In authorization mode an unanswered /evaluate is cancelled, never captured.
        settled = not self.recovering or self.authorization_mode
        return self.outcome == DECLINED and settled and not (
            self.flex_error and self.recover_attempts)

    @property
    def awaiting_confirmation(self) -> bool:
        """The page says "Awaiting confirmation" (and refreshes itself)."""
        return self.status == Status.AWAITING

    @property
    def rescued(self) -> bool:
        """Flex charged this order, so Flex refunds it."""
        return self.outcome == RESCUED

    @property
    def awaiting_capture(self) -> bool:
        """Authorization mode: Flex authorized it; the merchant captures or cancels it."""
        return self.outcome == AUTHORIZED

    @property
    def declined(self) -> bool:
        """Not charged (for now: see `recovering`)."""
        return self.outcome == DECLINED

    @property
    def refundable_cents(self) -> int:
        if self.outcome not in REFUNDABLE or self.chargeback_at is not None:
            return 0  # after a chargeback the bank already gave the money back
        return self.amount_cents - self.refund_reserved_cents

    @property
    def flex_outcome(self) -> str | None:
        """One word on what Flex did for this order, for the order list."""
        if self.flex_status:
            return self.flex_status
        if self.flex_error:
            return "UNAVAILABLE"
        if self.transmit:
            return {outbox.PENDING: "transmit queued", outbox.DELIVERED: "transmitted"}.get(
                self.transmit.state, "transmit failed"
            )
        return None


@dataclass(frozen=True)
class Refund:
    id: int
    amount_cents: int
    channel: str  # FLEX_CHANNEL | PROCESSOR_CHANNEL | PORTAL_CHANNEL
    status: RefundStatus
    created_at: datetime
    note: str | None = None  # how recovery settled it
    order_id: str = ""

    @property
    def unknown(self) -> bool:
        """Flex did not answer: held until it is confirmed or released."""
        return self.status == RefundStatus.UNKNOWN


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


_SELECT = """SELECT o.*, (SELECT COALESCE(SUM(r.amount_cents), 0) FROM refunds r
        WHERE r.order_id = o.id AND r.status = 'succeeded') AS refunded_cents,
    EXISTS (SELECT 1 FROM flex_authorization_actions a WHERE a.order_id = o.id
        AND a.state = 'pending') AS authorization_in_flight,
    t.state AS t_state, t.attempts AS t_attempts,
    t.last_error AS t_last_error, t.next_attempt_at AS t_next_attempt_at,
    t.created_at AS t_created_at, t.delivered_at AS t_delivered_at
    FROM orders o LEFT JOIN flex_outbox t ON t.order_id = o.id"""

_PLAIN_COLUMNS = (
    "id", "outcome", "amount_cents", "refund_reserved_cents", "refunded_cents", "currency",
    "email", "card_brand", "card_first6", "card_last4", "processor_txn", "processor_code",
    "processor_message", "flex_status", "order_session_key", "flex_error",
    "recover_attempts", "evaluate_payload", "chargeback_at",
)


def _order(row) -> Order:
    transmit = None
    if row["t_state"] is not None:
        transmit = outbox.OutboxRow(
            row["id"], row["t_state"], row["t_attempts"], row["t_last_error"],
            row["t_next_attempt_at"], row["t_created_at"], row["t_delivered_at"],
        )
    outcome = row["outcome"]
    return Order(
        **{name: row[name] for name in _PLAIN_COLUMNS if name != "outcome"},
        outcome=outcome if outcome == PENDING else CitOutcome(outcome),
        created_at=_when(row["created_at"]),
        recovering=bool(row["recovering"]),
        authorization_in_flight=bool(row["authorization_in_flight"]),
        transmit=transmit,
    )


def get(conn: Connection, order_id: str) -> Order | None:
    row = conn.execute(f"{_SELECT} WHERE o.id = ?", (order_id,)).fetchone()  # noqa: S608
    return _order(row) if row else None


def recent(conn: Connection, limit: int = 200) -> list[Order]:
    rows = conn.execute(f"{_SELECT} ORDER BY o.created_at DESC LIMIT ?", (limit,))  # noqa: S608
    return [_order(row) for row in rows]


def items(conn: Connection, order_id: str) -> list[LineItem]:
    rows = conn.execute(
        "SELECT sku, name, quantity, unit_price_cents FROM order_items WHERE order_id = ?",
        (order_id,),
    )
    return [LineItem(*row) for row in rows]


def refunds(conn: Connection, order_id: str) -> list[Refund]:
    rows = conn.execute(
        "SELECT id, amount_cents, channel, status, created_at, note FROM refunds"
        " WHERE order_id = ? ORDER BY id",
        (order_id,),
    )
    return [Refund(row[0], row[1], row[2], RefundStatus(row[3]), _when(row[4]), row[5], order_id)
            for row in rows]


# --- recovery: what a crash interrupted, and the order's timeline of resolutions ----------

@dataclass(frozen=True)
class Event:
    """One resolution on an order's timeline: who settled it, what was asked and answered."""

    at: datetime
    actor: str
    asked: str
    answered: str


def add_event(conn: Connection, order_id: str, actor: str, asked: str, answered: str) -> None:
    """Adds a timeline row in the caller's transaction (or on its own)."""
    conn.execute(
        "INSERT INTO order_events (id, order_id, at, actor, asked, answered)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (str(uuid.uuid4()), order_id, time.time(), actor, asked[:500], answered[:1000]),
    )


def events(conn: Connection, order_id: str) -> list[Event]:
    rows = conn.execute(
        "SELECT at, actor, asked, answered FROM order_events WHERE order_id = ? ORDER BY at",
        (order_id,),
    )
    return [Event(_when(row[0]), row[1], row[2], row[3]) for row in rows]


def stale_pending(conn: Connection, older_than: float, limit: int = 20) -> list[str]:
    """Ids of orders still pending that were created before `older_than` (epoch seconds):
    their checkout ended without a result (a crash, a kill)."""
    rows = conn.execute(
        "SELECT id FROM orders WHERE outcome = ? AND created_at < ? ORDER BY created_at LIMIT ?",
        (PENDING, older_than, limit),
    )
    return [row[0] for row in rows]


def checkout_of(conn: Connection, order_id: str) -> tuple[Purchase, CardSummary]:
    """The purchase and card summary an order was created with (no card number)."""
    stored = json.loads(conn.execute("SELECT checkout FROM orders WHERE id = ?",
                                     (order_id,)).fetchone()[0])
    purchase = stored["purchase"]
    purchase = Purchase(**{**purchase, "billing": Address(**purchase["billing"]),
                           "items": tuple(LineItem(**i) for i in purchase["items"])})
    return purchase, CardSummary(**stored["card"])


def stale_refunds(conn: Connection, older_than: float, limit: int = 20) -> list[Refund]:
    """Refunds still `pending` (reserved, never settled) created before `older_than`: their
    request ended in a crash, so whether the money moved is unknown."""
    rows = conn.execute(
        "SELECT id, amount_cents, channel, status, created_at, order_id FROM refunds"
        " WHERE status = 'pending' AND created_at < ? ORDER BY id LIMIT ?",
        (older_than, limit),
    )
    return [Refund(row[0], row[1], row[2], RefundStatus(row[3]), _when(row[4]),
                   order_id=row[5]) for row in rows]
