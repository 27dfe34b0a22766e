"""The order lifecycle: the one module that writes `orders` and `refunds`.

Checkout, recovery, webhooks, captures/cancels and the back office change an order only by
calling a named transition here. Each is one conditional write (it names the state it leaves)
and returns whether it applied, so two processes racing for one order change it once. They run
in the caller's transaction when one is open (e.g. a webhook's effect and its "applied" mark),
else in their own.

Transitions (stable names; `conn` first, money in integer cents):
    create(purchase, card) -> bool                 new pending order (False: the id exists)
    record_checkout(order_id, result) -> bool      pending -> paid | rescued | authorized |
                                                   declined | awaiting confirmation
    finish_interrupted(order_id, outcome, processor, *, awaiting, transmit) -> bool
                                                   pending -> (recovery of a crashed checkout)
    settle_evaluate(order_id, decision, key, flex_error) -> bool
                                                   awaiting confirmation -> its decision
    retry_evaluate(order_id, retry_at, reason) -> bool   awaiting: check again later
    captured(order_id) -> bool                     awaiting capture -> rescued (Flex charged)
    cancelled(order_id) -> bool                    awaiting capture -> declined, not charged
    chargeback(order_id, at) -> bool               rescued -> chargeback
    converge(order, flex_order) -> list[str]       the order -> what Flex's record says (status
                                                   and refunded total); what changed, in words
    forget_all() -> None                           the demo's reset: every order deleted
    reserve_refund(order_id, amount, channel) -> int | None   a refund's amount reserved
    refund_succeeded(refund_id, from_status, note) -> bool    pending|unknown -> succeeded
    refund_unknown(refund_id, check_at, from_status, note) -> bool   pending -> unknown
    release_refund(refund_id, from_status, note) -> bool      -> released, amount given back
    hold_refund(refund_id, from_status, note) -> bool         unknown -> held (stays reserved)
    retry_refund(refund_id, retry_at, note) -> str | None     unknown: checked again (order id)

Reading and the table:
    state(order) -> State                          where the order stands (State below)
    rule(order, event_type) -> Rule                its cell in TABLE
    lock(conn, order_id) -> Order | None           the order, row-locked in the transaction
    apply_event(conn, order, event_type, flex_key, happened_at, flex_order) -> str
                                                   carries out the cell; what it did, in
                                                   words ("" when the status change says it);
                                                   raises Wait when the event must wait
    wake_events(conn, order_id)                    the order's kept events are due now

The table: what each of Flex's money events does in each state of an order (`TABLE`, a
`Rule` per cell; docs/LIFECYCLE.md prints it and its diagram, drawn by
`python -m shop.orders.diagram` from this same table, with `FLOW`). An /evaluate answered
SUBMITTED (the decision comes later) is "awaiting confirmation", like one never answered.
No cell drops an event:
    APPLY  the event says it all: applied now
    WAIT   the order is not settled yet (checkout running, Flex's answer unknown, a capture or
           cancel or refund in flight): kept, and applied once it settles (raises `Wait`)
    ASK    the shop asks Flex (GET /v1/orders/{id}) and converges on Flex's record
    SAME   the order already says what the event says: recorded, nothing to change
    KEEP   recorded only: Flex holds no money for this order (the processor charged it)
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum

from flex.cit import AUTHORIZED, DECLINED, PAID, RESCUED, CitResult
from flex.models import CardSummary, FlexOrder, OrderStatus, ProcessorResult, Purchase
from flex.recovery import Decision
from flex.webhooks import EventType
from shop.money import format_dollars
from shop.orders import records
from shop.orders.records import FLEX_CHANNEL, PENDING, PORTAL_CHANNEL, Order, RefundStatus
from shop.storage import db
from shop.storage.db import POSTGRESQL, Connection
from shop.storage.flex_store import enqueue_transmit

FIRST_CHECK_SECONDS = 10.0  # first check of an unanswered /evaluate or refund; then doubling


class State(StrEnum):
    """Where an order stands in its lifecycle (the order page words it: records.Status)."""

    PENDING = "pending"  # the checkout is running (or crashed: recovery finishes it)
    AWAITING_CONFIRMATION = "awaiting confirmation"  # Flex's decision unknown or to come
    PAID = "paid"  # the processor charged it; Flex holds no money for it
    RESCUED = "rescued"  # Flex charged it (refunds and chargebacks show on top)
    AUTHORIZED = "awaiting capture"  # Flex authorized it: capture or cancel
    CAPTURING = "capture or cancel in flight"  # a capture/cancel was sent, no answer yet
    DECLINED = "declined"  # not charged


class Rule(StrEnum):
    """What an event does in a state (see the module notes)."""

    APPLY = "applies"
    WAIT = "waits"
    ASK = "asks Flex"
    SAME = "already so"
    KEEP = "recorded only"


# The money events, in the table's column order.
EVENTS = (EventType.ORDER_COMPLETED, EventType.ORDER_CAPTURE_REQUIRED,
          EventType.ORDER_CANCELLED, EventType.ORDER_EXPIRED, EventType.ORDER_REFUNDED,
          EventType.CHARGEBACK_RECEIVED)

_A, _W, _Q, _S, _K = Rule.APPLY, Rule.WAIT, Rule.ASK, Rule.SAME, Rule.KEEP
_ROWS = {  #                   completed capture- cancelled expired refunded chargeback
    #                                    required
    State.PENDING:               (_W,    _W,      _W,       _W,     _W,      _W),
    State.AWAITING_CONFIRMATION: (_A,    _Q,      _Q,       _Q,     _Q,      _Q),
    State.PAID:                  (_K,    _K,      _K,       _K,     _K,      _K),
    State.RESCUED:               (_S,    _S,      _Q,       _Q,     _Q,      _A),
    State.AUTHORIZED:            (_Q,    _S,      _Q,       _Q,     _Q,      _Q),
    State.CAPTURING:             (_W,    _W,      _W,       _W,     _W,      _W),
    State.DECLINED:              (_Q,    _Q,      _S,       _S,     _Q,      _Q),
}
# The table: TABLE[state][event] is the rule the webhook effects follow.
TABLE: dict[State, dict[EventType, Rule]] = {
    state: dict(zip(EVENTS, rules, strict=True)) for state, rules in _ROWS.items()}

# How an order moves between states, for the docs' diagram (shop/orders/diagram.py):
# (from, to, what moves it). Webhook events move it only through these, by their cells.
FLOW = (
    (State.PENDING, State.PAID, "checkout: processor approved"),
    (State.PENDING, State.RESCUED, "checkout: APPROVED"),
    (State.PENDING, State.AUTHORIZED, "checkout: CAPTUREREQUIRED"),
    (State.PENDING, State.AWAITING_CONFIRMATION, "no answer, SUBMITTED"),
    (State.PENDING, State.DECLINED, "declined; crashed, not charged"),
    (State.AWAITING_CONFIRMATION, State.RESCUED, "APPROVED: lookup, replay, webhook"),
    (State.AWAITING_CONFIRMATION, State.AUTHORIZED, "CAPTUREREQUIRED: lookup"),
    (State.AWAITING_CONFIRMATION, State.DECLINED, "declined, cancelled, gave up"),
    (State.AUTHORIZED, State.CAPTURING, "capture or cancel sent"),
    (State.CAPTURING, State.RESCUED, "captured"),
    (State.CAPTURING, State.DECLINED, "cancelled"),
    (State.CAPTURING, State.AUTHORIZED, "refused, gave up"),
    (State.AUTHORIZED, State.RESCUED, "Flex: COMPLETED"),
    (State.AUTHORIZED, State.DECLINED, "Flex: CANCELLED"),
    (State.DECLINED, State.RESCUED, "Flex: COMPLETED"),
    (State.DECLINED, State.AUTHORIZED, "Flex: CAPTUREREQUIRED"),
    (State.RESCUED, State.DECLINED, "Flex: CANCELLED"),
)

# Why a WAIT cell waits, shown in the order's webhook history.
WAITING_BECAUSE = {
    State.PENDING: "the checkout is still running",
    State.AWAITING_CONFIRMATION: "the order awaits Flex's decision; applied once it settles",
    State.AUTHORIZED: "Flex still holds the authorization; recovery cancels it first",
    State.CAPTURING: "a capture or cancel is in flight; applied once Flex answers it",
}


class Wait(Exception):
    """The event cannot apply yet; `reason` says why. It is kept and tried again."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def state(order: Order) -> State:
    """The order's lifecycle state."""
    if order.outcome == PENDING:
        return State.PENDING
    if order.recovering:
        return State.AWAITING_CONFIRMATION
    if order.outcome == AUTHORIZED:
        return State.CAPTURING if order.authorization_in_flight else State.AUTHORIZED
    return {PAID: State.PAID, RESCUED: State.RESCUED, DECLINED: State.DECLINED}[order.outcome]


