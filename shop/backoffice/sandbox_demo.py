"""Demo-only buttons on a rescued order's page that make the embedded sandbox do what only
Flex's portal can (refund part of the order, report a chargeback), so a person watching the
demo sees Flex's webhook arrive and change the order. They exist only with the embedded
sandbox and outside production."""

from __future__ import annotations

import time

import requests
from flask import Blueprint, abort, flash, redirect, session, url_for

from flex.cit import RESCUED
from shop.money import format_dollars
from shop.orders import records
from shop.security import demo_tools
from shop.services import services
from shop.storage.db import get_db
from shop.webhooks import events

bp = Blueprint("sandbox_demo", __name__, url_prefix="/orders")

CONTROL_TIMEOUT = (1.0, 5.0)  # (connect, read) seconds for the sandbox's control endpoints
WEBHOOK_WAIT_SECONDS = 5.0  # how long the button waits to show the webhook's effect


def available() -> bool:
    """The buttons are shown and answer: the embedded sandbox, outside production."""
    return demo_tools() and services().sandbox_url is not None


@bp.app_context_processor
def demo_sandbox() -> dict:
    """Tells the order page to show the buttons. Set here, not by the order page, so that
    deleting this module (and its registration in app.py) leaves no demo tools behind."""
    return {"demo_sandbox": available()}


@bp.post("/<order_id>/simulate/portal-refund")
def portal_refund(order_id: str):
    """Flex's portal refunds half of what remains; Flex then sends order.refunded."""
    order = _rescued_or_404(order_id)
    cents = max(1, order.refundable_cents // 2)
    if not order.refundable_cents:
        flash("Nothing is left to refund.", "error")
    else:
        _simulate(order, "order.refunded", "refund", {"amount_cents": cents},
                  f"Flex's portal refunded {format_dollars(cents)}.")
    return _back_to_the_tools(order_id)


@bp.post("/<order_id>/simulate/chargeback")
def chargeback(order_id: str):
    """The cardholder disputes the charge; Flex sends payment.chargeback.received."""
    order = _rescued_or_404(order_id)
    _simulate(order, "payment.chargeback.received", "chargeback", {},
              "The cardholder disputed the charge.")
    return _back_to_the_tools(order_id)


def _back_to_the_tools(order_id: str):
    """The order page, with the demo tools still open: the next simulation is one click."""
    session["demo_tools_open"] = order_id
    return redirect(url_for("order_page.detail", order_id=order_id), 303)


def _rescued_or_404(order_id: str) -> records.Order:
    if not available():
        abort(404)
    order = records.get(get_db(), order_id)
    if order is None or order.outcome != RESCUED or not order.order_session_key:
        abort(404, "Only an order rescued by Flex has a Flex order to act on.")
    return order


def _simulate(order: records.Order, event_type: str, action: str, body: dict,
              done: str) -> None:
    conn = get_db()
    before = len(_applied(conn, order.id, event_type))
    try:
        requests.post(
            f"{services().sandbox_url}/_sandbox/orders/{order.order_session_key}/{action}",
            json=body, timeout=CONTROL_TIMEOUT).raise_for_status()
    except requests.RequestException as exc:
        flash(f"The sandbox did not do it: {exc}", "error")
        return
    # The sandbox delivers the webhook from its own thread: wait a moment for its effect,
    # so the page shows it (bounded; the order page shows it later anyway).
    deadline = time.monotonic() + WEBHOOK_WAIT_SECONDS
    while len(found := _applied(conn, order.id, event_type)) == before:
        if time.monotonic() > deadline:
            flash(f"{done} Its {event_type} webhook has not arrived yet: reload in a moment.",
                  "info")
            return
        time.sleep(0.05)
    flash(f"{done} Flex's {event_type} webhook arrived: {found[-1].effect}.", "success")


def _applied(conn, order_id: str, event_type: str) -> list[events.StoredEvent]:
    return [event for event in events.for_order(conn, order_id)
            if event.event_type == event_type and event.applied_at is not None]
