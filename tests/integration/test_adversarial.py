"""What an adversarial tester types: every case is refused with a 4xx (never a 500) and a
message saying what is wrong, and leaves nothing behind: no order, refund or outbox row, no
Flex call, and no card digits in the database file, its WAL or the logs.

One shop (and one database) serves the whole module: every case checks that it changed
nothing, so the cases cannot affect each other.
"""

from __future__ import annotations

import html
import logging
import sqlite3
import unicodedata
from datetime import date
from pathlib import Path

import pytest

from app import create_app
from shop.storage import db
from tests.support import Shopper, calls, flex_settings, hidden

# Luhn-valid numbers used only by this module, so finding their digits anywhere is a leak.
AMEX = "378282246310005"
VISA_13 = "4222222222222"
SENTINEL_CARDS = ("4000056655665556", "5200828282828210", AMEX, VISA_13, "6200000000000000000")
PAYING_CARD = "4242424242424242"  # what the forms below pay with when a case leaves it alone

ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
UNSEPARATED = str.maketrans("", "", " -.")

NOT_VALID = "This card number is not valid."
CVC = "The CVC is the 3 or 4 digits on the card."
EXPIRY = "Use MM/YY, for example 12/30."
FAR_EXPIRY = "Check the expiry year"
ZIP = "Use 5 or 9 digits."
COUNTRY = "Use a 2-letter code like US."
EMAIL = "Enter an email like you@example.com."
REQUIRED = "This field is required."
YEAR_TOO_FAR = f"{(date.today().year + 21) % 100:02d}"


def control(label: str) -> str:
    return f"{label} contains a control character"


def card_like(label: str) -> str:
    return f"{label} looks like a card number"


def long_text(label: str, limit: int) -> str:
    return f"Field cannot be longer than {limit} characters."


