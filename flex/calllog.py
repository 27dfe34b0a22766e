"""Keeps every Flex call (already redacted by the client), for an inspector page.

Pass `CallLog(store).record` as FlexClient's `on_call` hook, with a `CallLogStore` you
implement on your database (the demo shop's is in shop/flex_store.py). Calls are filed under
the `ref` the caller gave the client (the merchant order id), so each order has a timeline.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Protocol

from .client import CallReport


@dataclass(frozen=True)
class LoggedCall:
    """One Flex call as stored: durations in milliseconds, times in epoch seconds."""

    id: int | None  # assigned by the store
    order_id: str | None
    endpoint: str
    method: str
    path: str
    status: int | None
    ms: int
    attempt: int
    error: str | None
    request_json: str | None  # pretty-printed, redacted
    response_json: str | None
    created_at: float  # epoch seconds


class CallLogStore(Protocol):
    """The log's storage, implemented by the merchant on its database."""

    def add(self, call: LoggedCall) -> None:
        """Stores one call (its `id` is None: the store assigns one, in call order)."""


class CallLog:
    """Turns the client's call reports into stored `LoggedCall`s."""

    def __init__(self, store: CallLogStore):
        self.store = store

    def record(self, report: CallReport) -> None:
        """Stores one client call report; the FlexClient `on_call` hook."""
        self.store.add(LoggedCall(
            None, report.ref, report.endpoint, report.method, report.path, report.status,
            report.ms, report.attempt, report.error, _pretty(report.request),
            _pretty(report.response), time.time(),
        ))


def _pretty(body: object) -> str | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body
    return json.dumps(body, indent=2, sort_keys=True)
