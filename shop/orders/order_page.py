"""One order's page, which its shopper sees too (behind its session or signed link), and
the merchant's actions on it: refund, and in authorization mode capture or cancel. The
actions are back-office only (merchant_only) and answer Post/Redirect/Get to this page, which
shows their errors; the merchant's list of every order is shop/backoffice/order_list.py."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, session, url_for

from flex.purposes import purpose
from shop import wording
from shop.backoffice.access import may_see_order, merchant_only, order_link
from shop.checkout import funnel, payment
from shop.forms import RefundForm
from shop.money import format_dollars
from shop.orders import authorizations, records
from shop.orders.timeline import waterfalls
from shop.services import services
from shop.storage.db import get_db
from shop.storage.flex_store import calls_for_order
from shop.webhooks import events

bp = Blueprint("order_page", __name__, url_prefix="/orders")


@bp.get("/<order_id>")
def detail(order_id: str):
    if not may_see_order(order_id):  # the same answer as for an order that does not exist
        abort(404, "There is no order with this id.")
    if order_id in session.get("orders", []) and records.get(get_db(), order_id) is None:
        # This session's checkout never got its order row, and the row comes before the
        # charge (e.g. the database was down): nothing was charged.
        abort(404, "This checkout stopped before your card was charged. Your cart is kept: "
                   "please pay again.")
    order = _order_or_404(order_id)
    form = RefundForm(formdata=None)
    status = 200
    failed = session.get("refund_error")
    if failed and failed.get("order_id") == order_id:  # carried over the redirect below
        session.pop("refund_error")
        form.amount.data = failed["amount"]
        form.amount.errors = [failed["message"]]
        status = failed["status"]  # the refusal keeps its 4xx; a reload is a plain 200
    # Otherwise the field stays empty: a prefilled amount is one careless click from
    # refunding everything. The page's Full and Half buttons fill it on purpose.
    refused = session.get("authorization_error")
    if refused and refused.get("order_id") == order_id:
        session.pop("authorization_error")
        status = refused["status"]
    conn = get_db()
    return render_template(
        "order_page/order.html",
        order=order,
        items=records.items(conn, order_id),
        refunds=records.refunds(conn, order_id),
        charts=waterfalls(calls_for_order(conn, order_id)),
        events=records.events(conn, order_id),
        refund_form=form,
        authorization=authorizations.get(conn, order_id),
        authorization_error=refused["message"] if refused else None,
        webhooks=events.for_order(conn, order_id),
        sensejs=services().sensejs, sense_key=funnel.confirmation_sense_key(order_id),
        order_link=order_link(order_id),
        demo_tools_open=session.pop("demo_tools_open", None) == order_id,
    ), status


@bp.post("/<order_id>/capture")
@merchant_only
def capture(order_id: str):
    """Authorization mode: captures the full authorized amount (at shipment)."""
    return _authorization_action(order_id, authorizations.CAPTURE)


@bp.post("/<order_id>/cancel")
@merchant_only
def cancel(order_id: str):
    """Authorization mode: voids the authorization; the shopper is not charged."""
    return _authorization_action(order_id, authorizations.CANCEL)


def _authorization_action(order_id: str, action: str):
    """Post/Redirect/Get, like refunds (CSRF is checked for every POST by CSRFProtect). A
    refusal travels to the page in the session, which then answers 409."""
    order = _order_or_404(order_id)
    why = ("capturing the authorized amount, as the merchant asked"
           if action == authorizations.CAPTURE else
           "cancelling the authorization, as the merchant asked")
    try:
        with purpose(why):
            done = authorizations.request(get_db(), services().client, order, action)
    except authorizations.ActionRefused as exc:
        session["authorization_error"] = {"order_id": order_id, "message": str(exc),
                                          "status": 409}
        return redirect(url_for("order_page.detail", order_id=order_id, _anchor="authorization"),
                        303)
    message = wording.authorization_summary(done)
    if done.state == authorizations.REFUSED:
        session["authorization_error"] = {"order_id": order_id, "message": message,
                                          "status": 409}
    else:
        flash(message, "success" if done.state == authorizations.DONE else "info")
    return redirect(url_for("order_page.detail", order_id=order_id), 303)


@bp.post("/<order_id>/refund")
@merchant_only
def refund(order_id: str):
    """Post/Redirect/Get either way: a reload of the order page never sends a refund again.
    An error travels to the page in the session, is shown at the amount field, and that
    page answers 400 (bad amount) or 409 (refused)."""
    order = _order_or_404(order_id)
    form = RefundForm()
    if not form.validate():
        error, status = _first_error(form), 400
    else:
        amount_cents = form.amount_cents()
        try:
            payment.refund(get_db(), services(), order, amount_cents)
        except payment.RefundError as exc:
            error, status = str(exc), 409
        else:
            flash(f"Refunded {format_dollars(amount_cents)}.", "success")
            return redirect(url_for("order_page.detail", order_id=order_id), 303)
    # A refused amount that looked like a card number was already cleared by the form.
    session["refund_error"] = {"order_id": order_id, "message": error, "status": status,
                               "amount": (form.amount.data or "")[:40]}
    return redirect(url_for("order_page.detail", order_id=order_id, _anchor="refund"), 303)


def _order_or_404(order_id: str) -> records.Order:
    order = records.get(get_db(), order_id)
    if order is None:
        abort(404, "There is no order with this id.")
    return order


def _first_error(form: RefundForm) -> str:
    return next((error for errors in form.errors.values() for error in errors),
                "Check the refund amount.")