def rule(order: Order, event_type: EventType | str) -> Rule:
    """The table's cell for this order and event; KEEP for events that move no money."""
    return TABLE[state(order)].get(event_type, Rule.KEEP)


# --- transactions --------------------------------------------------------------------------

@contextmanager
def _transaction(conn: Connection) -> Iterator[Connection]:
    """The caller's open transaction, or a new one."""
    if conn.in_transaction:
        yield conn
    else:
        with conn:
            yield conn


def lock(conn: Connection, order_id: str) -> Order | None:
    """The order, its row locked until the caller's transaction ends (SQLite: the whole
    database is, by BEGIN IMMEDIATE)."""
    if conn.engine == POSTGRESQL:
        conn.execute("SELECT id FROM orders WHERE id = ? FOR UPDATE", (order_id,))
    return records.get(conn, order_id)


def wake_events(conn: Connection, order_id: str) -> None:
    """The order settled (or a call in flight for it ended): its kept webhook events are due
    now, and the sweep applies them."""
    now = time.time()
    conn.execute("UPDATE webhook_events SET next_attempt_at = ? WHERE order_id = ?"
                 " AND applied_at IS NULL AND next_attempt_at > ?", (now, order_id, now))


def forget_all(conn: Connection) -> None:
    """The demo's reset: every order and refund deleted, then the rest of the shop's tables
    (db.clear): the Reset button of the demo and `flask shop reset`."""
    with _transaction(conn):
        conn.execute("DELETE FROM refunds")
        conn.execute("DELETE FROM orders")
    db.clear(conn)


