"""Against the real app as its own process: concurrent double submits, concurrent refunds,
and transmits that survive `kill -9` of the server."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support import (
    Shopper,
    ShopServer,
    calls,
    clear_faults,
    db_rows,
    flex_settings,
    hidden,
    set_fault,
    wait_for,
)

pytestmark = [pytest.mark.storage, pytest.mark.slow]  # shop processes, kill -9


@pytest.fixture
def make_server(fresh_sandbox, database_url, tmp_path):
    servers = []

    def build(**env) -> ShopServer:
        server = ShopServer({
            "DATABASE_URL": database_url,
            **flex_settings(fresh_sandbox),
            "FLEX_RELAY_POLL_SECONDS": "0.1",
            "PROCESSOR_LATENCY_MS": "20",
            **env,
        }, tmp_path / "server.log")
        servers.append(server)
        return server.start()

    yield build
    for server in servers:
        server.stop()


def test_twenty_concurrent_submits_make_one_order(make_server, fresh_sandbox, database_url):
    server = make_server()
    shopper = Shopper(server.url)
    form = shopper.ready_to_pay("4242424242424242")
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: shopper.post("/checkout", form), range(20)))

    assert {r.status_code for r in responses} == {302}
    assert {r.headers["Location"] for r in responses} == {f"/orders/{form['checkout_id']}"}
    assert db_rows(database_url, "SELECT COUNT(*) FROM orders") == [(1,)]
    assert server.log.read_text().count("shop.checkout.processor authorization") == 1
    # The approved path answers without waiting for its vault call, which may land after the
    # 302s; every request has answered, so no other checkout can vault this card any more.
    tokenizes = wait_for(lambda: [
        c for c in calls(fresh_sandbox, "tokenize")
        if c["request"]["payment_method"]["sense_key"] == form["checkout_id"]])
    assert len(tokenizes) == 1
    assert wait_for(lambda: calls(fresh_sandbox, "transmit"))
    time.sleep(0.5)  # time enough for a duplicate delivery to show up
    assert [c["request"]["orderId"] for c in calls(fresh_sandbox, "transmit")] == [
        form["checkout_id"]]


def test_concurrent_refunds_never_exceed_the_amount(make_server, fresh_sandbox, database_url):
    server = make_server()
    shopper = Shopper(server.url)
    order_id = shopper.pay("4000000000000002", quantity=2)  # rescued, $36.00
    page = shopper.http.get(f"{server.url}/orders/{order_id}", timeout=10).text
    refund = {"csrf_token": hidden(page, "csrf_token"), "amount": "10.00"}
    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(
            lambda _: shopper.post(f"/orders/{order_id}/refund", refund).status_code, range(10)))

    assert statuses == [303] * 10  # Post/Redirect/Get, refused or not
    assert db_rows(database_url, "SELECT COUNT(*) FROM refunds") == [(3,)]  # 7 refused
    assert db_rows(database_url, "SELECT refund_reserved_cents FROM orders") == [(3000,)]
    assert [c["status"] for c in calls(fresh_sandbox, "refund")] == [200, 200, 200]


def test_transmits_survive_kill_9(make_server, fresh_sandbox, database_url):
    # Flex's /transmit hangs during the run, so every kill finds transmits queued or in
    # flight (each hung call ends at the client's deadline and is retried later).
    set_fault(fresh_sandbox, "transmit", hang=True)
    # A relay leases a row for 2 x FLEX_DEADLINE: rows a killed server had leased come back
    # after that, so keep it short here.
    server = make_server(FLEX_DEADLINE="2")
    shopper = Shopper(server.url)
    pending_at_kill = []
    for n in range(1, 121):
        shopper.pay("4242424242424242")
        if n % 30 == 0:  # crash four times, mid-run, while transmits are queued
            pending_at_kill.append(db_rows(
                database_url, "SELECT COUNT(*) FROM flex_outbox WHERE state = 'pending'")[0][0])
            server.kill()
            server.start()

    clear_faults(fresh_sandbox)  # Flex answers again: the queue drains

    paid = {id_ for (id_,) in db_rows(database_url, "SELECT id FROM orders WHERE outcome = 'paid'")}
    assert len(paid) == 120
    assert all(pending_at_kill), f"nothing was pending at a kill: {pending_at_kill}"
    delivered = wait_for(lambda: paid <= {c["request"]["orderId"]
                                          for c in calls(fresh_sandbox, "transmit")
                                          if c["status"] == 200}, timeout=30)
    assert delivered, "a paid order's transmit was lost"
    received = [c["request"]["orderId"] for c in calls(fresh_sandbox, "transmit")]
    print(f"pending at each kill: {pending_at_kill}; "
          f"transmits received {len(received)} for {len(paid)} orders")
