"""Plain data the integration speaks in: what the merchant knows about a checkout.

Money is integer cents. Nothing here holds a card number beyond the lifetime of a
request: `Card` is built from the form, handed to the processor and the vault, and
dropped; everything that is stored uses `CardSummary`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


@dataclass(frozen=True, repr=False)
class Card:
    """A card as the shopper typed it: lives for one request, never stored or logged."""

    number: str  # digits only
    cvc: str
    exp_month: int  # 1..12
    exp_year: int  # four digits
    holder_name: str

    def __repr__(self) -> str:  # never let a PAN or CVC reach a log line by accident
        return f"Card(****{self.number[-4:]}, {self.exp_month:02d}/{self.exp_year})"

    @property
    def summary(self) -> CardSummary:
        """What may be kept about this card: brand, 6-digit BIN, last 4, expiry, holder."""
        return CardSummary(
            brand=card_brand(self.number),
            bin=self.number[:6],
            last4=self.number[-4:],
            exp_month=self.exp_month,
            exp_year=self.exp_year,
            holder_name=self.holder_name,
        )


@dataclass(frozen=True)
class CardSummary:
    """What may be stored and shown about a card."""

    brand: str  # VISA, MASTERCARD, AMEX, DISCOVER, UNKNOWN
    bin: str  # the leading 6 (or 8) digits: the issuer's bank identification number
    last4: str
    exp_month: int
    exp_year: int
    holder_name: str


@dataclass(frozen=True)
class Address:
    """A billing address."""

    line1: str
    city: str
    state: str
    zip_code: str
    country: str  # ISO 3166-1 alpha-2, e.g. "US"


@dataclass(frozen=True)
class LineItem:
    """One line of the cart; `unit_price_cents` in integer cents."""

    sku: str
    name: str
    quantity: int
    unit_price_cents: int

    @property
    def total_cents(self) -> int:
        """`quantity` times `unit_price_cents`, in integer cents."""
        return self.quantity * self.unit_price_cents


@dataclass(frozen=True)
class Purchase:
    """One checkout as the merchant priced it."""

    order_id: str  # the merchant's order id; also the idempotency key and senseKey
    amount_cents: int
    currency: str
    email: str
    billing: Address
    items: tuple[LineItem, ...] = ()
    customer_ip: str = ""  # the shopper's IP; "" = not known (the field is left out)
    sense_key: str = ""  # the SenseJS key; "" = none (left out)


@dataclass(frozen=True)
class ThreeDSecure:
    """What the processor returned after authenticating the shopper with 3-D Secure; Flex's
    /evaluate takes it as `threeDSecure`. "" = not given (left out of the body)."""

    version: str  # e.g. "2.2.0"
    eci: str  # e-commerce indicator, e.g. "05" (Visa: fully authenticated)
    authentication_value: str  # CAVV / AAV, base64
    ds_transaction_id: str = ""  # directory server transaction id (3DS 2)
    xid: str = ""  # 3DS 1 transaction id
    authentication_value_algorithm: str = ""  # CAVV algorithm, e.g. "2"
    directory_response_status: str = ""  # ARes transStatus: Y, N, U, A, C, R
    authentication_response_status: str = ""  # RReq / PARes transStatus
    enrolled: str = ""  # Y, N, U


@dataclass(frozen=True)
class ProcessorResult:
    """The merchant's processor's answer to an authorization."""

    approved: bool
    transaction_id: str
    response_code: str  # e.g. "00", "05", "51"
    response_description: str
    processor_name: str
    avs_result: str = "NA"
    cvv_result: str = "NA"
    timestamp_utc: str = ""  # ISO-8601; "" = not known (the field is left out)
    cavv_result: str = "NA"  # the issuer's check of the 3DS authentication value, if any
    three_d_secure: ThreeDSecure | None = None  # when the processor ran 3-D Secure


@dataclass(frozen=True)
class VaultedCard:
    """The vault's answer to /tokenize: the token to send /evaluate instead of the PAN."""

    token: str
    brand: str
    bin: str  # 6 or 8 digits: Flex's `first_six_digits` has carried 8 in real traffic
    last4: str


class TransactionType(StrEnum):
    """What an approving Flex decision does (/evaluate `transactionType`)."""

    PURCHASE = "PURCHASE"  # Flex charges the card at once: APPROVED
    AUTHORIZATION = "AUTHORIZATION"  # Flex only authorizes: CAPTUREREQUIRED, then capture/cancel


