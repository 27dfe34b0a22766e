"""Pure functions: the merchant's order data -> Flex request bodies (docs/FLEX_API.md).

Money is integer cents everywhere except the refund's `amountToRefund`, which Flex takes in
dollars. A value the merchant does not have (an empty string) is left out of the body, not
sent as "". No I/O here, so every field can be unit-tested. `FlexClient.transmit_payload` and
`FlexClient.evaluate_payload` call these with the MID and site id from `FlexConfig`.
"""

from __future__ import annotations

from .models import (
    Card,
    CardSummary,
    LineItem,
    ProcessorResult,
    Purchase,
    ThreeDSecure,
    TransactionType,
)

NOT_AVAILABLE = "NA"  # Flex's sandbox rejects missing result codes; "NA" means "not given"


def tokenize_body(card: Card, *, email: str = "", sense_key: str = "") -> dict:
    """The /tokenize body: the only one that carries the card number and CVC."""
    first_name, last_name = split_name(card.holder_name)
    payment_method: dict = {
        "credit_card": {
            "first_name": first_name,
            "last_name": last_name,
            "number": card.number,
            "verification_value": card.cvc,
            "month": f"{card.exp_month:02d}",
            "year": f"{card.exp_year:04d}",
        }
    }
    if email:
        payment_method["email"] = email
    if sense_key:
        payment_method["sense_key"] = sense_key
    return {"payment_method": payment_method}


def transmit_body(purchase: Purchase, card: CardSummary, processor: ProcessorResult, *,
                  mid: str, site_id: str = "") -> dict:
    """After the processor approved: tells Flex about the sale. Carries no card number.
    Raises ValueError when an amount is not whole cents."""
    return _order_body(purchase, card, processor, mid=mid, site_id=site_id, declined=False)


def evaluate_body(purchase: Purchase, card: CardSummary, vault_token: str,
                  processor: ProcessorResult, *, mid: str, site_id: str = "",
                  idempotency_key: str,
                  transaction_type: str = TransactionType.PURCHASE) -> dict:
    """After the processor declined: asks Flex to evaluate (and maybe approve) the payment.
    `transaction_type` AUTHORIZATION: an approval is an authorization to capture later.
    Raises ValueError for an unknown `transaction_type` or an amount not in whole cents."""
    body = _order_body(purchase, card, processor, mid=mid, site_id=site_id, declined=True)
    body["transactionType"] = TransactionType(str(transaction_type).upper()).value
    body["idempotencyKey"] = idempotency_key
    body["paymentMethod"] = {**body["paymentMethod"], "cardNumber": vault_token, "token": True}
    return body


def is_authorization(evaluate_payload: dict) -> bool:
    """True when a (kept) /evaluate body asked for an authorization: if its answer never
    arrived, settle it with external-cancel, not a replay, so the shopper who was told it
    failed is never charged."""
    kind = str(evaluate_payload.get("transactionType") or TransactionType.PURCHASE)
    return kind.upper() == TransactionType.AUTHORIZATION


def refund_body(amount_cents: int, message: str = "") -> dict:
    """The refund body: `amount_cents` integer cents, sent as dollars (`amountToRefund`).
    Raises ValueError unless `amount_cents` is a positive int."""
    body: dict = {"amountToRefund": cents_to_dollars(amount_cents)}
    if message:
        body["refundMessage"] = message
    return body


def capture_body(order_session_key: str, amount_cents: int, currency: str,
                 idempotency_key: str) -> dict:
    """The /capture body: `amount_cents` integer cents, at most what was authorized.
    Raises ValueError unless `amount_cents` is a positive int."""
    _check_cents(amount_cents)
    return {"idempotencyKey": idempotency_key, "orderId": order_session_key,
            "amount": amount_cents, "currency": currency}


def cancel_body(idempotency_key: str | None) -> dict | None:
    """The cancel body: none, or the optional idempotency key (Flex replays it for 24 h)."""
    return {"idempotencyKey": idempotency_key} if idempotency_key else None