# --- checkout ------------------------------------------------------------------------------

def create(conn: Connection, purchase: Purchase, card: CardSummary) -> bool:
    """Creates the pending order; False if this checkout id already has one."""
    with _transaction(conn):
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


def record_checkout(conn: Connection, order_id: str, result: CitResult) -> bool:
    """pending -> the checkout's outcome; an approved order's transmit is queued in the SAME
    transaction, so no paid order exists without its transmit. False if recovery finished
    this checkout first."""
    evaluation = result.evaluation
    with _transaction(conn):
        applied = conn.execute(
            "UPDATE orders SET outcome = ?, processor_txn = ?, processor_code = ?,"
            " processor_message = ?, flex_status = ?, order_session_key = ?, flex_error = ?,"
            " recovering = ?, recover_at = ?, evaluate_payload = ? WHERE id = ? AND outcome = ?",
            (str(result.outcome), result.processor.transaction_id,
             result.processor.response_code, result.processor.response_description,
             evaluation.status if evaluation else None,
             evaluation.order_session_key if evaluation else None,
             result.flex_error, int(result.awaiting_confirmation),
             time.time() + FIRST_CHECK_SECONDS if result.awaiting_confirmation else None,
             json.dumps(result.evaluate_payload) if result.evaluate_payload else None,
             order_id, PENDING),
        ).rowcount == 1
        if applied and result.transmit_payload is not None:
            enqueue_transmit(conn, order_id, result.transmit_payload)
        if applied and not result.awaiting_confirmation:
            wake_events(conn, order_id)
    return applied


