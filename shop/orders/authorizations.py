"""Authorization mode: capture at shipment, or cancel, an order Flex authorized.

With FLEX_TRANSACTION_TYPE=AUTHORIZATION, Flex's approval of a declined sale is
CAPTUREREQUIRED: the order is "Awaiting capture" until the merchant captures it (it becomes
"Rescued by Flex", refundable as usual) or cancels it (it becomes "Declined", not charged).
Each is one Flex call, made durable and idempotent like the others:

  1. record the intent with its idempotency key, one row per order (INSERT ... ON CONFLICT DO
     NOTHING), leased to this request: a double click, a second node, or a cancel after a
     capture finds the row and sends nothing;
  2. call Flex with that key;
  3. store the answer and the order's transition (shop/orders/lifecycle.py: captured, cancelled) in
     one transaction. No answer: the row stays
     pending, and `settle_authorizations` (run by the relay loop) replays it with the SAME key,
     with backoff, until Flex answers, or gives up after MAX_ATTEMPTS with the reason shown.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum

from flex import FlexClient
from flex.backoff import backoff_delay
from flex.cit import AUTHORIZED
from flex.errors import FlexError, FlexNotFoundError, FlexRefused, FlexValidationError
from shop.orders import lifecycle
from shop.orders.records import Order
from shop.storage.db import Connection
from shop.storage.leases import Queue, claim

log = logging.getLogger(__name__)

CAPTURE, CANCEL = "capture", "cancel"


class ActionState(StrEnum):
    """Where a capture or cancel stands (`flex_authorization_actions.state`)."""

    PENDING = "pending"  # recorded, sent or about to be; no final answer yet
    DONE = "done"  # Flex confirmed it
    REFUSED = "refused"  # Flex refused it: final, with the reason
    FAILED = "failed"  # no answer after MAX_ATTEMPTS: check Flex's portal


PENDING, DONE, REFUSED, FAILED = (ActionState.PENDING, ActionState.DONE, ActionState.REFUSED,
                                  ActionState.FAILED)
MAX_ATTEMPTS = 8  # calls per action, the first included; then 'failed', shown on the page
BACKOFF_SECONDS = 10.0  # before the first replay; doubles after each unanswered one
BACKOFF_CAP_SECONDS = 600.0
# Answers that a replay with the same key would only repeat: the action is over.
FINAL_ERRORS = (FlexRefused, FlexNotFoundError, FlexValidationError)

_PAST = {CAPTURE: "captured", CANCEL: "cancelled"}
_DONE = {CAPTURE: lifecycle.captured, CANCEL: lifecycle.cancelled}  # the order's transition
ACTIONS = Queue("flex_authorization_actions", "order_id",
                "state = ? AND next_attempt_at <= ? AND leased_until <= ?",
                "next_attempt_at", "leased_until")
_SELECT = ("SELECT a.order_id, a.action, a.idempotency_key, a.amount_cents, a.state,"
           " a.attempts, a.last_error, a.next_attempt_at, a.created_at, a.settled_at,"
           " o.order_session_key, o.currency FROM flex_authorization_actions a"
           " JOIN orders o ON o.id = a.order_id")


@dataclass(frozen=True)
class Action:
    """A capture or cancel of one order's authorization. Times are epoch seconds."""

    order_id: str
    action: str  # CAPTURE | CANCEL
    idempotency_key: str
    amount_cents: int | None  # capture: the amount captured
    state: ActionState
    attempts: int
    last_error: str | None
    next_attempt_at: float
    created_at: float
    settled_at: float | None
    order_session_key: str
    currency: str

    @property
    def in_flight(self) -> bool:
        """Sent to Flex and not answered yet: the page refreshes itself until it is."""
        return self.state == PENDING


class ActionRefused(Exception):
    """Not sent to Flex (or Flex refused it); the message is for the person who asked."""


def get(conn: Connection, order_id: str) -> Action | None:
    """The capture or cancel recorded for an order, if any."""
    row = conn.execute(f"{_SELECT} WHERE a.order_id = ?", (order_id,)).fetchone()  # noqa: S608
    if row is None:
        return None
    return Action(*row[:4], ActionState(row[4]), *row[5:])


