"""flex/cit.py on its own (no shop): the vault pool under a Flex that hangs."""

from __future__ import annotations

import time

import requests

from flex import FlexClient, ProcessorResult
from flex.cit import DECLINED, PAID, CitFlow

from .conftest import calls, flex_config, set_fault
from .test_flex_client import card, purchase


def processor(approved: bool):
    def authorize(_card, _amount) -> ProcessorResult:
        code = "00" if approved else "05"
        return ProcessorResult(approved, "txn-1", code, "", "SimulatedPSP",
                               timestamp_utc="2026-11-24T12:00:00.000Z")
    return authorize


def vaulted_orders(sandbox) -> set[str]:
    """The orders whose /tokenize the sandbox received (a hung call is logged once released)."""
    deadline = time.monotonic() + 3
    while True:
        found = {c["request"]["payment_method"]["sense_key"] for c in calls(sandbox, "tokenize")}
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_backed_up_vault_neither_queues_approved_sales_nor_stalls_a_decline(fresh_sandbox):
    set_fault(fresh_sandbox, "tokenize", hang=True)  # Flex's vault stops answering
    client = FlexClient(flex_config(fresh_sandbox, read_timeout=5.0, deadline=1.0))
    flow = CitFlow(client, vault_workers=1)  # one vault call at a time: the pool is full
    try:
        first = flow.pay(purchase("order-1"), card("4242424242424242"), processor(True))
        queued = flow.pay(purchase("order-2"), card("4242424242424242"), processor(True))
        started = time.monotonic()
        declined = flow.pay(purchase("order-3"), card(), processor(False))
        waited = time.monotonic() - started
    finally:
        requests.delete(f"{fresh_sandbox.url}/_sandbox/faults", timeout=5)
        flow.close()
        client.close()

    assert first.outcome == queued.outcome == PAID  # an approved sale never waits on the vault
    assert declined.outcome == DECLINED and not declined.reconcile  # /evaluate was never sent
    assert declined.flex_error == "tokenize: no answer within the Flex deadline"
    assert waited < 1.5  # one deadline, not one per vault call queued ahead of it
    assert vaulted_orders(fresh_sandbox) == {"order-1"}  # the queued ones were never sent
    assert calls(fresh_sandbox, "evaluate") == []
