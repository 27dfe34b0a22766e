"""Fault injection for the crash tests: SHOP_CRASH_AT=<point> makes the server process
SIGKILL itself at that point of a checkout or refund, exactly like a crash (no cleanup, no
response), so tests can show that every state a crash leaves behind is recovered. Never
honoured with SHOP_ENV=production."""

from __future__ import annotations

import logging
import os
import signal

from flex.client import CallReport

log = logging.getLogger(__name__)

POINTS = ("after_order_insert", "after_authorize", "after_vault", "after_evaluate_sent",
          "after_refund_reserved", "after_refund_sent")
# Points reached when Flex has answered a call (seen through FlexClient's on_call hook).
_AFTER_CALL = {"tokenize": "after_vault", "evaluate": "after_evaluate_sent"}


def crash_point(point: str) -> None:
    """Kills this process with SIGKILL if SHOP_CRASH_AT names `point`."""
    if os.environ.get("SHOP_CRASH_AT") == point and os.environ.get("SHOP_ENV") != "production":
        log.warning("SHOP_CRASH_AT=%s: killing this process", point)
        os.kill(os.getpid(), signal.SIGKILL)


def after_call(report: CallReport) -> None:
    """FlexClient on_call hook: the crash points just after Flex answered a call."""
    if report.endpoint in _AFTER_CALL and report.status is not None:
        crash_point(_AFTER_CALL[report.endpoint])
