"""Every cell of the order lifecycle table (shop/orders/lifecycle.py TABLE): an order is put in each
state against the sandbox, Flex's signed event for it is delivered to the receiver, and the
cell's rule is checked: APPLY changes the order now, WAIT keeps the event and the sweep
applies it once the order settles, ASK looks Flex's order up and ends agreeing with it, SAME
and KEEP change nothing. Whatever the cell, once settled no event is left unapplied and the
order agrees with Flex's record.

One shop per mode for the whole module (Flask test client, in-process sandbox), a new order
per cell: cheap enough for `make test`."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
import requests

from app import create_app
from flex.models import Address, CardSummary, LineItem, Purchase
from flex.webhooks import sign
from shop.orders import lifecycle, records
from shop.orders.lifecycle import EVENTS, TABLE, Rule, State
from shop.services import services
from shop.storage.db import connect
from shop.wording import status_label
from tests.support import APPROVED, FLEX_DECLINED, FLEX_DOWN, RESCUED, close_app, flex_settings, pay

KEY = base64.b64encode(b"the lifecycle table's webhook key, for tests only").decode()
HOST = "localhost"  # the test client's Host header, which Flex would have signed


@pytest.fixture(scope="module")
def shops(sandbox, tmp_path_factory):
    """{"sale": app, "authorization": app}: one shop per transaction type."""
    apps = {}
    for mode, kind in (("sale", "PURCHASE"), ("authorization", "AUTHORIZATION")):
        url = f"sqlite:///{tmp_path_factory.mktemp(mode) / 'shop.sqlite'}"
        apps[mode] = create_app({
            "TESTING": True, "DATABASE_URL": url, **flex_settings(sandbox),
            "FLEX_RELAY": False, "FLEX_READ_TIMEOUT": 2.0, "FLEX_DEADLINE": 3.0,
            "PROCESSOR_LATENCY_MS": 0, "FLEX_WEBHOOK_KEY": KEY,
            "FLEX_TRANSACTION_TYPE": kind,
        })
    yield apps
    for app in apps.values():
        close_app(app)


def _conn(app):
    return connect(app.config["DATABASE_URL"])


def _order(app, order_id: str) -> records.Order:
    conn = _conn(app)
    try:
        return records.get(conn, order_id)
    finally:
        conn.close()


def _flex_order(sandbox, order_id: str) -> dict | None:
    """The sandbox's own record of the Flex order for our order id (what Flex holds)."""
    found = [o for o in requests.get(f"{sandbox.url}/_sandbox/orders", timeout=5).json()
             if o["merchant_order_id"] == order_id]
    return max(found, key=lambda o: o["seq"]) if found else None


def _pending(app) -> str:
    """An order whose checkout is still running (its row, no result yet)."""
    order_id = str(uuid.uuid4())
    purchase = Purchase(order_id, 1800, "USD", "ann@example.com",
                        Address("1 Main St", "Springfield", "IL", "62701", "US"),
                        (LineItem("mug", "Mug", 1, 1800),), "203.0.113.7", order_id)
    conn = _conn(app)
    try:
        card = CardSummary("VISA", "400000", "0002", 12, 2030, "Ann Lee")
        assert lifecycle.create(conn, purchase, card)
    finally:
        conn.close()
    return order_id


def _capturing(app) -> str:
    """Awaiting capture, with a capture sent and not answered yet (as after a lost answer)."""
    order_id, _ = pay(app.test_client(), RESCUED)
    conn = _conn(app)
    try:
        with conn:
            conn.execute(
                "INSERT INTO flex_authorization_actions (order_id, action, idempotency_key,"
                " amount_cents, next_attempt_at, created_at) VALUES (?, 'capture', ?, 1800,"
                " ?, ?)", (order_id, str(uuid.uuid4()), time.time(), time.time()))
    finally:
        conn.close()
    return order_id


# state -> (shop mode, how to make an order in it)
MAKE = {
    State.PENDING: ("sale", _pending),
    State.AWAITING_CONFIRMATION: ("sale", lambda app: pay(app.test_client(), FLEX_DOWN)[0]),
    State.PAID: ("sale", lambda app: pay(app.test_client(), APPROVED)[0]),
    State.RESCUED: ("sale", lambda app: pay(app.test_client(), RESCUED)[0]),
    State.AUTHORIZED: ("authorization", lambda app: pay(app.test_client(), RESCUED)[0]),
    State.CAPTURING: ("authorization", _capturing),
    State.DECLINED: ("sale", lambda app: pay(app.test_client(), FLEX_DECLINED)[0]),
}

