"""Helpers shared by the test suites: free loopback ports, waiting for a server, and the
shopper's form steps through the Flask test client."""

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


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
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
