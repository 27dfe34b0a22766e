"""Scale-out on PostgreSQL, as deployed: two web nodes (separate gunicorn masters,
FLEX_RELAY=0) and two `flask flex relay` processes on one database and one Flex sandbox.

200 checkouts are spread over both nodes, each shopper's cart on one node and its payment on
the other (no sticky sessions). Midway, one node (master and workers) and one relay are
killed with SIGKILL while that relay holds a transmit in flight; the survivors carry on and
drain the queue. Counting rule for /transmit (at-least-once): the sandbox records a call as
received when it answers it, so a transmit the killed relay sent but never marked delivered
is received, and received again when a surviving relay re-sends the row after its lease.
Only those may be duplicates.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support import (
    APPROVED,
    RESCUED,
    ROOT,
    Shopper,
    calls,
    child_pids,
    clear_faults,
    db_rows,
    flex_settings,
    free_port,
    hidden,
    process_state,
    set_fault,
    wait_for,
    wait_until_up,
)

pytestmark = pytest.mark.slow  # starts gunicorn nodes, relays, PostgreSQL

CHECKOUTS, KILL_AFTER = 200, 104
RELAY_DEADLINE = 5  # seconds; a relay leases a row for twice that


@pytest.fixture
def database_url(postgres_url):
    """Every node of this module on PostgreSQL (SQLite is one machine's)."""
    return postgres_url


class Processes:
    """Every process the test starts, each in a session (process group) of its own, so a
    kill reaches a gunicorn master and its workers at once."""

    def __init__(self, env: dict, logs: Path):
        self.env = {**os.environ, **env}
        self.logs = logs
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, *argv: str) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as out:
            process = subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, env=self.env,
                                       stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.started.append(process)
        return process

    def web_node(self, name: str) -> tuple[subprocess.Popen, str]:
        """A gunicorn master with 2 workers of 4 threads each; up once `url` answers."""
        port = free_port()
        process = self.start(name, "gunicorn", "-w", "2", "--threads", "4", "-b",
                             f"127.0.0.1:{port}", "app:create_app()")
        return process, f"http://127.0.0.1:{port}"

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        """SIGKILL to the whole process group: a crash, no shutdown of any kind."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # gunicorn: graceful shutdown
        for process in self.started:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever is left in the group
            except ProcessLookupError:
                pass
            process.wait(10)


@pytest.fixture
def cluster(database_url, fresh_sandbox, tmp_path):
    processes = Processes({
        "DATABASE_URL": database_url,
        # Every node signs the session (cart, CSRF token) with the same key: a shopper's
        # requests may reach any node.
        "SECRET_KEY": "one-secret-shared-by-every-node",
        **flex_settings(fresh_sandbox),
        "FLEX_RELAY": "0",
        "FLEX_RELAY_POLL_SECONDS": "0.1",
        "FLEX_RELAY_SENDERS": "1",  # one row in flight per relay: the kill finds each sending
        "FLEX_DEADLINE": str(RELAY_DEADLINE),
        "PROCESSOR_LATENCY_MS": "20",
    }, tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


def sandbox_connections(pid: int, port: int) -> set[int]:
    """The local ports of `pid`'s TCP connections to loopback `port` (Linux /proc)."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            sockets.add(target[len("socket:["):-1])
    ports = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if inode in sockets and int(remote.rsplit(":", 1)[1], 16) == port:
            ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def checkout(card: str, cart_node: str, pay_node: str) -> str:
    """One shopper: cart and checkout page on `cart_node`, the payment on `pay_node`."""
    shopper = Shopper(cart_node)
    form = shopper.ready_to_pay(card)
    response = shopper.http.post(f"{pay_node}/checkout", data=form, allow_redirects=False,
                                 timeout=30)
    assert response.status_code == 302, response.text[:300]
    assert response.headers["Location"] == f"/orders/{form['checkout_id']}"
    return form["checkout_id"]


def card_for(n: int) -> str:
    """Every fourth checkout is rescued; in 1-100 those are paid on node A (odd n)."""
    return RESCUED if n % 4 == 1 else APPROVED


def pending_leases(url: str) -> set[str]:
    """Outbox rows a relay has leased right now (sending them, or crashed while sending)."""
    return {order_id for (order_id,) in db_rows(
        url, "SELECT order_id FROM flex_outbox WHERE state = 'pending' AND leased_until > ?",
        time.time())}