def request(conn: Connection, client: FlexClient, order: Order, action: str) -> Action:
    """Captures (the full authorized amount) or cancels an authorized order, once: the intent
    is recorded first, then sent. A repeat of the same action returns the first one's row
    without a call; the other action, or an order that is not awaiting capture, raises
    ActionRefused."""
    if action not in _PAST:
        raise ValueError(f"action must be {CAPTURE!r} or {CANCEL!r}, not {action!r}")
    now = time.time()
    with conn:
        recorded = conn.execute(
            "INSERT INTO flex_authorization_actions (order_id, action, idempotency_key,"
            " amount_cents, next_attempt_at, leased_until, created_at)"
            " SELECT id, ?, ?, ?, ?, ?, ? FROM orders WHERE id = ? AND outcome = ?"
            " ON CONFLICT (order_id) DO NOTHING",
            (action, str(uuid.uuid4()), order.amount_cents if action == CAPTURE else None,
             now, now + _lease(client), now, order.id, AUTHORIZED),
        ).rowcount == 1
    found = get(conn, order.id)
    if found is None:
        raise ActionRefused("This order has no authorization waiting for a capture or cancel.")
    if not recorded:
        if found.action != action:
            raise ActionRefused(f"Refused: this authorization was already {_PAST[found.action]}"
                                f" (or is being), so it cannot be {_PAST[action]}.")
        return found  # a double click or another node: the first request's, not sent again
    return _send(conn, client, found)


def settle_authorizations(conn: Connection, client: FlexClient, *, limit: int = 20,
                          due_by: float | None = None) -> int:
    """Replays captures and cancels due by `due_by` (epoch seconds; default: now) whose
    answer never arrived (timeout, 5xx, a crash mid-call), each with its own idempotency
    key; returns how many got a final answer."""
    settled = 0
    for _ in range(limit):
        due = _claim(conn, _lease(client), due_by)
        if due is None:
            break
        settled += _send(conn, client, due).state != PENDING
    return settled


def _lease(client: FlexClient) -> float:
    """How long a caller owns an action: longer than one Flex call, retries included."""
    return 2 * client.config.deadline


def _claim(conn: Connection, lease: float, due_by: float | None) -> Action | None:
    """Leases the pending action due first that nobody is calling Flex for (the shop's one
    lease statement, shop/storage/leases.py). Another caller's lease holds by the real clock."""
    now = time.time()
    due = now if due_by is None else due_by
    row = claim(conn, ACTIONS, (PENDING, due, now), now + lease, "order_id")
    return get(conn, row[0]) if row else None


def _send(conn: Connection, client: FlexClient, action: Action) -> Action:
    """One call to Flex for a leased pending action, and its answer stored."""
    try:
        if action.action == CAPTURE:
            client.capture(action.order_session_key, action.amount_cents, action.currency,
                           action.idempotency_key, ref=action.order_id)
        else:
            client.cancel(action.order_session_key, action.idempotency_key,
                          ref=action.order_id)
    except FINAL_ERRORS as exc:
        log.warning("%s of order %s refused: %s", action.action, action.order_id, exc)
        _record_answer(conn, action, REFUSED, str(exc))
    except FlexError as exc:  # no answer, or none we can act on: the outcome is unknown
        _retry_later(conn, action, str(exc))
    else:
        _record_answer(conn, action, DONE, None)
    return get(conn, action.order_id)


def _record_answer(conn: Connection, action: Action, state: str, error: str | None) -> None:
    """A final answer; with DONE the order takes its new outcome in the same transaction."""
    with conn:
        changed = conn.execute(
            "UPDATE flex_authorization_actions SET state = ?, last_error = ?, settled_at = ?,"
            " attempts = attempts + 1, leased_until = 0 WHERE order_id = ? AND state = ?",
            (state, error and error[:500], time.time(), action.order_id, PENDING),
        ).rowcount == 1
        if changed and state == DONE:
            _DONE[action.action](conn, action.order_id)
        elif changed:  # still awaiting capture: the events kept meanwhile are due now
            lifecycle.wake_events(conn, action.order_id)


def _retry_later(conn: Connection, action: Action, error: str) -> None:
    attempts = action.attempts + 1
    if attempts >= MAX_ATTEMPTS:
        log.error("%s of order %s: no answer after %d attempts, giving up: %s",
                  action.action, action.order_id, attempts, error)
        _record_answer(conn, action, FAILED, f"no answer from Flex ({error}); check the order in "
                                      "Flex's portal before doing anything else")
        return
    delay = backoff_delay(attempts, base=BACKOFF_SECONDS, cap=BACKOFF_CAP_SECONDS)
    log.warning("%s of order %s unanswered (attempt %d), replaying in %.0f s: %s",
                action.action, action.order_id, attempts, delay, error)
    with conn:
        conn.execute(
            "UPDATE flex_authorization_actions SET attempts = ?, last_error = ?,"
            " next_attempt_at = ?, leased_until = 0 WHERE order_id = ? AND state = ?",
            (attempts, error[:500], time.time() + delay, action.order_id, PENDING),
        )
