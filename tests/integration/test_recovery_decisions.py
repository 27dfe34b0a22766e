"""flex/recovery.py's decisions against the sandbox over loopback HTTP: an unanswered
/evaluate is looked up by merchant orderId before it is ever replayed, replayed with its
own idempotencyKey when Flex never saw it, voided in authorization mode; an unknown refund
is confirmed or released by what Flex's order shows."""

from __future__ import annotations

import time

import pytest

from flex.models import FlexOrder, OrderStatus
from flex.recovery import (
    LATER,
    Decision,
    Recovery,
    RefundVerdict,
    UnansweredEvaluate,
    UnknownRefund,
    refund_verdict,
)
from tests.support import MemoryStore, calls, evaluate_payload, sandbox_orders, set_fault


def settle(flex_client, item: UnansweredEvaluate):
    store = MemoryStore([item])
    [done] = Recovery(store, flex_client).run_once()
    return done, store


def test_a_decided_evaluate_is_found_by_lookup_not_replayed(flex_client, fresh_sandbox):
    payload = evaluate_payload(flex_client, order_id="lost-1")
    first = flex_client.evaluate(payload)  # Flex decided; pretend the answer was lost
    evaluates = len(calls(fresh_sandbox, "evaluate"))

    done, store = settle(flex_client, UnansweredEvaluate("lost-1", payload, 0))

    assert done.result == Decision.APPROVED
    decision, key, steps, _ = store.settled["lost-1"]
    assert key == first.order_session_key
    assert [s.asked for s in steps] == ["GET /orders?query=lost-1"]
    assert len(calls(fresh_sandbox, "evaluate")) == evaluates  # never replayed


@pytest.mark.parametrize(("number", "decision"), [("4000000000000002", Decision.APPROVED),
                                                  ("4000000000009995", Decision.DECLINED),
                                                  ("4000000000000127", Decision.DECLINED)])
def test_an_evaluate_flex_never_saw_is_replayed_once(flex_client, fresh_sandbox, number,
                                                     decision):
    payload = evaluate_payload(flex_client, number, order_id="never-1")

    done, store = settle(flex_client, UnansweredEvaluate("never-1", payload, 0))
    assert done.result == decision
    assert [s.asked for s in store.settled["never-1"][2]] == [
        "GET /orders?query=never-1", "POST /evaluate (idempotencyKey never-1)"]
    # Settling it again finds the order the replay made: still one Flex order.
    again, _ = settle(flex_client, UnansweredEvaluate("never-1", payload, 0))
    assert again.result == decision
    assert len(sandbox_orders(fresh_sandbox, "never-1")) == 1


def test_lost_answer_card_is_found_by_lookup(flex_client, fresh_sandbox):
    payload = evaluate_payload(flex_client, "4000000000000119", order_id="lost-119")
    with pytest.raises(Exception, match="503"):
        flex_client.evaluate(payload)
    done, store = settle(flex_client, UnansweredEvaluate("lost-119", payload, 0))
    assert done.result == Decision.APPROVED
    assert "found by lookup" in store.settled["lost-119"][3]


def test_authorization_mode_voids_instead_of_looking_up(flex_client, fresh_sandbox):
    payload = {**evaluate_payload(flex_client, order_id="auth-1"),
               "transactionType": "AUTHORIZATION"}
    assert flex_client.evaluate(payload).status == "CAPTUREREQUIRED"  # the answer "was lost"

    done, store = settle(flex_client, UnansweredEvaluate("auth-1", payload, 0))
    assert done.result == Decision.CANCELLED
    assert flex_client.find_order_by_reference("auth-1").status == OrderStatus.CANCELLED
    nothing, _ = settle(flex_client, UnansweredEvaluate(
        "auth-2", {**payload, "orderId": "auth-2", "idempotencyKey": "auth-2"}, 0))
    assert nothing.result == Decision.NOT_CHARGED  # Flex never had it: nothing to cancel
    assert sandbox_orders(fresh_sandbox, "auth-2") == []


def test_flex_down_is_retried_with_backoff_then_unresolved(flex_client, fresh_sandbox):
    payload = evaluate_payload(flex_client, order_id="down-1")
    set_fault(fresh_sandbox, "orders", status=503)
    store = MemoryStore([UnansweredEvaluate("down-1", payload, 0)])
    recovery = Recovery(store, flex_client, max_attempts=3, first_delay=10)

    [done] = recovery.run_once(now=0)
    assert done.result == LATER
    retry_at, steps, _ = store.retried["down-1"]
    assert steps[0].answered.startswith("no usable answer")
    assert retry_at - time.time() > 9  # 2 x 10 s, jittered down to half at most
    assert calls(fresh_sandbox, "evaluate") == []  # no lookup answer: never replayed blind

    last = recovery.settle_evaluate(UnansweredEvaluate("down-1", payload, 2))
    assert last.result == Decision.UNRESOLVED
    assert "gave up after 3 checks" in store.settled["down-1"][3]


def test_unknown_refunds_are_confirmed_or_released(flex_client, fresh_sandbox):
    evaluation = flex_client.evaluate(evaluate_payload(flex_client, order_id="refund-1"))
    key = evaluation.order_session_key
    flex_client.refund(key, 500)  # this one landed (its answer "was lost")
    landed = UnknownRefund(1, "refund-1", key, 500, confirmed_cents=0, attempts=0)
    never = UnknownRefund(2, "refund-1", key, 300, confirmed_cents=500, attempts=0)
    store = MemoryStore(refunds=[landed, never])

    Recovery(store, flex_client).run_once()
    assert store.settled[1][0] == RefundVerdict.CONFIRMED
    assert store.settled[2][0] == RefundVerdict.RELEASED

    flex_client.refund(key, 1300)  # the rest: Flex shows the order RETURNED
    full = UnknownRefund(3, "refund-1", key, 1300, confirmed_cents=500, attempts=0)
    store = MemoryStore(refunds=[full])
    Recovery(store, flex_client).run_once()
    assert store.settled[3][0] == RefundVerdict.CONFIRMED


def test_without_a_refunded_amount_a_partial_refund_stays_held():
    order = FlexOrder("key-1", OrderStatus.COMPLETED, "COMPLETED", "o-1", 1800, "USD", None)
    item = UnknownRefund(1, "o-1", "key-1", 500, confirmed_cents=0, attempts=0)
    assert refund_verdict(order, item)[0] is None  # no verdict: checked again, never released
    returned = FlexOrder("key-1", OrderStatus.RETURNED, "RETURNED", "o-1", 1800, "USD", None)
    assert refund_verdict(returned, item)[0] == RefundVerdict.CONFIRMED
