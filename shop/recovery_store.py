"""flex.recovery.RecoveryStore on the shop's database (SQLite or PostgreSQL).

Unanswered evaluates are orders with `reconcile = 1` (due at `reconcile_at`); unknown
refunds are refund rows with status `unknown` (due at `recover_at`). Every write is one
transaction, conditional on the item still being unsettled, so two relays (or a webhook)
settling the same order change it once; each writes the steps to the order's timeline.
"""

from __future__ import annotations

import json

from flex.cit import DECLINED, RESCUED
from flex.recovery import Decision, RefundVerdict, Step, UnansweredEvaluate, UnknownRefund

from . import orders
from .db import Connection, Database

ACTOR = "recovery"

# Decision -> (order outcome, flex_status)
_OUTCOMES = {
    Decision.APPROVED: (RESCUED, "APPROVED"),
    Decision.CAPTUREREQUIRED: (orders.AUTHORIZED, "CAPTUREREQUIRED"),
    Decision.DECLINED: (DECLINED, "DECLINED"),
    Decision.CANCELLED: (DECLINED, "CANCELLED"),
    Decision.NOT_CHARGED: (DECLINED, None),
    Decision.UNRESOLVED: (DECLINED, None),
}


def write_steps(conn: Connection, order_id: str, steps: list[Step], outcome: str) -> None:
    """The steps taken and the outcome, on the order's timeline (in the caller's transaction)."""
    for step in steps:
        orders.add_event(conn, order_id, ACTOR, step.asked, step.answered)
    orders.add_event(conn, order_id, ACTOR, "resolution", outcome)


class SqlRecoveryStore:
    """Where unanswered Flex calls wait, in the shop's order tables."""

    def __init__(self, database: Database):
        self.database = database

    def due_evaluates(self, now: float, limit: int) -> list[UnansweredEvaluate]:
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT id, evaluate_payload, reconcile_attempts FROM orders"
                " WHERE reconcile = 1 AND reconcile_at <= ? ORDER BY reconcile_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [UnansweredEvaluate(row[0], json.loads(row[1]) if row[1] else None, row[2])
                for row in rows]

    def settle_evaluate(self, order_id: str, decision: Decision, order_session_key: str | None,
                        steps: list[Step], reason: str) -> None:
        outcome, flex_status = _OUTCOMES[decision]
        # UNRESOLVED keeps its reason as flex_error: the page asks the shopper to contact us.
        flex_error = reason[:500] if decision == Decision.UNRESOLVED else None
        with self.database.connection() as conn, conn:
            settled = conn.execute(
                "UPDATE orders SET outcome = ?, flex_status = COALESCE(?, flex_status),"
                " order_session_key = COALESCE(?, order_session_key), flex_error = ?,"
                " reconcile = 0, reconcile_at = NULL, reconcile_attempts = reconcile_attempts + 1"
                " WHERE id = ? AND reconcile = 1",
                (outcome, flex_status, order_session_key, flex_error, order_id),
            ).rowcount == 1
            if settled:
                write_steps(conn, order_id, steps, f"{decision}: {reason}")

    def retry_evaluate(self, order_id: str, retry_at: float, steps: list[Step],
                       reason: str) -> None:
        with self.database.connection() as conn, conn:
            conn.execute(
                "UPDATE orders SET flex_error = ?, reconcile_at = ?,"
                " reconcile_attempts = reconcile_attempts + 1 WHERE id = ? AND reconcile = 1",
                (reason[:500], retry_at, order_id),
            )
            write_steps(conn, order_id, steps, f"not settled, checked again later: {reason}")

    def due_refunds(self, now: float, limit: int) -> list[UnknownRefund]:
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT r.id, r.order_id, o.order_session_key, r.amount_cents,"
                " (SELECT COALESCE(SUM(s.amount_cents), 0) FROM refunds s"
                "  WHERE s.order_id = r.order_id AND s.status = 'succeeded'"
                "  AND s.channel = 'Flex'), r.recover_attempts"
                " FROM refunds r JOIN orders o ON o.id = r.order_id"
                " WHERE r.status = 'unknown' AND r.channel = 'Flex' AND r.recover_at <= ?"
                " ORDER BY r.id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [UnknownRefund(*row) for row in rows]

    def settle_refund(self, refund_id: int, verdict: RefundVerdict, steps: list[Step],
                      reason: str) -> None:
        with self.database.connection() as conn, conn:
            settle(conn, refund_id, verdict, steps, reason, from_status="unknown")

    def retry_refund(self, refund_id: int, retry_at: float, steps: list[Step],
                     reason: str) -> None:
        with self.database.connection() as conn, conn:
            order_id = conn.execute(
                "UPDATE refunds SET recover_at = ?, recover_attempts = recover_attempts + 1,"
                " note = ? WHERE id = ? AND status = 'unknown' RETURNING order_id",
                (retry_at, reason[:500], refund_id),
            ).fetchone()
            if order_id:
                write_steps(conn, order_id[0], steps,
                            f"refund {refund_id} not settled, checked again later: {reason}")


def settle(conn: Connection, refund_id: int, verdict: RefundVerdict, steps: list[Step],
           reason: str, *, from_status: str) -> bool:
    """Settles a refund that is still `from_status`, in the caller's transaction: CONFIRMED
    -> succeeded; RELEASED -> released and its reservation given back; HELD -> stays
    reserved, no longer checked. Returns False if someone settled it first."""
    status = {RefundVerdict.CONFIRMED: "succeeded", RefundVerdict.RELEASED: "released",
              RefundVerdict.HELD: "held"}[verdict]
    row = conn.execute(
        "UPDATE refunds SET status = ?, note = ?, recover_at = NULL,"
        " recover_attempts = recover_attempts + 1 WHERE id = ? AND status = ?"
        " RETURNING order_id, amount_cents",
        (status, reason[:500], refund_id, from_status),
    ).fetchone()
    if row is None:
        return False
    if verdict == RefundVerdict.RELEASED:
        conn.execute("UPDATE orders SET refund_reserved_cents = refund_reserved_cents - ?"
                     " WHERE id = ?", (row[1], row[0]))
    write_steps(conn, row[0], steps, f"refund {refund_id} {verdict}: {reason}")
    return True
