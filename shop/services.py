"""Wires the Flex integration into this app: settings, the embedded sandbox, the client,
the CIT flow, the Flex call log, the transmit relay and the recovery sweep. Views reach them
via `services()`."""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from flex import FlexClient, FlexConfig
from flex.calllog import CallLog
from flex.cit import DECLINED, MIN_EVALUATE_SECONDS, PAID, Authorize, CitFlow, CitResult
from flex.errors import FlexAuthError, FlexError
from flex.models import Card, Purchase
from flex.outbox import Relay
from flex.recovery import Recovery
from shop import crash
from shop.checkout.processor import SimulatedProcessor
from shop.orders import lifecycle
from shop.recovery.store import SqlRecoveryStore
from shop.recovery.sweep import Sweep
from shop.storage import db
from shop.storage.flex_store import SqlCallLog, SqlOutbox

if TYPE_CHECKING:  # a shop talking to the real Flex never imports the simulator
    from flex_sandbox.shared import SharedSandbox

log = logging.getLogger(__name__)

PROCESSOR_POOL_SIZE = 4  # PostgreSQL connections per process for the processor's ledger
STARTUP_CHECK_SECONDS = 5.0  # the production start-up's token call, at most

# Settings that must all be present to talk to Flex's real sandbox (or production).
REAL_FLEX_SETTINGS = (
    "FLEX_API_URL", "FLEX_APP_KEY", "FLEX_APP_SECRET", "FLEX_MID", "FLEX_TOKENIZATION_KEY",
    "FLEX_SENSEJS_URL",
)
TRANSACTION_TYPES = ("PURCHASE", "AUTHORIZATION")  # FLEX_TRANSACTION_TYPE's values


class ConfigError(RuntimeError):
    """Start-up refused: a setting is missing or still a placeholder."""


@dataclass(frozen=True)
class SenseJS:
    """Where the checkout page loads Flex's SenseJS from, and the ids it is given."""

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
    """What the pages and commands use to take payments: one set per process."""

    client: FlexClient
    flow: CitFlow | ProcessorOnly
    relay: Relay
    call_log: CallLog  # Flex calls and the merchant's own timed steps, per order
    processor: SimulatedProcessor
    sweep: Sweep  # recovery: pending orders, unanswered evaluates, unknown refunds
    sensejs: SenseJS
    mode: str  # shown in the page footer
    sandbox_url: str | None = None  # the embedded sandbox's root URL; None with a real Flex
    sandbox: SharedSandbox | None = None  # the embedded sandbox's process, supervised

    def close(self) -> None:
        """Stops the relay, waits for vault calls in flight, and closes the connections."""
        self.relay.stop()
        self.flow.close()
        self.client.close()
        self.processor.close()


def services() -> Services:
    """This app's services (built by `init_app`)."""
    return current_app.extensions["services"]


def init_app(app: Flask) -> None:
    """Builds this process's services from the settings (raises ConfigError on a bad one) and
    starts the relay thread unless FLEX_RELAY is off."""
    config = app.config
    pending_after = _pending_after(config)  # checked before the sandbox is started
    _transaction_type(config)  # a bad value stops start-up in every mode, sandbox included
    sandbox_url = sandbox = None
    if config.get("FLEX_API_URL"):
        flex_config, sensejs, mode = _real_flex(config)
    elif config["SHOP_ENV"] == "production":
        raise ConfigError(
            "FLEX_API_URL is not set: with SHOP_ENV=production the shop must talk to a real "
            "Flex API; the embedded sandbox simulator is for the demo only."
        )
    else:
        sandbox = _embedded_sandbox(config, sandbox_directory(app))
        flex_config, sensejs, mode, sandbox_url = _sandbox_settings(config, sandbox)

    database = app.extensions["database"]
    call_log = CallLog(SqlCallLog(database))
    client = FlexClient(flex_config, on_call=_on_call(call_log.record))
    if config["SHOP_ENV"] == "production":
        check_credentials(client)
    flow = CitFlow(client) if config["FLEX_ENABLED"] else ProcessorOnly()
    # The processor's ledger is the PSP's own system: connections of its own, so a request
    # holding one of the shop's never waits on the shop's pool to charge a card.
    processor = SimulatedProcessor(db.Database(database.url, PROCESSOR_POOL_SIZE),
                                   config["PROCESSOR_LATENCY_MS"])
    sweep = Sweep(database, client, processor,
                  Recovery(SqlRecoveryStore(database), client,
                           first_delay=lifecycle.FIRST_CHECK_SECONDS),
                  pending_after=pending_after,
                  flex_enabled=bool(config["FLEX_ENABLED"]))
    relay = Relay(SqlOutbox(database), client, poll_interval=config["FLEX_RELAY_POLL_SECONDS"],
                  senders=config["FLEX_RELAY_SENDERS"],
                  also_run=sweep.run)
    app.extensions["services"] = Services(
        client=client,
        flow=flow,
        relay=relay,
        call_log=call_log,
        processor=processor,
        sweep=sweep,
        sensejs=sensejs,
        mode=mode,
        sandbox_url=sandbox_url,
        sandbox=sandbox,
    )
    if config["FLEX_RELAY"]:
        relay.start()
        atexit.register(relay.stop)


