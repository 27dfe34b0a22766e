"""Where the contract tests point: the local sandbox, or the Flex API that `.env` names.

`make contract` sets FLEX_CONTRACT_ENV=1: then FLEX_API_URL and the credentials come from the
environment and `.env` (the environment wins, as the shop reads them), and with FLEX_API_URL
set the checks run against that Flex API — Flex's real sandbox. Without it (`make test`, or
no FLEX_API_URL) they run against a local sandbox started here. Checks that need something
only the local sandbox has (its test cards, fault injection, its control plane) are skipped
on a real Flex, each with its reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dotenv import dotenv_values

import flex_sandbox
from flex import FlexClient, FlexConfig
from tests.support import ROOT

SETTINGS = ("FLEX_API_URL", "FLEX_APP_KEY", "FLEX_APP_SECRET", "FLEX_MID", "FLEX_SITE_ID",
            "FLEX_TOKENIZATION_KEY")


@dataclass(frozen=True)
class Target:
    """The Flex API under test."""

    config: FlexConfig
    local: object | None  # the local SandboxServer, or None for a real Flex

    @property
    def real(self) -> bool:
        return self.local is None

    def needs_local(self, what: str) -> None:
        """Skips the calling check on a real Flex: it needs the local sandbox's `what`."""
        if self.real:
            pytest.skip(f"needs the local sandbox's {what}; Flex's real sandbox has none")


def _settings() -> dict[str, str]:
    if os.environ.get("FLEX_CONTRACT_ENV") != "1":
        return {}
    found = {k: v for k, v in dotenv_values(ROOT / ".env").items() if v is not None}
    found.update({k: os.environ[k] for k in SETTINGS if os.environ.get(k)})
    return {k: found[k] for k in SETTINGS if found.get(k)}


@pytest.fixture(scope="session")
def target() -> Iterator[Target]:
    settings = _settings()
    timeouts = {"connect_timeout": 3.05, "read_timeout": 10.0, "deadline": 15.0}
    if settings.get("FLEX_API_URL"):
        missing = [k for k in SETTINGS[1:] if k != "FLEX_SITE_ID" and not settings.get(k)]
        if missing:
            pytest.exit(f"FLEX_API_URL is set but {', '.join(missing)} is not (in .env or the "
                        "environment)", returncode=2)
        yield Target(FlexConfig(
            api_url=settings["FLEX_API_URL"], app_key=settings["FLEX_APP_KEY"],
            app_secret=settings["FLEX_APP_SECRET"], mid=settings["FLEX_MID"],
            tokenization_key=settings["FLEX_TOKENIZATION_KEY"],
            site_id=settings.get("FLEX_SITE_ID", ""), **timeouts), None)
        return
    with flex_sandbox.serve(port=0) as server:
        yield Target(FlexConfig(
            api_url=server.api_url, app_key=flex_sandbox.DEFAULT_APP_KEY,
            app_secret=flex_sandbox.DEFAULT_APP_SECRET, mid=flex_sandbox.DEFAULT_MID,
            tokenization_key=flex_sandbox.DEFAULT_TOKENIZATION_KEY,
            site_id=flex_sandbox.DEFAULT_SITE_ID, **timeouts), server)


@pytest.fixture(scope="session")
def flex(target) -> Iterator[FlexClient]:
    client = FlexClient(target.config)
    yield client
    client.close()


def pytest_report_header(config) -> str:
    """Says which Flex the checks run against (shown by `make contract`)."""
    return f"Flex contract target: {_settings().get('FLEX_API_URL') or 'the local sandbox'}"