# (field, value, message shown). The field's own label is named in the message where it
# must be, because the error summary lists every refused field.
CHECKOUT_FIELD_CASES = [
    # card number: ASCII digits only, 13-19 of them, Luhn-valid
    ("card_number", "4242 4242 4242 4241", NOT_VALID),
    ("card_number", PAYING_CARD.translate(ARABIC), NOT_VALID),
    ("card_number", PAYING_CARD.translate(FULLWIDTH), NOT_VALID),
    ("card_number", PAYING_CARD.translate(DEVANAGARI), NOT_VALID),
    ("card_number", PAYING_CARD.translate(SUPERSCRIPT), NOT_VALID),
    ("card_number", "424242424242424" + "2".translate(FULLWIDTH), NOT_VALID),
    ("card_number", "424242424242", NOT_VALID),  # 12 digits, Luhn-valid
    ("card_number", "40000000000000000002", NOT_VALID),  # 20 digits, Luhn-valid
    ("card_number", "40000000006", NOT_VALID),
    ("card_number", "4" * 1000, NOT_VALID),
    ("card_number", "abcd efgh ijkl mnop", NOT_VALID),
    ("card_number", "4242.4242.4242.4242", NOT_VALID),
    ("card_number", "4242/4242/4242/4242", NOT_VALID),
    ("card_number", "+4242424242424242", NOT_VALID),
    ("card_number", "4242\u00a04242\u00a04242\u00a04242", NOT_VALID),
    ("card_number", "0x4242424242424242", NOT_VALID),
    ("card_number", "", REQUIRED),
    ("card_number", f"{PAYING_CARD}\x00", control("Card number")),
    ("card_number", "4242\t4242 4242 4242", control("Card number")),
    ("card_number", f"{PAYING_CARD}\n", control("Card number")),
    ("card_number", f"{PAYING_CARD}\u2028", control("Card number")),
    # CVC
    ("cvc", "12", CVC),
    ("cvc", "12345", CVC),
    ("cvc", "123".translate(ARABIC), CVC),
    ("cvc", "123".translate(FULLWIDTH), CVC),
    ("cvc", "123".translate(SUPERSCRIPT), CVC),
    ("cvc", "12a", CVC),
    ("cvc", "1 23", CVC),
    ("cvc", "+123", CVC),
    ("cvc", "-123", CVC),
    ("cvc", "", REQUIRED),
    ("cvc", "123\x00", control("CVC")),
    ("cvc", "\x1b123", control("CVC")),
    # expiry: MM/YY in ASCII digits, not past, not beyond 20 years
    ("expiry", "13/30", EXPIRY),
    ("expiry", "00/30", EXPIRY),
    ("expiry", "1230", EXPIRY),
    ("expiry", "12-30", EXPIRY),
    ("expiry", "12/3", EXPIRY),
    ("expiry", "12/030", EXPIRY),
    ("expiry", "ab/cd", EXPIRY),
    ("expiry", "12/30".translate(ARABIC), EXPIRY),
    ("expiry", "12/30".translate(FULLWIDTH), EXPIRY),
    ("expiry", "-1/30", EXPIRY),
    ("expiry", "01/20", "This card has expired."),
    ("expiry", "12/9999", FAR_EXPIRY),
    ("expiry", f"12/{YEAR_TOO_FAR}", FAR_EXPIRY),
    ("expiry", "", REQUIRED),
    ("expiry", "12/30\x00", control("Expiry (MM/YY)")),
    ("expiry", "12/30\n", control("Expiry (MM/YY)")),
    # ZIP
    ("zip_code", "ABCDE", ZIP),
    ("zip_code", "62701".translate(ARABIC), ZIP),
    ("zip_code", "62701".translate(FULLWIDTH), ZIP),
    ("zip_code", "6270", ZIP),
    ("zip_code", "627011", ZIP),
    ("zip_code", "62701-12", ZIP),
    ("zip_code", "", REQUIRED),
    ("zip_code", "62701\n", control("ZIP")),
    ("zip_code", "62701\x00", control("ZIP")),
    # country
    ("country", "USA", COUNTRY),
    ("country", "U", COUNTRY),
    ("country", "1A", COUNTRY),
    ("country", "ＵＳ", COUNTRY),
    ("country", "", REQUIRED),
    ("country", "US\x00", control("Country")),
    # email
    ("email", "", REQUIRED),
    ("email", "no-at-sign", EMAIL),
    ("email", "a@b", EMAIL),
    ("email", "a b@example.com", EMAIL),
    ("email", "a@example.com\x00", control("Email")),
    ("email", "a@example.com\n", control("Email")),
    ("email", "a@example.com\u2029", control("Email")),
    ("email", f"{SENTINEL_CARDS[0]}@example.com", card_like("Email")),
    ("email", "x" * 250 + "@a.bc", long_text("Email", 254)),
    # name on card
    ("name", "", REQUIRED),
    ("name", "A", "Field must be between 2 and 100 characters long."),
    ("name", "x" * 101, "Field must be between 2 and 100 characters long."),
    ("name", "Ada\x00Lovelace", control("Name on card")),
    ("name", "Ada\u2028Lovelace", control("Name on card")),
    ("name", "Ada\u202eecalevoL", control("Name on card")),
    ("name", "Ada\x1b[31mLovelace", control("Name on card")),
    ("name", "Ada\x85Lovelace", control("Name on card")),
    ("name", "Ada\x7f", control("Name on card")),
    ("name", "4000 0566 5566 5556", card_like("Name on card")),
    ("name", "Ada 5200-8282-8282-8210", card_like("Name on card")),
    # address: the field a card number was once stored from, verbatim
    ("address", SENTINEL_CARDS[0], card_like("Address")),
    ("address", "4000 0566 5566 5556", card_like("Address")),
    ("address", "4000-0566-5566-5556", card_like("Address")),
    ("address", "1 Main St 4000056655665556", card_like("Address")),
    ("address", "Apt4000056655665556", card_like("Address")),
    ("address", "Suite 5200 8282 8282 8210, floor 2", card_like("Address")),
    ("address", f"PO Box {AMEX}", card_like("Address")),
    ("address", "3782 822463 10005", card_like("Address")),  # Amex grouping
    ("address", VISA_13, card_like("Address")),
    ("address", SENTINEL_CARDS[4], card_like("Address")),  # 19 digits
    ("address", "9" + SENTINEL_CARDS[0] + "9", card_like("Address")),  # inside a longer run
    ("address", SENTINEL_CARDS[0].translate(FULLWIDTH), card_like("Address")),
    ("address", SENTINEL_CARDS[0].translate(ARABIC), card_like("Address")),
    ("address", "4000.0566.5566.5556", card_like("Address")),
    ("address", "1 Main St\x00", control("Address")),
    ("address", "1 Main St\r\nX-Injected: 1", control("Address")),
    ("address", "1 Main\tSt", control("Address")),
    ("address", "1 Main St\x9b", control("Address")),
    ("address", "1 Main St\u2029", control("Address")),
    ("address", "1 Main St\u2066", control("Address")),
    ("address", "", REQUIRED),
    ("address", "   ", REQUIRED),
    ("name", "\u3000\u3000", REQUIRED),
    ("address", "x" * 201, long_text("Address", 200)),
    # city, state
    ("city", "Springfield\x00", control("City")),
    ("city", f"Springfield {SENTINEL_CARDS[1]}", card_like("City")),
    ("city", "x" * 101, long_text("City", 100)),
    ("city", "", REQUIRED),
    ("state", "IL\x00", control("State")),
    ("state", AMEX, card_like("State")),
    ("state", "x" * 51, long_text("State", 50)),
    ("state", "", REQUIRED),
]

