"""Flex's business rules as the sandbox applies them: outcomes by test card, required fields
and their messages, order statuses, and how an order reads on the wire."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from flex.models import luhn_valid

from .lenient import as_decimal, pick, present
from .state import Order

# Test card -> /evaluate decision. OUR choice: Flex publishes no magic cards.
OUTCOMES = {
    "4000000000000002": "APPROVED",
    "4000000000000127": "CHALLENGE",
    "4000000000009995": "DECLINED",
    "4000000000000119": "APPROVED",  # decided and recorded, but the answer is lost (503)
    "4000008400001629": "APPROVED",  # the shop's 3-D Secure card: SUBMITTED first (later.py)
    # Seen on one real sandbox account, so clients' remote tests written there pass here:
    "4000002760003184": "APPROVED",  # MIT approved; CAPTUREREQUIRED when authorizing
}
CHALLENGED_WITH_PHONE = {"4111111111111111"}  # seen: CIT with payer.phone -> CHALLENGE
LOST_ANSWER_CARDS = {"4000000000000119"}
OTHER_CARDS = "DECLINED"

# Flex's order status ints (documented).
STATUS_CODES = {"DRAFT": 0, "ONHOLD": 1, "CANCELLED": 2, "PROBLEM": 3, "PROCESSING": 4,
                "CAPTUREREQUIRED": 5, "RETURNED": 6, "COMPLETED": 7}
STATUS_NAMES = {code: name for name, code in STATUS_CODES.items()}

# Exactly the fields real Flex's validation answer named for an incomplete /evaluate; a body
# missing anything else is evaluated (and declined when it lacks the amount or the card).
EVALUATE_REQUIRED = (
    "orderId", "isDeclined", "idempotencyKey", "transaction.id", "transaction.responseCode",
    "transaction.avsResultCode", "transaction.cvvResultCode",
)
TRANSMIT_REQUIRED = (
    "orderId", "transaction.id", "transaction.amount", "transaction.currency", "payer.email",
    "paymentMethod.cardBinNumber", "paymentMethod.cardLast4Digits",
)
TOKENIZE_REQUIRED = (
    "payment_method.credit_card.first_name", "payment_method.credit_card.last_name",
    "payment_method.credit_card.number", "payment_method.credit_card.year",
)
CAPTURE_REQUIRED = ("idempotencyKey", "orderId", "amount", "currency")

# Message texts seen in real traffic; the rest follow ASP.NET's "The X field is required."
_MESSAGES = {"orderId": "Merchant's orderId is required"}
AMOUNT_RULE = "Amount must be greater than 10 and less than 20000 cents in sandbox."

ADDRESS_FIELDS = ("firstName", "lastName", "addressLine1", "addressLine2", "city", "state",
                  "zipCode", "country", "countryCode", "phone")


def field_name(path: str) -> str:
    """"billingInformation.zipCode" -> "BillingInformation.ZipCode" (ASP.NET's key form)."""
    return ".".join(part[:1].upper() + part[1:] for part in path.split("."))


def missing(data: dict, required: tuple[str, ...]) -> dict[str, list[str]]:
    """Field errors for every required path that is absent, null or empty."""
    errors = {}
    for path in required:
        if not present(pick(data, path)):
            last = field_name(path.rsplit(".", 1)[-1])
            errors[field_name(path)] = [_MESSAGES.get(path, f"The {last} field is required.")]
    return errors


def not_a_number(path: str, kind: str = "System.Int32") -> dict[str, list[str]]:
    """ASP.NET's text when a value cannot be read as the declared number type."""
    return {field_name(path): [
        f"The JSON value could not be converted to {kind}. Path: $.{path} | LineNumber: 0"]}


def is_pan(value: str) -> bool:
    """A raw card number: a Luhn-valid 12-19 digit number (anything else is a vault token)."""
    return value.isdigit() and 12 <= len(value) <= 19 and luhn_valid(value)


def dollars_to_cents(value) -> int | None:
    """A refund amount in dollars (number or numeric string) -> cents; None when it is not
    positive with at most 2 decimals."""
    amount = as_decimal(value)
    if amount is None or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        return None
    return int(amount * 100)


def refund_message(cents: int, left: int) -> str:
    """The real sandbox's refusal text, word for word (double parenthesis included)."""
    return (f"Amount to refund ({cents / 100:.2f}) is greater than maximum refund amount "
            f"in ({left / 100:.2f}))")


def refundable_cents(order: Order) -> int:
    if order.status not in ("COMPLETED", "RETURNED"):
        return 0
    return order.amount_cents - order.refunded_cents


def outcome_status(order: Order) -> str:
    """The deprecated /outcome's word for an order."""
    if order.status in ("COMPLETED", "RETURNED"):
        return "APPROVED"
    if order.status == "CAPTUREREQUIRED":
        return "CAPTUREREQUIRED"
    if order.status == "PROCESSING":
        return "SUBMITTED"
    if order.decision in ("DECLINED", "CHALLENGE"):
        return "DECLINED"
    return "CANCELLED"


def wire_time(moment: datetime | None = None, timespec: str = "auto") -> str:
    """A UTC time as Flex writes it, ISO 8601 ending in "Z"; now when `moment` is None."""
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec=timespec).replace(
        "+00:00", "Z")


def address(data: dict | None) -> dict | None:
    """An address object in Flex's field names, from a folded request object."""
    if not isinstance(data, dict):
        return None
    return {name: pick(data, name) for name in ADDRESS_FIELDS}


def order_json(order: Order) -> dict:
    """GET /v1/orders/{id} without the envelope (documented fields + our refundedAmount)."""
    return {
        "id": order.order_session_key, "status": STATUS_CODES[order.status],
        "statusName": order.status, "orderPlacedDate": order.placed_at,
        "currencyCode": order.currency, "currencySymbol": "$" if order.currency == "USD" else "",
        "amount": order.amount_cents, "referenceNumber": order.merchant_order_id,
        "email": order.email, "secondaryEmail": order.secondary_email, "phone": order.phone,
        "firstName": order.first_name, "lastName": order.last_name,
        "billingAddress": order.billing, "shippingAddress": order.shipping,
        "expiryDate": order.expiry, "correlationId": order.correlation_id,
        "refundedAmount": order.refunded_cents,  # sandbox only: Flex does not document it
    }
