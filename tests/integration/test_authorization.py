"""Authorization mode (FLEX_TRANSACTION_TYPE=AUTHORIZATION) through the Flask test client,
against the Flex sandbox over loopback HTTP: Flex's approval is CAPTUREREQUIRED, the order
"Awaiting capture"; Capture makes it "Rescued by Flex", Cancel makes it "Declined". Every
capture/cancel is recorded before it is sent, sent once, and replayed with its own
idempotency key when its answer is lost."""

from __future__ import annotations

import json
import threading

import pytest

from app import create_app
from flex import FlexOrder, OrderStatus
from shop.orders import authorizations
from shop.services import ConfigError
from tests.support import (
    FLEX_DOWN,
    RESCUED,
    calls,
    clear_faults,
    db_rows,
    hidden,
    pay,
    services_of,
    set_fault,
    status_label,
    wait_for,
)

AUTHORIZATION = {"FLEX_TRANSACTION_TYPE": "AUTHORIZATION"}


@pytest.fixture
def app(make_app):
    return make_app(**AUTHORIZATION)


def flex_order(app, order_id: str) -> FlexOrder:
    """Flex's order for the merchant's order id, as Flex's order list shows it."""
    return services_of(app).client.find_order_by_reference(order_id)


def post_action(client, order_id: str, action: str):
    """Clicks Capture or Cancel on the order page; returns the page it redirects to."""
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    response = client.post(f"/orders/{order_id}/{action}",
                           data={"csrf_token": hidden(page, "csrf_token")})
    assert response.status_code == 303
    return client.get(response.headers["Location"])


def test_an_invalid_transaction_type_stops_start_up(tmp_path):
    with pytest.raises(ConfigError, match="FLEX_TRANSACTION_TYPE must be PURCHASE or "
                                          "AUTHORIZATION, not 'SALE'"):
        create_app({"DATABASE": str(tmp_path / "x.sqlite"), "FLEX_TRANSACTION_TYPE": "SALE"})


def test_purchase_mode_is_the_default(make_app, fresh_sandbox):
    order_id, page = pay(make_app().test_client(), RESCUED)
    assert status_label(page) == "Rescued by Flex"
    assert calls(fresh_sandbox, "evaluate")[0]["request"]["transactionType"] == "PURCHASE"
    assert "Capture" not in page


def test_authorize_then_capture_then_refund(app, client, fresh_sandbox, database_url):
    order_id, page = pay(client, RESCUED, quantity=2)  # $36.00
    assert status_label(page) == "Awaiting capture"
    assert "charged when your order ships" in page
    assert '<button type="submit" data-busy-label="Capturing…">Capture</button>' in page
    assert ">Cancel</button>" in page
    assert "Refund amount" not in page  # nothing was charged yet
    assert calls(fresh_sandbox, "evaluate")[0]["request"]["transactionType"] == "AUTHORIZATION"
    assert flex_order(app, order_id).status == OrderStatus.CAPTUREREQUIRED

    response = post_action(client, order_id, "capture")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert status_label(page) == "Rescued by Flex"
    assert "Capture of $36.00 confirmed by Flex" in page
    captures = calls(fresh_sandbox, "capture")
    assert [(c["request"]["orderId"], c["request"]["amount"], c["status"]) for c in captures] \
        == [(db_rows(database_url, "SELECT order_session_key FROM orders")[0][0], 3600, 200)]
    assert db_rows(database_url, "SELECT idempotency_key FROM flex_authorization_actions") == [
        (captures[0]["request"]["idempotencyKey"],)]
    assert "Later: capturing the authorized amount" in page  # the timeline shows the capture

    response = client.post(f"/orders/{order_id}/refund",
                           data={"csrf_token": hidden(page, "csrf_token"), "amount": "10.00"})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert status_label(page) == "Partially refunded"
    assert [c["request"]["amountToRefund"] for c in calls(fresh_sandbox, "refund")] == [10.0]


def test_authorize_then_cancel(app, client, fresh_sandbox):
    order_id, _ = pay(client, RESCUED)
    response = post_action(client, order_id, "cancel")
    page = response.get_data(as_text=True)
    assert status_label(page) == "Declined"
    assert "Authorization cancelled, not charged" in page
    assert "Try another card" in page
    assert "Refund amount" not in page
    assert [c["status"] for c in calls(fresh_sandbox, "cancel")] == [200]
    assert calls(fresh_sandbox, "capture") == []
    assert flex_order(app, order_id).status == OrderStatus.CANCELLED
    assert "Later: cancelling the authorization" in page


def test_cancel_after_capture_is_refused_and_never_sent(app, client, fresh_sandbox):
    order_id, _ = pay(client, RESCUED)
    post_action(client, order_id, "capture")
    response = post_action(client, order_id, "cancel")
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "already captured" in page and "cannot be cancelled" in page
    assert status_label(page) == "Rescued by Flex"
    assert calls(fresh_sandbox, "cancel") == []


def test_capture_of_an_order_that_was_not_authorized_is_refused(make_app, fresh_sandbox):
    client = make_app().test_client()  # purchase mode: the order is rescued, not authorized
    order_id, _ = pay(client, RESCUED)
    response = post_action(client, order_id, "capture")
    assert response.status_code == 409
    assert "no authorization waiting" in response.get_data(as_text=True)
    assert calls(fresh_sandbox, "capture") == []


