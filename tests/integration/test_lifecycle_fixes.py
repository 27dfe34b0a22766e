"""The interleavings that used to lose money state, each ending with the shop agreeing with
Flex's record; and the receiver's 400 for signed bodies it cannot read. Flask test client,
the sandbox in process, Flex's events signed as Flex signs them."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
import requests

from shop.orders import lifecycle, records
from shop.services import services
from shop.storage import db
from tests.support import FLEX_DOWN, RESCUED, db_rows, pay, status_label

KEY = base64.b64encode(b"the lifecycle fixes' webhook key, for tests only").decode()


def deliver(client, event_type: str, order_id: str, session_key: str | None, *,
            stamp: str | None = None, **fields):
    from flex.webhooks import sign

    body = json.dumps({
        "Event": event_type, "TimeStamp": stamp or datetime.now(UTC).isoformat(),
        "EventData": None, "ExternalOrderId": order_id, "OrderId": session_key,
        "ConfirmationId": "22ACD1D9", "IsTestMode": True, "IsResent": False, **fields}).encode()
    return client.post("/webhooks/flex", data=body, headers=sign(body, KEY, "localhost"))


def flex_order(sandbox, order_id: str) -> dict:
    """What Flex holds for our order (the sandbox's own record)."""
    [found] = [o for o in requests.get(f"{sandbox.url}/_sandbox/orders", timeout=5).json()
               if o["merchant_order_id"] == order_id]
    return found


def sweep(app) -> None:
    """One round of the relay's sweep, as if every check were due."""
    with app.app_context():
        services().sweep.run(ahead=3600)


def history(url: str, order_id: str) -> list[tuple[str, str]]:
    """(event type, what it did) for every line of the order's webhook history, in order."""
    return db_rows(url, "SELECT e.event_type, h.what FROM webhook_event_history h"
                        " JOIN webhook_events e ON e.event_id = h.event_id"
                        " WHERE e.order_id = ? ORDER BY h.at", order_id)


@pytest.fixture
def shop(make_app):
    return make_app(FLEX_WEBHOOK_KEY=KEY)


@pytest.mark.storage
def test_a_portal_refund_and_a_chargeback_while_awaiting_confirmation_survive(
        shop, fresh_sandbox, database_url):
    """Card 0119: Flex charged $18.00 but its answer was lost. Before the shop learns it, a
    $5.00 refund is made in Flex's portal and the cardholder disputes the charge. Both events
    used to be stored as "no change" and lost; now each asks Flex and the order converges."""
    client = shop.test_client()
    order_id, page = pay(client, FLEX_DOWN)
    assert status_label(page) == "Awaiting confirmation"
    key = flex_order(fresh_sandbox, order_id)["order_session_key"]
    requests.post(f"{fresh_sandbox.url}/_sandbox/orders/{key}/refund",
                  json={"amount_cents": 500}, timeout=5).raise_for_status()
    requests.post(f"{fresh_sandbox.url}/_sandbox/orders/{key}/chargeback",
                  timeout=5).raise_for_status()

    assert deliver(client, "order.refunded", order_id, key).status_code == 200
    assert deliver(client, "payment.chargeback.received", order_id, key).status_code == 200
    sweep(shop)  # recovery's own lookup finds the order settled: nothing left to do

    with shop.app_context():
        order = records.get(db.get_db(), order_id)
    flex = flex_order(fresh_sandbox, order_id)
    assert (order.outcome, order.refunded_cents, order.chargeback_at is not None) == (
        "rescued", flex["refunded_cents"], flex["chargeback"]) == ("rescued", 500, True)
    assert order.refundable_cents == 0  # no refund offered that Flex would refuse
    assert db_rows(database_url, "SELECT amount_cents, channel, status FROM refunds") == [
        (500, "Flex portal", "succeeded")]
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert status_label(page) == "Chargeback"
    assert db_rows(database_url, "SELECT COUNT(*) FROM webhook_events"
                                 " WHERE applied_at IS NULL") == [(0,)]


@pytest.mark.storage
def test_a_cancel_during_an_inflight_capture_converges_on_flex(make_app, fresh_sandbox,
                                                               database_url):
    """Authorization mode: Capture is sent, Flex captures, its answer is lost; a signed
    order.cancelled and the capture's own order.completed land meanwhile. Both wait for the
    capture's answer; its replay (same idempotency key) makes the order Rescued by Flex, as
    Flex has it, and the kept events then change nothing. It used to end "Declined"."""
    app = make_app(FLEX_WEBHOOK_KEY=KEY, FLEX_TRANSACTION_TYPE="AUTHORIZATION")
    client = app.test_client()
    order_id, page = pay(client, RESCUED)
    assert status_label(page) == "Awaiting capture"
    key = flex_order(fresh_sandbox, order_id)["order_session_key"]
    idempotency_key = str(uuid.uuid4())
    # The capture as a crash or lost answer leaves it: recorded, sent, unanswered.
    db_rows(database_url,
            "INSERT INTO flex_authorization_actions (order_id, action, idempotency_key,"
            " amount_cents, next_attempt_at, created_at) VALUES (?, 'capture', ?, 1800, ?, ?)",
            order_id, idempotency_key, time.time(), time.time())
    with app.app_context():
        services().client.capture(key, 1800, "USD", idempotency_key, ref=order_id)

    assert deliver(client, "order.cancelled", order_id, key).status_code == 200
    assert deliver(client, "order.completed", order_id, key).status_code == 200
    assert status_label(client.get(f"/orders/{order_id}").get_data(as_text=True)) == (
        "Awaiting capture")  # nothing decided while the capture is in flight
    sweep(app)

    assert flex_order(fresh_sandbox, order_id)["status"] == "COMPLETED"
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert status_label(page) == "Rescued by Flex"
    assert 'name="amount"' in page  # refundable, as Flex charged it
    lines = history(database_url, order_id)
    assert lines[0] == ("order.cancelled",
                        "waiting: a capture or cancel is in flight; applied once Flex answers it")
    assert ("order.cancelled", "no change: Flex's record (COMPLETED) agrees with the order") in (
        lines)
    assert ("order.completed", "no change: the order is already rescued") in lines


def test_captured_still_applies_after_a_cancel_event_declined_the_order(app, database_url):
    """Flex's capture answer is the record, even if the order was moved meanwhile."""
    db_rows(database_url, "INSERT INTO orders (id, created_at, outcome, amount_cents, currency,"
            " email, flex_status) VALUES ('o-1', 0, 'declined', 1800, 'USD', 'a@b.c',"
            " 'CAPTUREREQUIRED')")
    with app.app_context():
        assert lifecycle.captured(db.get_db(), "o-1")
        assert records.get(db.get_db(), "o-1").outcome == "rescued"
        assert not lifecycle.captured(db.get_db(), "o-1")  # once


@pytest.mark.parametrize(("fields", "reason"), [
    ({"TimeStamp": "9999-12-31T23:59:59-23:59"}, "body TimeStamp is out of range"),
    ({"TimeStamp": "0001-01-01T00:00:00+01:00"}, "body TimeStamp is out of range"),
    ({"OrderId": "\ud800"}, "body field OrderId is not storable text"),
    ({"ExternalOrderId": "\udfff"}, "body field ExternalOrderId is not storable text"),
    ({"Event": "order.\ud800"}, "body has no Event name"),
    ({"OrderId": "k\x00"}, "body field OrderId is not storable text"),
])
@pytest.mark.storage
def test_a_signed_but_unreadable_event_is_answered_400_and_counted(shop, database_url, fields,
                                                                   reason):
    client = shop.test_client()
    fields = dict(fields)  # shared by both engines' runs
    stamp = fields.pop("TimeStamp", None)
    if "Event" in fields:
        event_type = fields.pop("Event")
    else:
        event_type = "order.refunded"
    answer = deliver(client, event_type, fields.pop("ExternalOrderId", "o-1"),
                     fields.pop("OrderId", "k-1"), stamp=stamp)
    assert answer.status_code == 400
    assert answer.get_json() == {"error": reason}
    assert db_rows(database_url, "SELECT reason, count FROM webhook_rejections") == [(reason, 1)]
    assert db_rows(database_url, "SELECT COUNT(*) FROM webhook_events") == [(0,)]


@pytest.mark.storage
def test_the_event_history_keeps_what_each_attempt_did(shop, fresh_sandbox, database_url):
    """An order.refunded that had to wait for the shop's own refund keeps its "waiting" line
    after it is applied; a redelivery adds a line and changes nothing."""
    client = shop.test_client()
    order_id, _ = pay(client, RESCUED)
    key = flex_order(fresh_sandbox, order_id)["order_session_key"]
    with shop.app_context():
        refund_id = lifecycle.reserve_refund(db.get_db(), order_id, 400, records.FLEX_CHANNEL)
        services().client.refund(key, 400, "Customer request", ref=order_id)  # in flight
    stamp = datetime.now(UTC).isoformat()
    assert deliver(client, "order.refunded", order_id, key, stamp=stamp).status_code == 200
    with shop.app_context():  # the shop's own refund gets its answer
        assert lifecycle.refund_succeeded(db.get_db(), refund_id)
    sweep(shop)
    assert deliver(client, "order.refunded", order_id, key, stamp=stamp,
                   IsResent=True).status_code == 200

    assert [what for _, what in history(database_url, order_id)] == [
        "waiting: a refund from this shop is in flight",
        "no change: Flex's record (COMPLETED) agrees with the order",
        "delivered again: already stored, not applied twice",
    ]
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert "waiting: a refund from this shop is in flight" in page
    assert status_label(page) == "Partially refunded"


def test_a_long_wait_adds_one_history_line_not_one_per_try(shop, fresh_sandbox, database_url):
    from shop.webhooks.effects import apply_due

    client = shop.test_client()
    order_id, _ = pay(client, RESCUED)
    key = flex_order(fresh_sandbox, order_id)["order_session_key"]
    with shop.app_context():  # the shop's own refund is in flight for the whole test
        lifecycle.reserve_refund(db.get_db(), order_id, 400, records.FLEX_CHANNEL)
    assert deliver(client, "order.refunded", order_id, key).status_code == 200
    for _ in range(3):
        db_rows(database_url, "UPDATE webhook_events SET next_attempt_at = 0")
        with shop.app_context():
            assert apply_due(shop.extensions["database"], services().client) == 0
    assert history(database_url, order_id) == [
        ("order.refunded", "waiting: a refund from this shop is in flight")]
    assert db_rows(database_url, "SELECT attempts FROM webhook_events") == [(4,)]
