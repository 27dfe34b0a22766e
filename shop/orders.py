"""The order store: orders, their items and refunds, in the shop's database (shop/db.py).

A checkout id becomes the order's primary key, so a replayed checkout finds its order
instead of charging twice, whichever web node it reaches. Refunds reserve their amount with
one conditional UPDATE, so concurrent refunds can never exceed what was charged. Constraints
and conditional writes, not process locks: several processes may share the database.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from flex import outbox
from flex.cit import AUTHORIZED, DECLINED, PAID, RESCUED, CitResult
from flex.models import Address, CardSummary, LineItem, Outcome, Purchase
from flex.payloads import is_authorization

from .db import Connection
from .flex_store import enqueue_transmit

PENDING = "pending"
FIRST_CHECK_SECONDS = 10.0  # first check of an unanswered /evaluate or refund; then doubling
REFUNDABLE = (PAID, RESCUED)
# Refund channels, stored with each refund and shown on the order page.
FLEX_CHANNEL, PROCESSOR_CHANNEL, PORTAL_CHANNEL = "Flex", "processor", "Flex portal"
# flex_error prefix of an order whose /evaluate Flex refused on its amount rule.
FLEX_REFUSED_AMOUNT = "Flex does not evaluate this amount"



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
    outcome: str
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
    reconciling: bool
    reconcile_attempts: int
    evaluate_payload: str | None
    transmit: outbox.OutboxRow | None = field(default=None, compare=False)
    chargeback_at: float | None = None  # epoch seconds: payment.chargeback.received

    @property
    def status(self) -> Status:
        """Where the order stands for the shopper and the merchant."""
        if self.chargeback_at is not None:
            return Status.CHARGEBACK
        if self.outcome in REFUNDABLE and self.refunded_cents:
            if self.refunded_cents >= self.amount_cents:
                return Status.REFUNDED
            return Status.PARTIALLY_REFUNDED
        if self.reconciling and not self.authorization_mode:  # Flex may yet approve it
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
        settled = not self.reconciling or self.authorization_mode
        return self.outcome == DECLINED and settled and not (
            self.flex_error and self.reconcile_attempts)

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
            return {"pending": "transmit queued", "delivered": "transmitted"}.get(
                self.transmit.state, "transmit failed"
            )
        return None


@dataclass(frozen=True)
class Refund:
    id: int
    amount_cents: int
    channel: str  # FLEX_CHANNEL | PROCESSOR_CHANNEL | PORTAL_CHANNEL
    status: str  # pending | succeeded | unknown | released
    created_at: datetime
    note: str | None = None  # how recovery settled it
    order_id: str = ""


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


_SELECT = """SELECT o.*, (SELECT COALESCE(SUM(r.amount_cents), 0) FROM refunds r
        WHERE r.order_id = o.id AND r.status = 'succeeded') AS refunded_cents,
    t.state AS t_state, t.attempts AS t_attempts,
    t.last_error AS t_last_error, t.next_attempt_at AS t_next_attempt_at,
    t.created_at AS t_created_at, t.delivered_at AS t_delivered_at
    FROM orders o LEFT JOIN flex_outbox t ON t.order_id = o.id"""

_PLAIN_COLUMNS = (
    "id", "outcome", "amount_cents", "refund_reserved_cents", "refunded_cents", "currency",
    "email", "card_brand", "card_first6", "card_last4", "processor_txn", "processor_code",
    "processor_message", "flex_status", "order_session_key", "flex_error",
    "reconcile_attempts", "evaluate_payload", "chargeback_at",
)


def _order(row) -> Order:
    transmit = None
    if row["t_state"] is not None:
        transmit = outbox.OutboxRow(
            row["id"], row["t_state"], row["t_attempts"], row["t_last_error"],
            row["t_next_attempt_at"], row["t_created_at"], row["t_delivered_at"],
        )
    return Order(
        **{name: row[name] for name in _PLAIN_COLUMNS},
        created_at=_when(row["created_at"]),
        reconciling=bool(row["reconcile"]),
        transmit=transmit,
    )


def create(conn: Connection, purchase: Purchase, card: CardSummary) -> bool:
    """Creates the pending order; False if this checkout id already has one."""
    with conn:
        created = conn.execute(
            "INSERT INTO orders (id, created_at, amount_cents, currency, email, card_brand,"
            " card_first6, card_last4, checkout) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO NOTHING",
            (purchase.order_id, time.time(), purchase.amount_cents, purchase.currency,
             purchase.email, card.brand, card.bin, card.last4,
             json.dumps({"purchase": dataclasses.asdict(purchase),
                         "card": dataclasses.asdict(card)})),
        ).rowcount == 1
        if created:
            conn.executemany(
                "INSERT INTO order_items (order_id, sku, name, quantity, unit_price_cents)"
                " VALUES (?, ?, ?, ?, ?)",
                [(purchase.order_id, i.sku, i.name, i.quantity, i.unit_price_cents)
                 for i in purchase.items],
            )
    return created


def record_result(conn: Connection, order_id: str, result: CitResult) -> None:
    """Stores the checkout's outcome; an approved order's transmit is queued in the SAME
    transaction, so no paid order can exist without its transmit."""
    evaluation = result.evaluation
    with conn:
        conn.execute(
            "UPDATE orders SET outcome = ?, processor_txn = ?, processor_code = ?,"
            " processor_message = ?, flex_status = ?, order_session_key = ?, flex_error = ?,"
            " reconcile = ?, reconcile_at = ?, evaluate_payload = ? WHERE id = ?",
            (result.outcome, result.processor.transaction_id, result.processor.response_code,
             result.processor.response_description,
             evaluation.status if evaluation else None,
             evaluation.order_session_key if evaluation else None,
             result.flex_error, int(result.reconcile),
             time.time() + FIRST_CHECK_SECONDS if result.reconcile else None,
             json.dumps(result.evaluate_payload) if result.evaluate_payload else None,
             order_id),
        )
        if result.transmit_payload is not None:
            enqueue_transmit(conn, order_id, result.transmit_payload)


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
    return [Refund(*row[:4], _when(row[4]), row[5], order_id) for row in rows]


def reserve_refund(conn: Connection, order_id: str, amount_cents: int,
                   channel: str) -> int | None:
    """Reserves `amount_cents` of the order for a refund; None if it is more than remains.
    One conditional UPDATE, so two concurrent refunds cannot both pass the check."""
    with conn:
        reserved = conn.execute(
            "UPDATE orders SET refund_reserved_cents = refund_reserved_cents + ? WHERE id = ?"
            " AND outcome IN (?, ?) AND refund_reserved_cents + ? <= amount_cents"
            " AND chargeback_at IS NULL",
            (amount_cents, order_id, *REFUNDABLE, amount_cents),
        ).rowcount == 1
        if not reserved:
            return None
        return conn.execute(
            "INSERT INTO refunds (order_id, amount_cents, channel, status, created_at)"
            " VALUES (?, ?, ?, 'pending', ?) RETURNING id",
            (order_id, amount_cents, channel, time.time()),
        ).fetchone()[0]


def settle_refund(conn: Connection, refund_id: int, status: str) -> None:
    """Marks a reserved refund succeeded, or unknown (kept reserved until recovery checks it,
    FIRST_CHECK_SECONDS from now)."""
    recover_at = time.time() + FIRST_CHECK_SECONDS if status == "unknown" else None
    with conn:
        conn.execute("UPDATE refunds SET status = ?, recover_at = ? WHERE id = ?",
                     (status, recover_at, refund_id))


def release_refund(conn: Connection, refund_id: int) -> None:
    """Gives back the reservation of a refund that was refused."""
    with conn:
        conn.execute(
            "UPDATE orders SET refund_reserved_cents = refund_reserved_cents -"
            " (SELECT amount_cents FROM refunds WHERE id = ?)"
            " WHERE id = (SELECT order_id FROM refunds WHERE id = ?)",
            (refund_id, refund_id),
        )
        conn.execute("DELETE FROM refunds WHERE id = ?", (refund_id,))


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
    return [Refund(*row[:4], _when(row[4]), order_id=row[5]) for row in rows]