# The page's own hidden fields and token, tampered with.
CHECKOUT_FORM_CASES = {
    "tampered total": ({"expected_total_cents": "1"}, 409, "Your cart changed"),
    "total as an exponent": ({"expected_total_cents": "1.8e3"}, 409, "Your cart changed"),
    "stale checkout id": ({"checkout_id": "00000000-0000-4000-8000-000000000000"}, 400,
                          "checkout page has expired"),
    "checkout id with NUL": ({"checkout_id": "abc\x00"}, 400, "checkout page has expired"),
    "missing checkout id": ({"checkout_id": None}, 400, "Please check the payment form"),
    "missing total": ({"expected_total_cents": None}, 400, "Please check the payment form"),
    "forged CSRF token": ({"csrf_token": "forged"}, 400, "Form expired"),
    "missing CSRF token": ({"csrf_token": None}, 400, "Form expired"),
}

REFUND_CASES = [
    ("1e30", 400, "digits 0-9 only"),
    ("1e999999", 400, "digits 0-9 only"),
    ("1e20", 400, "digits 0-9 only"),
    ("1E2", 400, "digits 0-9 only"),
    ("5e-2", 400, "digits 0-9 only"),
    ("99999999999999999999999999.99", 400, "That amount is too large"),
    ("100000000", 400, "That amount is too large"),
    ("9" * 5000, 400, "That amount is too large"),
    ("NaN", 400, "digits 0-9 only"),
    ("nan", 400, "digits 0-9 only"),
    ("sNaN", 400, "digits 0-9 only"),
    ("Infinity", 400, "digits 0-9 only"),
    ("-Infinity", 400, "greater than zero"),
    ("inf", 400, "digits 0-9 only"),
    ("-5", 400, "greater than zero"),
    ("\N{MINUS SIGN}5", 400, "greater than zero"),
    ("$-5", 400, "greater than zero"),
    ("-0", 400, "greater than zero"),
    ("+5", 400, "digits 0-9 only"),
    ("0", 400, "greater than zero"),
    ("0.00", 400, "greater than zero"),
    ("$0", 400, "greater than zero"),
    ("0.001", 400, "at most 2 decimal places"),
    ("1.001", 400, "at most 2 decimal places"),
    ("10,00", 400, "without separators"),
    ("1,000.00", 400, "without separators"),
    ("1,0,0", 400, "without separators"),
    ("1_0", 400, "without separators"),
    ("1 000", 400, "without separators"),
    ("1'000", 400, "without separators"),
    ("$$5", 400, "digits 0-9 only"),
    ("5$", 400, "digits 0-9 only"),
    ("USD 5", 400, "digits 0-9 only"),
    ("5 USD", 400, "digits 0-9 only"),
    ("0x10", 400, "digits 0-9 only"),
    ("1.2.3", 400, "digits 0-9 only"),
    (".", 400, "digits 0-9 only"),
    ("$", 400, "digits 0-9 only"),
    ("10".translate(ARABIC), 400, "digits 0-9 only"),
    ("10".translate(FULLWIDTH), 400, "digits 0-9 only"),
    ("½", 400, "digits 0-9 only"),
    ("ten dollars", 400, "digits 0-9 only"),
    ("", 400, REQUIRED),
    ("5\x00", 400, control("Refund amount")),
    ("\x005", 400, control("Refund amount")),
    ("5\n", 400, control("Refund amount")),
    (SENTINEL_CARDS[0], 400, card_like("Refund amount")),
    ("4000 0566 5566 5556", 400, card_like("Refund amount")),
    ("18.01", 409, "Refund refused: only $18.00 can still be refunded."),
    ("99999999.99", 409, "Refund refused: only $18.00 can still be refunded."),
]

