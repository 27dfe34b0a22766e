"""The recovery sweep: every order state resolves by itself.

    Pending order, older than RECOVER_PENDING_AFTER_SECONDS (its checkout crashed or was killed)
        ask the processor's ledger by merchant reference:
        no authorization -> Declined, not charged
        approved         -> Paid, its /transmit queued in the same transaction
        declined         -> Awaiting confirmation, then flex.recovery settles it by lookup
                            (Flex has it -> its decision; not -> Declined, not charged)
    Refund still pending after the same time (the refund request crashed)
        Flex's  -> unknown, then flex.recovery settles it by GET /orders/{key}
        processor's -> the processor's ledger says whether it happened
    Unanswered /evaluate, unknown Flex refund: flex.recovery.Recovery, when due

Each resolution goes on the order's timeline (order_events). The relay loop runs the sweep
(`Relay(also_run=…)`), and `flask flex recover` runs it on demand.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flex.cit import DECLINED, PAID
from flex.client import FlexClient
from flex.recovery import LATER, Recovery, RefundVerdict, Settled, Step
from shop.checkout.processor import SimulatedProcessor
from shop.orders import lifecycle, records
from shop.orders.authorizations import settle_authorizations
from shop.orders.records import RefundStatus
from shop.recovery.store import record_refund_verdict, write_steps
from shop.storage.db import Database
from shop.webhooks.effects import apply_due

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    settled: list[Settled]  # pending orders, unanswered /evaluate calls, unknown refunds
    authorizations: int  # captures and cancels that got their final answer
    webhooks: int  # stored webhook events applied


@dataclass(frozen=True)
class Sweep:
    """What one sweep needs: the database, Flex, the processor and the pending threshold."""

    database: Database
    client: FlexClient
    processor: SimulatedProcessor
    recovery: Recovery
    pending_after: float  # seconds an order or refund may stay pending before it is recovered
    flex_enabled: bool = True

    def run(self, ahead: float = 0.0) -> SweepReport:
        """Settles what is due now (`ahead` seconds from now, to bring it forward): each item
        settled or left for later (result LATER), and the counts of the other work."""
        now = time.time() + ahead
        with self.database.connection() as conn:
            pending = records.stale_pending(conn, now - self.pending_after)
            refunds = records.stale_refunds(conn, now - self.pending_after)
        done = [self.settle_pending(order_id) for order_id in pending]
        done += [self.settle_pending_refund(refund) for refund in refunds]
        done += self.recovery.run_once(now)
        with self.database.connection() as conn:  # authorization mode: capture/cancel unanswered
            authorizations = settle_authorizations(conn, self.client, due_by=now)
        webhooks = apply_due(self.database, self.client, due_by=now)  # events that had to wait
        for item in done:
            log.info("recovery: %s %s: %s (%s)", item.kind, item.order_id, item.result,
                     item.reason)
        return SweepReport(done, authorizations, webhooks)

    def settle_pending(self, order_id: str) -> Settled:
        """Finishes the checkout of a pending order from what the processor did."""
        result = self.processor.lookup(order_id)
        asked = f"processor lookup (reference {order_id})"
        if result is None:
            steps = [Step(asked, "no authorization: the card was never charged")]
            return self._finish(order_id, steps, DECLINED, "Declined: not charged")
        answered = (f"{'approved' if result.approved else 'declined'} {result.response_code}"
                    f" {result.response_description} ({result.transaction_id})")
        steps = [Step(asked, answered)]
        if result.approved:
            with self.database.connection() as conn:
                purchase, card = records.checkout_of(conn, order_id)
            payload = self.client.transmit_payload(purchase, card, result)
            return self._finish(order_id, steps, PAID, "Paid: /transmit queued", result,
                                payload)
        if not self.flex_enabled:
            return self._finish(order_id, steps, DECLINED, "Declined by the processor", result)
        # Flex may hold an order for it (the crash came after /evaluate was sent): settle it
        # as an unanswered evaluate, due now; with no payload to replay, "not found" = not
        # charged.
        return self._finish(order_id, steps, DECLINED, "Awaiting confirmation from Flex",
                            result, awaiting=True)

    def _finish(self, order_id: str, steps: list[Step], outcome: str, summary: str,
                result=None, transmit: dict | None = None, *,
                awaiting: bool = False) -> Settled:
        with self.database.connection() as conn, conn:
            if not lifecycle.finish_interrupted(conn, order_id, outcome, result,
                                                awaiting=awaiting, transmit=transmit):
                return Settled("order", order_id, LATER, "settled meanwhile by its checkout")
            write_steps(conn, order_id, steps, summary)
        return Settled("order", order_id, LATER if awaiting else outcome, summary)

    def settle_pending_refund(self, refund: records.Refund) -> Settled:
        """A refund a crash left pending: Flex's are checked by lookup; the processor's
        ledger says whether the processor refunded."""
        with self.database.connection() as conn, conn:
            if refund.channel == records.FLEX_CHANNEL:
                lifecycle.refund_unknown(conn, refund.id, time.time())
                records.add_event(conn, refund.order_id, "recovery", f"refund {refund.id}",
                                 "interrupted: Flex's answer is unknown, checking by lookup")
                return Settled("refund", refund.order_id, LATER,
                               f"refund {refund.id} interrupted: looking it up at Flex")
        reference = refund_reference(refund.id)
        found = self.processor.lookup(reference)
        verdict = RefundVerdict.CONFIRMED if found else RefundVerdict.RELEASED
        steps = [Step(f"processor lookup (reference {reference})",
                      f"refunded ({found.transaction_id})" if found else "no such refund")]
        reason = "the processor refunded it" if found else "the processor never refunded it"
        with self.database.connection() as conn, conn:
            record_refund_verdict(conn, refund.id, verdict, steps, reason,
                                  from_status=RefundStatus.PENDING)
        return Settled("refund", refund.order_id, verdict, f"refund {refund.id}: {reason}")


def refund_reference(refund_id: int) -> str:
    """The processor's idempotency reference for one refund attempt."""
    return f"refund:{refund_id}"
