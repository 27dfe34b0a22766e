"""Starts the real app (with its embedded Flex sandbox) as a separate process on free
loopback ports, and points Playwright's Chromium at it."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from flex_sandbox import shared
from tests.support import ShopServer, free_port, hidden, processes_mentioning, wait_for


class Shop:
    def __init__(self, url: str, sandbox_url: str, database: str):
        self.url = url
        self.sandbox_url = sandbox_url
        self.database = database  # the server's SQLite file

    def buy(self, card: str, quantity: int = 1) -> str:
        """Places an order over plain HTTP (a cookie session of its own, not the browser's),
        for tests that need an order to look at rather than the journey to it."""
        with requests.Session() as http:
            page = http.get(f"{self.url}/", timeout=10).text
            http.post(f"{self.url}/cart/add", timeout=10, data={
                "csrf_token": hidden(page, "csrf_token"), "sku": "mug", "quantity": quantity,
            }).raise_for_status()
            page = http.get(f"{self.url}/checkout", timeout=10).text
            form = {name: hidden(page, name)
                    for name in ("csrf_token", "checkout_id", "expected_total_cents")}
            response = http.post(f"{self.url}/checkout", timeout=30, allow_redirects=False, data={
                **form, "email": "shopper@example.com", "name": "Ada Lovelace",
                "card_number": card, "expiry": "12/34", "cvc": "123", "address": "1 Main St",
                "city": "Springfield", "state": "IL", "zip_code": "62701", "country": "US",
            })
            assert response.status_code == 302, response.text[:300]
            return form["checkout_id"]

    def sandbox_calls(self, endpoint: str) -> list[dict]:
        response = requests.get(f"{self.sandbox_url}/_sandbox/calls",
                                params={"endpoint": endpoint}, timeout=5)
        response.raise_for_status()
        return response.json()

    def poll_sandbox_calls(self, endpoint: str, predicate, timeout: float = 5.0) -> list[dict]:
        """The sandbox's calls to `endpoint` matching `predicate`, once there is at least one."""
        deadline = time.monotonic() + timeout
        while True:
            found = [call for call in self.sandbox_calls(endpoint) if predicate(call)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


@contextmanager
def running_shop(tmp_path_factory, name: str, **settings: str) -> Iterator[Shop]:
    """The app as its own process with its embedded sandbox, on free loopback ports."""
    sandbox_port = free_port()
    directory = tmp_path_factory.mktemp(name)
    database = str(directory / "shop.sqlite")
    server = ShopServer({
        "DATABASE": database,
        "FLEX_API_URL": None,  # always the embedded sandbox, on a port we know
        "FLEX_SANDBOX_FAULTS": None,
        # A lost /evaluate answer stays "Awaiting confirmation" for the whole session: its
        # webhook (which would settle it) is held back, so tests see that state steadily.
        "FLEX_SANDBOX_LOST_ANSWER_WEBHOOK_DELAY": "3600",
        # Likewise a SUBMITTED (3-D Secure) evaluation waits until a test decides it.
        "FLEX_SANDBOX_SUBMITTED_DELAY": "3600",
        "FLEX_SANDBOX_PORT": str(sandbox_port),
        "PROCESSOR_LATENCY_MS": "50",
        "FLEX_RELAY_POLL_SECONDS": "0.2",
        "FLEX_READ_TIMEOUT": "3",
        "FLEX_DEADLINE": "5",
        **settings,
    }, tmp_path_factory.mktemp(f"{name}-log") / "server.log")
    try:
        server.start()
        yield Shop(server.url, f"http://127.0.0.1:{sandbox_port}", database)
    finally:
        server.stop()
        # The sandbox process beside the database leaves by itself once the shop has gone.
        if not wait_for(lambda: shared.running_url(directory) is None,
                        timeout=shared.UNUSED_GRACE + 20):
            for pid in processes_mentioning(f"{directory}/"):
                os.kill(pid, signal.SIGKILL)
            pytest.fail("the sandbox process outlived the shop")
        assert not (directory / shared.URL_FILE).exists(), "a clean stop left a stale URL"


@pytest.fixture(scope="session")
def shop(tmp_path_factory) -> Shop:
    with running_shop(tmp_path_factory, "e2e") as running:
        yield running


@pytest.fixture(scope="session")
def authorization_shop(tmp_path_factory) -> Shop:
    """A second shop in authorization mode, started only if a test asks for it."""
    with running_shop(tmp_path_factory, "e2e-auth",
                      FLEX_TRANSACTION_TYPE="AUTHORIZATION") as running:
        yield running


@pytest.fixture
def authorization_page(browser, browser_context_args, authorization_shop):
    """A page whose relative URLs go to the authorization-mode shop."""
    context = browser.new_context(**{**browser_context_args,
                                     "base_url": authorization_shop.url})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def base_url(shop) -> str:
    return shop.url


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium",
                      shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None  # Playwright's own build, if `playwright install chromium` fetched one


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    args = {**browser_type_launch_args,
            "args": ["--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run",
                     "--disable-quic"]}
    path = chromium_path()
    if path:
        args["executable_path"] = path
        args["chromium_sandbox"] = False  # root in CI containers
    return args
