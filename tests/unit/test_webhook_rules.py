"""How much Flex says it refunded, from GET /orders/{key}: the rule the shop applies to an
order.refunded webhook."""

from __future__ import annotations

from flex.models import FlexOrder, OrderStatus
from shop.webhook_effects import flex_refunded_cents


def flex_order(status: OrderStatus, refunded_cents: int | None) -> FlexOrder:
    return FlexOrder("key", status, status.name, "order-1", 1800, "USD", None,
                     refunded_cents=refunded_cents)


def test_refunded_amount_is_used_when_flex_gives_it():
    assert flex_refunded_cents(flex_order(OrderStatus.COMPLETED, 700), 1800) == 700
    assert flex_refunded_cents(flex_order(OrderStatus.RETURNED, 1800), 1800) == 1800


def test_without_it_returned_means_all_of_it_and_anything_else_is_unknown():
    assert flex_refunded_cents(flex_order(OrderStatus.RETURNED, None), 1800) == 1800
    assert flex_refunded_cents(flex_order(OrderStatus.COMPLETED, None), 1800) is None