def finish_interrupted(conn: Connection, order_id: str, outcome: str,
                       processor: ProcessorResult | None, *, awaiting: bool = False,
                       transmit: dict | None = None) -> bool:
    """pending -> `outcome` for a checkout a crash interrupted (recovery asked the processor);
    `awaiting`: Flex may hold an order for it, so it is checked by lookup now."""
    with _transaction(conn):
        applied = conn.execute(
            "UPDATE orders SET outcome = ?, processor_txn = ?, processor_code = ?,"
            " processor_message = ?, recovering = ?, recover_at = ?"
            " WHERE id = ? AND outcome = ?",
            (outcome, processor and processor.transaction_id,
             processor and processor.response_code,
             processor.response_description if processor else "Not charged: checkout interrupted",
             int(awaiting), time.time() if awaiting else None, order_id, PENDING),
        ).rowcount == 1
        if applied and transmit is not None:
            enqueue_transmit(conn, order_id, transmit)
        if applied and not awaiting:
            wake_events(conn, order_id)
    return applied


# --- awaiting confirmation -----------------------------------------------------------------

# Decision -> (order outcome, flex_status)
_DECIDED = {
    Decision.APPROVED: (RESCUED, "APPROVED"),
    Decision.CAPTUREREQUIRED: (AUTHORIZED, "CAPTUREREQUIRED"),
    Decision.DECLINED: (DECLINED, "DECLINED"),
    Decision.CANCELLED: (DECLINED, "CANCELLED"),
    Decision.NOT_CHARGED: (DECLINED, None),
    Decision.UNRESOLVED: (DECLINED, None),
}


def settle_evaluate(conn: Connection, order_id: str, decision: Decision,
                    order_session_key: str | None, flex_error: str | None = None) -> bool:
    """awaiting confirmation -> the decision (found by lookup, replay or webhook); False if
    something settled it first. UNRESOLVED keeps `flex_error`: the page asks the shopper to
    contact the shop."""
    outcome, flex_status = _DECIDED[decision]
    with _transaction(conn):
        applied = conn.execute(
            "UPDATE orders SET outcome = ?, flex_status = COALESCE(?, flex_status),"
            " order_session_key = COALESCE(?, order_session_key), flex_error = ?,"
            " recovering = 0, recover_at = NULL, recover_attempts = recover_attempts + 1"
            " WHERE id = ? AND recovering = 1",
            (outcome, flex_status, order_session_key,
             flex_error[:500] if flex_error else None, order_id),
        ).rowcount == 1
        if applied:
            wake_events(conn, order_id)
    return applied


def retry_evaluate(conn: Connection, order_id: str, retry_at: float, reason: str) -> bool:
    """Still awaiting confirmation: attempts + 1, checked again at `retry_at` (epoch s)."""
    with _transaction(conn):
        return conn.execute(
            "UPDATE orders SET flex_error = ?, recover_at = ?,"
            " recover_attempts = recover_attempts + 1 WHERE id = ? AND recovering = 1",
            (reason[:500], retry_at, order_id),
        ).rowcount == 1


# --- authorization mode --------------------------------------------------------------------

def captured(conn: Connection, order_id: str) -> bool:
    """Flex confirmed the capture: it charged the card, so the order is rescued, even if a
    cancel event moved it to declined meanwhile (Flex's answer is the record)."""
    with _transaction(conn):
        applied = conn.execute(
            "UPDATE orders SET outcome = ? WHERE id = ? AND recovering = 0 AND (outcome = ?"
            " OR (outcome = ? AND flex_status = 'CAPTUREREQUIRED'))",
            (RESCUED, order_id, AUTHORIZED, DECLINED),
        ).rowcount == 1
        wake_events(conn, order_id)
    return applied


def cancelled(conn: Connection, order_id: str) -> bool:
    """Flex confirmed the cancel (or voided the hold): declined, not charged."""
    with _transaction(conn):
        applied = conn.execute("UPDATE orders SET outcome = ? WHERE id = ? AND outcome = ?",
                               (DECLINED, order_id, AUTHORIZED)).rowcount == 1
        wake_events(conn, order_id)
    return applied


# --- chargeback ----------------------------------------------------------------------------

def chargeback(conn: Connection, order_id: str, at: float) -> bool:
    """rescued -> chargeback (at epoch seconds): the bank gave the money back; no more
    refunds from the shop."""
    with _transaction(conn):
        return conn.execute(
            "UPDATE orders SET chargeback_at = ? WHERE id = ? AND outcome = ?"
            " AND chargeback_at IS NULL", (at, order_id, RESCUED)).rowcount == 1


