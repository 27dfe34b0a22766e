"""The sandbox's memory: tokens, vault, evaluated orders, refunds, SenseJS data, faults and
the calls it received. One lock; bounded where it grows with traffic."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

MAX_CALLS = 5000


@dataclass
class Order:
    order_session_key: str
    merchant_order_id: str
    status: str  # APPROVED | CHALLENGE | DECLINED
    amount_cents: int
    currency: str
    sense_key: str | None
    placed_at: str
    refunded_cents: int = 0


@dataclass
class State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    vault: dict[str, dict] = field(default_factory=dict)  # token -> card (sandbox only)
    orders: dict[str, Order] = field(default_factory=dict)  # orderSessionKey -> order
    evaluations: dict[str, tuple[str, dict]] = field(default_factory=dict)  # idem key -> answer
    sense: dict[str, list[dict]] = field(default_factory=dict)  # senseKey -> fingerprints
    faults: dict[str, dict] = field(default_factory=dict)  # endpoint -> fault spec
    calls: deque = field(default_factory=lambda: deque(maxlen=MAX_CALLS))
    seq: int = 0
    unhang: threading.Event = field(default_factory=threading.Event)

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
            self.sense.clear()
            self.calls.clear()
            self.faults.clear()
            self.unhang.set()
