"""Pure shop logic: card checks, expiry parsing, refund amounts, status labels."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import pytest
from werkzeug.datastructures import MultiDict

from flex.models import luhn_valid
from shop import wording
from shop.checkout.processor import DECLINES
from shop.checkout.storefront import TEST_CARDS
from shop.forms import RefundForm, parse_expiry
from shop.money import format_dollars
from shop.orders import records


@pytest.mark.parametrize("number", [
    "4242424242424242", "5555555555554444", "4000000000000002", "4000000000000127",
    "4000000000009995", "4000000000000119", "4000008400001629", "378282246310005",
])
def test_test_cards_are_luhn_valid(number):
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4242424242424241", "1234567812345678", "4000000000000001"])
def test_luhn_rejects_typos(number):
    assert not luhn_valid(number)


def test_declining_test_cards_on_the_page_match_the_processor():
    shown = {card[0].replace(" ", "") for card in TEST_CARDS}
    assert set(DECLINES) <= shown


@pytest.mark.parametrize(("text", "expected"), [
    ("12/34", (12, 2034)), ("1/30", (1, 2030)), (" 09 / 2031 ", (9, 2031)),
    ("13/30", None), ("00/30", None), ("1230", None), ("", None), ("ab/cd", None),
])
def test_parse_expiry(text, expected):
    assert parse_expiry(text) == expected


@pytest.mark.parametrize(("text", "cents"), [
    ("12.34", 1234), ("$5", 500), ("1000.00", 100000), ("0.01", 1), (".5", 50),
    ("0", None), ("-1", None), ("abc", None), ("1.234", None), ("NaN", None), ("inf", None),
    ("1,000.00", None), ("10,00", None), ("1e3", None),
])
def test_refund_amount_parsing(app_context, text, cents):
    form = RefundForm(MultiDict({"amount": text}), meta={"csrf": False})
    assert form.validate() is (cents is not None)
    if cents is not None:
        assert form.amount_cents() == cents


@pytest.fixture
def app_context():
    from flask import Flask

    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test"
    with app.test_request_context():
        yield


def order(outcome: str, amount: int = 1000, refunded: int = 0) -> records.Order:
    return records.Order(
        id="o1", created_at=datetime.now(UTC), outcome=outcome, amount_cents=amount,
        refund_reserved_cents=refunded, refunded_cents=refunded, currency="USD",
        email="a@b.co", card_brand="VISA", card_first6="424242", card_last4="4242",
        processor_txn=None, processor_code=None, processor_message=None, flex_status=None,
        order_session_key=None, flex_error=None, recovering=False, recover_attempts=0,
        evaluate_payload=None,
    )


@pytest.mark.parametrize(("outcome", "refunded", "label", "refundable"), [
    ("pending", 0, "Awaiting confirmation", 0),
    ("paid", 0, "Paid", 1000),
    ("rescued", 0, "Rescued by Flex", 1000),
    ("declined", 0, "Declined", 0),
    ("rescued", 400, "Partially refunded", 600),
    ("paid", 1000, "Refunded", 0),
    ("authorized", 0, "Awaiting capture", 0),
])
def test_status_label_is_derived(outcome, refunded, label, refundable):
    o = order(outcome, refunded=refunded)
    assert wording.status_label(o) == label
    assert o.refundable_cents == refundable


def test_a_chargeback_shows_and_stops_refunds():
    disputed = dataclasses.replace(order("rescued", refunded=400), chargeback_at=1.0)
    assert wording.status_label(disputed) == "Chargeback"
    assert disputed.refundable_cents == 0


def test_every_status_has_its_label():
    assert set(wording.STATUS_LABELS) == set(records.Status)


def test_a_pending_order_tells_the_shopper_not_to_pay_again():
    assert "still in progress. Please do not pay again" in wording.shopper_message(order("pending"))


def test_a_charged_back_order_tells_the_merchant_the_amount_and_date_in_its_own_words():
    disputed = dataclasses.replace(order("rescued"), chargeback_at=1_765_000_000.0,
                                   refunded_cents=900)
    assert wording.status_label(disputed) == "Chargeback"
    assert wording.shopper_message(disputed) is None  # no "Thank you", no "you disputed"
    note = wording.merchant_note(disputed)
    assert note.startswith(f"The cardholder disputed the {format_dollars(disputed.amount_cents)}"
                           " charge with their bank on 2025-12-06 05:46:40 UTC")
    assert "$9.00 of it had been refunded before" in note
    assert not re.search(r"\byour?\b", note, re.IGNORECASE)  # the merchant is not "you" here
    assert wording.disputed_on(disputed) == "2025-12-06 05:46:40 UTC"
    assert wording.merchant_note(order("rescued")) is None
