"""Wires the Flex integration into this app: settings, the embedded sandbox, the client,
the CIT flow, the Flex call log and the transmit relay. Views reach them via `services()`."""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass
from functools import partial

from flask import Flask, current_app

from flex import FlexClient, FlexConfig
from flex.calllog import CallLog
from flex.cit import DECLINED, PAID, Authorize, CitFlow, CitResult
from flex.models import Card, Purchase
from flex.outbox import Relay

from . import db
from .flex_store import SqlCallLog, SqlOutbox
from .processor import SimulatedProcessor
from .reconcile import reconcile_due
from .webhook_effects import apply_due

log = logging.getLogger(__name__)

# Settings that must all be present to talk to Flex's real sandbox (or production).
REAL_FLEX_SETTINGS = (
    "FLEX_API_URL", "FLEX_APP_KEY", "FLEX_APP_SECRET", "FLEX_MID", "FLEX_TOKENIZATION_KEY",
    "FLEX_SENSEJS_URL",
)


class ConfigError(RuntimeError):
    """Start-up refused: a setting is missing or still a placeholder."""


@dataclass(frozen=True)
class SenseJS:
    url: str
    mid: str
    site_id: str


class ProcessorOnly:
    """Checkout without Flex (FLEX_ENABLED=0): the baseline the benchmark measures against."""

    def pay(self, purchase: Purchase, card: Card, authorize: Authorize) -> CitResult:
        processor = authorize(card, purchase.amount_cents)
        return CitResult(PAID if processor.approved else DECLINED, processor, card.summary)

    def close(self) -> None:
        pass


@dataclass
class Services:
    client: FlexClient
    flow: CitFlow | ProcessorOnly
    relay: Relay
    call_log: CallLog  # Flex calls and the merchant's own timed steps, per order
    processor: SimulatedProcessor
    sensejs: SenseJS
    mode: str  # shown in the page footer
    sandbox_url: str | None = None  # the embedded sandbox's root URL; None with a real Flex


def services() -> Services:
    return current_app.extensions["payments"]


def init_app(app: Flask) -> None:
    config = app.config
    sandbox_url = None
    if config.get("FLEX_API_URL"):
        flex_config, sensejs, mode = _real_flex(config)
    elif config["SHOP_ENV"] == "production":
        raise ConfigError(
            "FLEX_API_URL is missing: with SHOP_ENV=production the shop must talk to a real "
            "Flex API; the embedded sandbox simulator is for the demo only."
        )
    else:
        flex_config, sensejs, mode, sandbox_url = _embedded_sandbox(config,
                                                                    sandbox_directory(app))

    database = app.extensions["database"]
    call_log = CallLog(SqlCallLog(database))
    client = FlexClient(flex_config, on_call=call_log.record)
    flow = CitFlow(client) if config["FLEX_ENABLED"] else ProcessorOnly()
    relay = Relay(SqlOutbox(database), client, poll_interval=config["FLEX_RELAY_POLL_SECONDS"],
                  senders=config["FLEX_RELAY_SENDERS"],
                  also_run=partial(_background_work, database, flow, client))
    app.extensions["payments"] = Services(
        client=client,
        flow=flow,
        relay=relay,
        call_log=call_log,
        processor=SimulatedProcessor(config["PROCESSOR_LATENCY_MS"]),
        sensejs=sensejs,
        mode=mode,
        sandbox_url=sandbox_url,
    )
    if config["FLEX_RELAY"]:
        relay.start()
        atexit.register(relay.stop)


def _background_work(database: db.Database, flow: CitFlow, client: FlexClient) -> None:
    """The relay loop's other periodic work: replay unanswered /evaluates, and apply the
    stored webhook events that had to wait."""
    with database.connection() as conn:
        reconcile_due(conn, flow)
    apply_due(database, client)


def _timeouts(config: dict) -> dict:
    return {
        "connect_timeout": float(config["FLEX_CONNECT_TIMEOUT"]),
        "read_timeout": float(config["FLEX_READ_TIMEOUT"]),
        "deadline": float(config["FLEX_DEADLINE"]),
    }


def _real_flex(config: dict) -> tuple[FlexConfig, SenseJS, str]:
    for name in REAL_FLEX_SETTINGS:
        value = str(config.get(name) or "")
        if not value or value.startswith("your-") or "<" in value:
            raise ConfigError(
                f"{name} is missing (or still the placeholder from .env.example). "
                "Set it in .env, or unset FLEX_API_URL to use the embedded sandbox."
            )
    flex_config = FlexConfig(
        api_url=config["FLEX_API_URL"],
        app_key=config["FLEX_APP_KEY"],
        app_secret=config["FLEX_APP_SECRET"],
        mid=config["FLEX_MID"],
        tokenization_key=config["FLEX_TOKENIZATION_KEY"],
        site_id=config.get("FLEX_SITE_ID") or "",
        **_timeouts(config),
    )
    sensejs = SenseJS(config["FLEX_SENSEJS_URL"], flex_config.mid, flex_config.site_id)
    return flex_config, sensejs, f"Flex API at {flex_config.api_url}"


def sandbox_directory(app: Flask) -> str:
    """Beside the SQLite file (so each test database gets its own), else the instance folder."""
    if app.config["DATABASE"]:
        return os.path.dirname(os.path.abspath(app.config["DATABASE"]))
    os.makedirs(app.instance_path, exist_ok=True)
    return app.instance_path


def _embedded_sandbox(config: dict, directory: str) -> tuple[FlexConfig, SenseJS, str, str]:
    # Imported here: a shop talking to the real Flex never loads the simulator.
    from flex import sandbox
    from flex.sandbox import shared

    # One sandbox process beside the database, shared by every worker and CLI process that
    # uses it: a card vaulted through one worker is refunded through another.
    server = shared.join(directory, port=int(config.get("FLEX_SANDBOX_PORT") or 0))
    log.info("embedded Flex sandbox at %s", server.url)
    flex_config = FlexConfig(
        api_url=server.api_url,
        app_key=sandbox.DEFAULT_APP_KEY,
        app_secret=sandbox.DEFAULT_APP_SECRET,
        mid=sandbox.DEFAULT_MID,
        tokenization_key=sandbox.DEFAULT_TOKENIZATION_KEY,
        site_id=sandbox.DEFAULT_SITE_ID,
        **_timeouts(config),
    )
    sensejs = SenseJS(f"{server.url}/widget.js", sandbox.DEFAULT_MID, sandbox.DEFAULT_SITE_ID)
    return flex_config, sensejs, f"embedded Flex sandbox at {server.url}", server.url