@pytest.mark.storage
def test_double_click_and_two_nodes_at_once_make_one_capture(make_app, fresh_sandbox,
                                                              database_url):
    nodes = [make_app(**AUTHORIZATION).test_client() for _ in range(2)]
    order_id, _ = pay(nodes[0], RESCUED)
    forms = [{"csrf_token": hidden(node.get(f"/orders/{order_id}").get_data(as_text=True),
                                   "csrf_token")} for node in nodes]
    set_fault(fresh_sandbox, "capture", delay_ms=300)  # both clicks arrive while one is sent
    start = threading.Barrier(4)
    statuses = []

    def click(node, form):
        start.wait(5)
        statuses.append(node.post(f"/orders/{order_id}/capture", data=form).status_code)

    clicks = [threading.Thread(target=click, args=(node, form))
              for node, form in [*zip(nodes, forms, strict=True)] * 2]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join(20)

    assert statuses == [303] * 4
    assert len(calls(fresh_sandbox, "capture")) == 1
    page = nodes[1].get(f"/orders/{order_id}").get_data(as_text=True)
    assert status_label(page) == "Rescued by Flex"
    assert db_rows(database_url, "SELECT action, state, attempts FROM flex_authorization_actions"
                   ) == [("capture", "done", 1)]


def test_a_lost_capture_answer_is_retried_by_the_client_with_the_same_key(app, client,
                                                                           fresh_sandbox):
    order_id, _ = pay(client, RESCUED)
    # Flex captures, but its answer comes after the read timeout (2 s); once only.
    set_fault(fresh_sandbox, "capture", delay_ms=2500, times=1)
    page = post_action(client, order_id, "capture").get_data(as_text=True)
    assert status_label(page) == "Rescued by Flex"
    captures = wait_for(lambda: len(found := calls(fresh_sandbox, "capture")) == 2 and found)
    assert len({c["request"]["idempotencyKey"] for c in captures}) == 1
    assert flex_order(app, order_id).status == OrderStatus.COMPLETED


@pytest.mark.storage
def test_an_unanswered_capture_is_replayed_by_the_relay_sweep_with_the_same_key(
        app, client, fresh_sandbox, database_url):
    order_id, _ = pay(client, RESCUED)
    # Flex captures, then never answers within the click's deadline (every attempt hangs).
    set_fault(fresh_sandbox, "capture", hang=True)
    response = post_action(client, order_id, "capture")
    page = response.get_data(as_text=True)
    assert status_label(page) == "Awaiting capture"
    assert "sent to Flex, not confirmed yet" in page
    assert ">Capture</button>" not in page  # no second capture with another key
    clear_faults(fresh_sandbox)  # the held attempts are answered now, after the client left
    attempts = db_rows(database_url, "SELECT COUNT(*) FROM flex_calls WHERE order_id = ?"
                       " AND endpoint = 'capture'", order_id)[0][0]
    assert wait_for(lambda: len(calls(fresh_sandbox, "capture")) == attempts), "held captures"
    sent = calls(fresh_sandbox, "capture")
    assert flex_order(app, order_id).status == OrderStatus.COMPLETED

    services_of(app).relay.also_run()  # not due yet: the backoff holds the replay back
    assert len(calls(fresh_sandbox, "capture")) == len(sent)
    # `flask flex recover --ahead 3600`: the replay's backoff is brought forward.
    services_of(app).sweep.run(ahead=3600)

    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert status_label(page) == "Rescued by Flex"
    replays = calls(fresh_sandbox, "capture")
    assert len(replays) == len(sent) + 1 and replays[-1]["status"] == 200
    assert len({c["request"]["idempotencyKey"] for c in replays}) == 1
    assert db_rows(database_url, "SELECT state, attempts FROM flex_authorization_actions") == [
        ("done", 2)]


def test_a_cancel_flex_never_confirms_gives_up_with_a_visible_reason(app, client,
                                                                      fresh_sandbox,
                                                                      database_url):
    order_id, _ = pay(client, RESCUED)
    set_fault(fresh_sandbox, "cancel", status=503)
    page = post_action(client, order_id, "cancel").get_data(as_text=True)
    assert "Cancel sent to Flex, not confirmed yet" in page
    db_rows(database_url, "UPDATE flex_authorization_actions SET next_attempt_at = 0,"
            " attempts = ?", authorizations.MAX_ATTEMPTS - 1)
    services_of(app).relay.also_run()

    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert status_label(page) == "Awaiting capture"  # Flex still holds the authorization
    assert f"Cancel not confirmed by Flex after {authorizations.MAX_ATTEMPTS} attempts" in page
    assert "HTTP 503" in page
    assert db_rows(database_url, "SELECT state FROM flex_authorization_actions") == [("failed",)]
    services_of(app).relay.also_run()  # a final state is never sent again
    assert len({c["request"]["idempotencyKey"] for c in calls(fresh_sandbox, "cancel")}) == 1


def test_an_unanswered_evaluate_in_authorization_mode_did_not_go_through(
        app, client, fresh_sandbox, database_url):
    order_id, page = pay(client, FLEX_DOWN)
    assert status_label(page) == "Declined"  # never "Awaiting confirmation" in this mode
    assert "The payment did not go through. You are not charged" in page
    assert "Try another card" in page
    assert ">Capture</button>" not in page
    # Flagged for settlement by external-cancel: recovering = 1 and the kept /evaluate body
    # says transactionType AUTHORIZATION.
    (recovering, payload), = db_rows(database_url,
                                     "SELECT recovering, evaluate_payload FROM orders")
    assert recovering == 1
    assert json.loads(payload)["transactionType"] == "AUTHORIZATION"