QUANTITY = "Choose a product and a quantity"
BAD_QUANTITIES = [
    "abc", "-1", "1000000", "11", "1".translate(ARABIC), "1".translate(FULLWIDTH), "+1", " 1",
    "1 ", "1_0", "1e1", "1.0", "0x1", "", "²", "1\x00", "9" * 40,
]

ODD_REQUESTS = [
    ("PUT", "/checkout", {}, 405),
    ("DELETE", "/checkout", {}, 405),
    ("PATCH", "/cart/add", {}, 405),
    ("GET", "/cart/add", {}, 405),
    ("GET", "/cart/update", {}, 405),
    ("POST", "/", {}, 405),
    ("POST", "/checkout", {"json": {"card_number": SENTINEL_CARDS[0]}}, 400),
    ("POST", "/checkout", {"data": f"card_number={SENTINEL_CARDS[0]}",
                           "content_type": "text/plain"}, 400),
    ("POST", "/cart/add", {"json": {"sku": "mug", "quantity": 1}}, 400),
    ("POST", "/checkout", {"data": {"address": SENTINEL_CARDS[0] * 5000}}, 413),
    ("POST", "/cart/add", {"data": {"sku": "mug" * 30_000}}, 413),
]


def shop_config(server, database: Path) -> dict:
    return {
        "TESTING": True,
        "DATABASE": str(database),
        **flex_settings(server),
        "FLEX_RELAY": False,
        "FLEX_READ_TIMEOUT": 2.0,
        "FLEX_DEADLINE": 3.0,
        "PROCESSOR_LATENCY_MS": 0,
    }


@pytest.fixture(scope="module")
def shop(sandbox, tmp_path_factory):
    app = create_app(shop_config(sandbox, tmp_path_factory.mktemp("adversarial") / "s.sqlite"))
    yield app
    app.extensions["services"].flow.close()
    app.extensions["services"].client.close()


@pytest.fixture(scope="module")
def shopper(shop):
    """A shopper with a mug in the cart, whose refused checkouts keep it there."""
    shopper = Shopper(shop.test_client())
    shopper.fill_cart()
    return shopper


@pytest.fixture(scope="module")
def rescued_order(shop):
    """An $18.00 order Flex rescued (so refunds go to Flex), and its page."""
    client = shop.test_client()
    form = Shopper(client).ready_to_pay("4000000000000002")
    order_id = client.post("/checkout", data=form).headers["Location"].rsplit("/", 1)[-1]
    return client, order_id


class Footprint:
    """What the shop has stored and sent so far, to prove a case added nothing."""

    def __init__(self, app, server):
        self.database = Path(db.database_url(app.config).removeprefix("sqlite:///"))
        self.server = server
        self.before = self.counts()

    def counts(self) -> dict:
        with sqlite3.connect(self.database) as conn:
            rows = {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
                    for table in ("orders", "refunds", "flex_outbox", "flex_calls")}
        conn.close()
        return {**rows, "sandbox calls": len(calls(self.server))}

    def assert_unchanged(self, caplog) -> None:
        assert self.counts() == self.before
        stored = b"".join(path.read_bytes() for path in
                          (self.database, Path(f"{self.database}-wal")) if path.exists())
        logs = "\n".join(record.getMessage() for record in caplog.records)
        for number in SENTINEL_CARDS:
            assert number.encode() not in stored, "card number in the database"
            assert number not in logs, "card number in the logs"


@pytest.fixture
def footprint(shop, sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    return Footprint(shop, sandbox)


def ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)


def page_text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def case_id(case) -> str:
    field, value = case[0], case[1]
    return f"{field}={value[:24]!r}"


@pytest.mark.parametrize("case", CHECKOUT_FIELD_CASES,
                         ids=[case_id(c) for c in CHECKOUT_FIELD_CASES])