# --- refunds -------------------------------------------------------------------------------

def reserve_refund(conn: Connection, order_id: str, amount_cents: int,
                   channel: str) -> int | None:
    """Reserves `amount_cents` of the order for a refund (a `pending` refund row); None if it
    is more than remains. One conditional UPDATE: two concurrent refunds cannot both pass."""
    with _transaction(conn):
        reserved = conn.execute(
            "UPDATE orders SET refund_reserved_cents = refund_reserved_cents + ? WHERE id = ?"
            " AND outcome IN (?, ?) AND refund_reserved_cents + ? <= amount_cents"
            " AND chargeback_at IS NULL",
            (amount_cents, order_id, *records.REFUNDABLE, amount_cents),
        ).rowcount == 1
        if not reserved:
            return None
        return conn.execute(
            "INSERT INTO refunds (order_id, amount_cents, channel, status, created_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (order_id, amount_cents, channel, RefundStatus.PENDING, time.time()),
        ).fetchone()[0]


def _refund_status(conn: Connection, refund_id: int, to: RefundStatus, from_status,
                   note: str | None, **columns) -> tuple[str, int] | None:
    """Moves a refund from `from_status` to `to`; (order id, amount) if it applied."""
    sets = "".join(f", {name} = ?" for name in columns)
    row = conn.execute(
        f"UPDATE refunds SET status = ?, note = COALESCE(?, note){sets}"  # noqa: S608
        " WHERE id = ? AND status = ? RETURNING order_id, amount_cents",
        (to, note and note[:500], *columns.values(), refund_id, from_status),
    ).fetchone()
    if row is not None:
        wake_events(conn, row[0])
    return (row[0], row[1]) if row else None


def refund_succeeded(conn: Connection, refund_id: int,
                     from_status: RefundStatus = RefundStatus.PENDING,
                     note: str | None = None) -> bool:
    """The refund happened (Flex or the processor said so): it counts as refunded."""
    with _transaction(conn):
        return _refund_status(conn, refund_id, RefundStatus.SUCCEEDED, from_status, note,
                              recover_at=None) is not None


def refund_unknown(conn: Connection, refund_id: int, check_at: float | None = None,
                   from_status: RefundStatus = RefundStatus.PENDING,
                   note: str | None = None) -> bool:
    """Flex's answer is unknown: the amount stays reserved until recovery checks it at
    `check_at` (epoch seconds; default FIRST_CHECK_SECONDS from now)."""
    check_at = time.time() + FIRST_CHECK_SECONDS if check_at is None else check_at
    with _transaction(conn):
        return _refund_status(conn, refund_id, RefundStatus.UNKNOWN, from_status, note,
                              recover_at=check_at) is not None


def release_refund(conn: Connection, refund_id: int,
                   from_status: RefundStatus = RefundStatus.PENDING,
                   note: str | None = None) -> bool:
    """The refund did not happen (refused, or Flex's record shows it never did): the row stays
    as `released`, with why, and its amount can be refunded again. The one way to release."""
    with _transaction(conn):
        moved = _refund_status(conn, refund_id, RefundStatus.RELEASED, from_status, note,
                               recover_at=None)
        if moved is None:
            return False
        conn.execute("UPDATE orders SET refund_reserved_cents = refund_reserved_cents - ?"
                     " WHERE id = ?", (moved[1], moved[0]))
    return True


def hold_refund(conn: Connection, refund_id: int,
                from_status: RefundStatus = RefundStatus.UNKNOWN,
                note: str | None = None) -> bool:
    """Cannot tell whether it happened: stays reserved (never refunded twice), no longer
    checked; an order.refunded webhook still settles it."""
    with _transaction(conn):
        return _refund_status(conn, refund_id, RefundStatus.HELD, from_status, note,
                              recover_at=None) is not None


