"""A stand-in for the merchant's payment processor, deterministic by test card, with a
durable ledger.

A real shop calls its PSP here (Stripe, Adyen, Braintree...). What matters to Flex is the
shape of the answer: approved or not, the response code, the AVS/CVV results. What matters
to recovery is what real PSPs offer too: an idempotency key (the merchant's reference: a
replayed authorization returns the first answer and never charges twice) and a lookup by
that reference, so a checkout interrupted by a crash can learn whether the card was charged.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import time
import uuid
from datetime import UTC, datetime

from flex.models import Card, ProcessorResult, ThreeDSecure
from shop.storage.db import Database

log = logging.getLogger(__name__)

NAME = "SimulatedPSP"
AUTHORIZATION, REFUND = "authorization", "refund"  # ledger entry kinds

# card number -> (response code, description, CVV result)
DECLINES = {
    "4000000000000002": ("05", "Do not honor", "M"),
    "4000000000000127": ("N7", "CVV mismatch", "N"),
    "4000000000009995": ("51", "Insufficient funds", "M"),
    "4000000000000119": ("96", "System error", "NA"),
    "4000008400001629": ("05", "Do not honor", "M"),  # after a successful 3-D Secure
}
# Cards the processor authenticates with 3-D Secure (frictionless, "Y") before authorizing.
THREE_D_SECURE_CARDS = {"4000008400001629"}

_COLUMNS = "approved, transaction_id, response_code, response_text, cvv_result, created_at"


class SimulatedProcessor:
    """The PSP: `authorize` and `refund` are idempotent by `reference`; `lookup` finds what
    a reference did. The ledger is the processor's own table (processor_ledger)."""

    def __init__(self, database: Database, latency_ms: int = 0):
        self.database = database
        self.latency_ms = latency_ms

    def authorize(self, card: Card, amount_cents: int, *, reference: str) -> ProcessorResult:
        """Authorizes `amount_cents` (integer cents) once per `reference` (the merchant's
        order id): a replay returns the first answer."""
        time.sleep(self.latency_ms / 1000)  # a PSP round trip
        code, description, cvv = DECLINES.get(card.number, ("00", "Approved", "M"))
        if self._record(reference, AUTHORIZATION, code, description, cvv, amount_cents):
            log.info("authorization %s for %d cents on %r: %s %s", reference, amount_cents,
                     card, code, description)
        result = self.lookup(reference)  # the first answer for this reference, ours or not
        if card.number in THREE_D_SECURE_CARDS:
            # Real PSPs return the 3-D Secure result with the authorization: the merchant
            # passes it on to Flex's /evaluate as `threeDSecure`.
            result = dataclasses.replace(result, cavv_result="2",
                                         three_d_secure=three_d_secure_result(reference))
        return result

    def refund(self, transaction_id: str, amount_cents: int, *, reference: str) -> str:
        """Refunds `amount_cents` (integer cents) of a captured payment once per `reference`;
        returns the refund's id. The order store has already reserved the amount, so the
        simulation always succeeds."""
        time.sleep(self.latency_ms / 1000)
        if self._record(reference, REFUND, "00", "Refunded", "NA", amount_cents):
            log.info("refund of %d cents on %s (%s)", amount_cents, transaction_id, reference)
        return self.lookup(reference).transaction_id

    def lookup(self, reference: str) -> ProcessorResult | None:
        """What the processor did for `reference`, or None if it never saw it."""
        with self.database.connection() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM processor_ledger"  # noqa: S608
                               " WHERE reference = ?", (reference,)).fetchone()
        if row is None:
            return None
        when = datetime.fromtimestamp(row[5], UTC).isoformat(timespec="milliseconds")
        return ProcessorResult(bool(row[0]), row[1], row[2], row[3], NAME, avs_result="Y",
                               cvv_result=row[4], timestamp_utc=when.replace("+00:00", "Z"))

    def close(self) -> None:
        """Closes the ledger's connections."""
        self.database.close()

    def _record(self, reference: str, kind: str, code: str, description: str, cvv: str,
                amount_cents: int) -> bool:
        """Writes the ledger entry; False if the reference had one (the first one wins)."""
        prefix = "sim" if kind == AUTHORIZATION else "re"
        txn = f"{prefix}_{uuid.uuid4().hex[:20]}"
        with self.database.connection() as conn, conn:
            return conn.execute(
                "INSERT INTO processor_ledger (reference, kind, transaction_id, approved,"
                " response_code, response_text, cvv_result, amount_cents, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (reference) DO NOTHING",
                (reference, kind, txn, int(code == "00"), code, description, cvv, amount_cents,
                 time.time())).rowcount == 1


def three_d_secure_result(reference: str) -> ThreeDSecure:
    """A frictionless 3-D Secure 2 authentication, derived from the reference so a replayed
    authorization returns the same values. (The ledger keeps no 3DS data, and needs none:
    recovery never sends an /evaluate for a crashed checkout, it looks the order up at Flex.)"""
    digest = hashlib.sha256(reference.encode()).digest()
    return ThreeDSecure(
        version="2.2.0", eci="05",  # Visa: fully authenticated
        authentication_value=base64.b64encode(digest[:20]).decode(),  # a 20-byte CAVV
        ds_transaction_id=str(uuid.UUID(bytes=digest[:16], version=4)),
        authentication_value_algorithm="2", directory_response_status="Y",
        authentication_response_status="Y", enrolled="Y")
