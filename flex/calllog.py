"""Keeps every Flex call (already redacted by the client), for an inspector page.

Pass `CallLog(store).record` as FlexClient's `on_call` hook, with a `CallLogStore` you
implement on your database (the demo shop's is in shop/storage/flex_store.py). Calls are filed under
the `ref` the caller gave the client (the merchant order id), so each order has a timeline.
`CallLog.record_step` files a step the merchant timed itself (its processor's authorization)
beside them, so the timeline shows the vault running alongside the authorization. Each call
keeps why it was made and the action it belongs to (`flex.purpose`, flex/purposes.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Protocol

from . import purposes
from .client import CallReport

STEP_PREFIX = "processor."  # endpoint names of merchant-side steps, e.g. "processor.authorize"


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
    request_json: str | None  # redacted, JSON on one line (or the answer's text if not JSON)
    response_json: str | None
    created_at: float  # epoch seconds when the call ended (when it was recorded)
    purpose: str | None = None  # why it was made, e.g. "checking the refunded total"
    action: str | None = None  # calls of one action (a checkout, a refund) share this id

    @property
    def request_pretty(self) -> str | None:
        """The request body as a page shows it: JSON indented, keys sorted."""
        return pretty(self.request_json)

    @property
    def response_pretty(self) -> str | None:
        """The response body (or a step's outcome) as a page shows it."""
        return pretty(self.response_json)

    @property
    def started_at(self) -> float:
        """Epoch seconds when the call started."""
        return self.created_at - self.ms / 1000

    @property
    def why(self) -> str:
        """Why the call was made: its recorded purpose, else what its endpoint does."""
        if self.purpose:
            return self.purpose
        if not self.is_flex:
            return "a step of the merchant's own"
        return purposes.ENDPOINT_PURPOSES.get(self.endpoint, self.endpoint)

    @property
    def is_flex(self) -> bool:
        """False for a merchant-side step filed with `CallLog.record_step`."""
        return not self.endpoint.startswith(STEP_PREFIX)


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
            report.ms, report.attempt, report.error, _stored(report.request),
            _stored(report.response), time.time(), report.purpose, report.action,
        ))

    def record_step(self, ref: str, endpoint: str, started_at: float, ms: int,
                    outcome: dict | None = None, *, why: str | None = None) -> None:
        """Files a merchant-side step (`endpoint` like "processor.authorize", started at epoch
        seconds, lasting `ms` milliseconds) in the order's timeline, in the current action;
        `outcome` holds no card data, `why` says what the step was for."""
        now = purposes.current()
        self.store.add(LoggedCall(
            None, ref, endpoint, "", endpoint.removeprefix(STEP_PREFIX), None, ms, 1, None,
            None, _stored(outcome), started_at + ms / 1000,
            why or (now.why if now else None), now.action if now else None,
        ))


def pretty(stored: str | None) -> str | None:
    """A stored body indented for reading (2 spaces, keys sorted); text that is not a JSON
    object or array, such as a non-JSON answer, as it is."""
    try:
        body = json.loads(stored) if stored else None
    except ValueError:
        return stored
    return json.dumps(body, indent=2, sort_keys=True) if isinstance(body, dict | list) else stored


def _stored(body: object) -> str | None:
    """A body as stored: on one line, which json's C encoder writes; indent=2 falls back to
    its pure-Python encoder, ~5x the CPU on every call. Pages indent it when they show it."""
    if body is None:
        return None
    if isinstance(body, str):
        return body
    return json.dumps(body, sort_keys=True)
