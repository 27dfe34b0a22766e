"""The Standard CIT flow, step by step (Flex integration guide, steps 3-6).

    vault (/tokenize)  ∥  processor authorization
    approved  -> build the /transmit payload; the caller queues it with the order (outbox)
    declined  -> /evaluate with the vault token: APPROVED = rescued, CHALLENGE/DECLINED = declined;
                 with FlexConfig.transaction_type AUTHORIZATION, Flex's approval is
                 CAPTUREREQUIRED = authorized: the merchant captures it at shipment
                 (FlexClient.capture) or voids it (FlexClient.cancel)
    Flex silent (timeout, 5xx) -> `awaiting_confirmation`: the evaluate payload is kept,
                                  and flex/recovery.py settles it later (lookup, then replay)
    SUBMITTED (e.g. 3-D Secure ran) -> Flex decides later: the same `awaiting_confirmation`
                                  path, settled by the webhook or by lookup once decided

Nothing here touches a database or the web framework: the caller owns persistence.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from .client import FlexClient
from .errors import FlexAuthError, FlexError, FlexUnavailableError
from .models import (
    Card,
    CardSummary,
    Evaluation,
    ProcessorResult,
    Purchase,
    RefundResult,
    VaultedCard,
)
from .purposes import purpose

log = logging.getLogger("flex.cit")

Authorize = Callable[[Card, int], ProcessorResult]

MIN_EVALUATE_SECONDS = 1.0  # a late vault still leaves /evaluate a fair chance
# A vault call that gets a worker with less of its checkout's deadline left than this is not
# sent: its checkout would give up before Flex answered, and a card number would have been
# sent for nothing.
MIN_VAULT_SECONDS = 0.25



class CitOutcome(StrEnum):
    """What one checkout came to (`CitResult.outcome`); str-valued, so it stores as text."""

    PAID = "paid"  # the processor approved it: /transmit queued
    RESCUED = "rescued"  # the processor declined, Flex approved and charged it
    AUTHORIZED = "authorized"  # Flex authorized the card (CAPTUREREQUIRED): capture or cancel
    DECLINED = "declined"  # not charged (or not yet known: see `awaiting_confirmation`)


# Short names, as the shop and earlier versions of this module spell them.
PAID, RESCUED = CitOutcome.PAID, CitOutcome.RESCUED
AUTHORIZED, DECLINED = CitOutcome.AUTHORIZED, CitOutcome.DECLINED


class _VaultTooLate(Exception):
    """The vault call got a worker too late in its checkout's deadline, so it was not sent."""


@dataclass(frozen=True)
class CitResult:
    """One checkout's result: its `outcome` and what to store with it."""

    outcome: CitOutcome
    processor: ProcessorResult
    card: CardSummary
    evaluation: Evaluation | None = None
    transmit_payload: dict | None = None  # approved: queue it in the same transaction as the order
    evaluate_payload: dict | None = None  # declined: kept for recovery (flex/recovery.py)
    flex_error: str | None = None  # why Flex gave no answer (or answered SUBMITTED), if so
    # Flex's decision is not known yet: the order awaits confirmation; settle it later
    # (flex/recovery.py, or the webhook)
    awaiting_confirmation: bool = False
    refused_fields: tuple[str, ...] = ()  # Flex refused the request: the fields it named