# What the order page shows for each Flex order status, once the shop agrees with Flex.
AGREES = {"COMPLETED": {"Rescued by Flex", "Partially refunded", "Refunded", "Chargeback"},
          "RETURNED": {"Refunded", "Chargeback"}, "CAPTUREREQUIRED": {"Awaiting capture"},
          "CANCELLED": {"Declined"}, None: {"Declined", "Paid"}}


def deliver(app, event_type: str, order_id: str, session_key: str | None):
    body = json.dumps({
        "Event": event_type, "TimeStamp": datetime.now(UTC).isoformat(), "EventData": None,
        "ExternalOrderId": order_id, "OrderId": session_key, "ConfirmationId": "22ACD1D9",
        "IsTestMode": True, "IsResent": False}).encode()
    return app.test_client().post("/webhooks/flex", data=body, headers=sign(body, KEY, HOST))


def stored(app, order_id: str) -> tuple[bool, str | None, list[str]]:
    """(applied, outcome, history lines) of the one event stored for the order."""
    conn = _conn(app)
    try:
        [(event_id, applied, outcome)] = conn.execute(
            "SELECT event_id, applied_at IS NOT NULL, effect FROM webhook_events"
            " WHERE order_id = ?", (order_id,)).fetchall()
        history = [row[0] for row in conn.execute(
            "SELECT what FROM webhook_event_history WHERE event_id = ? ORDER BY at",
            (event_id,))]
    finally:
        conn.close()
    return bool(applied), outcome, history


def flex_lookups(sandbox) -> int:
    return len(requests.get(f"{sandbox.url}/_sandbox/calls", timeout=5,
                            params={"endpoint": "order"}).json()) + len(
        requests.get(f"{sandbox.url}/_sandbox/calls", timeout=5,
                     params={"endpoint": "orders"}).json())


CELLS = [(state, event) for state in State for event in EVENTS]


@pytest.mark.parametrize(("state", "event_type"), CELLS,
                         ids=[f"{s.name.lower()}-{e.value}" for s, e in CELLS])
def test_cell(shops, sandbox, state, event_type):
    mode, make = MAKE[state]
    app = shops[mode]
    order_id = make(app)
    before = _order(app, order_id)
    assert lifecycle.state(before) is state
    flex = _flex_order(sandbox, order_id)
    key = flex["order_session_key"] if flex else f"not-at-flex-{order_id[:8]}"
    asked_before = flex_lookups(sandbox)

    answer = deliver(app, str(event_type), order_id, key)

    assert answer.status_code == 200, answer.get_json()
    applied, outcome, history = stored(app, order_id)
    rule = TABLE[state][event_type]
    after = _order(app, order_id)
    if rule is Rule.WAIT:
        assert not applied and history and history[-1].startswith("waiting: ")
    else:
        assert applied and history == [outcome]
    if rule is Rule.ASK:
        assert flex_lookups(sandbox) > asked_before  # Flex's record was read first
    else:
        assert flex_lookups(sandbox) == asked_before
    if rule in (Rule.SAME, Rule.KEEP):
        assert outcome.startswith(("no change", "kept", "ignored"))
        assert status_label(after) == status_label(before)
    if rule is Rule.APPLY:
        assert status_label(after) != status_label(before)

    # Settle as the relay does: the kept event is applied, and the order agrees with Flex.
    with app.app_context():
        services().sweep.run(ahead=3600)
    applied, outcome, history = stored(app, order_id)
    assert applied, history
    flex = _flex_order(sandbox, order_id)
    settled = _order(app, order_id)
    assert status_label(settled) in AGREES[flex and flex["status"]], (outcome, flex)


def test_the_table_has_every_cell_and_no_cell_drops_an_event():
    assert set(TABLE) == set(State)
    assert all(set(row) == set(EVENTS) for row in TABLE.values())
    assert {rule for row in TABLE.values() for rule in row.values()} <= set(Rule)
    # Only the processor's own orders keep Flex's events without acting (Flex holds no money).
    assert {state for state, row in TABLE.items() if Rule.KEEP in row.values()} == {State.PAID}

