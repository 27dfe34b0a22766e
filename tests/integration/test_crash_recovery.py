"""kill -9 at each step of a checkout and of a refund (SHOP_CRASH_AT makes the server
SIGKILL itself there), then restart and run `flask flex recover`: every order reaches a
final state, one processor ledger entry per order at most (no double charge), one Flex
order per merchant order at most, and an interrupted refund is confirmed or released."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from tests.support import ROOT, Shopper, ShopServer, db_rows, flex_settings, sandbox_orders

pytestmark = [pytest.mark.storage, pytest.mark.slow]  # kill -9 of shop processes

# crash point, card -> the order's final outcome after recovery, processor ledger entries.
# The vault call runs in parallel with the processor's authorization, so a kill when /tokenize
# answers may come before or after the processor's (declining) answer: either ledger is right.
CHECKOUT_CRASHES = {
    ("after_order_insert", "4242424242424242"): ("declined", {0}),
    ("after_authorize", "4242424242424242"): ("paid", {1}),
    ("after_authorize", "4000000000000002"): ("declined", {1}),
    ("after_vault", "4000000000000002"): ("declined", {0, 1}),
    ("after_evaluate_sent", "4000000000000002"): ("rescued", {1}),
}


@pytest.fixture
def shop(fresh_sandbox, database_url, tmp_path):
    """Starts shop servers (and runs `flask flex recover`) with the same settings."""
    env = {
        "DATABASE_URL": database_url,
        **flex_settings(fresh_sandbox),
        "PROCESSOR_LATENCY_MS": "0",
        "FLEX_DEADLINE": "3",
        "SHOP_CRASH_AT": None,
    }
    servers = []

    class Shop:
        def start(self, **extra) -> ShopServer:
            server = ShopServer({**env, **extra}, tmp_path / "server.log")
            servers.append(server)
            return server.start()

        def recover(self) -> str:
            """`flask flex recover`, with the clock an hour ahead: everything is due."""
            done = subprocess.run(
                [sys.executable, "-m", "flask", "--app", "app", "flex", "recover",
                 "--ahead", "3600"],
                cwd=ROOT, env={**ShopServer(env, tmp_path / "cli.log").env, "FLEX_RELAY": "0"},
                capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout

    yield Shop()
    for server in servers:
        server.stop()


def crashed(server: ShopServer) -> bool:
    server.process.wait(10)
    return server.process.returncode == -9


@pytest.mark.parametrize(("point", "card"), CHECKOUT_CRASHES)
def test_kill_9_during_checkout_is_recovered(shop, fresh_sandbox, database_url, point, card):
    server = shop.start(SHOP_CRASH_AT=point, FLEX_RELAY="0")
    shopper = Shopper(server.url)
    form = shopper.ready_to_pay(card)
    order_id = form["checkout_id"]
    with pytest.raises(requests.ConnectionError):
        shopper.post("/checkout", form)
    assert crashed(server)
    assert db_rows(database_url, "SELECT outcome FROM orders") == [("pending",)]

    server = shop.start(FLEX_RELAY="0")
    shopper.url = server.url
    started = time.monotonic()
    replay = shopper.post("/checkout", form)  # the shopper presses Pay again
    assert time.monotonic() - started < 5  # answered at once, not after a 30 s wait
    assert replay.headers["Location"] == f"/orders/{order_id}"
    page = shopper.http.get(f"{server.url}/orders/{order_id}", timeout=10).text
    assert "Please do not pay again" in page

    output = shop.recover()
    outcome, charges = CHECKOUT_CRASHES[point, card]
    assert db_rows(database_url, "SELECT outcome, recovering FROM orders") == [(outcome, 0)]
    [(ledger_entries,)] = db_rows(database_url, "SELECT COUNT(*) FROM processor_ledger")
    assert ledger_entries in charges
    assert len(sandbox_orders(fresh_sandbox, order_id)) == (outcome == "rescued")
    assert order_id in output
    if outcome == "paid":
        assert db_rows(database_url, "SELECT state FROM flex_outbox") == [("pending",)]
    page = shopper.http.get(f"{server.url}/orders/{order_id}", timeout=10).text
    assert "processor lookup (reference" in page  # the timeline says what was asked
    assert ("not charged" in page or "Not charged" in page) == (outcome == "declined")


@pytest.mark.parametrize(("point", "card", "final"), [
    ("after_refund_reserved", "4000000000000002", "released"),
    ("after_refund_sent", "4000000000000002", "succeeded"),
    ("after_refund_reserved", "4242424242424242", "released"),
    ("after_refund_sent", "4242424242424242", "succeeded"),
])
def test_kill_9_during_a_refund_is_recovered(shop, fresh_sandbox, database_url, point, card,
                                             final):
    server = shop.start(FLEX_RELAY="0")
    order_id = Shopper(server.url).pay(card)
    server.stop()
    server = shop.start(SHOP_CRASH_AT=point, FLEX_RELAY="0")
    shopper = Shopper(server.url)
    with pytest.raises(requests.ConnectionError):
        shopper.refund(order_id, "5.00")
    assert crashed(server)
    assert db_rows(database_url, "SELECT status FROM refunds") == [("pending",)]

    shop.start(FLEX_RELAY="0")
    shop.recover()
    reserved = 500 if final == "succeeded" else 0
    assert db_rows(database_url, "SELECT status FROM refunds") == [(final,)]
    assert db_rows(database_url, "SELECT refund_reserved_cents FROM orders") == [(reserved,)]
    sent = point == "after_refund_sent"
    flex_refunds = requests.get(f"{fresh_sandbox.url}/_sandbox/calls",
                                params={"endpoint": "refund"}, timeout=5).json()
    processor_refunds = db_rows(database_url,
                                "SELECT COUNT(*) FROM processor_ledger WHERE kind = 'refund'")
    if card == "4242424242424242":  # the processor charged it, so the processor refunds it
        assert flex_refunds == [] and processor_refunds == [(int(sent),)]
    else:
        assert len(flex_refunds) == sent and processor_refunds == [(0,)]  # never sent twice
    [(timeline,)] = db_rows(database_url, "SELECT COUNT(*) FROM order_events")
    assert timeline >= 1


def test_lost_answer_is_rescued_by_lookup(shop, fresh_sandbox, database_url):
    server = shop.start(FLEX_RELAY="0")
    shopper = Shopper(server.url)
    order_id = shopper.pay("4000000000000119")
    page = shopper.http.get(f"{server.url}/orders/{order_id}", timeout=10).text
    assert ">Awaiting confirmation<" in page
    [(due_in,)] = db_rows(database_url, "SELECT recover_at - created_at FROM orders")
    assert 5 < due_in < 20  # the first lookup comes soon (10 s), then backs off

    output = shop.recover()
    assert f"evaluate {order_id}: APPROVED" in output
    page = shopper.http.get(f"{server.url}/orders/{order_id}", timeout=10).text
    assert ">Rescued by Flex<" in page
    assert f"GET /orders?query={order_id}" in page and "found by lookup" in page
    assert len(sandbox_orders(fresh_sandbox, order_id)) == 1