class CitFlow:
    """Runs one checkout through Flex. Share one instance (and its thread pool) per process."""

    def __init__(self, client: FlexClient, *, vault_workers: int = 8):
        self.client = client
        # Bounded: a burst of checkouts cannot start unbounded vault threads.
        self._vault_pool = ThreadPoolExecutor(vault_workers, thread_name_prefix="flex-vault")

    def pay(self, purchase: Purchase, card: Card, authorize: Authorize) -> CitResult:
        """Vaults the card while `authorize` (the merchant's processor) runs, then transmits
        or evaluates. Never raises for Flex: a silent Flex is a DECLINED
        `awaiting_confirmation`."""
        started = time.monotonic()
        # The vault call runs in the pool with the caller's purpose (its action), like a call
        # made here would.
        vault = self._vault_pool.submit(contextvars.copy_context().run, self._vault, card,
                                        purchase, started + self.client.config.deadline)
        processor = authorize(card, purchase.amount_cents)
        summary = card.summary

        if processor.approved:
            # Do not wait for the vault: the approved path must not be slower with Flex in it.
            # A vault call still queued behind slow ones is dropped: this sale needs no token,
            # and a queue of hung vault calls would only grow (each holding a card number).
            vault.cancel()
            payload = self.client.transmit_payload(purchase, summary, processor)
            return CitResult(PAID, processor, summary, transmit_payload=payload)

        # The shopper waits about one Flex deadline in all, not one per call, even when the
        # vault call had to queue behind others.
        try:
            vaulted: VaultedCard = vault.result(timeout=self._left(started))
        except (TimeoutError, _VaultTooLate):
            vault.cancel()  # if still queued, it is never sent
            log.warning("vault for order %s did not finish within the deadline",
                        purchase.order_id)
            return CitResult(DECLINED, processor, summary,
                             flex_error="tokenize: no answer within the Flex deadline")
        except FlexError as exc:
            log.warning("vault failed for order %s: %s", purchase.order_id, exc)
            return CitResult(DECLINED, processor, summary, flex_error=str(exc))

        payload = self.client.evaluate_payload(purchase, summary, vaulted.token, processor,
                                               idempotency_key=purchase.order_id)
        return self._evaluate(purchase.order_id, processor, summary, payload,
                              deadline=max(self._left(started), MIN_EVALUATE_SECONDS))

    def refund(self, order_session_key: str, amount_cents: int, *, ref: str,
               message: str = "Customer request") -> RefundResult:
        """Refunds `amount_cents` of a Flex-approved order (Flex charged it, so Flex refunds
        it). Raises FlexRefundRefused, or FlexUnavailableError when the outcome is unknown."""
        return self.client.refund(order_session_key, amount_cents, message, ref=ref)

    def close(self) -> None:
        """Waits for vault calls in flight (each bounded by the client's deadline)."""
        self._vault_pool.shutdown(wait=True)

    def _vault(self, card: Card, purchase: Purchase, expires: float) -> VaultedCard:
        """Runs in the pool: /tokenize within what is left of the checkout's deadline."""
        left = expires - time.monotonic()
        if left < MIN_VAULT_SECONDS:
            raise _VaultTooLate
        with purpose("vaulting the card"):
            return self.client.tokenize(card, email=purchase.email,
                                        sense_key=purchase.sense_key, ref=purchase.order_id,
                                        deadline=left)

    def _left(self, started: float) -> float:
        """Seconds left of this checkout's Flex deadline."""
        return max(0.0, self.client.config.deadline - (time.monotonic() - started))

    def _evaluate(self, order_id: str, processor: ProcessorResult, card: CardSummary,
                  payload: dict, deadline: float | None = None) -> CitResult:
        try:
            with purpose("asking Flex to decide the declined payment"):
                evaluation = self.client.evaluate(payload, ref=order_id, deadline=deadline)
        except (FlexUnavailableError, FlexAuthError) as exc:
            # We do not know whether Flex charged the card: keep the payload, replay it later.
            return CitResult(DECLINED, processor, card, evaluate_payload=payload,
                             flex_error=str(exc), awaiting_confirmation=True)
        except FlexError as exc:
            # Flex refused the request itself (e.g. validation): nothing was charged.
            log.error("evaluate refused for order %s: %s", order_id, exc)
            return CitResult(DECLINED, processor, card, evaluate_payload=payload,
                             flex_error=str(exc),
                             refused_fields=tuple(getattr(exc, "fields", None) or ()))
        if evaluation.submitted:
            # Flex decides later: nothing is charged yet, and the shopper must not be told
            # "declined". Exactly the path of an unanswered /evaluate ("Awaiting
            # confirmation"): its webhook or a lookup brings the decision.
            return CitResult(DECLINED, processor, card, evaluate_payload=payload,
                             flex_error=f"Flex decides later: SUBMITTED (Flex order "
                                        f"{evaluation.order_session_key})",
                             awaiting_confirmation=True)
        # CHALLENGE is a decline in CIT; CAPTUREREQUIRED answers transactionType AUTHORIZATION.
        outcome = (RESCUED if evaluation.approved else
                   AUTHORIZED if evaluation.authorized else DECLINED)
        return CitResult(outcome, processor, card, evaluation=evaluation,
                         evaluate_payload=payload)
