"""A stand-in for the merchant's payment processor, deterministic by test card.

A real shop calls its PSP here (Stripe, Adyen, Braintree...). What matters to Flex is the
shape of the answer: approved or not, the response code, the AVS/CVV results.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from flex.models import Card, ProcessorResult

log = logging.getLogger(__name__)

NAME = "SimulatedPSP"

# card number -> (response code, description, CVV result)
DECLINES = {
    "4000000000000002": ("05", "Do not honor", "M"),
    "4000000000000127": ("N7", "CVV mismatch", "N"),
    "4000000000009995": ("51", "Insufficient funds", "M"),
    "4000000000000119": ("96", "System error", "NA"),
}


class SimulatedProcessor:
    def __init__(self, latency_ms: int = 0):
        self.latency_ms = latency_ms

    def authorize(self, card: Card, amount_cents: int) -> ProcessorResult:
        time.sleep(self.latency_ms / 1000)  # a PSP round trip
        txn = f"sim_{uuid.uuid4().hex[:20]}"
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        code, description, cvv = DECLINES.get(card.number, ("00", "Approved", "M"))
        log.info("authorization %s for %d cents on %r: %s %s", txn, amount_cents, card, code,
                 description)
        return ProcessorResult(code == "00", txn, code, description, NAME, avs_result="Y",
                               cvv_result=cvv, timestamp_utc=now)

    def refund(self, transaction_id: str, amount_cents: int) -> str:
        """Refunds part of a captured payment; returns the refund's id. The order store has
        already reserved the amount, so the simulation always succeeds."""
        time.sleep(self.latency_ms / 1000)
        return f"re_{uuid.uuid4().hex[:20]}"
