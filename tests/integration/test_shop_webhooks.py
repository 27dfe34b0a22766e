"""The shop's webhook receiver (POST /webhooks/flex) against real signed deliveries from the
sandbox's sender, and hand-signed ones (flex.webhooks.sign): the shop is served over real
HTTP on a loopback port in a thread so that the sandbox can reach it, and the sandbox is
subscribed to it as a merchant registers its URL in Flex's portal."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

import flex_sandbox
from flex.webhooks import sign
from shop.orders import records
from shop.services import ConfigError, services
from shop.storage import db
from shop.storage.db import get_db
from shop.webhooks.events import SqlNonceStore
from tests.support import (
    FLEX_DOWN,
    RESCUED,
    WEBHOOK_KEY,
    LiveShop,
    clear_faults,
    db_rows,
    deliveries,
    hidden,
    label_of,
    pay,
    set_fault,
    settles_to,
    status_label,
    sweep,
    wait_for,
)


@pytest.fixture
def sandbox():
    """A sandbox per test (not per module): its sender thread, with whatever it still means to
    deliver, ends with the test."""
    with flex_sandbox.serve(port=0) as server:
        yield server


def event(name: str, order_id: str | None, session_key: str | None, **fields) -> dict:
    return {"Event": name, "TimeStamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "EventData": None, "ExternalOrderId": order_id, "OrderId": session_key,
            "ConfirmationId": "22ACD1D9", "IsTestMode": True, "IsResent": False, **fields}


def stored_events(url: str, order_id: str | None = None) -> list[tuple]:
    columns = "event_type, is_resent, deliveries, applied_at IS NOT NULL, effect"
    if order_id is None:
        return db_rows(url, f"SELECT {columns} FROM webhook_events ORDER BY received_at")  # noqa: S608
    return db_rows(url, f"SELECT {columns} FROM webhook_events WHERE order_id = ?"  # noqa: S608
                        " ORDER BY received_at", order_id)


def refunds_of(url: str, order_id: str) -> list[tuple]:
    return db_rows(url, "SELECT amount_cents, channel, status FROM refunds WHERE order_id = ?"
                        " ORDER BY id", order_id)


def session_key(client, order_id: str) -> str:
    with client.application.app_context():
        return records.get(get_db(), order_id).order_session_key


@pytest.mark.storage
def test_order_completed_settles_an_order_awaiting_confirmation(webhook_shop, client, fresh_sandbox,
                                                                database_url):
    app, _ = webhook_shop
    order_id, page = pay(client, FLEX_DOWN)  # Flex decides APPROVED; its answer is lost
    assert status_label(page) == "Awaiting confirmation"
    assert settles_to(app, client, order_id, "Rescued by Flex")
    flex_orders = requests.get(f"{fresh_sandbox.url}/_sandbox/orders", timeout=5).json()
    [key] = [o["order_session_key"] for o in flex_orders if o["merchant_order_id"] == order_id]
    assert session_key(client, order_id) == key
    completed = [e for e in stored_events(database_url, order_id) if e[0] == "order.completed"]
    assert completed == [("order.completed", 0, 1, True,
                          "Awaiting confirmation → Rescued by Flex")]
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert "Awaiting confirmation → Rescued by Flex" in page  # on the order's timeline
    assert [d["delivered"] for d in deliveries(fresh_sandbox)] == [True]


@pytest.mark.storage
def test_a_refund_in_flex_portal_shows_on_the_order(webhook_shop, client, fresh_sandbox,
                                                    database_url):
    app, _ = webhook_shop
    order_id, _ = pay(client, RESCUED)  # $18.00
    key = session_key(client, order_id)
    portal = f"{fresh_sandbox.url}/_sandbox/orders/{key}/refund"
    requests.post(portal, json={"amount_cents": 700}, timeout=5).raise_for_status()
    assert settles_to(app, client, order_id, "Partially refunded")
    assert refunds_of(database_url, order_id) == [(700, "Flex portal", "succeeded")]
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert "Amount refunded</dt><dd>$7.00" in page
    assert "Up to $11.00" in page  # what remains refundable follows
    requests.post(portal, json={"amount_cents": 1100}, timeout=5).raise_for_status()
    assert settles_to(app, client, order_id, "Refunded")
    assert refunds_of(database_url, order_id) == [(700, "Flex portal", "succeeded"),
                                                  (1100, "Flex portal", "succeeded")]


@pytest.mark.storage
def test_the_shops_own_refund_is_not_counted_again_by_its_webhook(webhook_shop, client,
                                                                  fresh_sandbox, database_url):
    app, _ = webhook_shop
    order_id, _ = pay(client, RESCUED)
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    # Flex refunds, then answers half a second later: its order.refunded arrives while the
    # shop's refund is still in flight, and must wait for the refund's own answer.
    set_fault(fresh_sandbox, "refund", delay_ms=500, times=1)
    client.post(f"/orders/{order_id}/refund",
                data={"csrf_token": hidden(page, "csrf_token"), "amount": "5.00"})
    assert wait_for(lambda: sweep(app) is not None and any(
        e[0] == "order.refunded" and e[3] for e in stored_events(database_url, order_id)))
    assert refunds_of(database_url, order_id) == [(500, "Flex", "succeeded")]
    assert label_of(client, order_id) == "Partially refunded"


@pytest.mark.storage
def test_a_chargeback_shows_chargeback_and_stops_refunds(webhook_shop, client, fresh_sandbox,
                                                        database_url):
    app, _ = webhook_shop
    order_id, _ = pay(client, RESCUED)
    key = session_key(client, order_id)
    requests.post(f"{fresh_sandbox.url}/_sandbox/orders/{key}/chargeback",
                  timeout=5).raise_for_status()
    assert settles_to(app, client, order_id, "Chargeback")
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert 'class="status status-chargeback"' in page
    assert "Rescued by Flex → Chargeback" in page
    assert 'id="refund"' not in page  # the bank gave the money back: no refund on top


@pytest.mark.storage
def test_a_replayed_delivery_is_refused_and_changes_nothing(webhook_shop, client, database_url):
    app, live = webhook_shop
    order_id, _ = pay(client, RESCUED)
    body = json.dumps(event("payment.chargeback.received", order_id,
                            session_key(client, order_id))).encode()
    headers = sign(body, WEBHOOK_KEY, live.host)
    first = requests.post(live.webhook_url, data=body, headers=headers, timeout=10)
    assert first.status_code == 200
    replay = requests.post(live.webhook_url, data=body, headers=headers, timeout=10)
    assert replay.status_code == 401
    assert "replay" in replay.json()["error"]
    assert [e[2] for e in stored_events(database_url, order_id)
            if e[0] == "payment.chargeback.received"] == [1]  # one delivery counted
    assert db_rows(database_url, "SELECT reason, count FROM webhook_rejections") == [
        ("x-fc-nonce was used before (replay)", 1)]


@pytest.mark.storage
def test_a_resent_event_is_accepted_and_changes_nothing(webhook_shop, client, fresh_sandbox,
                                                       database_url):
    app, _ = webhook_shop
    order_id, _ = pay(client, RESCUED)
    key = session_key(client, order_id)
    requests.post(f"{fresh_sandbox.url}/_sandbox/orders/{key}/refund",
                  json={"amount_cents": 600}, timeout=5).raise_for_status()
    assert settles_to(app, client, order_id, "Partially refunded")
    before = refunds_of(database_url, order_id)
    sent = len(deliveries(fresh_sandbox))
    requests.post(f"{fresh_sandbox.url}/_sandbox/webhooks/resend/{key}",
                  timeout=5).raise_for_status()  # the same event, IsResent: true, new nonce
    assert wait_for(lambda: [(d["is_resent"], d["last_status"])
                             for d in deliveries(fresh_sandbox)[sent:]] == [(True, 200)])
    sweep(app)
    assert refunds_of(database_url, order_id) == before == [(600, "Flex portal", "succeeded")]
    refunded = [e for e in stored_events(database_url, order_id) if e[0] == "order.refunded"]
    assert [(e[1], e[2]) for e in refunded] == [(0, 2)]  # stored once, two deliveries


def _tampered_body(live, body):
    raw = json.dumps(body).encode()
    return requests.post(live.webhook_url, data=raw.replace(b"22ACD1D9", b"22ACD1DA"),
                         headers=sign(raw, WEBHOOK_KEY, live.host), timeout=10)


@pytest.mark.storage
@pytest.mark.parametrize(("case", "send", "reason"), [
    ("tampered body", _tampered_body, "x-fc-content-sha512 does not match the body"),
    ("other key", lambda live, body: live.post(
        body, key=base64.b64encode(b"not the subscriber key").decode()),
     "signature does not match"),
    ("forged signature", lambda live, body: live.post(body, headers={
        "x-fc-authorization": "HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;"
                              "x-fc-content-sha512&Signature=" + base64.b64encode(
                                  b"x" * 64).decode()}),
     "signature does not match"),
    ("stale date", lambda live, body: live.post(
        body, date=datetime.now(UTC) - timedelta(minutes=6)), "x-fc-date is older than 300 s"),
    ("no signature", lambda live, body: live.post(body, headers={"x-fc-authorization": ""}),
     "missing header x-fc-authorization"),
])
def test_a_forged_or_stale_delivery_is_refused_and_nothing_stored(webhook_shop, client,
                                                                 database_url, case, send,
                                                                 reason):
    app, live = webhook_shop
    order_id, _ = pay(client, RESCUED)
    body = event("payment.chargeback.received", order_id, session_key(client, order_id))
    answer = send(live, body)
    assert answer.status_code == 401
    assert answer.json() == {"error": reason}
    assert "payment.chargeback.received" not in [e[0] for e in stored_events(database_url)]
    assert db_rows(database_url, "SELECT reason, count FROM webhook_rejections") == [(reason, 1)]
    assert label_of(client, order_id) == "Rescued by Flex"


@pytest.mark.storage
def test_an_unknown_event_type_or_order_is_stored_and_ignored(webhook_shop, database_url):
    _, live = webhook_shop
    assert live.post(event("payout.created.v2", None, "fa4c0e7a")).status_code == 200
    assert live.post(event("order.completed", "not-our-order", "b1d2")).status_code == 200
    assert sorted(stored_events(database_url)) == [
        ("order.completed", 0, 1, True, "unknown order"),
        ("payout.created.v2", 0, 1, True, "unknown order"),
    ]
    assert db_rows(database_url, "SELECT COUNT(*) FROM webhook_rejections") == [(0,)]


@pytest.mark.storage
def test_an_unknown_event_type_for_our_order_is_ignored(webhook_shop, client, database_url):
    _, live = webhook_shop
    order_id, _ = pay(client, RESCUED)
    answer = live.post(event("challenge.presented", order_id, session_key(client, order_id)))
    assert answer.status_code == 200
    assert ("challenge.presented", 0, 1, True, "ignored: this shop does not act on it") in (
        stored_events(database_url, order_id))
    assert label_of(client, order_id) == "Rescued by Flex"


@pytest.mark.storage
def test_a_refund_left_unknown_is_settled_by_order_refunded(webhook_shop, client, fresh_sandbox,
                                                           database_url):
    app, _ = webhook_shop
    order_id, page = pay(client, RESCUED)
    set_fault(fresh_sandbox, "refund", hang=True, times=1)  # Flex refunds; its answer is lost
    try:
        client.post(f"/orders/{order_id}/refund",
                    data={"csrf_token": hidden(page, "csrf_token"), "amount": "4.00"})
        assert refunds_of(database_url, order_id) == [(400, "Flex", "unknown")]
    finally:
        clear_faults(fresh_sandbox)
    # Flex's order.refunded arrived while the refund was in flight: it waited, then settles it.
    assert wait_for(lambda: sweep(app) is not None
                    and refunds_of(database_url, order_id) == [(400, "Flex", "succeeded")])
    assert label_of(client, order_id) == "Partially refunded"
    [refunded] = [e for e in stored_events(database_url, order_id) if e[0] == "order.refunded"]
    assert refunded[4] == ("Rescued by Flex → Partially refunded: "
                           "confirmed the $4.00 refund Flex had not answered")


def test_real_mode_without_a_key_answers_503(make_app, fresh_sandbox, caplog):
    app = make_app()
    assert "FLEX_WEBHOOK_KEY is not set" in caplog.text
    answer = app.test_client().post("/webhooks/flex", data=b"{}")
    assert answer.status_code == 503
    assert answer.get_json() == {"error": "webhooks not configured"}


def test_a_key_that_is_not_base64_stops_start_up(make_app):
    with pytest.raises(ConfigError, match="FLEX_WEBHOOK_KEY is not valid base64"):
        make_app(FLEX_WEBHOOK_KEY="not base64!")


def test_the_signed_host_can_be_set_for_a_proxy_that_rewrites_host(make_app):
    """Flex signed the public host; the proxy in front delivers with its own Host header."""
    raw = json.dumps(event("payout.created", None, None)).encode()
    public = sign(raw, WEBHOOK_KEY, "shop.example.com")
    as_delivered = {**public, "host": "10.0.0.7:8000"}
    strict = make_app(FLEX_WEBHOOK_KEY=WEBHOOK_KEY).test_client()
    assert strict.post("/webhooks/flex", data=raw, headers=as_delivered).status_code == 401
    behind_proxy = make_app(FLEX_WEBHOOK_KEY=WEBHOOK_KEY, FLEX_WEBHOOK_HOST="shop.example.com")
    answer = behind_proxy.test_client().post("/webhooks/flex", data=raw, headers=as_delivered)
    assert answer.status_code == 200, answer.get_json()


@pytest.mark.storage
def test_order_cancelled_while_awaiting_confirmation_asks_flex_first(webhook_shop, client,
                                                                     fresh_sandbox,
                                                                     database_url):
    """A destructive event is checked against Flex's record: this order.cancelled names an
    order Flex in fact charged (its answer was lost), so the order becomes Rescued by Flex."""
    app, live = webhook_shop
    requests.put(f"{fresh_sandbox.url}/_sandbox/webhooks", json={"lost_answer_delay": 3600},
                 timeout=5).raise_for_status()  # Flex's own order.completed stays held back
    order_id, page = pay(client, FLEX_DOWN)
    assert status_label(page) == "Awaiting confirmation"
    assert live.post(event("order.cancelled", order_id, None)).status_code == 200
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert status_label(page) == "Rescued by Flex"
    [(*_, outcome)] = stored_events(database_url, order_id)
    assert outcome == "Awaiting confirmation → Rescued by Flex: Flex's order is COMPLETED"


def test_the_nonce_store_refuses_a_nonce_until_it_expires_then_forgets_it(database_url):
    db.migrate(database_url)
    database, now = db.Database(database_url), [1000.0]
    nonces = SqlNonceStore(database, clock=lambda: now[0])
    try:
        assert nonces.seen_before("n1", expires_at=1300) is False
        assert nonces.seen_before("n1", expires_at=1300) is True
        now[0] = 1300.5  # past n1's expiry: pruned by the next check
        assert nonces.seen_before("n2", expires_at=1600) is False
        assert db_rows(database_url, "SELECT nonce FROM webhook_nonces") == [("n2",)]
    finally:
        database.close()


@pytest.mark.storage
def test_order_expired_asks_flex_before_ending_an_authorization(make_app, fresh_sandbox,
                                                                database_url):
    """Authorization mode: a destructive event is checked against Flex's record first. A
    signed order.expired that Flex's order contradicts (still CAPTUREREQUIRED) changes
    nothing; once Flex has voided the hold, the same event ends the order: not charged."""
    app = make_app(FLEX_WEBHOOK_KEY=WEBHOOK_KEY, FLEX_TRANSACTION_TYPE="AUTHORIZATION")
    live = LiveShop(app)
    try:
        client = app.test_client()
        order_id, page = pay(client, RESCUED)
        assert status_label(page) == "Awaiting capture"
        key = session_key(client, order_id)
        assert live.post(event("order.expired", order_id, key)).status_code == 200
        assert label_of(client, order_id) == "Awaiting capture"
        assert ("order.expired", 0, 1, True,
                "no change: Flex's record (CAPTUREREQUIRED) agrees with the order") in (
            stored_events(database_url, order_id))

        with app.app_context():  # Flex voids the hold (in its portal, or at its deadline)
            services().client.cancel(key, ref=order_id)
        assert live.post(event("order.expired", order_id, key)).status_code == 200
        page = client.get(f"/orders/{order_id}").get_data(as_text=True)
        assert status_label(page) == "Declined"
        assert ">Capture</button>" not in page
        assert "not charged" in page
        assert ("order.expired", 0, 1, True,
                "Awaiting capture → Declined: Flex's order is CANCELLED") in (
            stored_events(database_url, order_id))
    finally:
        live.stop()