def check_credentials(client: FlexClient) -> None:
    """Production start-up authenticates to Flex once: credentials Flex refuses stop it,
    naming the settings; Flex unreachable only warns (a deploy must not depend on Flex being
    up: checkouts degrade by themselves and recovery replays what went unanswered)."""
    try:
        client.authenticate(force=True, deadline=STARTUP_CHECK_SECONDS)
    except FlexAuthError as exc:
        client.close()
        raise ConfigError(
            f"Flex at {client.config.api_url} refused FLEX_APP_KEY/FLEX_APP_SECRET ({exc}): "
            "check both in .env against Flex's portal for this environment."
        ) from None
    except FlexError as exc:
        log.warning("could not reach Flex at %s to check FLEX_APP_KEY/FLEX_APP_SECRET at "
                    "start-up (%s); starting anyway: checkouts degrade until it answers",
                    client.config.api_url, exc)
    else:
        log.info("Flex at %s accepted FLEX_APP_KEY/FLEX_APP_SECRET", client.config.api_url)


def _pending_after(config: dict) -> float:
    """RECOVER_PENDING_AFTER_SECONDS, refused when a checkout still running could be that old:
    recovery would settle an order its own request is about to settle."""
    seconds = float(config["RECOVER_PENDING_AFTER_SECONDS"])
    worst_case = (float(config["FLEX_DEADLINE"]) + MIN_EVALUATE_SECONDS
                  + config["PROCESSOR_LATENCY_MS"] / 1000
                  + float(config.get("DATABASE_RETRY_SECONDS", 0)))
    if seconds <= worst_case:
        raise ConfigError(
            f"RECOVER_PENDING_AFTER_SECONDS ({seconds:g}) must exceed a checkout's worst case "
            f"({worst_case:g} s: FLEX_DEADLINE + {MIN_EVALUATE_SECONDS:g} s + the processor "
            "+ DATABASE_RETRY_SECONDS)."
        )
    return seconds


def _on_call(record):
    """The call log's hook, plus the crash points of the crash tests when SHOP_CRASH_AT is set."""
    if not os.environ.get("SHOP_CRASH_AT"):
        return record

    def record_then_maybe_crash(report):
        record(report)
        crash.after_call(report)

    return record_then_maybe_crash


def _transaction_type(config: dict) -> str:
    """FLEX_TRANSACTION_TYPE: PURCHASE (Flex charges at once) or AUTHORIZATION (Flex
    authorizes; the merchant captures at shipment or cancels)."""
    value = str(config.get("FLEX_TRANSACTION_TYPE") or "PURCHASE").strip().upper()
    if value not in TRANSACTION_TYPES:
        raise ConfigError(f"FLEX_TRANSACTION_TYPE must be PURCHASE or AUTHORIZATION, not "
                          f"{config.get('FLEX_TRANSACTION_TYPE')!r}.")
    return value


def _timeouts(config: dict) -> dict:
    return {
        "connect_timeout": float(config["FLEX_CONNECT_TIMEOUT"]),
        "read_timeout": float(config["FLEX_READ_TIMEOUT"]),
        "deadline": float(config["FLEX_DEADLINE"]),
    }


def _real_flex(config: dict) -> tuple[FlexConfig, SenseJS, str]:
    for name in REAL_FLEX_SETTINGS:
        value = str(config.get(name) or "").strip()
        if not value:
            problem = "is not set"
        elif value.startswith("your-") or "<" in value:
            problem = f"is still the placeholder from .env.example ({value!r})"
        else:
            continue
        raise ConfigError(f"{name} {problem}: FLEX_API_URL is set, so the shop talks to a real "
                          f"Flex API and needs it. Set {name} in .env to the value from Flex's "
                          "portal, or unset FLEX_API_URL to use the embedded sandbox.")
    flex_config = FlexConfig(
        api_url=config["FLEX_API_URL"],
        app_key=config["FLEX_APP_KEY"],
        app_secret=config["FLEX_APP_SECRET"],
        mid=config["FLEX_MID"],
        tokenization_key=config["FLEX_TOKENIZATION_KEY"],
        site_id=config.get("FLEX_SITE_ID") or "",
        transaction_type=_transaction_type(config),
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


def _embedded_sandbox(config: dict, directory: str) -> SharedSandbox:
    # Imported here: a shop talking to the real Flex never loads the simulator.
    from flex_sandbox import shared

    # One sandbox process beside the database, shared by every worker and CLI process that
    # uses it: a card vaulted through one worker is refunded through another. If it dies
    # (kill -9, a crash), the supervisor starts it again on the same port.
    server = shared.join(directory, port=int(config.get("FLEX_SANDBOX_PORT") or 0))
    shared.supervise(server)
    log.info("embedded Flex sandbox at %s", server.url)
    return server


def _sandbox_settings(config: dict, server: SharedSandbox
                      ) -> tuple[FlexConfig, SenseJS, str, str]:
    import flex_sandbox as sandbox

    flex_config = FlexConfig(
        api_url=server.api_url,
        app_key=sandbox.DEFAULT_APP_KEY,
        app_secret=sandbox.DEFAULT_APP_SECRET,
        mid=sandbox.DEFAULT_MID,
        tokenization_key=sandbox.DEFAULT_TOKENIZATION_KEY,
        site_id=sandbox.DEFAULT_SITE_ID,
        transaction_type=_transaction_type(config),
        **_timeouts(config),
    )
    sensejs = SenseJS(f"{server.url}/widget.js", sandbox.DEFAULT_MID, sandbox.DEFAULT_SITE_ID)
    return flex_config, sensejs, f"embedded Flex sandbox at {server.url}", server.url
