"""Checkout and refund forms (Flask-WTF: CSRF on every form)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, Regexp, ValidationError

from flex.models import Card, luhn_valid


def digits_only(value: str | None) -> str:
    return re.sub(r"[\s-]", "", value or "")


def parse_expiry(value: str | None) -> tuple[int, int] | None:
    """'MM/YY' (or MM/YYYY) -> (month, four-digit year), or None if malformed."""
    match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", value or "")
    if not match:
        return None
    month, year = int(match[1]), int(match[2])
    if not 1 <= month <= 12:
        return None
    return month, year + 2000 if year < 100 else year


class CheckoutForm(FlaskForm):
    checkout_id = HiddenField(validators=[InputRequired()])
    # The total the shopper saw; refused if the cart was priced differently meanwhile.
    expected_total_cents = HiddenField(validators=[InputRequired()])
    email = StringField(
        "Email",
        validators=[
            InputRequired(),
            Length(max=254),
            Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message="Enter an email like you@example.com."),
        ],
    )
    name = StringField("Name on card", validators=[InputRequired(), Length(min=2, max=100)])
    card_number = StringField("Card number", validators=[InputRequired()])
    expiry = StringField("Expiry (MM/YY)", validators=[InputRequired()])
    cvc = StringField("CVC", validators=[InputRequired()])
    address = StringField("Address", validators=[InputRequired(), Length(max=200)])
    city = StringField("City", validators=[InputRequired(), Length(max=100)])
    state = StringField("State", validators=[InputRequired(), Length(max=50)])
    zip_code = StringField(
        "ZIP",
        validators=[InputRequired(), Regexp(r"^\d{5}(-?\d{4})?$", message="Use 5 or 9 digits.")],
    )
    country = StringField(
        "Country",
        default="US",
        validators=[
            InputRequired(),
            Regexp(r"^[A-Za-z]{2}$", message="Use a 2-letter code like US."),
        ],
    )

    def validate_card_number(self, field: StringField) -> None:
        number = digits_only(field.data)
        if not number.isdigit() or not 12 <= len(number) <= 19 or not luhn_valid(number):
            raise ValidationError("This card number is not valid.")

    def validate_expiry(self, field: StringField) -> None:
        expiry = parse_expiry(field.data)
        if expiry is None:
            raise ValidationError("Use MM/YY, for example 12/30.")
        month, year = expiry
        today = date.today()
        if (year, month) < (today.year, today.month):
            raise ValidationError("This card has expired.")

    def validate_cvc(self, field: StringField) -> None:
        if not re.fullmatch(r"\d{3,4}", (field.data or "").strip()):
            raise ValidationError("The CVC is the 3 or 4 digits on the card.")

    def card(self) -> Card:
        """The card, for this request only. Call after validate()."""
        month, year = parse_expiry(self.expiry.data)
        return Card(
            number=digits_only(self.card_number.data),
            cvc=self.cvc.data.strip(),
            exp_month=month,
            exp_year=year,
            holder_name=self.name.data.strip(),
        )


class RefundForm(FlaskForm):
    amount = StringField("Refund amount", validators=[InputRequired()])

    def amount_cents(self) -> int | None:
        """Dollars as typed ('12.34', '$5') -> cents, or None if not a positive amount."""
        text = (self.amount.data or "").strip().lstrip("$").replace(",", "")
        try:
            dollars = Decimal(text)
        except InvalidOperation:
            return None
        if not dollars.is_finite() or dollars <= 0 or dollars != dollars.quantize(Decimal("0.01")):
            return None
        return int(dollars * 100)


class QuantityForm(FlaskForm):
    sku = HiddenField(validators=[InputRequired()])
    quantity = IntegerField("Quantity", validators=[InputRequired(), NumberRange(min=0, max=10)])
