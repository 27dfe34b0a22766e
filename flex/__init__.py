"""Flex Standard CIT integration: copy this folder into your project.

    from flex import FlexClient, FlexConfig
    client = FlexClient(FlexConfig(api_url=..., app_key=..., app_secret=..., mid=...,
                                   tokenization_key=...))
"""

from .client import CallReport, FlexClient, FlexConfig
from .errors import (
    FlexAuthError,
    FlexError,
    FlexRefundRefused,
    FlexUnavailableError,
    FlexValidationError,
)
from .models import (
    Address,
    Card,
    CardSummary,
    Evaluation,
    LineItem,
    ProcessorResult,
    Purchase,
    VaultedCard,
)

__all__ = [
    "Address", "CallReport", "Card", "CardSummary", "Evaluation", "FlexAuthError", "FlexClient",
    "FlexConfig", "FlexError", "FlexRefundRefused", "FlexUnavailableError", "FlexValidationError",
    "LineItem", "ProcessorResult", "Purchase", "VaultedCard",
]
