"""The relay claims rows several at a time and marks the delivered ones several at a time,
in one store call each; a failed transmit is retried later, never marked delivered."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from flex.errors import FlexUnavailableError
from flex.outbox import Relay, Transmit


class MemoryOutbox:
    """flex.outbox.OutboxStore in memory, recording each call."""

    def __init__(self, order_ids: list[str]):
        self.due = list(order_ids)
        self.claims: list[int] = []  # rows returned by each claim
        self.marked: list[list[str]] = []  # each mark_delivered call's ids
        self.retried: list[str] = []
        self._lock = threading.Lock()

    def claim(self, lease_seconds: float, limit: int) -> list[Transmit]:
        with self._lock:
            rows, self.due = self.due[:limit], self.due[limit:]
            self.claims.append(len(rows))
        return [Transmit(order_id, {"orderId": order_id}, 0) for order_id in rows]

    def mark_delivered(self, order_ids) -> None:
        self.marked.append(list(order_ids))

    def retry_later(self, order_id: str, error: str, retry_at: float) -> None:
        self.retried.append(order_id)

    def dead_letter(self, order_id: str, error: str) -> None:
        raise AssertionError("nothing here is dead-lettered")


class FakeFlex:
    """Accepts every transmit but the one for `refused` (Flex answers 503 to it)."""

    config = SimpleNamespace(deadline=15.0)

    def __init__(self, refused: str):
        self.refused = refused
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def transmit(self, payload: dict, *, ref: str | None = None):
        with self._lock:
            self.sent.append(ref)
        if ref == self.refused:
            raise FlexUnavailableError("transmit: HTTP 503", status=503)


def test_rows_are_claimed_and_marked_in_batches_and_a_failure_is_retried_not_marked():
    orders = [f"order-{n}" for n in range(12)]
    store, flex = MemoryOutbox(orders), FakeFlex(refused="order-5")
    relay = Relay(store, flex, senders=4, batch=20)

    assert relay.run_once() == 11

    assert sorted(flex.sent) == sorted(orders)  # each sent once
    assert store.claims[0] == 4  # a claim fills every free sender in one call
    assert all(n <= 4 for n in store.claims)
    marked = [order_id for batch in store.marked for order_id in batch]
    assert sorted(marked) == sorted(set(orders) - {"order-5"})  # each marked once
    assert store.retried == ["order-5"]