def retry_refund(conn: Connection, refund_id: int, retry_at: float, note: str) -> str | None:
    """Still unknown: attempts + 1, checked again at `retry_at`; the order id if it applied."""
    with _transaction(conn):
        row = conn.execute(
            "UPDATE refunds SET recover_at = ?, recover_attempts = recover_attempts + 1,"
            " note = ? WHERE id = ? AND status = ? RETURNING order_id",
            (retry_at, note[:500], refund_id, RefundStatus.UNKNOWN),
        ).fetchone()
    return row[0] if row else None


def count_recovery_attempt(conn: Connection, refund_id: int) -> None:
    """One more check of a refund's fate was made (recovery's bookkeeping)."""
    conn.execute("UPDATE refunds SET recover_attempts = recover_attempts + 1 WHERE id = ?",
                 (refund_id,))


# --- converging on Flex's record -----------------------------------------------------------

# A Flex order status -> what the shop's order must be.
_FLEX_STATUS = {OrderStatus.COMPLETED: RESCUED, OrderStatus.RETURNED: RESCUED,
                OrderStatus.CAPTUREREQUIRED: AUTHORIZED, OrderStatus.CANCELLED: DECLINED}
_FLEX_WORD = {RESCUED: "APPROVED", AUTHORIZED: "CAPTUREREQUIRED"}
_DECISION_OF = {RESCUED: Decision.APPROVED, AUTHORIZED: Decision.CAPTUREREQUIRED,
                DECLINED: Decision.DECLINED}


def converge(conn: Connection, order: Order, flex_order: FlexOrder) -> list[str]:
    """Brings an order that is not pending to Flex's record: its status (an order awaiting
    confirmation takes Flex's decision), and for a charged order its refunded total
    (RETURNED = all of it, else `refundedAmount`). Returns what changed, in words. Raises
    Wait while Flex's order is undecided, while an authorization the shopper was told failed
    still awaits its cancel, or while a refund from this shop is in flight (its own answer
    records it)."""
    target = _FLEX_STATUS.get(flex_order.status)
    if target is None:
        raise Wait(f"Flex's order is still {flex_order.status_name}")
    changes = []
    if order.recovering:
        if target == AUTHORIZED and order.authorization_mode:
            raise Wait(WAITING_BECAUSE[State.AUTHORIZED])
        if settle_evaluate(conn, order.id, _DECISION_OF[target], flex_order.order_session_key):
            changes.append(f"Flex's order is {flex_order.status_name}")
    elif target != order.outcome and _move(conn, order, target, flex_order.order_session_key):
        changes.append(f"Flex's order is {flex_order.status_name}")
    if target == RESCUED:
        refunded = flex_order.refunded_total(order.amount_cents)
        if refunded is not None:
            changes += converge_refunds(conn, records.get(conn, order.id), refunded)
    return changes


def _move(conn: Connection, order: Order, target: str, key: str) -> bool:
    """A settled order's outcome -> `target`, as Flex's record has it."""
    if order.outcome == PAID or order.recovering:
        return False
    return conn.execute(
        "UPDATE orders SET outcome = ?, flex_status = COALESCE(?, flex_status),"
        " order_session_key = COALESCE(order_session_key, ?), flex_error = NULL"
        " WHERE id = ? AND outcome = ? AND recovering = 0",
        (target, _FLEX_WORD.get(target), key, order.id, order.outcome),
    ).rowcount == 1


