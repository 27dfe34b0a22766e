"""The merchant's list of every order (GET /orders), and the demo's reset of them all."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for

from shop.backoffice.access import merchant_only
from shop.orders import lifecycle, records
from shop.security import demo_only
from shop.storage.db import get_db

bp = Blueprint("order_list", __name__, url_prefix="/orders")


@bp.get("")
@merchant_only
def orders():
    return render_template("order_list/orders.html", orders=records.recent(get_db()))


@bp.post("/reset")
@demo_only
def reset():
    lifecycle.forget_all(get_db())
    flash("Demo reset: every order was removed.", "info")
    return redirect(url_for("order_list.orders"), 303)
