"""Starts the real app (with its embedded Flex sandbox) as a separate process on free
loopback ports, and points Playwright's Chromium at it."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import requests

from flex.sandbox import shared
from tests.support import ShopServer, free_port, processes_mentioning, wait_for


class Shop:
    def __init__(self, url: str, sandbox_url: str):
        self.url = url
        self.sandbox_url = sandbox_url

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


@pytest.fixture(scope="session")
def shop(tmp_path_factory) -> Shop:
    sandbox_port = free_port()
    directory = tmp_path_factory.mktemp("e2e")
    server = ShopServer({
        "DATABASE": str(directory / "shop.sqlite"),
        "FLEX_API_URL": None,  # always the embedded sandbox, on a port we know
        "FLEX_SANDBOX_FAULTS": None,
        "FLEX_SANDBOX_PORT": str(sandbox_port),
        "PROCESSOR_LATENCY_MS": "50",
        "FLEX_RELAY_POLL_SECONDS": "0.2",
        "FLEX_READ_TIMEOUT": "3",
        "FLEX_DEADLINE": "5",
    }, tmp_path_factory.mktemp("e2e-log") / "server.log")
    try:
        server.start()
        yield Shop(server.url, f"http://127.0.0.1:{sandbox_port}")
    finally:
        server.stop()
        # The sandbox process beside the database leaves by itself once the shop has gone.
        if not wait_for(lambda: shared.running_url(directory) is None,
                        timeout=shared.UNUSED_GRACE + 20):
            for pid in processes_mentioning(f"{directory}/"):
                os.kill(pid, signal.SIGKILL)
            pytest.fail("the sandbox process outlived the shop")


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
