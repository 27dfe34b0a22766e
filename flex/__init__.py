"""Flex Standard CIT integration: a small typed client for Flex's API, and the checkout flow.
Copy this folder into your project; it needs only `requests`. See flex/README.md.

    from flex import CitFlow, FlexClient, FlexConfig
    client = FlexClient(FlexConfig(api_url=..., app_key=..., app_secret=..., mid=...,
                                   tokenization_key=...))
    flow = CitFlow(client)
"""

from .calllog import CallLog, CallLogStore, LoggedCall
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
from .outbox import OutboxRow, OutboxStore, Relay, Transmit
from .purposes import purpose
from .recovery import (
    Decision,
    NotSettledYet,
    Recovery,
    RecoveryStore,
    RefundVerdict,
    Settled,
    Step,
    UnansweredEvaluate,
    UnknownRefund,
)
from .webhooks import (
    EventType,
    MemoryNonceStore,
    NonceStore,
    WebhookEvent,
    WebhookRejected,
)
from .webhooks import verify as verify_webhook

__all__ = [
    "Address", "CallLog", "CallLogStore", "CallReport", "CancelResult", "CaptureResult", "Card",
    "CardSummary", "CitFlow", "CitResult", "Decision", "Evaluation", "EventType",
    "FlexAuthError", "FlexClient", "FlexConfig", "FlexConflictError", "FlexError",
    "FlexNotFoundError", "FlexOrder", "FlexRefundRefused", "FlexRefused",
    "FlexUnavailableError", "FlexValidationError", "LineItem", "LoggedCall", "MemoryNonceStore",
    "NonceStore", "NotSettledYet", "OrderPage", "OrderStatus", "OutboxRow", "OutboxStore",
    "Outcome", "OutcomeResult", "ProcessorResult", "Purchase", "Recovery", "RecoveryStore",
    "RefundResult", "RefundVerdict", "Relay", "Settled", "Step", "TransactionType", "Transmit",
    "TransmitResult", "UnansweredEvaluate", "UnknownRefund", "VaultedCard", "WebhookEvent",
    "WebhookRejected", "purpose", "verify_webhook",
]
