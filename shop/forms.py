"""Checkout, refund, cart and login forms (Flask-WTF: CSRF on every form).

Every field refuses what a person would not mean: only ASCII digits where digits are
expected (Python's `isdigit`, `int()` and `\\d` also take Arabic-Indic or fullwidth digits),
no control characters anywhere, and no card number typed into a free-text field, which
would otherwise be stored and sent on as an address or a name.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from flask_wtf import FlaskForm
from wtforms import Field, HiddenField, IntegerField, PasswordField, StringField
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Regexp,
    ValidationError,
)

from flex.models import Card, luhn_valid
from shop.money import MoneyError, parse_dollars

CARD_LENGTHS = range(13, 20)  # ISO/IEC 7812 PANs in use: 13 to 19 digits
MAX_EXPIRY_YEARS = 20  # cards are issued for a few years; a later year is a typo

# C0 and C1 controls (NUL, tab, newline, escape...), DEL, the Unicode line and paragraph
# separators, and bidi overrides/isolates (they make stored text display reordered).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Digits, possibly separated the way people type card numbers (space, dash, dot, slash).
_DIGIT_RUN = re.compile(r"\d(?:[\s.\-/\u2010-\u2015]{0,3}\d)+")


def digits_only(value: str | None) -> str:
    """The card number without the spaces and dashes people type between groups."""
    return re.sub(r"[ -]", "", value or "")


def parse_expiry(value: str | None) -> tuple[int, int] | None:
    """'MM/YY' (or MM/YYYY) -> (month, four-digit year), or None if malformed."""
    match = re.fullmatch(r" *([0-9]{1,2}) */ *([0-9]{2}|[0-9]{4}) *", value or "")
    if not match:
        return None
    month, year = int(match[1]), int(match[2])
    if not 1 <= month <= 12:
        return None
    return month, year + 2000 if year < 100 else year


def contains_card_number(text: str) -> bool:
    """True if `text` holds a Luhn-valid 13-19 digit run, in any script's digits, possibly
    separated by spaces, dashes, dots or slashes."""
    for run in _DIGIT_RUN.finditer(text):
        digits = "".join(str(unicodedata.decimal(c)) for c in run.group() if c.isdecimal())
        if any(luhn_valid(digits[start:start + length])
               for length in CARD_LENGTHS
               for start in range(len(digits) - length + 1)):
            return True
    return False


def no_control_characters(form: FlaskForm, field: Field) -> None:
    if _CONTROL.search(field.data or ""):
        raise ValidationError(f"{field.label.text} contains a control character; "
                              "please type plain text.")


def no_card_number(form: FlaskForm, field: Field) -> None:
    """For free-text fields: what is typed there is stored and sent on to Flex."""
    if contains_card_number(field.data or ""):
        field.data = ""  # and never echoed back into the page
        raise ValidationError(f"{field.label.text} looks like a card number. Type the card "
                              "number only in the Card number field.")


PLAIN_TEXT = [no_control_characters, no_card_number]


class CheckoutForm(FlaskForm):
    checkout_id = HiddenField(validators=[InputRequired()])
    # The total the shopper saw; refused if the cart was priced differently meanwhile.
    expected_total_cents = HiddenField(validators=[InputRequired()])
    # Free text: DataRequired, as a field of only spaces is as empty as a blank one.
    email = StringField(
        "Email",
        validators=[
            DataRequired(),
            Length(max=254),
            *PLAIN_TEXT,
            Regexp(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z", message="Enter an email like you@example.com."),
        ],
    )
    name = StringField("Name on card",
                       validators=[DataRequired(), Length(min=2, max=100), *PLAIN_TEXT])
    card_number = StringField("Card number", validators=[InputRequired(), no_control_characters])
    expiry = StringField("Expiry (MM/YY)", validators=[InputRequired(), no_control_characters])
    cvc = StringField("CVC", validators=[InputRequired(), no_control_characters])
    address = StringField("Address", validators=[DataRequired(), Length(max=200), *PLAIN_TEXT])
    city = StringField("City", validators=[DataRequired(), Length(max=100), *PLAIN_TEXT])
    state = StringField("State", validators=[DataRequired(), Length(max=50), *PLAIN_TEXT])
    zip_code = StringField(
        "ZIP",
        validators=[DataRequired(), *PLAIN_TEXT,
                    Regexp(r"[0-9]{5}(-?[0-9]{4})?\Z", message="Use 5 or 9 digits.")],
    )
    country = StringField(
        "Country",
        default="US",
        validators=[
            DataRequired(),
            *PLAIN_TEXT,
            Regexp(r"[A-Za-z]{2}\Z", message="Use a 2-letter code like US."),
        ],
    )

    def validate_card_number(self, field: StringField) -> None:
        number = digits_only(field.data)
        if (not re.fullmatch(r"[0-9]+", number) or len(number) not in CARD_LENGTHS
                or not luhn_valid(number)):
            raise ValidationError("This card number is not valid.")

    def validate_expiry(self, field: StringField) -> None:
        expiry = parse_expiry(field.data)
        if expiry is None:
            raise ValidationError("Use MM/YY, for example 12/30.")
        month, year = expiry
        today = date.today()
        if (year, month) < (today.year, today.month):
            raise ValidationError("This card has expired.")
        if year > today.year + MAX_EXPIRY_YEARS:
            raise ValidationError("Check the expiry year: use the MM/YY printed on the card.")

    def validate_cvc(self, field: StringField) -> None:
        if not re.fullmatch(r"[0-9]{3,4}", (field.data or "").strip(" ")):
            raise ValidationError("The CVC is the 3 or 4 digits on the card.")

    def card(self) -> Card:
        """The card, for this request only. Call after validate()."""
        month, year = parse_expiry(self.expiry.data)
        return Card(
            number=digits_only(self.card_number.data),
            cvc=self.cvc.data.strip(" "),
            exp_month=month,
            exp_year=year,
            holder_name=self.name.data.strip(),
        )


class RefundForm(FlaskForm):
    amount = StringField("Refund amount", validators=[InputRequired(), *PLAIN_TEXT])

    def validate_amount(self, field: StringField) -> None:
        try:
            parse_dollars(field.data)
        except MoneyError as exc:
            raise ValidationError(str(exc)) from None

    def amount_cents(self) -> int:
        """The amount in cents. Call after validate()."""
        return parse_dollars(self.amount.data)


class AsciiIntegerField(IntegerField):
    """A whole number written in ASCII digits: `int()` alone also reads '١٠', '１０',
    '+5', ' 5' and '1_0'."""

    def process_formdata(self, valuelist: list[str]) -> None:
        if valuelist and not re.fullmatch(r"[0-9]{1,6}", valuelist[0]):
            self.data = None
            raise ValueError("Enter a whole number using the digits 0-9.")
        super().process_formdata(valuelist)


class QuantityForm(FlaskForm):
    sku = HiddenField(validators=[InputRequired(), Length(max=50)])
    quantity = AsciiIntegerField("Quantity",
                                 validators=[InputRequired(), NumberRange(min=0, max=10)])


class LoginForm(FlaskForm):
    """The merchant's back-office login."""

    username = StringField("Username", validators=[InputRequired(), Length(max=200)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1000)])
