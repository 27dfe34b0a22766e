"""The sandbox's memory: vault, Flex orders, idempotency records, SenseJS data, faults and the
calls it received. One lock; bounded where it grows with traffic."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

MAX_CALLS = 5000
IDEMPOTENCY_TTL = 24 * 3600.0  # seconds a capture/cancel idempotencyKey is remembered


@dataclass
class Order:
    """A Flex order, created by /evaluate. `status` is a STATUS_CODES name."""
    order_session_key: str
    merchant_order_id: str
    decision: str  # what /evaluate answered: APPROVED | CAPTUREREQUIRED | DECLINED | CHALLENGE
    #                | SUBMITTED (until decided: then the decision taken)
    status: str
    amount_cents: int  # authorized, then what was captured
    currency: str
    placed_at: str  # ISO-8601 Z
    email: str | None = None
    secondary_email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    billing: dict | None = None
    shipping: dict | None = None
    sense_key: str | None = None
    expiry: str | None = None  # when an authorization lapses
    refunded_cents: int = 0
    chargeback: bool = False
    later: str | None = None  # SUBMITTED: the decision it will take (later.py)
    answer_lost: bool = False  # card 4000000000000119: decided, but /evaluate answers 503
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    confirmation_id: str = field(default_factory=lambda: secrets.token_hex(4).upper())
    seq: int = 0  # creation order: newest first in lists


@dataclass
class Kept:
    """A remembered answer for an idempotencyKey, and what it was the answer to."""
    request: str
    status: int
    body: str
    at: float = field(default_factory=time.monotonic)


@dataclass
class State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    vault: dict[str, dict] = field(default_factory=dict)  # token -> card (sandbox only)
    orders: dict[str, Order] = field(default_factory=dict)  # orderSessionKey -> order
    evaluations: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (orderId,
    #                                                                         orderSessionKey)
    kept: dict[str, Kept] = field(default_factory=dict)  # "capture:<key>" -> first answer
    sense: dict[str, list[dict]] = field(default_factory=dict)  # senseKey -> fingerprints
    faults: dict[str, dict] = field(default_factory=dict)  # endpoint -> fault spec
    calls: deque = field(default_factory=lambda: deque(maxlen=MAX_CALLS))
    seq: int = 0
    unhang: threading.Event = field(default_factory=threading.Event)

    def add_order(self, order: Order) -> None:
        """Files a new order (caller holds the lock)."""
        self.seq += 1
        order.seq = self.seq
        self.orders[order.order_session_key] = order

    def by_merchant_order_id(self, merchant_order_id: str) -> Order | None:
        """The newest order for a merchant orderId (caller holds the lock)."""
        found = [o for o in self.orders.values() if o.merchant_order_id == merchant_order_id]
        return max(found, key=lambda o: o.seq) if found else None

    def recall(self, key: str) -> Kept | None:
        """The kept answer for an idempotency key younger than 24 h (caller holds the lock)."""
        now = time.monotonic()
        for stale in [k for k, v in self.kept.items() if now - v.at > IDEMPOTENCY_TTL]:
            del self.kept[stale]
        return self.kept.get(key)

    def take_fault(self, endpoint: str) -> dict:
        """The fault for this call; a fault with `times` is used up call by call."""
        with self.lock:
            fault = self.faults.get(endpoint)
            if not fault:
                return {}
            if "times" in fault:
                fault["times"] -= 1
                if fault["times"] <= 0:
                    del self.faults[endpoint]
            return dict(fault)

    def set_fault(self, endpoint: str, spec: dict) -> None:
        with self.lock:
            self.faults[endpoint] = dict(spec)
            self.unhang.clear()

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.unhang.set()  # release any request hanging on purpose

    def record_call(self, call: dict) -> None:
        with self.lock:
            self.seq += 1
            self.calls.append({"seq": self.seq, **call})

    def reset(self) -> None:
        with self.lock:
            self.vault.clear()
            self.orders.clear()
            self.evaluations.clear()
            self.kept.clear()
            self.sense.clear()
            self.calls.clear()
            self.faults.clear()
            self.unhang.set()