def cents_to_dollars(cents: int) -> float:
    """Integer cents -> dollars for the refund body. Exact: every whole number of cents below
    2**53 / 100 has a float nearest to it whose shortest repr has at most 2 decimals, so
    JSON carries e.g. 1999 -> 19.99, never 19.990000000000002. Raises ValueError unless
    `cents` is a positive int."""
    if isinstance(cents, bool) or not isinstance(cents, int) or cents <= 0:
        raise ValueError(f"amount must be a positive whole number of cents, not {cents!r}")
    return round(cents / 100, 2)


def split_name(full_name: str) -> tuple[str, str]:
    """'Ada King Lovelace' -> ('Ada King', 'Lovelace'); a single word is both."""
    parts = full_name.split()
    if not parts:
        return "", ""
    if len(parts) == 1:
        return parts[0], parts[0]
    return " ".join(parts[:-1]), parts[-1]


def _order_body(purchase: Purchase, card: CardSummary, processor: ProcessorResult, *,
                mid: str, site_id: str, declined: bool) -> dict:
    _check_cents(purchase.amount_cents)
    first_name, last_name = split_name(card.holder_name)
    billing = purchase.billing
    body: dict = {
        "isDeclined": declined,
        "isMIT": False,
        "mid": mid,
        "orderId": purchase.order_id,
        "transactionType": "PURCHASE",
        **_given(customerIp=purchase.customer_ip, senseKey=purchase.sense_key),
        "transaction": {
            "id": processor.transaction_id,
            "amount": purchase.amount_cents,
            "currency": purchase.currency,
            "responseCode": processor.response_code or NOT_AVAILABLE,
            "responseCodeSource": processor.processor_name or NOT_AVAILABLE,
            "avsResultCode": processor.avs_result or NOT_AVAILABLE,
            "cvvResultCode": processor.cvv_result or NOT_AVAILABLE,
            "cavvResultCode": processor.cavv_result or NOT_AVAILABLE,
            "cardNotPresent": True,
            **_given(timestampUtc=processor.timestamp_utc,
                     responseDescription=processor.response_description,
                     processorName=processor.processor_name),
        },
        "payer": {"email": purchase.email},
        "billingInformation": {
            "firstName": first_name,
            "lastName": last_name,
            "addressLine1": billing.line1,
            "city": billing.city,
            "state": billing.state,
            "zipCode": billing.zip_code.replace("-", ""),
            "country": billing.country,
            "countryCode": billing.country,
        },
        "paymentMethod": {
            "holderName": card.holder_name,
            "cardType": "CREDIT",
            "cardBrand": card.brand,
            "cardCountry": billing.country,
            "expirationMonth": card.exp_month,
            "expirationYear": card.exp_year,
            "cardBinNumber": card.bin,
            "cardLast4Digits": card.last4,
        },
        "orderItems": [_item(item) for item in purchase.items],
    }
    if processor.three_d_secure is not None:
        body["threeDSecure"] = three_d_secure_body(processor.three_d_secure)
    if site_id:
        body["siteId"] = site_id
    return body


def three_d_secure_body(result: ThreeDSecure) -> dict:
    """The `threeDSecure` object: the processor's 3-D Secure result, in the field names a
    published Flex client sends (`EcommerceIndicator` capitalised as Flex spells it)."""
    return _given(threeDsVersion=result.version, EcommerceIndicator=result.eci,
                  authenticationValue=result.authentication_value,
                  directoryServerTransactionId=result.ds_transaction_id, xid=result.xid,
                  authenticationValueAlgorithm=result.authentication_value_algorithm,
                  directoryResponseStatus=result.directory_response_status,
                  authenticationResponseStatus=result.authentication_response_status,
                  enrolled=result.enrolled)


def _given(**fields: str) -> dict:
    """Only the fields that have a value: Flex reads "" as a value, not as "not known"."""
    return {name: value for name, value in fields.items() if value}


def _item(item: LineItem) -> dict:
    _check_cents(item.unit_price_cents, allow_zero=True)
    return {
        "sku": item.sku,
        "name": item.name,
        "quantity": item.quantity,
        "amount": item.unit_price_cents,
        "totalAmount": item.total_cents,
    }


def _check_cents(value: int, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise ValueError(f"money must be whole cents, not {value!r}")
