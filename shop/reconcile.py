"""Settles orders whose /evaluate went unanswered (timeout, 5xx) by replaying it.

The shopper was told the payment could not be confirmed yet; if Flex had in fact approved,
the replay returns APPROVED and the order becomes "Rescued by Flex" (the merchant ships it,
or refunds it, and tells the shopper); otherwise it settles as Declined.
"""

from __future__ import annotations

import json
import logging

from flex.cit import CitFlow
from flex.errors import FlexError

from . import orders
from .db import Connection

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # with doubling backoff from 10 s: about 40 minutes of trying


def reconcile_due(conn: Connection, flow: CitFlow) -> int:
    """Replays every due evaluate once; returns how many orders were settled."""
    settled = 0
    for order in orders.to_reconcile(conn):
        try:
            evaluation = flow.reconcile(order.id, json.loads(order.evaluate_payload))
        except FlexError as exc:
            give_up = order.reconcile_attempts + 1 >= MAX_ATTEMPTS
            log.warning("reconcile of order %s failed%s: %s", order.id,
                        " (giving up)" if give_up else "", exc)
            orders.record_reconcile_failure(conn, order.id, str(exc), give_up)
            continue
        orders.record_reconciled(conn, order.id, evaluation)
        settled += 1
    return settled
