"""The SenseJS senseKey through the checkout funnel: cart, checkout, order confirmation.

Flex asks for SenseJS on every page of the funnel, all filing under one senseKey, which the
server then sends on /tokenize and /evaluate. The demo's senseKey is the checkout id (the
merchant's orderId, as Flex's older docs bound it with `setOrderId`), and the cart page comes
before any checkout page, so the cart page mints the id the next checkout page will use and
keeps it in the session: the cart, that checkout and its confirmation share one key. Every
checkout page still gets a checkout id of its own (a reload is a new attempt, with a new
key); only the first one after the cart takes the cart's. The confirmation runs SenseJS only
for the session that placed the order: a merchant looking at it must not add their device to
the shopper's data.
"""

from __future__ import annotations

import uuid

from flask import session

_NEXT = "next_checkout_id"  # minted by the cart page, taken by the next checkout page
_PLACED = "placed_checkout_id"  # the order this session placed last: its confirmation


def cart_sense_key() -> str:
    """The cart page's senseKey: the id the next checkout page will use."""
    if _NEXT not in session:
        session[_NEXT] = str(uuid.uuid4())
    return session[_NEXT]


def new_checkout_id() -> str:
    """A checkout page's id: the one the cart page announced, else a new one."""
    return session.pop(_NEXT, None) or str(uuid.uuid4())


def placed(order_id: str) -> None:
    """This session placed `order_id`: its confirmation page carries SenseJS."""
    session[_PLACED] = order_id


def confirmation_sense_key(order_id: str) -> str | None:
    """The order page's senseKey (its id) for the session that placed it, else None."""
    return order_id if session.get(_PLACED) == order_id else None
