"""Settles Flex calls whose answer never arrived, durably, behind a store you implement.

An /evaluate or a refund that timed out may or may not have happened at Flex. Never guess:

    unanswered /evaluate (sale)           look the order up by merchant orderId (GET /orders?query=)
                                          found -> its decision; still processing -> try later;
                                          not found -> replay /evaluate with the SAME idempotencyKey
                                          (so Flex never holds two orders for one merchant order)
    unanswered /evaluate (AUTHORIZATION)  external-cancel by merchant orderId: the shopper was told
                                          it failed, so the authorization must never be captured
    unknown refund                        GET /orders/{orderSessionKey}: refundedAmount (where the
                                          answer has it) or status RETURNED confirms the refund;
                                          otherwise the reservation is released, or held (below)

Attempts are bounded, with doubling backoff; the last one leaves a final state with its reason.
Every settlement reaches the store with what was asked and what was answered, for the order's
timeline. Flex webhooks (flex/webhooks.py) settle the same states sooner; this is the fallback
that needs nothing but the API. Nothing here touches a database or a web framework.

Flex's documented order answer has no refunded amount (our sandbox adds `refundedAmount`). For a
partial refund without that field, a lookup cannot tell whether it landed: the amount stays
RESERVED (so it is never refunded twice) until the `order.refunded` webhook or a person settles
it, and after the last attempt it is left reserved with that reason (our choice: the safe side).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from .backoff import backoff_delay
from .client import FlexClient
from .errors import FlexError, FlexNotFoundError, FlexRefused, FlexValidationError
from .models import Evaluation, FlexOrder, OrderStatus, Outcome
from .payloads import is_authorization
from .purposes import purpose

log = logging.getLogger("flex.recovery")

LATER = "retry"  # Settled.result of an item that was not settled this time


class Decision(StrEnum):
    """How an unanswered /evaluate settled."""

    APPROVED = "APPROVED"  # Flex charged the card: the order is rescued
    CAPTUREREQUIRED = "CAPTUREREQUIRED"  # Flex authorized it: capture or cancel
    DECLINED = "DECLINED"  # Flex declined (or challenged): not charged
    CANCELLED = "CANCELLED"  # authorization mode: voided by external-cancel, not charged
    NOT_CHARGED = "NOT_CHARGED"  # Flex never took it (refused, or no order to cancel)
    UNRESOLVED = "UNRESOLVED"  # attempts exhausted: Flex's answer is still unknown


class RefundVerdict(StrEnum):
    """How an unknown refund settled."""

    CONFIRMED = "CONFIRMED"  # Flex refunded it: the reservation becomes a refund
    RELEASED = "RELEASED"  # Flex did not: the reserved amount can be refunded again
    HELD = "HELD"  # cannot tell (see the module notes): stays reserved, for a person to check


@dataclass(frozen=True)
class Step:
    """One question put to Flex while settling, and its answer, for the order's timeline."""

    asked: str  # e.g. "GET /orders?query=<orderId>"
    answered: str  # e.g. "COMPLETED (orderSessionKey …)" or "no answer: read timeout"


@dataclass(frozen=True)
class UnansweredEvaluate:
    """An order whose /evaluate went unanswered: the exact payload sent, attempts so far."""

    order_id: str  # the merchant's orderId (and the payload's idempotencyKey)
    payload: dict | None  # None: not kept (e.g. a crash), so it is looked up, never replayed
    attempts: int


@dataclass(frozen=True)
class UnknownRefund:
    """A Flex refund whose answer never arrived. Money in integer cents."""

    refund_id: int  # the merchant's id for the refund attempt
    order_id: str
    order_session_key: str
    amount_cents: int
    confirmed_cents: int  # the order's Flex refunds already confirmed (this one excluded)
    attempts: int


class RecoveryStore(Protocol):
    """Where unanswered calls wait, implemented by the merchant on the order database (the
    demo shop's, for SQLite and PostgreSQL, is shop/recovery/store.py). Each write is one
    transaction; settling an order already settled (e.g. by a webhook) changes nothing."""

    def due_evaluates(self, now: float, limit: int) -> list[UnansweredEvaluate]:
        """Unanswered evaluates due for a check at `now` (epoch seconds), oldest due first."""

    def settle_evaluate(self, order_id: str, decision: Decision, order_session_key: str | None,
                        steps: list[Step], reason: str) -> None:
        """Final: records the decision (and Flex's order key, if any) with how it was found."""

    def retry_evaluate(self, order_id: str, retry_at: float, steps: list[Step],
                       reason: str) -> None:
        """Not settled yet: attempts + 1, due again at `retry_at` (epoch seconds)."""

    def due_refunds(self, now: float, limit: int) -> list[UnknownRefund]:
        """Unknown refunds due for a check at `now` (epoch seconds), oldest first."""

    def settle_refund(self, refund_id: int, verdict: RefundVerdict, steps: list[Step],
                      reason: str) -> None:
        """Final: CONFIRMED keeps the amount as refunded, RELEASED frees it, HELD keeps it
        reserved and stops checking."""

    def retry_refund(self, refund_id: int, retry_at: float, steps: list[Step],
                     reason: str) -> None:
        """Not settled yet: attempts + 1, due again at `retry_at` (epoch seconds)."""


