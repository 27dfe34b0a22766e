"""The recovery sweep where it runs by itself: in the relay loop (an unanswered /evaluate
becomes "Rescued by Flex" with no command run), and what the relay cannot fix is shown
(a dead-lettered transmit's reason on the order page and in /flex)."""

from __future__ import annotations

import pytest

from app import create_app
from flex.models import Card
from shop.services import ConfigError
from shop.storage import db
from tests.support import db_rows, pay, set_fault, status_label, wait_for


@pytest.mark.storage
def test_the_relay_loop_settles_a_lost_answer_by_lookup(make_app, fresh_sandbox):
    app = make_app(FLEX_RELAY=True, FLEX_RELAY_POLL_SECONDS=0.05)
    relay = app.extensions["services"].relay
    try:
        client = app.test_client()
        order_id, page = pay(client, "4000000000000119")
        assert status_label(page) == "Awaiting confirmation"
        # The first lookup is due 10 s after the checkout: bring it forward.
        db_rows(db.database_url(app.config), "UPDATE orders SET recover_at = 0")
        assert wait_for(lambda: status_label(client.get(f"/orders/{order_id}").text)
                        == "Rescued by Flex")
    finally:
        relay.stop()
    page = client.get(f"/orders/{order_id}").text
    assert "found by lookup" in page


def test_a_dead_lettered_transmit_shows_its_reason(app, client, fresh_sandbox):
    set_fault(fresh_sandbox, "transmit", status=400)  # a 400 never gets better: dead letter
    order_id, _ = pay(client, "4242424242424242")
    app.extensions["services"].relay.run_once()
    page = client.get(f"/orders/{order_id}").text
    assert status_label(page) == "Paid"
    assert "gave up (dead letter): transmit:" in page
    assert "failed (dead letter)" in client.get("/flex").text


def test_a_pending_threshold_shorter_than_a_checkout_is_refused(database_url):
    with pytest.raises(ConfigError, match="RECOVER_PENDING_AFTER_SECONDS"):
        create_app({"TESTING": True, "DATABASE_URL": database_url, "FLEX_RELAY": False,
                    "FLEX_DEADLINE": 12.0, "RECOVER_PENDING_AFTER_SECONDS": 10})


@pytest.mark.storage
def test_the_processor_charges_a_reference_once_and_can_look_it_up(app):
    processor = app.extensions["services"].processor
    card = Card("4242424242424242", "123", 12, 2034, "Ada Lovelace")
    assert processor.lookup("order-1") is None
    first = processor.authorize(card, 1800, reference="order-1")
    replay = processor.authorize(card, 1800, reference="order-1")  # e.g. a retried request
    assert first.approved and replay == first == processor.lookup("order-1")
    declined = processor.authorize(Card("4000000000009995", "123", 12, 2034, "Ada"), 1800,
                                   reference="order-2")
    assert not declined.approved and declined.response_code == "51"
    assert db_rows(db.database_url(app.config),
                   "SELECT reference, approved FROM processor_ledger ORDER BY reference") == [
        ("order-1", 1), ("order-2", 0)]