def test_bad_checkout_field_is_refused_and_nothing_is_stored(shopper, footprint, caplog, case):
    field, value, message = case
    form = {**shopper.checkout_form(), field: value}
    response = shopper.post("/checkout", form)
    assert response.status_code == 400
    text = page_text(response)
    assert "Please check the payment form" in text
    assert message in text
    shown = ascii_digits(text).translate(UNSEPARATED)
    for number in SENTINEL_CARDS:  # a card number typed anywhere is not shown back
        assert number not in shown
    footprint.assert_unchanged(caplog)


@pytest.mark.parametrize("case", CHECKOUT_FORM_CASES, ids=list(CHECKOUT_FORM_CASES))
def test_tampered_checkout_form_is_refused(shopper, footprint, caplog, case):
    changes, status, message = CHECKOUT_FORM_CASES[case]
    form = {**shopper.checkout_form(), "card_number": SENTINEL_CARDS[1], **changes}
    response = shopper.post("/checkout", {k: v for k, v in form.items() if v is not None})
    assert response.status_code == status
    assert message in page_text(response)
    footprint.assert_unchanged(caplog)


@pytest.mark.parametrize("case", REFUND_CASES, ids=[repr(c[0][:24]) for c in REFUND_CASES])
def test_bad_refund_amount_is_refused_and_nothing_is_refunded(rescued_order, footprint, caplog,
                                                              case):
    client, order_id = rescued_order
    amount, status, message = case
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    response = client.post(f"/orders/{order_id}/refund", follow_redirects=True,
                           data={"csrf_token": hidden(page, "csrf_token"), "amount": amount})
    assert [r.status_code for r in response.history] == [303]  # Post/Redirect/Get
    assert response.status_code == status
    assert message in page_text(response)
    shown = ascii_digits(page_text(response)).translate(UNSEPARATED)
    assert not any(number in shown for number in SENTINEL_CARDS)
    footprint.assert_unchanged(caplog)


@pytest.mark.parametrize("endpoint", ["/cart/add", "/cart/update"])
@pytest.mark.parametrize("quantity", BAD_QUANTITIES, ids=[repr(q[:12]) for q in BAD_QUANTITIES])
def test_bad_quantity_is_refused_and_the_cart_is_unchanged(shop, footprint, caplog, endpoint,
                                                           quantity):
    client = shop.test_client()
    Shopper(client).fill_cart("tee", 2)
    csrf = hidden(client.get("/").get_data(as_text=True), "csrf_token")
    response = client.post(endpoint, data={"csrf_token": csrf, "sku": "tee",
                                           "quantity": quantity})
    assert response.status_code == 400
    assert QUANTITY in page_text(response)
    assert "Cart (2)" in client.get("/").get_data(as_text=True)
    footprint.assert_unchanged(caplog)


@pytest.mark.parametrize("sku", ["no-such-thing", "mug\x00", "", "x" * 51, "MUG", "mug "])
def test_unknown_product_is_refused(shop, footprint, caplog, sku):
    client = shop.test_client()
    csrf = hidden(client.get("/").get_data(as_text=True), "csrf_token")
    response = client.post("/cart/add", data={"csrf_token": csrf, "sku": sku, "quantity": "1"})
    assert response.status_code == 400
    assert QUANTITY in page_text(response)
    assert "Cart (0)" in client.get("/").get_data(as_text=True)
    footprint.assert_unchanged(caplog)


@pytest.mark.parametrize("case", ODD_REQUESTS,
                         ids=[f"{m} {p} {sorted(k)} {s}" for m, p, k, s in ODD_REQUESTS])
def test_odd_methods_content_types_and_oversized_bodies(shopper, footprint, caplog, case):
    method, path, kwargs, status = case
    response = shopper.client.open(path, method=method, **kwargs)
    assert response.status_code == status
    assert "<h1>" in response.get_data(as_text=True)  # the shop's own error page, not a trace
    footprint.assert_unchanged(caplog)


def test_the_footprint_sees_a_real_order(make_app, fresh_sandbox, caplog):
    """The check every case above relies on does notice a stored order."""
    app = make_app()
    footprint = Footprint(app, fresh_sandbox)
    shopper = Shopper(app.test_client())
    assert shopper.post("/checkout", shopper.ready_to_pay()).status_code == 302
    app.extensions["services"].flow.close()  # its vault call has finished
    with pytest.raises(AssertionError):
        footprint.assert_unchanged(caplog)
