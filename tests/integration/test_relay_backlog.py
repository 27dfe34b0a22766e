"""A busy shop's outbox: the relay sends several transmits at once and does not pause
between full batches, so a backlog drains at the pace of Flex, not of the poll interval."""

from __future__ import annotations

import time
from datetime import datetime

from flex import FlexClient, payloads
from flex.models import ProcessorResult
from flex.outbox import Relay
from shop.storage import db
from shop.storage.flex_store import SqlOutbox, enqueue_transmit, transmit_counts
from tests.support import APPROVED, calls, card, flex_config, purchase, set_fault

ROWS, BATCH, SENDERS = 45, 20, 8
APPROVAL = ProcessorResult(True, "txn-1", "00", "Approved", "SimulatedPSP",
                           timestamp_utc="2026-11-24T12:00:00.000Z")


def transmit_payload(order_id: str, mid: str) -> dict:
    return payloads.transmit_body(purchase(order_id), card(APPROVED).summary, APPROVAL, mid=mid)


def test_relay_drains_a_backlog_several_at_a_time_without_waiting_for_the_poll(
        fresh_sandbox, tmp_path):
    url = f"sqlite:///{tmp_path / 'outbox.sqlite'}"
    db.migrate(url)
    config = flex_config(fresh_sandbox, read_timeout=5.0, deadline=10.0)
    database = db.Database(url)
    with database.connection() as conn, conn:
        for n in range(ROWS):  # approved orders, each with its transmit queued
            conn.execute("INSERT INTO orders (id, created_at, outcome, amount_cents, currency,"
                         " email) VALUES (?, ?, 'paid', 1800, 'USD', 'shopper@example.com')",
                         (f"order-{n}", time.time()))
            enqueue_transmit(conn, f"order-{n}", transmit_payload(f"order-{n}", config.mid))
    set_fault(fresh_sandbox, "transmit", delay_ms=100)
    client = FlexClient(config)
    # A poll interval far longer than the test may take: only back-to-back rounds finish.
    relay = Relay(SqlOutbox(database), client, poll_interval=600, batch=BATCH,
                  senders=SENDERS)
    relay.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with database.connection() as conn:
                if transmit_counts(conn)["delivered"] == ROWS:
                    break
            time.sleep(0.05)
    finally:
        relay.stop()
        client.close()

    with database.connection() as conn:
        assert transmit_counts(conn) == {"pending": 0, "delivered": ROWS, "failed": 0}
    database.close()
    transmits = calls(fresh_sandbox, "transmit")
    assert sorted(c["request"]["orderId"] for c in transmits) == sorted(
        f"order-{n}" for n in range(ROWS))  # each once
    assert 1 < most_at_once(transmits) <= SENDERS


def most_at_once(recorded: list[dict]) -> int:
    """The largest number of calls the sandbox was serving at the same moment."""
    events = []
    for call in recorded:
        ended = datetime.fromisoformat(call["at"]).timestamp()
        events += [(ended - call["ms"] / 1000, 1), (ended, -1)]
    busy = most = 0
    for _, step in sorted(events):
        busy += step
        most = max(most, busy)
    return most
