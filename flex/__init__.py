"""Flex Standard CIT integration: a small typed client for Flex's API, and the checkout flow.
Copy this folder into your project; it needs only `requests`. See flex/README.md.

    from flex import CitFlow, FlexClient, FlexConfig
    client = FlexClient(FlexConfig(api_url=..., app_key=..., app_secret=..., mid=...,
                                   tokenization_key=...))
    flow = CitFlow(client)
"""

from .calllog import CallLog, CallLogStore, LoggedCall
from .cit import CitFlow, CitOutcome, CitResult
from .client import PRODUCTION_API_URL, SANDBOX_API_URL, CallReport, FlexClient, FlexConfig
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
    ThreeDSecure,
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
    WebhookUnreadable,
)
from .webhooks import verify as verify_webhook

__all__ = [
    "Address", "CallLog", "CallLogStore", "CallReport", "CancelResult", "CaptureResult", "Card",
    "CardSummary", "CitFlow", "CitOutcome", "CitResult", "Decision", "Evaluation", "EventType",
    "FlexAuthError", "FlexClient", "FlexConfig", "FlexConflictError", "FlexError",
    "FlexNotFoundError", "FlexOrder", "FlexRefundRefused", "FlexRefused",
    "FlexUnavailableError", "FlexValidationError", "LineItem", "LoggedCall", "MemoryNonceStore",
    "NonceStore", "NotSettledYet", "OrderPage", "OrderStatus", "OutboxRow", "OutboxStore",
    "Outcome", "OutcomeResult", "PRODUCTION_API_URL", "ProcessorResult", "Purchase", "Recovery",
    "RecoveryStore", "RefundResult", "RefundVerdict", "Relay", "SANDBOX_API_URL", "Settled",
    "Step", "ThreeDSecure", "TransactionType", "Transmit", "TransmitResult",
    "UnansweredEvaluate", "UnknownRefund", "VaultedCard", "WebhookEvent", "WebhookRejected",
    "WebhookUnreadable", "purpose", "verify_webhook",
]
