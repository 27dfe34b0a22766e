"""Plain data the integration speaks in: what the merchant knows about a checkout.

Money is integer cents. Nothing here holds a card number beyond the lifetime of a
request: `Card` is built from the form, handed to the processor and the vault, and
dropped; everything that is stored uses `CardSummary`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, repr=False)
class Card:
    number: str  # digits only
    cvc: str
    exp_month: int  # 1..12
    exp_year: int  # four digits
    holder_name: str

    def __repr__(self) -> str:  # never let a PAN or CVC reach a log line by accident
        return f"Card(****{self.number[-4:]}, {self.exp_month:02d}/{self.exp_year})"

    @property
    def summary(self) -> CardSummary:
        return CardSummary(
            brand=card_brand(self.number),
            first6=self.number[:6],
            last4=self.number[-4:],
            exp_month=self.exp_month,
            exp_year=self.exp_year,
            holder_name=self.holder_name,
        )


@dataclass(frozen=True)
class CardSummary:
    """What may be stored and shown about a card."""

    brand: str  # VISA, MASTERCARD, AMEX, DISCOVER, UNKNOWN
    first6: str
    last4: str
    exp_month: int
    exp_year: int
    holder_name: str


@dataclass(frozen=True)
class Address:
    line1: str
    city: str
    state: str
    zip_code: str
    country: str  # ISO 3166-1 alpha-2, e.g. "US"


@dataclass(frozen=True)
class LineItem:
    sku: str
    name: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class Purchase:
    """One checkout as the merchant priced it."""

    order_id: str  # the merchant's order id; also the idempotency key and senseKey
    amount_cents: int
    currency: str
    email: str
    billing: Address
    items: tuple[LineItem, ...] = ()
    customer_ip: str = ""
    sense_key: str = ""


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
    timestamp_utc: str = ""  # ISO-8601


@dataclass(frozen=True)
class VaultedCard:
    """The vault's answer to /tokenize."""

    token: str
    brand: str
    first6: str
    last4: str


@dataclass(frozen=True)
class Evaluation:
    """Flex's answer to /evaluate. CHALLENGE is a decline in Standard CIT."""

    status: str  # APPROVED | CHALLENGE | DECLINED (other configs: SUBMITTED, CAPTUREREQUIRED)
    order_session_key: str
    raw: dict = field(default_factory=dict, compare=False)

    @property
    def approved(self) -> bool:
        return self.status == "APPROVED"


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
