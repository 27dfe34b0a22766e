"""`python -m flex_sandbox` as its own process: it prints the credentials to put in `.env`,
and takes its webhook subscriber from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
import requests

import flex_sandbox
from tests.support import (
    ROOT,
    WEBHOOK_KEY,
    Subscriber,
    access_token,
    evaluation,
    free_port,
    wait_until_up,
)

pytestmark = pytest.mark.slow  # starts `python -m flex_sandbox`


class _Server:
    def __init__(self, port: int):
        self.api_url = f"http://127.0.0.1:{port}/v1"


def test_the_process_prints_credentials_and_sends_webhooks_from_env():
    hook = Subscriber()
    port = free_port()
    env = {**os.environ, "FLEX_SANDBOX_WEBHOOK_URL": hook.url,
           "FLEX_SANDBOX_WEBHOOK_KEY": WEBHOOK_KEY}
    process = subprocess.Popen([sys.executable, "-m", "flex_sandbox", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        printed = [process.stdout.readline() for _ in range(8)]
        for name, value in flex_sandbox.CREDENTIALS.items():
            assert f"  {name}={value}\n" in printed
        assert f"  FLEX_API_URL=http://127.0.0.1:{port}/v1\n" in printed
        wait_until_up(f"http://127.0.0.1:{port}/widget.js", process)
        server = _Server(port)
        answer = requests.post(f"{server.api_url}/evaluate", timeout=5, headers={
            "Authorization": f"Bearer {access_token(server)}"},
            json=evaluation("4000000000000002", "from-env", str(uuid.uuid4())))
        assert answer.json()["status"] == "APPROVED"
        event = json.loads(hook.wait_for(1)[0]["body"])
        assert (event["Event"], event["ExternalOrderId"]) == ("order.completed", "from-env")
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()
        hook.close()
