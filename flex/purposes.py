"""Why a Flex call is made. The caller says it around the call, and every CallReport made
inside carries it, so a timeline reads "order: checking the refunded total", not a bare
`GET /v1/orders/{key}`:

    with purpose("checking the refunded total"):
        client.get_order(order_session_key, ref=order_id)

Purposes nest. The outermost one opens an *action* (a checkout, a refund, one webhook's
effects): every call inside it, token renewals included, shares the action's id, so a
timeline groups and times calls by action rather than by how close together they ran. The
innermost purpose is the one a call reports. A call made outside any purpose reports what
its endpoint does (`ENDPOINT_PURPOSES`).

Context variables follow the code that runs, not threads: work handed to a thread pool
takes its purpose along with `contextvars.copy_context().run` (CitFlow's vault call does).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

# What each endpoint does, for a call made outside any purpose.
ENDPOINT_PURPOSES = {
    "token": "getting a bearer token",
    "tokenize": "vaulting the card",
    "transmit": "reporting an approved sale",
    "evaluate": "asking Flex to decide a declined payment",
    "refund": "refunding",
    "order": "looking up the order",
    "orders": "finding the order by the shop's order id",
    "outcome": "asking for the decision (deprecated /outcome)",
    "capture": "capturing the authorized amount",
    "cancel": "cancelling the authorization",
    "external-cancel": "cancelling the authorization by the shop's order id",
}


@dataclass(frozen=True)
class Purpose:
    """Why the calls made now are made: `why` (the innermost purpose) within `action` (an
    opaque id shared by every call of the outermost purpose)."""

    why: str
    action: str


_current: ContextVar[Purpose | None] = ContextVar("flex_purpose", default=None)


@contextmanager
def purpose(why: str) -> Iterator[Purpose]:
    """Files every Flex call made inside the block with `why` (e.g. "vaulting the card"); the
    outermost block also opens a new action."""
    outer = _current.get()
    now = Purpose(why, outer.action if outer else uuid.uuid4().hex[:16])
    token = _current.set(now)
    try:
        yield now
    finally:
        _current.reset(token)


def current() -> Purpose | None:
    """The purpose the calls made now are filed with, if the caller gave one."""
    return _current.get()


def for_call(endpoint: str) -> tuple[str, str | None]:
    """(why, action id) for a call to `endpoint` made now. A token call says what it was
    fetched for ("getting a bearer token for vaulting the card")."""
    now = _current.get()
    default = ENDPOINT_PURPOSES.get(endpoint, endpoint)
    if now is None:
        return default, None
    if endpoint == "token":
        return f"{default} for {now.why}", now.action
    return now.why, now.action
