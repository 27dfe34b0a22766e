"""How much Flex says it refunded, from GET /orders/{key}: one rule (FlexOrder.refunded_total)
for the shop's webhooks, its recovery and flex.recovery."""

from __future__ import annotations

from flex.models import FlexOrder, OrderStatus


def flex_order(status: OrderStatus, refunded_cents: int | None) -> FlexOrder:
    return FlexOrder("key", status, status.name, "order-1", 1800, "USD", None,
                     refunded_cents=refunded_cents)


def test_refunded_amount_is_used_when_flex_gives_it():
    assert flex_order(OrderStatus.COMPLETED, 700).refunded_total(1800) == 700


def test_returned_means_all_of_it_whatever_else_the_answer_says():
    assert flex_order(OrderStatus.RETURNED, None).refunded_total(1800) == 1800
    assert flex_order(OrderStatus.RETURNED, 700).refunded_total(1800) == 1800
    assert flex_order(OrderStatus.RETURNED, None).refunded_total() == 1800  # Flex's amount


def test_anything_else_without_an_amount_is_unknown():
    assert flex_order(OrderStatus.COMPLETED, None).refunded_total(1800) is None
