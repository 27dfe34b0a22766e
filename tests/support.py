"""Helpers shared by the test suites: free loopback ports, waiting for a server or a
condition, finding processes, and the shopper's form steps
(Flask test client or HTTP)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float = 15.0):
    """Polls `predicate` until it is truthy or `timeout` s pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return result


def child_pids(pid: int) -> set[int]:
    """The live child processes of `pid` (Linux /proc)."""
    children = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.update(int(c) for c in (task / "children").read_text().split())
        except FileNotFoundError:  # the thread just ended
            pass
    return {c for c in children if process_state(c) not in (None, "Z")}


def process_state(pid: int) -> str | None:
    """The one-letter state of `pid` (R, S, T, Z…), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def processes_mentioning(text: str) -> set[int]:
    """Live processes (not zombies) whose command line contains `text` (Linux /proc)."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.add(int(cmdline.parent.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return {pid for pid in found if process_state(pid) not in (None, "Z")}


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening, or still booting
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


class ShopServer:
    """The real app as its own process (`flask run`, threaded) on a free loopback port.
    Settings come from `env` on top of this process's environment; output goes to `log`."""

    def __init__(self, env: dict, log: Path):
        self.env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> ShopServer:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(self.port),
                 "--no-reload", "--no-debugger"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        wait_until_up(self.url, self.process)
        return self

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, exactly like a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def hidden(html: str, name: str) -> str:
    """The value of the form field `name` in a page."""
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html)
    assert match, f"no field {name}"
    return match[1]


def fill_cart(client, sku="mug", quantity=1) -> None:
    page = client.get("/").get_data(as_text=True)
    response = client.post("/cart/add", data={
        "csrf_token": hidden(page, "csrf_token"), "sku": sku, "quantity": quantity,
    })
    assert response.status_code == 302


def checkout_form(client) -> dict:
    page = client.get("/checkout").get_data(as_text=True)
    return {
        "csrf_token": hidden(page, "csrf_token"),
        "checkout_id": hidden(page, "checkout_id"),
        "expected_total_cents": hidden(page, "expected_total_cents"),
        "email": "shopper@example.com",
        "name": "Ada Lovelace",
        "card_number": "4242 4242 4242 4242",
        "expiry": "12/34",
        "cvc": "123",
        "address": "1 Main St",
        "city": "Springfield",
        "state": "IL",
        "zip_code": "62701",
        "country": "US",
    }


class Shopper:
    """One browser session, driven over HTTP against a running shop."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()
        # A fresh connection per request: gunicorn closes an idle keep-alive connection after
        # 2 s, and on a busy machine the next POST could leave on the connection it just
        # closed, which a browser would send again and requests does not.
        self.http.headers["Connection"] = "close"

    def checkout_form(self, card: str, quantity: int = 1) -> dict:
        page = self.http.get(f"{self.url}/", timeout=10).text
        self.http.post(f"{self.url}/cart/add", timeout=10, data={
            "csrf_token": hidden(page, "csrf_token"), "sku": "mug", "quantity": quantity})
        page = self.http.get(f"{self.url}/checkout", timeout=10).text
        return {name: hidden(page, name)
                for name in ("csrf_token", "checkout_id", "expected_total_cents")} | {
            "email": "shopper@example.com", "name": "Ada Lovelace", "card_number": card,
            "expiry": "12/34", "cvc": "123", "address": "1 Main St", "city": "Springfield",
            "state": "IL", "zip_code": "62701", "country": "US"}

    def pay(self, card: str, quantity: int = 1) -> str:
        form = self.checkout_form(card, quantity)
        response = self.post("/checkout", form)
        assert response.status_code == 302, response.text[:300]
        return form["checkout_id"]

    def refund(self, order_id: str, dollars: str) -> requests.Response:
        page = self.http.get(f"{self.url}/orders/{order_id}", timeout=10).text
        return self.post(f"/orders/{order_id}/refund",
                         {"csrf_token": hidden(page, "csrf_token"), "amount": dollars})

    def post(self, path: str, data: dict) -> requests.Response:
        return self.http.post(f"{self.url}{path}", data=data, allow_redirects=False, timeout=30)