@dataclass(frozen=True)
class Settled:
    """One item this round settled (or rescheduled), as `Recovery.run_once` reports it."""

    kind: str  # "evaluate" | "refund" (the shop's sweep adds "order")
    order_id: str
    result: str  # a Decision, a RefundVerdict, or LATER
    reason: str


class NotSettledYet(Exception):
    """Flex gave no usable answer, or its order is still processing: check again later."""


class Recovery:
    """Settles due unanswered evaluates and unknown refunds from `store` with `client`, one
    round at a time (`run_once`); run it from the outbox relay's loop (`Relay(also_run=…)`)."""

    def __init__(self, store: RecoveryStore, client: FlexClient, *, max_attempts: int = 8,
                 first_delay: float = 10.0, backoff_cap: float = 600.0, batch: int = 20):
        self.store = store
        self.client = client
        self.max_attempts = max_attempts  # checks per item before a final UNRESOLVED/HELD
        self.first_delay = first_delay  # seconds before the first check; doubles after each
        self.backoff_cap = backoff_cap  # seconds, the longest wait between two checks
        self.batch = batch

    def run_once(self, now: float | None = None) -> list[Settled]:
        """Checks every item due at `now` (epoch seconds; default: the clock) once. Flex
        errors never escape (they reschedule the item); the store's errors do."""
        now = time.time() if now is None else now
        done = [self.settle_evaluate(item) for item in self.store.due_evaluates(now, self.batch)]
        done += [self.settle_refund(item) for item in self.store.due_refunds(now, self.batch)]
        return done

    # --- evaluate --------------------------------------------------------------------------

    def settle_evaluate(self, item: UnansweredEvaluate) -> Settled:
        """Checks one unanswered evaluate and records the result (or the next check) in the
        store. Raises only what the store raises."""
        steps: list[Step] = []
        try:
            with purpose("looking for the answer to an unanswered /evaluate"):
                decision, key, reason = self.evaluate_decision(item.order_id, item.payload,
                                                               steps)
        except (NotSettledYet, FlexError) as later:  # FlexError: a refusal nothing expects
            return self._retry_evaluate(item, steps, str(later))
        self.store.settle_evaluate(item.order_id, decision, key, steps, reason)
        return Settled("evaluate", item.order_id, decision, reason)

    def evaluate_decision(self, order_id: str, payload: dict | None,
                          steps: list[Step]) -> tuple[Decision, str | None, str]:
        """(decision, orderSessionKey, reason) for an /evaluate whose answer is unknown;
        `payload` None means it cannot be replayed (not found = never sent = not charged).
        Appends each call to `steps`. Raises NotSettledYet when Flex gives no usable answer
        yet or its order is still processing."""
        if payload and is_authorization(payload):
            return self._cancel_authorization(order_id, steps)
        found = self._ask(steps, f"GET /orders?query={order_id}",
                          lambda: self.client.find_order_by_reference(order_id, ref=order_id))
        if found is not None:
            return _from_order(found)
        if payload is None:
            return Decision.NOT_CHARGED, None, "Flex has no order for it: not charged"
        try:
            evaluation = self._ask(steps, f"POST /evaluate (idempotencyKey {order_id})",
                                   lambda: self.client.evaluate(payload, ref=order_id))
        except FlexValidationError as exc:
            return Decision.NOT_CHARGED, None, f"Flex refused the replay: {exc}"
        return _from_evaluation(evaluation)

    def _cancel_authorization(self, order_id: str,
                              steps: list[Step]) -> tuple[Decision, str | None, str]:
        try:
            cancel = self._ask(steps, f"POST /orders/{order_id}/external-cancel",
                               lambda: self.client.external_cancel(order_id, ref=order_id))
        except FlexRefused:  # it was captured already: the lookup says what it is
            found = self._ask(steps, f"GET /orders?query={order_id}",
                              lambda: self.client.find_order_by_reference(order_id, ref=order_id))
            if found is None:
                raise NotSettledYet("external-cancel refused, and no order found") from None
            return _from_order(found)
        if cancel.found:
            return Decision.CANCELLED, None, "authorization voided by external-cancel"
        return Decision.NOT_CHARGED, None, "Flex has no order for it: nothing to cancel"

    def _retry_evaluate(self, item: UnansweredEvaluate, steps: list[Step],
                        reason: str) -> Settled:
        attempts = item.attempts + 1
        if attempts >= self.max_attempts:
            reason = f"gave up after {attempts} checks: {reason}"
            self.store.settle_evaluate(item.order_id, Decision.UNRESOLVED, None, steps, reason)
            return Settled("evaluate", item.order_id, Decision.UNRESOLVED, reason)
        self.store.retry_evaluate(item.order_id, self._next_check(attempts), steps, reason)
        return Settled("evaluate", item.order_id, LATER, reason)

    # --- refund ----------------------------------------------------------------------------

    def settle_refund(self, item: UnknownRefund) -> Settled:
        """Checks one unknown refund and records the verdict (or the next check) in the store.
        Raises only what the store raises."""
        steps: list[Step] = []
        try:
            with purpose("checking the refunded total of an unanswered refund"):
                order = self._ask(steps, f"GET /orders/{item.order_session_key}",
                                  lambda: self.client.get_order(item.order_session_key,
                                                                ref=item.order_id))
            verdict, reason = refund_verdict(order, item)
        except (NotSettledYet, FlexError) as later:
            verdict, reason = None, str(later)
        if verdict is None and item.attempts + 1 >= self.max_attempts:
            verdict, reason = RefundVerdict.HELD, f"held after {item.attempts + 1} checks: {reason}"
        if verdict is None:
            retry_at = self._next_check(item.attempts + 1)
            self.store.retry_refund(item.refund_id, retry_at, steps, reason)
            return Settled("refund", item.order_id, LATER, reason)
        self.store.settle_refund(item.refund_id, verdict, steps, reason)
        return Settled("refund", item.order_id, verdict, reason)

    # --- shared ----------------------------------------------------------------------------

    def _ask(self, steps: list[Step], asked: str, call):
        """Runs one Flex call, appending what was asked and answered; a call with no usable
        answer raises NotSettledYet, one Flex refused raises its FlexError."""
        try:
            answer = call()
        except FlexNotFoundError:
            steps.append(Step(asked, "404 not found"))
            raise NotSettledYet("Flex does not know this order (404)") from None
        except (FlexRefused, FlexValidationError) as exc:
            steps.append(Step(asked, f"refused: {exc}"))
            raise
        except FlexError as exc:
            steps.append(Step(asked, f"no usable answer: {exc}"))
            raise NotSettledYet(str(exc)) from None
        steps.append(Step(asked, _describe(answer)))
        return answer

    def _next_check(self, attempts: int) -> float:
        """Epoch seconds of the next check after `attempts` checks: doubling, jittered, capped."""
        return time.time() + backoff_delay(attempts + 1, base=self.first_delay,
                                           cap=self.backoff_cap)


