"""Order history, order detail with its Flex timeline, refunds, and the demo reset."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for

from . import checkout, db, orders
from .db import get_db
from .flex_store import calls_for_order
from .forms import RefundForm
from .money import format_dollars
from .payments import services
from .security import demo_only

bp = Blueprint("orders", __name__, url_prefix="/orders")


@bp.get("")
def history():
    return render_template("orders.html", orders=orders.recent(get_db()))


@bp.get("/<order_id>")
def detail(order_id: str):
    return _render_detail(order_id, RefundForm())


@bp.post("/<order_id>/refund")
def refund(order_id: str):
    conn = get_db()
    order = _order_or_404(order_id)
    form = RefundForm()
    if not form.validate():
        return _render_detail(order_id, form, status=400)
    amount_cents = form.amount_cents()
    try:
        checkout.refund(conn, services(), order, amount_cents)
    except checkout.RefundError as exc:
        flash(str(exc), "error")
        return _render_detail(order_id, RefundForm(formdata=None), status=409)
    flash(f"Refunded {format_dollars(amount_cents)}.", "success")
    return redirect(url_for("orders.detail", order_id=order_id), 303)


@bp.post("/reset")
@demo_only
def reset():
    db.clear(get_db())
    flash("Demo reset: every order was removed.", "info")
    return redirect(url_for("orders.history"), 303)


def _order_or_404(order_id: str) -> orders.Order:
    order = orders.get(get_db(), order_id)
    if order is None:
        abort(404, "There is no order with this id.")
    return order


def _render_detail(order_id: str, refund_form: RefundForm, status: int = 200):
    conn = get_db()
    order = _order_or_404(order_id)
    if not refund_form.amount.data:  # suggest refunding whatever remains
        refund_form.amount.data = f"{order.refundable_cents / 100:.2f}"
    return render_template(
        "order.html",
        order=order,
        items=orders.items(conn, order_id),
        refunds=orders.refunds(conn, order_id),
        calls=calls_for_order(conn, order_id),
        events=orders.events(conn, order_id),
        refund_form=refund_form,
    ), status
