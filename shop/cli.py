"""Command-line tools: `flask flex relay|recover|check` and `flask shop migrate|reset`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from flex.errors import FlexError
from flex.recovery import LATER
from shop.orders import lifecycle
from shop.services import services
from shop.storage import db

flex_cli = AppGroup("flex", help="The Flex integration.")
shop_cli = AppGroup("shop", help="The demo shop.")


@flex_cli.command("relay")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
def relay_command(once: bool) -> None:
    """Deliver queued /transmit calls, as a process of its own (production: run one beside
    web workers started with FLEX_RELAY=0)."""
    relay = services().relay
    if once:
        click.echo(f"delivered {relay.run_once()}")
        return
    click.echo("relaying queued transmits; Ctrl+C to stop", err=True)
    relay.start().join()  # one relay loop per process, even if FLEX_RELAY started it already


@flex_cli.command("recover")
@click.option("--ahead", type=float, default=0.0, metavar="SECONDS",
              help="Treat the clock as SECONDS ahead: settle what would be due by then.")
def recover_command(ahead: float) -> None:
    """Settle what is due: pending orders a crash left behind, unanswered /evaluate calls,
    refunds whose answer is unknown, unanswered captures and cancels, webhook events that had
    to wait. Prints one line per item (the relay runs this too)."""
    report = services().sweep.run(ahead=ahead)
    for item in report.settled:
        click.echo(f"{item.kind} {item.order_id}: {item.result} ({item.reason})")
    settled = sum(1 for item in report.settled if item.result != LATER)
    click.echo(f"settled {settled} item(s), {len(report.settled) - settled} to check again "
               f"later; {report.authorizations} capture/cancel(s) answered; "
               f"{report.webhooks} webhook event(s) applied")


@flex_cli.command("check")
def check_command() -> None:
    """Authenticate to Flex with the configured credentials and report the result."""
    client = services().client
    try:
        client.authenticate(force=True)
    except FlexError as exc:
        raise click.ClickException(
            f"Flex token call to {client.config.api_url} failed: {exc}"
        ) from exc
    click.echo(f"OK: authenticated to {client.config.api_url} (mid {client.config.mid})")


@shop_cli.command("migrate")
def migrate_command() -> None:
    """Apply pending schema migrations (start-up does too) and print the schema version."""
    url = db.database().url
    applied = db.migrate(url)
    for name in applied:
        click.echo(f"applied {name}")
    click.echo(f"schema at version {db.schema_version(url)} ({db.engine_of(url)})")


@shop_cli.command("reset")
def reset_command() -> None:
    """Remove every order, refund, queued transmit and logged Flex call."""
    with db.database().connection() as conn:
        lifecycle.forget_all(conn)
    click.echo("demo reset: all orders removed")


def init_app(app: Flask) -> None:
    app.cli.add_command(flex_cli)
    app.cli.add_command(shop_cli)
