"""flex.recovery.RecoveryStore on the shop's database (SQLite or PostgreSQL).

Unanswered evaluates are orders with `recovering = 1` (due at `recover_at`); unknown
refunds are refund rows with status `unknown` (due at `recover_at`). Every settlement is a
lifecycle transition (shop/orders/lifecycle.py), conditional on the item still being unsettled, so
two relays (or a webhook) settling the same order change it once; each writes the steps to
the order's timeline in the same transaction.
"""

from __future__ import annotations

import json

from flex.recovery import Decision, RefundVerdict, Step, UnansweredEvaluate, UnknownRefund
from shop.orders import lifecycle, records
from shop.orders.records import RefundStatus
from shop.storage.db import Connection, Database

ACTOR = "recovery"


def write_steps(conn: Connection, order_id: str, steps: list[Step], resolution: str) -> None:
    """The steps taken and how it resolved, on the order's timeline (in the caller's
    transaction)."""
    for step in steps:
        records.add_event(conn, order_id, ACTOR, step.asked, step.answered)
    records.add_event(conn, order_id, ACTOR, "resolution", resolution)


class SqlRecoveryStore:
    """Where unanswered Flex calls wait, in the shop's order tables."""

    def __init__(self, database: Database):
        self.database = database

    def due_evaluates(self, now: float, limit: int) -> list[UnansweredEvaluate]:
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT id, evaluate_payload, recover_attempts FROM orders"
                " WHERE recovering = 1 AND recover_at <= ? ORDER BY recover_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [UnansweredEvaluate(row[0], json.loads(row[1]) if row[1] else None, row[2])
                for row in rows]

    def settle_evaluate(self, order_id: str, decision: Decision, order_session_key: str | None,
                        steps: list[Step], reason: str) -> None:
        with self.database.connection() as conn, conn:
            if lifecycle.settle_evaluate(
                    conn, order_id, decision, order_session_key,
                    reason if decision == Decision.UNRESOLVED else None):
                write_steps(conn, order_id, steps, f"{decision}: {reason}")

    def retry_evaluate(self, order_id: str, retry_at: float, steps: list[Step],
                       reason: str) -> None:
        with self.database.connection() as conn, conn:
            if lifecycle.retry_evaluate(conn, order_id, retry_at, reason):
                write_steps(conn, order_id, steps, f"not settled, checked again later: {reason}")

    def due_refunds(self, now: float, limit: int) -> list[UnknownRefund]:
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT r.id, r.order_id, o.order_session_key, r.amount_cents,"
                " (SELECT COALESCE(SUM(s.amount_cents), 0) FROM refunds s"
                "  WHERE s.order_id = r.order_id AND s.status = 'succeeded'"
                "  AND s.channel IN ('Flex', 'Flex portal')), r.recover_attempts"
                " FROM refunds r JOIN orders o ON o.id = r.order_id"
                " WHERE r.status = 'unknown' AND r.channel = 'Flex' AND r.recover_at <= ?"
                " ORDER BY r.id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [UnknownRefund(*row) for row in rows]

    def settle_refund(self, refund_id: int, verdict: RefundVerdict, steps: list[Step],
                      reason: str) -> None:
        with self.database.connection() as conn, conn:
            record_refund_verdict(conn, refund_id, verdict, steps, reason,
                                  from_status=RefundStatus.UNKNOWN)

    def retry_refund(self, refund_id: int, retry_at: float, steps: list[Step],
                     reason: str) -> None:
        with self.database.connection() as conn, conn:
            order_id = lifecycle.retry_refund(conn, refund_id, retry_at, reason)
            if order_id:
                write_steps(conn, order_id, steps,
                            f"refund {refund_id} not settled, checked again later: {reason}")


_SETTLE = {RefundVerdict.CONFIRMED: lifecycle.refund_succeeded,
           RefundVerdict.RELEASED: lifecycle.release_refund,
           RefundVerdict.HELD: lifecycle.hold_refund}


def record_refund_verdict(conn: Connection, refund_id: int, verdict: RefundVerdict,
                          steps: list[Step], reason: str, *,
                          from_status: RefundStatus) -> bool:
    """Settles a refund that is still `from_status`, in the caller's transaction: CONFIRMED
    -> succeeded; RELEASED -> released and its reservation given back; HELD -> stays
    reserved, no longer checked. Returns False if someone settled it first."""
    if not _SETTLE[verdict](conn, refund_id, from_status, reason):
        return False
    lifecycle.count_recovery_attempt(conn, refund_id)
    order_id = conn.execute("SELECT order_id FROM refunds WHERE id = ?",
                            (refund_id,)).fetchone()[0]
    write_steps(conn, order_id, steps, f"refund {refund_id} {verdict}: {reason}")
    return True
