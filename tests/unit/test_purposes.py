"""flex.purpose: every call report says why the call was made, read where it is made."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor

from flex import CallReport, purpose


def report(endpoint: str) -> CallReport:
    return CallReport(endpoint, "GET", f"/v1/{endpoint}", 200, 1, 1, None, None, None, "o1")


def test_a_call_reports_the_innermost_purpose_within_the_outermost_action():
    outside = report("order")
    assert (outside.purpose, outside.action) == ("looking up the order", None)
    with purpose("refunding $9.00") as refund:
        with purpose("checking the refunded total"):
            inner = report("order")
            token = report("token")
        after = report("refund")
    assert inner.purpose == "checking the refunded total"
    assert token.purpose == "getting a bearer token for checking the refunded total"
    assert after.purpose == "refunding $9.00"
    assert inner.action == token.action == after.action == refund.action
    with purpose("refunding $9.00") as again:
        assert again.action != refund.action  # a second click is another action


def test_a_purpose_travels_to_a_pool_thread_only_with_its_context():
    with ThreadPoolExecutor(1) as pool, purpose("vaulting the card") as vault:
        carried = pool.submit(contextvars.copy_context().run, report, "tokenize").result()
    assert (carried.purpose, carried.action) == ("vaulting the card", vault.action)


def test_a_purpose_given_by_the_caller_wins():
    with purpose("checking out"):
        given = CallReport("order", "GET", "/v1/orders/k", 200, 1, 1, None, None, None, "o1",
                           purpose="a test", action="z")
    assert (given.purpose, given.action) == ("a test", "z")