def refund_verdict(order: FlexOrder, item: UnknownRefund) -> tuple[RefundVerdict | None, str]:
    """The verdict on an unknown refund from the Flex order as it is now; None = no verdict
    yet. Flex's refunded total (FlexOrder.refunded_total: RETURNED = all of it, else
    `refundedAmount`) confirms the refund when it covers the refunds already confirmed plus
    this one, else releases it."""
    needed = item.confirmed_cents + item.amount_cents
    refunded = order.refunded_total(order.amount_cents or needed)
    if refunded is None:
        return None, "Flex's answer has no refunded amount: wait for its order.refunded webhook"
    if order.status == OrderStatus.RETURNED:
        return RefundVerdict.CONFIRMED, "Flex shows the order fully refunded (RETURNED)"
    if refunded >= needed:
        return RefundVerdict.CONFIRMED, f"Flex shows {refunded} cents refunded"
    return RefundVerdict.RELEASED, (f"Flex shows {refunded} cents refunded: "
                                    "this refund never happened")


def _from_order(order: FlexOrder) -> tuple[Decision, str | None, str]:
    """The decision a found Flex order stands for; raises NotSettledYet while it is undecided."""
    key, name = order.order_session_key, getattr(order.status, "name", str(order.status))
    mapping = {OrderStatus.COMPLETED: Decision.APPROVED,
               OrderStatus.RETURNED: Decision.APPROVED,  # charged, then refunded
               OrderStatus.CAPTUREREQUIRED: Decision.CAPTUREREQUIRED,
               OrderStatus.CANCELLED: Decision.DECLINED}
    if order.status not in mapping:
        raise NotSettledYet(f"Flex order {key} is still {name}")
    return mapping[order.status], key, f"found by lookup: Flex order {key} is {name}"


def _from_evaluation(evaluation: Evaluation) -> tuple[Decision, str | None, str]:
    key = evaluation.order_session_key
    mapping = {Outcome.APPROVED: Decision.APPROVED,
               Outcome.CAPTUREREQUIRED: Decision.CAPTUREREQUIRED,
               Outcome.DECLINED: Decision.DECLINED, Outcome.CHALLENGE: Decision.DECLINED}
    if evaluation.status not in mapping:
        raise NotSettledYet(f"the replayed /evaluate answered {evaluation.status}")
    return (mapping[evaluation.status], key,
            f"replayed /evaluate: Flex answered {evaluation.status} (order {key})")


def _describe(answer: object) -> str:
    if answer is None:
        return "no such order"
    if isinstance(answer, FlexOrder):
        refunded = "" if answer.refunded_cents is None else f", refunded {answer.refunded_cents}"
        return f"{answer.status_name} (orderSessionKey {answer.order_session_key}{refunded})"
    if isinstance(answer, Evaluation):
        return f"{answer.status} (orderSessionKey {answer.order_session_key})"
    found = getattr(answer, "found", None)
    return "cancelled" if found else "no such order" if found is False else str(answer)[:200]
