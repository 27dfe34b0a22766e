"""Real-Flex mode, with the sandbox started as its own process exactly as if it were Flex:
start-up validation, `flask flex check`, a checkout, `flask flex relay` as its own process,
and `flask shop reset`."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests

from app import create_app
from tests.support import ROOT, SandboxAt, Shopper, close_app, flex_settings, free_port, running

pytestmark = pytest.mark.slow  # starts the sandbox and `flask` as processes


@pytest.fixture(scope="module")
def flex_process():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "flex_sandbox", "--port", str(port)], f"{url}/widget.js",
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        yield url


def real_env(url: str, tmp_path, **overrides) -> dict:
    env = {
        **os.environ,
        "DATABASE": str(tmp_path / "shop.sqlite"),
        **flex_settings(SandboxAt(url)),
        "FLEX_RELAY": "0",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


@pytest.fixture
def shop_app():
    """Builds the shop in-process with the settings of an environment; closed after the test."""
    apps = []

    def build(env: dict):
        settings = {k: env[k] for k in env if k.startswith("FLEX_") or k == "DATABASE"}
        apps.append(create_app({**settings, "FLEX_RELAY": False, "PROCESSOR_LATENCY_MS": 0,
                                "TESTING": True}))
        return apps[-1]

    yield build
    for app in apps:
        close_app(app)


def sandbox_calls(url: str, endpoint: str) -> list[dict]:
    return requests.get(f"{url}/_sandbox/calls", params={"endpoint": endpoint},
                        timeout=5).json()


def flask(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


def test_flex_check_reports_success(flex_process, tmp_path):
    result = flask(real_env(flex_process, tmp_path), "flex", "check")
    assert result.returncode == 0, result.stderr
    assert f"OK: authenticated to {flex_process}/v1" in result.stdout


def test_flex_check_reports_refused_credentials(flex_process, tmp_path):
    result = flask(real_env(flex_process, tmp_path, FLEX_APP_SECRET="wrong-secret"),
                   "flex", "check")
    assert result.returncode != 0
    assert "Flex refused the AppKey/AppSecret" in result.stderr
    assert "wrong-secret" not in result.stderr + result.stdout


def test_flex_check_reports_an_unreachable_api(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = flask(real_env(url, tmp_path, FLEX_DEADLINE="2"), "flex", "check")
    assert result.returncode != 0
    assert "connection refused" in result.stderr


@pytest.mark.parametrize("missing", ["FLEX_APP_KEY", "FLEX_APP_SECRET", "FLEX_MID",
                                     "FLEX_TOKENIZATION_KEY", "FLEX_SENSEJS_URL"])
def test_start_up_names_the_missing_setting(flex_process, tmp_path, missing):
    result = flask(real_env(flex_process, tmp_path, **{missing: None}), "flex", "check")
    assert result.returncode != 0
    assert f"{missing} is not set: FLEX_API_URL is set" in result.stderr


def test_start_up_names_a_setting_that_is_not_a_number(flex_process, tmp_path):
    result = flask(real_env(flex_process, tmp_path, FLEX_DEADLINE="soon"), "flex", "check")
    assert result.returncode != 0
    assert "FLEX_DEADLINE must be a number, not 'soon'." in result.stderr


def test_placeholder_from_env_example_is_refused(flex_process, tmp_path):
    result = flask(real_env(flex_process, tmp_path, FLEX_MID="your-merchant-guid"),
                   "flex", "check")
    assert ("FLEX_MID is still the placeholder from .env.example ('your-merchant-guid')"
            in result.stderr)


def test_checkout_then_reset_against_the_separate_process(flex_process, shop_app, tmp_path):
    env = real_env(flex_process, tmp_path)
    client = shop_app(env).test_client()
    form = Shopper(client).ready_to_pay("4000000000000002")
    order_page = client.post("/checkout", data=form, follow_redirects=True)
    assert "Rescued by Flex" in order_page.get_data(as_text=True)
    evaluations = sandbox_calls(flex_process, "evaluate")
    assert form["checkout_id"] in {call["request"]["orderId"] for call in evaluations}

    result = flask(env, "shop", "reset")
    assert result.returncode == 0 and "all orders removed" in result.stdout
    assert "No orders yet" in client.get("/orders").get_data(as_text=True)


def test_relay_as_its_own_process_delivers_what_the_web_process_queued(flex_process, shop_app,
                                                                    tmp_path):
    env = real_env(flex_process, tmp_path, FLEX_RELAY_POLL_SECONDS="0.1")
    client = shop_app(env).test_client()  # FLEX_RELAY=0: the web process only queues
    form = Shopper(client).ready_to_pay()  # 4242…: approved, transmit queued
    assert "Paid" in client.post("/checkout", data=form, follow_redirects=True).text

    def transmitted() -> list[dict]:
        return [c for c in sandbox_calls(flex_process, "transmit")
                if c["request"]["orderId"] == form["checkout_id"]]

    assert transmitted() == []
    relay = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "flex", "relay"],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not transmitted() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [c["status"] for c in transmitted()] == [200]
        assert "delivered" in client.get(f"/orders/{form['checkout_id']}").text
    finally:
        relay.terminate()
        relay.wait(10)
