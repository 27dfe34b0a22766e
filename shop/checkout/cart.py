"""The shopper's cart, kept in the signed session cookie as {sku: quantity}.

The cookie is signed, not trusted: anyone who knows the key (the demo's is public) can write
one. So the cart is validated on every read, not only on add: unknown products, quantities
outside 1..MAX_QUANTITY and lines beyond MAX_LINES are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import session

from shop.checkout import catalog

MAX_QUANTITY = 10  # per line
MAX_LINES = len(catalog.PRODUCTS)  # one line per product at most


@dataclass(frozen=True)
class CartLine:
    product: catalog.Product
    quantity: int

    @property
    def total_cents(self) -> int:
        return self.product.price_cents * self.quantity


def _items() -> dict[str, int]:
    """The session's cart, keeping only lines this shop could have written."""
    stored = session.get("cart")
    if not isinstance(stored, dict):
        return {}
    valid = {sku: qty for sku, qty in stored.items()
             if catalog.get(sku) is not None and type(qty) is int and 1 <= qty <= MAX_QUANTITY}
    return dict(list(valid.items())[:MAX_LINES])


def lines() -> list[CartLine]:
    return [CartLine(catalog.get(sku), qty) for sku, qty in _items().items()]


def total_cents(cart_lines: list[CartLine]) -> int:
    return sum(line.total_cents for line in cart_lines)


def count() -> int:
    return sum(_items().values())


def add(sku: str, quantity: int) -> None:
    items = _items()
    items[sku] = min(MAX_QUANTITY, items.get(sku, 0) + quantity)
    session["cart"] = items


def set_quantity(sku: str, quantity: int) -> None:
    items = _items()
    if quantity > 0:
        items[sku] = min(MAX_QUANTITY, quantity)
    else:
        items.pop(sku, None)
    session["cart"] = items


def clear() -> None:
    session.pop("cart", None)
