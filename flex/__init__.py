"""Flex Standard CIT integration: a small typed client for Flex's API, and the checkout flow.
Copy this folder into your project; it needs only `requests`. See flex/README.md.

    from flex import CitFlow, FlexClient, FlexConfig
    client = FlexClient(FlexConfig(api_url=..., app_key=..., app_secret=..., mid=...,
                                   tokenization_key=...))
    flow = CitFlow(client)
"""

from .cit import CitFlow, CitResult
from .client import CallReport, FlexClient, FlexConfig
from .errors import (
    FlexAuthError,
    FlexConflictError,
    FlexError,
    FlexNotFoundError,
    FlexRefundRefused,
    FlexRefused,
    FlexUnavailableError,
    FlexValidationError,
)
from .models import (
    Address,
    CancelResult,
    CaptureResult,
    Card,
    CardSummary,
    Evaluation,
    FlexOrder,
    LineItem,
    OrderPage,
    OrderStatus,
    Outcome,
    OutcomeResult,
    ProcessorResult,
    Purchase,
    RefundResult,
    TransactionType,
    TransmitResult,
    VaultedCard,
)

__all__ = [
    "Address", "CallReport", "CancelResult", "CaptureResult", "Card", "CardSummary", "CitFlow",
    "CitResult", "Evaluation", "FlexAuthError", "FlexClient", "FlexConfig", "FlexConflictError",
    "FlexError", "FlexNotFoundError", "FlexOrder", "FlexRefundRefused", "FlexRefused",
    "FlexUnavailableError", "FlexValidationError", "LineItem", "OrderPage", "OrderStatus",
    "Outcome", "OutcomeResult", "ProcessorResult", "Purchase", "RefundResult", "TransactionType",
    "TransmitResult", "VaultedCard",
]
