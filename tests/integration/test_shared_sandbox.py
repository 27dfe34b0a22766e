"""The demo's embedded sandbox is one process per database directory: every worker of a real
multi-worker gunicorn uses it, it outlives a worker's `kill -9`, and it goes when the last
shop process has gone. Production never starts it, and its control endpoints are never
reachable on the shop's port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from flex_sandbox import shared
from tests.support import (
    PRODUCTION,
    RESCUED,
    ROOT,
    Shopper,
    calls,
    child_pids,
    free_port,
    pay,
    processes_mentioning,
    wait_for,
    wait_until_up,
)

CONTROL_PATHS = ("/_sandbox/calls", "/_sandbox/reset", "/_sandbox/orders",
                 "/_sandbox/faults/evaluate", "/_sandbox/tokens/expire")


class Gunicorn:
    """`gunicorn -w N 'app:create_app()'` in demo mode (no FLEX_API_URL), its database and so
    its sandbox in `directory`. The access log names the worker that served each request."""

    def __init__(self, directory: Path, workers: int):
        self.directory = directory
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "gunicorn.log"
        self.access_log = directory / "access.log"
        env = {**os.environ, "DATABASE": str(directory / "shop.sqlite"),
               "PROCESSOR_LATENCY_MS": "20"}
        for name in ("FLEX_API_URL", "FLEX_SANDBOX_PORT", "FLEX_SANDBOX_FAULTS", "SHOP_ENV"):
            env.pop(name, None)
        with open(self.log, "ab") as out:
            self.master = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b",
                 f"127.0.0.1:{self.port}", "--access-logfile", str(self.access_log),
                 "--access-logformat", "%(p)s %(m)s %(U)s %(s)s", "app:create_app()"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def worker_pids(self) -> set[int]:
        return child_pids(self.master.pid)

    @contextmanager
    def only(self, worker: int):
        """Every request inside is served by `worker`: the others are paused (SIGSTOP), so
        only it accepts connections from the shared listening socket."""
        self.settle_webhooks()
        others = self.worker_pids() - {worker}
        for pid in others:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in others:
                os.kill(pid, signal.SIGCONT)

    def settle_webhooks(self) -> None:
        """Waits until the sandbox has delivered every webhook to the shop: a worker paused
        while it stores one would hold SQLite's write lock for as long as it is paused."""
        sandbox_url = shared.running_url(self.directory)
        assert sandbox_url is None or wait_for(lambda: all(
            delivery["delivered"] or delivery["gave_up"] for delivery in requests.get(
                f"{sandbox_url}/_sandbox/webhooks", timeout=5).json()))

    def served_by(self, method: str, path: str, count: int) -> list[tuple[int, str]]:
        """(worker pid, status) of each request to `path`, once `count` are in the access log
        (a worker logs a request just after answering it)."""
        pattern = re.compile(rf"<(\d+)> {method} {re.escape(path)} (\d+)$")

        def logged() -> list[tuple[int, str]]:
            return [(int(m[1]), m[2]) for line in self.access_log.read_text().splitlines()
                    if (m := pattern.match(line))]

        wait_for(lambda: len(logged()) >= count)
        return logged()

    def stop(self) -> None:
        """SIGTERM to the master: gunicorn's graceful shutdown."""
        if self.master.poll() is None:
            for pid in self.worker_pids():
                os.kill(pid, signal.SIGCONT)  # a paused worker could not shut down
            self.master.terminate()
            try:
                self.master.wait(30)
            except subprocess.TimeoutExpired:
                self.master.kill()
                self.master.wait(10)


def sandbox_calls(sandbox_url: str, endpoint: str) -> list[dict]:
    return requests.get(f"{sandbox_url}/_sandbox/calls", params={"endpoint": endpoint},
                        timeout=5).json()


