"""A Flex sandbox serving real HTTP on loopback, shared by a test module."""

from __future__ import annotations

import pytest
import requests

from flex import FlexClient, FlexConfig
from flex import sandbox as flex_sandbox


@pytest.fixture(scope="module")
def sandbox():
    with flex_sandbox.serve(port=0) as server:
        yield server


@pytest.fixture
def fresh_sandbox(sandbox):
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    return sandbox


def flex_config(server, **overrides) -> FlexConfig:
    settings = {
        "api_url": server.api_url,
        "app_key": flex_sandbox.DEFAULT_APP_KEY,
        "app_secret": flex_sandbox.DEFAULT_APP_SECRET,
        "mid": flex_sandbox.DEFAULT_MID,
        "tokenization_key": flex_sandbox.DEFAULT_TOKENIZATION_KEY,
        "site_id": flex_sandbox.DEFAULT_SITE_ID,
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "deadline": 3.0,
        "backoff_base": 0.05,
        "backoff_cap": 0.1,
    }
    return FlexConfig(**{**settings, **overrides})


def calls(server, endpoint: str | None = None) -> list[dict]:
    params = {"endpoint": endpoint} if endpoint else {}
    return requests.get(f"{server.url}/_sandbox/calls", params=params, timeout=5).json()


def set_fault(server, endpoint: str, **spec) -> None:
    requests.put(f"{server.url}/_sandbox/faults/{endpoint}", json=spec,
                 timeout=5).raise_for_status()


@pytest.fixture
def reports():
    return []


@pytest.fixture
def client(fresh_sandbox, reports):
    flex = FlexClient(flex_config(fresh_sandbox), on_call=reports.append)
    yield flex
    flex.close()
