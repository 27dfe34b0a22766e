"""Starts the real app (with its embedded Flex sandbox) as a separate process on free
loopback ports, and points Playwright's Chromium at it."""

from __future__ import annotations

import pytest

from tests.support import RunningShop, chromium_path, running_shop


@pytest.fixture(scope="session")
def shop(tmp_path_factory) -> RunningShop:
    with running_shop(tmp_path_factory, "e2e") as running:
        yield running


@pytest.fixture(scope="session")
def authorization_shop(tmp_path_factory) -> RunningShop:
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