@pytest.fixture
def gunicorn(tmp_path):
    servers = []

    def start(workers: int) -> Gunicorn:
        server = Gunicorn(tmp_path, workers)
        servers.append(server)
        wait_until_up(server.url, server.master)
        assert wait_for(lambda: len(server.worker_pids()) == workers)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
        for pid in processes_mentioning(f"{tmp_path}/"):  # a sandbox that failed to leave
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_workers_share_one_sandbox_that_outlives_a_worker_and_leaves_with_gunicorn(
        gunicorn, tmp_path):
    server = gunicorn(workers=2)
    sandbox_url = shared.running_url(tmp_path)
    assert sandbox_url, "no sandbox process running for the shop's directory"
    sandboxes = processes_mentioning(f"{tmp_path}/{shared.URL_FILE}")
    assert len(sandboxes) == 1, f"expected one sandbox process, found {sandboxes}"
    first, second = sorted(server.worker_pids())
    other = {first: second, second: first}
    shopper = Shopper(server.url)

    # 8 rescued checkouts, 4 through each worker; each refunded through the OTHER worker.
    paid_by = {}
    for worker in (first, second):
        with server.only(worker):
            paid_by.update({shopper.pay(RESCUED): worker for _ in range(4)})
    refunds = {}
    for worker in (first, second):
        with server.only(other[worker]):
            for order_id in [o for o, w in paid_by.items() if w == worker]:
                refunds[order_id] = shopper.refund(order_id, "5.00").status_code
    assert refunds == {order_id: 303 for order_id in paid_by}
    assert sorted(server.served_by("POST", "/checkout", 8)) == sorted(
        (worker, "302") for worker in paid_by.values())
    for order_id, worker in paid_by.items():
        assert server.served_by("POST", f"/orders/{order_id}/refund", 1) == [
            (other[worker], "303")]
    assert [call["status"] for call in sandbox_calls(sandbox_url, "refund")] == [200] * 8
    assert "Unknown vault token" not in server.log.read_text()

    # The sandbox's control endpoints are not on the shop's port: 404, and nothing reset.
    for path in CONTROL_PATHS:
        for method in ("GET", "POST", "PUT", "DELETE"):
            response = requests.request(method, f"{server.url}{path}", timeout=10)
            assert response.status_code == 404, f"{method} {path}"
    evaluated = {call["request"]["orderId"] for call in sandbox_calls(sandbox_url, "evaluate")}
    assert evaluated == set(paid_by)

    # kill -9 a worker: gunicorn starts a new one, which finds the same sandbox.
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: len(server.worker_pids() - {first, second}) == 1)
    (replacement,) = server.worker_pids() - {first, second}
    order_id = next(o for o, w in paid_by.items() if w == first)
    with server.only(replacement):
        assert shopper.refund(order_id, "5.00").status_code == 303
    assert server.served_by("POST", f"/orders/{order_id}/refund", 2)[-1] == (replacement, "303")
    assert shared.running_url(tmp_path) == sandbox_url
    assert processes_mentioning(f"{tmp_path}/{shared.URL_FILE}") == sandboxes

    # Stopping gunicorn: the sandbox leaves by itself, after its grace period.
    server.stop()
    stopped = time.monotonic()
    assert wait_for(lambda: not processes_mentioning(f"{tmp_path}/"),
                    timeout=shared.UNUSED_GRACE + 20), "the sandbox outlived gunicorn"
    print(f"sandbox gone {time.monotonic() - stopped:.1f} s after gunicorn stopped")
    assert shared.running_url(tmp_path) is None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sandbox_url}/widget.js", timeout=5)


@pytest.mark.slow
def test_four_workers_booting_together_start_one_sandbox(gunicorn, tmp_path):
    server = gunicorn(workers=4)
    footers = set()
    for worker in server.worker_pids():
        with server.only(worker):  # each worker answers once: it has booted and joined
            page = requests.get(f"{server.url}/", timeout=30).text
        footers.add(re.search(r"Talking to the (embedded Flex sandbox at \S+)\.", page)[1])
    assert footers == {f"embedded Flex sandbox at {shared.running_url(tmp_path)}"}
    assert len(processes_mentioning(f"{tmp_path}/{shared.URL_FILE}")) == 1


@pytest.mark.slow
def test_a_killed_sandbox_is_detected_and_replaced(tmp_path, sandbox):
    # A URL file nobody holds, naming a server that even answers: left by a killed run.
    (tmp_path / shared.URL_FILE).write_text(f"{sandbox.url}\n")
    joined = shared.join(tmp_path, unused_grace=0.2)
    try:
        assert joined.url != sandbox.url
        assert shared.running_url(tmp_path) == joined.url
        requests.get(f"{joined.url}/widget.js", timeout=5).raise_for_status()

        joined.process.kill()  # kill -9 the sandbox itself: its lock goes with it
        joined.process.wait(10)
        assert shared.running_url(tmp_path) is None
        joined.leave()
        joined = shared.join(tmp_path, unused_grace=0.2)
        assert shared.running_url(tmp_path) == joined.url
        requests.get(f"{joined.url}/widget.js", timeout=5).raise_for_status()
    finally:
        joined.leave()
        if joined.process:
            joined.process.wait(10)  # it exits by itself once unused for 0.2 s
    assert shared.running_url(tmp_path) is None


@pytest.mark.slow
def test_a_sandbox_that_stops_cleanly_leaves_no_url_behind(tmp_path):
    joined = shared.join(tmp_path, unused_grace=0.2)
    assert (tmp_path / shared.URL_FILE).read_text().strip() == joined.url
    joined.leave()
    assert joined.process.wait(10) == 0  # it exits by itself once unused for 0.2 s
    assert not (tmp_path / shared.URL_FILE).exists()  # nothing stale for the next run to read
    assert sorted(path.name for path in tmp_path.iterdir()) == [  # only the empty lock files
        shared.START_LOCK, shared.USERS_FILE]


@pytest.mark.slow
def test_production_refuses_to_start_without_flex_api_url(tmp_path):
    env = {**os.environ, **PRODUCTION, "DATABASE": str(tmp_path / "shop.sqlite")}
    env.pop("FLEX_API_URL", None)
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "flex", "check"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ConfigError: FLEX_API_URL is not set" in result.stderr
    assert not (tmp_path / shared.URL_FILE).exists(), "a sandbox was started"


def test_sandbox_control_endpoints_are_not_on_the_shops_port_in_production(make_app,
                                                                         fresh_sandbox):
    client = make_app(**PRODUCTION).test_client()
    client.environ_base["wsgi.url_scheme"] = "https"  # the session cookie is Secure
    order_id, _ = pay(client, RESCUED)
    for path in CONTROL_PATHS:
        for method in ("GET", "POST", "PUT", "DELETE"):
            assert client.open(path, method=method).status_code == 404, f"{method} {path}"
    evaluated = [call["request"]["orderId"] for call in calls(fresh_sandbox, "evaluate")]
    assert evaluated == [order_id]  # nothing was reset
