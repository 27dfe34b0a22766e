"""The interleavings issue 18 found losing money state, end to end: the Flask test client
against the sandbox over loopback HTTP, Flex's webhooks delivered by the test (signed as
Flex signs them) exactly when each scenario needs them, time moved on the shop's clock.
Each ends settled (every event delivered, the recovery sweep and the relay run) and checks
that the shop's order agrees with Flex's record (GET /v1/orders/{key}; the chargeback from
the sandbox's own view)."""

from __future__ import annotations

import html
import json
import re
from types import SimpleNamespace

import pytest
import requests

from tests.support import (
    FLEX_DOWN,
    RESCUED,
    WEBHOOK_KEY,
    CallHooks,
    Courier,
    ShopClock,
    agreement,
    db_rows,
    event_body,
    flex_record,
    hidden,
    pay,
    settle,
    shop_record,
    status_label,
)

pytestmark = [pytest.mark.lifecycle, pytest.mark.storage]  # SQLite and PostgreSQL

AUTHORIZATION = {"FLEX_TRANSACTION_TYPE": "AUTHORIZATION"}


@pytest.fixture
def shop(make_app, fresh_sandbox, database_url, monkeypatch):
    """Builds the shop (settings as keyword arguments) with its clock, Flex's courier and
    hooks on its Flex calls; `settle()` and `agrees(order_id)` finish a scenario."""
    clock = ShopClock().install(monkeypatch)

    def build(**settings):
        app = make_app(FLEX_WEBHOOK_KEY=WEBHOOK_KEY, **settings)
        courier = Courier(fresh_sandbox, app, clock)
        return SimpleNamespace(
            app=app, client=app.test_client(), courier=courier, clock=clock,
            hooks=CallHooks(app), database_url=database_url,
            settle=lambda: settle(app, courier, clock),
            agreement=lambda order_id: agreement(fresh_sandbox, app, order_id),
            flex=lambda order_id: flex_record(fresh_sandbox, app, order_id),
            shop=lambda order_id: shop_record(app, order_id))

    return build


def sweep(s) -> None:
    """The recovery sweep as the relay runs it, a day later on the shop's clock."""
    s.clock.advance(24 * 3600)
    with s.app.app_context():
        s.app.extensions["services"].sweep.run()


def click(client, order_id: str, action: str, **fields):
    """Posts one of the order page's forms (refund, capture, cancel); the page it leads to."""
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    answer = client.post(f"/orders/{order_id}/{action}",
                         data={"csrf_token": hidden(page, "csrf_token"), **fields})
    assert answer.status_code in (302, 303), answer.get_data(as_text=True)[:300]
    return client.get(answer.headers["Location"]).get_data(as_text=True)


