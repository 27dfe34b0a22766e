"""The client reads proxy settings from the environment once, when it is created, and never
lets a ~/.netrc entry replace its bearer token."""

from __future__ import annotations

import pytest

from flex import FlexClient
from flex.errors import FlexUnavailableError
from tests.support import APPROVED, calls, card, flex_config

CARD = card(APPROVED)


def test_a_netrc_entry_for_the_flex_host_does_not_replace_the_bearer(
        fresh_sandbox, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password something\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    client = FlexClient(flex_config(fresh_sandbox))
    try:
        vaulted = client.tokenize(CARD)
    finally:
        client.close()
    assert vaulted.last4 == "4242"
    assert [c["status"] for c in calls(fresh_sandbox, "tokenize")] == [200]


def test_proxy_from_the_environment_is_used_unless_no_proxy_covers_the_host(
        fresh_sandbox, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens on port 9
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypassed = FlexClient(flex_config(fresh_sandbox))
    monkeypatch.setenv("NO_PROXY", "example.com")
    proxied = FlexClient(flex_config(fresh_sandbox, deadline=1.0, max_retries=0))
    monkeypatch.delenv("HTTP_PROXY")  # read once at creation: later changes do not matter
    try:
        assert bypassed.tokenize(CARD).last4 == "4242"
        with pytest.raises(FlexUnavailableError, match="connection"):
            proxied.tokenize(CARD)  # sent to the proxy, which is not there
    finally:
        bypassed.close()
        proxied.close()
