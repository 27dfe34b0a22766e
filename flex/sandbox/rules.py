"""Flex's business rules as the sandbox applies them: outcomes by test card, required
fields, the refund ledger's wording, order statuses, and lenient JSON field lookup."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ..models import luhn_valid
from .state import Order

# Test card -> /evaluate decision (our choice). None: Flex unavailable (HTTP 503).
OUTCOMES = {
    "4000000000000002": "APPROVED",
    "4000000000000127": "CHALLENGE",
    "4000000000009995": "DECLINED",
    "4000000000000119": None,
}
OTHER_CARDS = "DECLINED"

EVALUATE_REQUIRED = (
    "isDeclined", "mid", "orderId", "idempotencyKey", "transaction.id", "transaction.amount",
    "transaction.currency", "transaction.responseCode", "transaction.responseCodeSource",
    "transaction.avsResultCode", "transaction.cvvResultCode", "transaction.cavvResultCode",
    "payer.email", "billingInformation.firstName", "billingInformation.lastName",
    "billingInformation.country", "billingInformation.addressLine1", "billingInformation.city",
    "billingInformation.zipCode", "paymentMethod.cardNumber",
)
TRANSMIT_REQUIRED = (
    "orderId", "transaction.id", "transaction.amount", "transaction.currency", "payer.email",
    "paymentMethod.cardBinNumber", "paymentMethod.cardLast4Digits",
)
TOKENIZE_REQUIRED = (
    "payment_method.credit_card.first_name", "payment_method.credit_card.last_name",
    "payment_method.credit_card.number", "payment_method.credit_card.year",
)


def refund_failed(cents: int, left: int) -> dict:
    """The real sandbox's refusal, word for word (double parenthesis included)."""
    message = (f"Amount to refund ({cents / 100:.2f}) is greater than maximum refund amount "
               f"in ({left / 100:.2f}))")
    return {"responseCode": "2001", "responseMessage": message, "transactionId": None,
            "success": False, "result": None, "status": "FAILED", "statusCode": None,
            "errors": [{"item1": message, "item2": "2001", "item3": "2001", "item4": True}],
            "customProperties": {}}


def order_status(order: Order) -> tuple[int, str]:
    if order.status != "APPROVED":
        return 2, "CANCELLED"
    if order.refunded_cents >= order.amount_cents:
        return 6, "RETURNED"
    return 7, "COMPLETED"


def dollars_to_cents(value) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        return None
    return int(amount * 100)


def lower_keys(data: dict) -> dict:
    """ASP.NET matches JSON names case-insensitively; so does the sandbox."""
    return {str(k).lower(): v for k, v in data.items()} if isinstance(data, dict) else {}


def lookup(data: dict, path: str):
    """'transaction.amount' -> data["transaction"]["amount"], names case-insensitive."""
    value = data
    for part in path.split("."):
        value = lower_keys(value).get(part.lower())
        if value is None:
            return None
    return value


def missing(data: dict, required: tuple[str, ...]) -> dict[str, list[str]]:
    errors = {}
    for path in required:
        value = lookup(data, path)
        if value is None or value == "":
            name = ".".join(p[:1].upper() + p[1:] for p in path.split("."))
            errors[name] = [f"The {path.rsplit('.', 1)[-1]} field is required."]
    return errors


def valid_card_number(number: str) -> bool:
    return number.isdigit() and 12 <= len(number) <= 19 and luhn_valid(number)