class Outcome(StrEnum):
    """Flex's decision on /evaluate. In Standard CIT, CHALLENGE is a decline."""

    APPROVED = "APPROVED"  # Flex charged the card: the payment is rescued
    DECLINED = "DECLINED"
    CHALLENGE = "CHALLENGE"
    CAPTUREREQUIRED = "CAPTUREREQUIRED"  # transactionType AUTHORIZATION: capture or cancel it
    SUBMITTED = "SUBMITTED"  # e.g. 3-D Secure ran: the decision comes later (webhook, lookup)


@dataclass(frozen=True)
class Evaluation:
    """Flex's answer to /evaluate."""

    status: Outcome
    order_session_key: str  # Flex's order id: refunds, lookups, capture and cancel use it
    raw: dict = field(default_factory=dict, compare=False)

    @property
    def approved(self) -> bool:
        """True when Flex charged the card (APPROVED)."""
        return self.status == Outcome.APPROVED

    @property
    def submitted(self) -> bool:
        """True when Flex will decide later (SUBMITTED): nothing is charged yet; settle it
        like an unanswered /evaluate, by webhook or lookup."""
        return self.status == Outcome.SUBMITTED

    @property
    def authorized(self) -> bool:
        """True when Flex authorized the card and waits for a capture or cancel
        (CAPTUREREQUIRED: transactionType AUTHORIZATION)."""
        return self.status == Outcome.CAPTUREREQUIRED


class OrderStatus(IntEnum):
    """A Flex order's `status` number (GET /orders/{id})."""

    DRAFT = 0
    ONHOLD = 1
    CANCELLED = 2  # also what DECLINED and CHALLENGE decisions become
    PROBLEM = 3
    PROCESSING = 4
    CAPTUREREQUIRED = 5
    RETURNED = 6  # fully refunded
    COMPLETED = 7


@dataclass(frozen=True)
class FlexOrder:
    """One Flex order as GET /orders/{id} shows it. Money in integer cents."""

    order_session_key: str
    status: OrderStatus | int  # an int only when Flex adds a status this code does not know
    status_name: str
    merchant_order_id: str | None  # Flex's `referenceNumber`
    amount_cents: int | None
    currency: str | None
    placed_at: str | None  # ISO-8601, UTC
    email: str | None = None
    correlation_id: str | None = None
    refunded_cents: int | None = None  # our sandbox's addition; Flex does not document it
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def refunded_total(self, charged_cents: int | None = None) -> int | None:
        """How much Flex has refunded, in cents: everything (`charged_cents`, else the order's
        amount) once the order is RETURNED, else `refundedAmount` where the answer has it,
        else unknown (None). The one place this rule lives."""
        if self.status == OrderStatus.RETURNED:
            return charged_cents if charged_cents is not None else self.amount_cents
        return self.refunded_cents


@dataclass(frozen=True)
class OrderPage:
    """One page of GET /orders, newest first."""

    items: tuple[FlexOrder, ...]
    total_count: int
    page: int  # 1-based
    page_size: int


@dataclass(frozen=True)
class TransmitResult:
    """Flex's answer to /transmit: it recorded the approved sale."""

    transmit_id: str | None
    raw: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class RefundResult:
    """A refund Flex accepted. `status` is Flex's word for it (SUCCESS, APPROVED, ...)."""

    order_session_key: str
    amount_cents: int
    status: str
    raw: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class OutcomeResult:
    """Flex's answer to /outcome (deprecated but documented): APPROVED, DECLINED, EXPIRED,
    CANCELLED, SUBMITTED, CAPTUREREQUIRED, or NOTFOUND for an unknown key."""

    status: str
    confirmation_id: str | None  # 8 hex digits, as in Flex's webhooks
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def found(self) -> bool:
        """False when Flex has no order for the key (status NOTFOUND)."""
        return self.status != "NOTFOUND"


@dataclass(frozen=True)
class CaptureResult:
    """A capture Flex accepted: the authorized order is now COMPLETED."""

    order_session_key: str
    amount_cents: int
    currency: str
    status: str
    raw: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class CancelResult:
    """The answer to a cancel. `found` is False when Flex had no such order (nothing to
    cancel, so nothing was charged); otherwise the order is CANCELLED."""

    found: bool
    raw: dict = field(default_factory=dict, compare=False, repr=False)


def card_brand(number: str) -> str:
    """Brand from the leading digits (enough for the payloads; not a BIN lookup)."""
    if number.startswith("4"):
        return "VISA"
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return "MASTERCARD"
    if number[:2] in {"34", "37"}:
        return "AMEX"
    if number.startswith("6011") or number.startswith("65"):
        return "DISCOVER"
    return "UNKNOWN"


def luhn_valid(digits: str) -> bool:
    """The card number checksum (ISO/IEC 7812). `digits`: digits only."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0