def test_two_nodes_and_two_relays_survive_losing_one_of_each(cluster, fresh_sandbox,
                                                            database_url):
    started = time.monotonic()
    (node_a, url_a), (node_b, url_b) = cluster.web_node("web-a"), cluster.web_node("web-b")
    relay_a = cluster.start("relay-a", "flask", "--app", "app", "flex", "relay")
    cluster.start("relay-b", "flask", "--app", "app", "flex", "relay")
    for node, url in ((node_a, url_a), (node_b, url_b)):
        wait_until_up(f"{url}/healthz", node, timeout=60)
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
    urls = (url_a, url_b)
    cards: dict[str, str] = {}  # checkout id -> card, for every checkout that got an answer

    # Checkouts 1-100 over both nodes, 8 shoppers at a time; then every transmit so far is
    # delivered, so none is in flight when Flex starts hanging.
    with ThreadPoolExecutor(8) as pool:
        first = pool.map(lambda n: (checkout(card_for(n), urls[n % 2], urls[1 - n % 2]),
                                    card_for(n)), range(1, 101))
        cards.update(first)
    assert wait_for(lambda: db_rows(database_url, "SELECT COUNT(*) FROM flex_outbox"
                                    " WHERE state <> 'delivered'") == [(0,)], timeout=30)

    # Checkouts 101-104 on node A, with Flex's /transmit hanging: each relay takes a row and
    # waits for Flex's answer (a relay sends one row at a time).
    before_hang = max(call["seq"] for call in calls(fresh_sandbox))
    set_fault(fresh_sandbox, "transmit", hang=True)
    with ThreadPoolExecutor(4) as pool:
        cards.update((order_id, APPROVED) for order_id in pool.map(
            lambda _: checkout(APPROVED, url_a, url_a), range(4)))
    assert wait_for(lambda: len(pending_leases(database_url)) == 2), "both relays sending"
    leased_at_kill = pending_leases(database_url)
    killed_relay_ports = sandbox_connections(relay_a.pid, int(fresh_sandbox.url.rsplit(":", 1)[1]))
    node_a_workers = child_pids(node_a.pid)

    # Checkouts 105-200 on node B, while node A (master and workers) and relay A are killed
    # with SIGKILL; Flex answers again right after.
    with ThreadPoolExecutor(8) as pool:
        rest = [pool.submit(checkout, card_for(n), url_b, url_b)
                for n in range(KILL_AFTER + 1, CHECKOUTS + 1)]
        cluster.kill(node_a)
        cluster.kill(relay_a)
        clear_faults(fresh_sandbox)  # the hung calls are answered: Flex received them
        cards.update((future.result(), card_for(n))
                     for n, future in zip(range(KILL_AFTER + 1, CHECKOUTS + 1), rest, strict=True))
    assert wait_for(lambda: all(process_state(pid) in (None, "Z") for pid in node_a_workers))
    with pytest.raises(requests.ConnectionError):
        requests.get(url_a, timeout=5)

    # Rescued orders taken by the dead node, refunded in full through the survivor, each
    # with two concurrent clicks: one refund each, never two.
    rescued_on_a = [o for o, card in list(cards.items())[:100] if card == RESCUED][:5]
    refunder = Shopper(url_b)
    page = refunder.http.get(f"{url_b}/orders/{rescued_on_a[0]}", timeout=10).text
    refund_form = {"csrf_token": hidden(page, "csrf_token"), "amount": "18.00"}

    def refund(order_id: str) -> tuple[str, str]:
        answer = refunder.post(f"/orders/{order_id}/refund", refund_form)
        assert answer.status_code == 303  # Post/Redirect/Get; a refusal goes to the form
        return order_id, "refused" if answer.headers["Location"].endswith("#refund") else "done"

    with ThreadPoolExecutor(10) as pool:
        refunds = list(pool.map(refund, rescued_on_a * 2))
    assert {o: sorted(r for o2, r in refunds if o2 == o) for o in rescued_on_a} == {
        o: ["done", "refused"] for o in rescued_on_a}

    # No order lost or doubled: one order row per answered checkout, in its final state.
    assert len(cards) == CHECKOUTS
    expected = {o: "paid" if card == APPROVED else "rescued" for o, card in cards.items()}
    assert dict(db_rows(database_url, "SELECT id, outcome FROM orders")) == expected
    assert db_rows(database_url, "SELECT COUNT(*) FROM order_items") == [(CHECKOUTS,)]
    paid = {o for o, outcome in expected.items() if outcome == "paid"}

    # The survivors drain the queue, the killed relay's row once its lease has ended.
    def drained() -> bool:
        rows = db_rows(database_url, "SELECT order_id, state FROM flex_outbox")
        return dict(rows) == dict.fromkeys(paid, "delivered")

    assert wait_for(drained, timeout=2 * RELAY_DEADLINE + 30), "a transmit was not delivered"

    transmits = [c for c in calls(fresh_sandbox, "transmit") if c["status"] == 200]
    received = Counter(c["request"]["orderId"] for c in transmits)
    orphaned = {c["request"]["orderId"] for c in transmits
                if c["seq"] > before_hang and int(c["remote_port"]) in killed_relay_ports}
    duplicates = {o: n - 1 for o, n in received.items() if n > 1}
    assert set(received) == paid  # every approved order reached Flex, nothing else did
    assert orphaned and orphaned <= leased_at_kill, "the killed relay was sending a row"
    assert set(duplicates) <= orphaned and sum(duplicates.values()) <= len(orphaned)

    refunded = Counter(c["path"] for c in calls(fresh_sandbox, "refund") if c["status"] == 200)
    assert sorted(refunded.values()) == [1] * len(rescued_on_a)
    assert db_rows(database_url, "SELECT COUNT(*), SUM(amount_cents) FROM refunds"
                                 " WHERE status = 'succeeded'") == [(5, 5 * 1800)]
    print(f"{len(paid)} paid, {CHECKOUTS - len(paid)} rescued; leased at the kill "
          f"{len(leased_at_kill)} (killed relay {len(orphaned)}); transmits received "
          f"{sum(received.values())} for {len(paid)} orders; "
          f"{time.monotonic() - started:.1f} s")