def converge_refunds(conn: Connection, order: Order, flex_total: int) -> list[str]:
    """Brings the order's Flex refunds up to Flex's refunded total (cents): unknown refunds
    that fit are confirmed, oldest first; what is still missing is a refund made in Flex's
    portal; unknown ones with no room left never happened and are released."""
    if conn.execute("SELECT 1 FROM refunds WHERE order_id = ? AND status = ?",
                    (order.id, RefundStatus.PENDING)).fetchone():
        raise Wait("a refund from this shop is in flight")
    rows = conn.execute(
        "SELECT id, amount_cents, status FROM refunds WHERE order_id = ? AND channel IN (?, ?)"
        " ORDER BY id", (order.id, FLEX_CHANNEL, PORTAL_CHANNEL)).fetchall()
    missing = flex_total - sum(amount for _, amount, status in rows
                               if status == RefundStatus.SUCCEEDED)
    changes = []
    open_ = [(rid, amount, status) for rid, amount, status in rows
             if status in (RefundStatus.UNKNOWN, RefundStatus.HELD)]
    for refund_id, amount, status in list(open_):
        if amount <= missing and refund_succeeded(conn, refund_id, status,
                                                  "confirmed by Flex's refunded total"):
            open_.remove((refund_id, amount, status))
            missing -= amount
            changes.append(f"confirmed the {format_dollars(amount)} refund Flex had not answered")
    if missing <= 0:
        return changes
    reserved = records.get(conn, order.id).refund_reserved_cents
    if reserved + missing > order.amount_cents:
        # No room for the unconfirmed ones: Flex refuses more than was charged, so they
        # never happened and never will.
        for refund_id, amount, status in open_:
            if release_refund(conn, refund_id, status, "Flex's refunded total leaves no room"):
                reserved -= amount
                changes.append(f"released the {format_dollars(amount)} refund Flex did not make")
    missing = min(missing, order.amount_cents - reserved)
    if missing > 0:
        conn.execute("UPDATE orders SET refund_reserved_cents = refund_reserved_cents + ?"
                     " WHERE id = ?", (missing, order.id))
        conn.execute("INSERT INTO refunds (order_id, amount_cents, channel, status, created_at)"
                     " VALUES (?, ?, ?, ?, ?)",
                     (order.id, missing, PORTAL_CHANNEL, RefundStatus.SUCCEEDED, time.time()))
        changes.append(f"recorded a {format_dollars(missing)} refund made in Flex's portal")
    return changes


# --- webhook events ------------------------------------------------------------------------

def apply_event(conn: Connection, order: Order, event_type: EventType | str,
                flex_key: str | None, happened_at: datetime,
                flex_order: FlexOrder | None = None) -> str:
    """Carries out the table's cell for `order` (locked by the caller, in its transaction)
    and `event_type`; returns what it did, in words, for the order's webhook history.
    `flex_order` is Flex's record, which an ASK cell needs (raises Wait without it)."""
    cell = rule(order, event_type)
    before = state(order)
    if cell is Rule.WAIT:
        raise Wait(WAITING_BECAUSE.get(before, "the order is not settled yet"))
    if cell is Rule.KEEP:
        return ("kept: the processor charged this order, Flex holds no money for it"
                if before is State.PAID else "ignored: this shop does not act on it")
    if cell is Rule.SAME:
        return f"no change: the order is already {before}"
    if cell is Rule.APPLY:
        return _apply(conn, order, event_type, flex_key, happened_at)
    if flex_order is None:
        raise Wait("Flex's record is needed first")
    if flex_order.merchant_order_id not in (None, order.id):
        return f"kept: Flex's order {flex_order.order_session_key} is not this order's"
    changes = converge(conn, order, flex_order)
    after = lock(conn, order.id)
    if event_type == EventType.CHARGEBACK_RECEIVED and rule(after, event_type) is Rule.APPLY:
        changes.append(_apply(conn, after, event_type, flex_key, happened_at))
    changes = [change for change in changes if change]
    if (event_type == EventType.ORDER_REFUNDED and flex_order.status == OrderStatus.COMPLETED
            and flex_order.refunded_total() is None):
        changes.append("Flex's answer has no refunded amount: check the refund in Flex's portal")
    if not changes:
        return f"no change: Flex's record ({flex_order.status_name}) agrees with the order"
    return "; ".join(changes)


def _apply(conn: Connection, order: Order, event_type: EventType | str, flex_key: str | None,
           happened_at: datetime) -> str:
    """An APPLY cell; returns a note ("" when the status change says it all)."""
    if event_type == EventType.CHARGEBACK_RECEIVED:
        if flex_key and order.order_session_key and flex_key != order.order_session_key:
            return "kept: the event names another Flex order"
        applied = chargeback(conn, order.id, happened_at.timestamp())
        return "" if applied else "no change: already a chargeback"
    # order.completed while awaiting confirmation: Flex charged it, and says under which key.
    if not flex_key:
        return "kept: the event names no Flex order"
    applied = settle_evaluate(conn, order.id, Decision.APPROVED, flex_key)
    return "" if applied else "no change: the order was settled meanwhile"
