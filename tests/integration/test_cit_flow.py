"""flex/cit.py on its own (no shop): the vault pool under a Flex that hangs."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import requests
import urllib3

from flex import FlexClient, ProcessorResult
from flex.cit import DECLINED, MIN_VAULT_SECONDS, PAID, CitFlow
from tests.support import card, flex_config, purchase, set_fault


class WatchedPool(urllib3.PoolManager):
    """A real connection pool that tells the test when a /tokenize request is on its way."""

    def __init__(self):
        super().__init__()
        self.tokenize_sent = threading.Event()

    def urlopen(self, method, url, *args, **kwargs):
        if urlsplit(url).path.endswith("/tokenize"):
            self.tokenize_sent.set()
        return super().urlopen(method, url, *args, **kwargs)


def processor(approved: bool, wait_for: threading.Event | None = None):
    def authorize(_card, _amount) -> ProcessorResult:
        if wait_for is not None:
            assert wait_for.wait(5), "the vault call never started"
        code = "00" if approved else "05"
        return ProcessorResult(approved, "txn-1", code, "", "SimulatedPSP",
                               timestamp_utc="2026-11-24T12:00:00.000Z")
    return authorize


def test_a_backed_up_vault_neither_queues_approved_sales_nor_stalls_a_decline(fresh_sandbox):
    pool = WatchedPool()
    sent = []  # every request the client sent, as its CallReport
    client = FlexClient(flex_config(fresh_sandbox, read_timeout=5.0, deadline=1.0),
                        on_call=sent.append, http=pool)
    client.authenticate()
    set_fault(fresh_sandbox, "tokenize", hang=True)  # Flex's vault stops answering
    flow = CitFlow(client, vault_workers=1)  # one vault call at a time: the pool is full
    try:
        # The processor answers once order-1's vault call is under way, so it holds the
        # only worker (a call not started yet would be dropped, as the sale needs no token).
        first = flow.pay(purchase("order-1"), card("4242424242424242"),
                         processor(True, wait_for=pool.tokenize_sent))
        queued = flow.pay(purchase("order-2"), card("4242424242424242"), processor(True))
        started = time.monotonic()
        declined = flow.pay(purchase("order-3"), card(), processor(False))
        waited = time.monotonic() - started
    finally:
        requests.delete(f"{fresh_sandbox.url}/_sandbox/faults", timeout=5)
        flow.close()  # waits for the vault call in flight: every report is in `sent` now
        client.close()

    assert first.outcome == queued.outcome == PAID  # an approved sale never waits on the vault
    # /evaluate was never sent
    assert declined.outcome == DECLINED and not declined.awaiting_confirmation
    assert declined.flex_error == "tokenize: no answer within the Flex deadline"
    assert waited < 1.5  # one deadline, not one per vault call queued ahead of it
    vaulted = {r.request["payment_method"]["sense_key"] for r in sent if r.endpoint == "tokenize"}
    assert vaulted == {"order-1"}  # the queued ones were never sent
    assert [r.endpoint for r in sent if r.endpoint == "evaluate"] == []


def test_a_vault_call_with_too_little_of_its_deadline_left_is_not_sent(fresh_sandbox):
    sent = []
    client = FlexClient(flex_config(fresh_sandbox, deadline=MIN_VAULT_SECONDS / 2),
                        on_call=sent.append)
    flow = CitFlow(client, vault_workers=1)
    try:
        declined = flow.pay(purchase("order-1"), card(), processor(False))
    finally:
        flow.close()
        client.close()
    assert declined.outcome == DECLINED and not declined.awaiting_confirmation
    assert declined.flex_error == "tokenize: no answer within the Flex deadline"
    assert sent == []  # neither a token nor a card number left for a call that could not finish