def webhook_history(client, order_id: str) -> list[tuple[str, str]]:
    """The order page's "Webhooks from Flex" table as (event, what it did) lines, in order:
    a row's last cell may hold several lines (one per attempt), separated by <br>."""
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    section = page.split("Webhooks from Flex", 1)[1].split("</table>", 1)[0]
    lines = []
    for row in re.findall(r"<tr>(.*?)</tr>", section, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        if cells:
            lines += [(_text(cells[1]), _text(line))
                      for line in re.split(r"<br\s*/?>", cells[-1])]
    return lines


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_a_portal_refund_and_a_chargeback_while_awaiting_confirmation_are_not_lost(
        shop, fresh_sandbox):
    s = shop()
    order_id, page = pay(s.client, FLEX_DOWN)  # $18.00: Flex approves, the answer is lost
    assert status_label(page) == "Awaiting confirmation"
    [completed] = s.courier.collect()  # held back, as by the sandbox's 60 s lost-answer delay
    assert completed.event == "order.completed"
    portal = f"{fresh_sandbox.url}/_sandbox/orders/{completed.order_session_key}"
    requests.post(f"{portal}/refund", json={"amount_cents": 500}, timeout=5).raise_for_status()
    requests.post(f"{portal}/chargeback", timeout=5).raise_for_status()
    refunded, chargeback = s.courier.collect()
    assert (refunded.event, chargeback.event) == ("order.refunded",
                                                  "payment.chargeback.received")
    for sent in (refunded, chargeback):  # they arrive while the shop still awaits Flex
        assert s.courier.deliver(sent).status_code == 200

    sweep(s)  # recovery finds Flex's decision by lookup before order.completed arrives
    s.settle()

    assert s.agreement(order_id) == []
    flex = s.flex(order_id)
    assert (flex.status, flex.refunded_cents, flex.chargeback) == ("COMPLETED", 500, True)
    order = s.shop(order_id)
    assert (order.label, order.refunded_cents, order.chargeback) == ("Chargeback", 500, True)
    assert 'id="refund"' not in s.client.get(f"/orders/{order_id}").get_data(as_text=True)


def test_order_cancelled_during_a_capture_converges_on_flex(shop):
    s = shop(**AUTHORIZATION)
    order_id, page = pay(s.client, RESCUED)
    assert status_label(page) == "Awaiting capture"
    s.courier.deliver_all()
    key = s.flex(order_id).key
    answers = []
    # Flex has captured; before its answer reaches the shop, a signed order.cancelled lands.
    s.hooks.during["capture"] = lambda: answers.append(
        s.courier.post(event_body("order.cancelled", order_id, key)))

    click(s.client, order_id, "capture")
    assert [a.status_code for a in answers] == [200]
    s.settle()

    assert s.flex(order_id).status == "COMPLETED"  # Flex charged the card
    assert s.agreement(order_id) == []
    assert s.shop(order_id).label == "Rescued by Flex"  # refundable, as Flex charged it


UNPARSABLE = {
    "a TimeStamp past year 9999 in UTC": {"TimeStamp": "9999-12-31T23:59:59-23:59"},
    "a TimeStamp before year 1 in UTC": {"TimeStamp": "0001-01-01T00:00:00+01:00"},
    "an OrderId that is a lone surrogate": {"OrderId": "\ud800"},
}


@pytest.mark.parametrize("fields", UNPARSABLE.values(), ids=list(UNPARSABLE))
def test_a_signed_event_that_cannot_be_parsed_is_answered_400_and_recorded(shop, fields):
    s = shop()
    order_id, _ = pay(s.client, RESCUED)
    s.courier.deliver_all()
    key = s.flex(order_id).key
    raw = json.dumps(event_body("payment.chargeback.received", order_id, key,
                                **fields)).encode()  # valid JSON: "\ud800" is escaped

    answer = s.courier.post(raw)

    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    assert answer.is_json and answer.get_json().get("error")  # says why
    assert refusals(s.database_url) == [(answer.get_json()["error"], 1)]  # recorded
    s.settle()
    assert s.agreement(order_id) == []
    assert s.shop(order_id).label == "Rescued by Flex"


def refusals(url: str) -> list[tuple]:
    """The receiver's record of deliveries it refused: (reason, count)."""
    return db_rows(url, "SELECT reason, count FROM webhook_rejections")


def test_a_signed_order_expired_does_not_decline_an_authorization_flex_still_holds(shop):
    s = shop(**AUTHORIZATION)
    order_id, _ = pay(s.client, RESCUED)
    s.courier.deliver_all()
    key = s.flex(order_id).key

    assert s.courier.post(event_body("order.expired", order_id, key)).status_code == 200
    s.settle()

    assert s.flex(order_id).status == "CAPTUREREQUIRED"  # Flex still holds it for capture
    assert s.agreement(order_id) == []
    assert s.shop(order_id).label == "Awaiting capture"
    page = click(s.client, order_id, "capture")  # and the merchant can still capture it
    assert status_label(page) == "Rescued by Flex"
    s.settle()
    assert s.flex(order_id).status == "COMPLETED"
    assert s.agreement(order_id) == []


def test_a_deliverys_row_in_the_webhook_history_keeps_what_it_did_at_the_time(shop):
    s = shop()
    order_id, _ = pay(s.client, RESCUED)  # $18.00
    s.courier.deliver_all()
    answers = []
    # Flex refunds and sends order.refunded; it arrives before the refund's own answer.
    s.hooks.during["refund"] = lambda: answers.extend(s.courier.deliver_all("order.refunded"))

    click(s.client, order_id, "refund", amount="5.00")
    assert [a.status_code for a in answers] == [200]
    before = webhook_history(s.client, order_id)
    [at_the_time] = [what for event, what in before if event == "order.refunded"]
    s.settle()

    after = webhook_history(s.client, order_id)
    assert all(line in after for line in before), (before, after)  # nothing rewritten
    if "waiting" in at_the_time:  # what it did once applied is a line of its own
        assert [what for event, what in after if event == "order.refunded"][-1] != at_the_time
    assert s.agreement(order_id) == []
    assert (s.shop(order_id).label, s.flex(order_id).refunded_cents) == (
        "Partially refunded", 500)


def test_order_expired_while_an_authorization_awaits_confirmation_converges_on_flex(shop):
    """Found by the lifecycle model on main: in authorization mode, an order whose /evaluate
    answer was lost took a signed order.expired as final ("Declined, not charged") and was
    never voided, while Flex went on holding the authorization (CAPTUREREQUIRED)."""
    s = shop(**AUTHORIZATION)
    order_id, page = pay(s.client, FLEX_DOWN)  # Flex authorizes; its answer is lost
    assert status_label(page) == "Declined"  # never "Awaiting confirmation" in this mode
    [required] = s.courier.collect()
    assert required.event == "order.capturerequired"  # held back
    answer = s.courier.post(event_body("order.expired", order_id, required.order_session_key))
    assert answer.status_code == 200
    s.settle()

    assert s.flex(order_id).status == "CANCELLED"  # voided: nothing held on the card
    assert s.agreement(order_id) == []
