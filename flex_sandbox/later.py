"""Decisions Flex takes later. Real Flex answered an /evaluate that carried a `threeDSecure`
object with SUBMITTED: the order waits (status 4 PROCESSING) and is decided afterwards. The
sandbox decides it `submitted_delay` seconds later, or at once through the control plane,
and sends the decision's webhook."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from .rules import wire_time
from .state import State
from .webhooks import WebhookSender

PENDING = "PROCESSING"  # a SUBMITTED order's status until it is decided
AUTHORIZATION_LIFETIME = timedelta(days=7)  # our choice: when an uncaptured auth lapses
EVENT_FOR = {"APPROVED": "order.completed", "CAPTUREREQUIRED": "order.capturerequired"}
STATUS_FOR = {"APPROVED": "COMPLETED", "CAPTUREREQUIRED": "CAPTUREREQUIRED"}
DECISIONS = ("APPROVED", "CAPTUREREQUIRED", "DECLINED", "CHALLENGE")


def status_for(decision: str) -> str:
    """The order status a decision leaves: DECLINED and CHALLENGE are CANCELLED."""
    return STATUS_FOR.get(decision, "CANCELLED")


def expiry_for(decision: str) -> str | None:
    """When an authorization lapses, for a CAPTUREREQUIRED decision."""
    if decision != "CAPTUREREQUIRED":
        return None
    return wire_time(datetime.now(UTC) + AUTHORIZATION_LIFETIME)


class LaterDecisions:
    """One timer per SUBMITTED order; `stop()` cancels and joins them all."""

    def __init__(self, state: State, webhooks: WebhookSender):
        self._state, self._webhooks = state, webhooks
        self._timers: dict[str, threading.Timer] = {}
        self._lock = threading.Lock()
        self._stopped = False

    def schedule(self, key: str, delay: float) -> None:
        """Decides order `key` `delay` seconds from now."""
        timer = threading.Timer(delay, self.decide, args=(key,))
        timer.daemon = True
        with self._lock:
            if self._stopped:
                return
            self._timers[key] = timer
        timer.start()

    def decide(self, key: str, decision: str | None = None) -> bool | None:
        """Takes the order's decision now (`decision` overrides the test card's): True when
        decided, False when it was decided already, None for an unknown order."""
        with self._state.lock:
            order = self._state.orders.get(key)
            if order is None:
                return None
            if order.status != PENDING:
                return False
            order.decision = decision or order.later or "DECLINED"
            order.status, order.later = status_for(order.decision), None
            order.expiry = expiry_for(order.decision)
        with self._lock:
            timer = self._timers.pop(key, None)
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
        self._webhooks.send(EVENT_FOR.get(order.decision, "order.cancelled"),
                            order_session_key=order.order_session_key,
                            external_order_id=order.merchant_order_id,
                            confirmation_id=order.confirmation_id)
        return True

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()
            timer.join()
