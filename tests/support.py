"""Helpers shared by the test suites: free loopback ports, waiting for a server, and the
shopper's form steps through the Flask test client."""

from __future__ import annotations

import re
import socket
import subprocess
import time

import requests


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
