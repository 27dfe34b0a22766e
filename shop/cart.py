"""The shopper's cart, kept in the signed session cookie as {sku: quantity}."""

from __future__ import annotations

from dataclasses import dataclass

from flask import session

from . import catalog

MAX_QUANTITY = 10  # per line


@dataclass(frozen=True)
class CartLine:
    product: catalog.Product
    quantity: int

    @property
    def total_cents(self) -> int:
        return self.product.price_cents * self.quantity


def lines() -> list[CartLine]:
    items = session.get("cart", {})
    found = ((catalog.get(sku), qty) for sku, qty in items.items())
    return [CartLine(product, qty) for product, qty in found if product is not None]


def total_cents(cart_lines: list[CartLine]) -> int:
    return sum(line.total_cents for line in cart_lines)


def count() -> int:
    return sum(session.get("cart", {}).values())


def add(sku: str, quantity: int) -> None:
    items = dict(session.get("cart", {}))
    items[sku] = min(MAX_QUANTITY, items.get(sku, 0) + quantity)
    session["cart"] = items


def set_quantity(sku: str, quantity: int) -> None:
    items = dict(session.get("cart", {}))
    if quantity > 0:
        items[sku] = min(MAX_QUANTITY, quantity)
    else:
        items.pop(sku, None)
    session["cart"] = items


def clear() -> None:
    session.pop("cart", None)
