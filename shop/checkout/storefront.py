"""Shop pages: catalog, cart and checkout."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for

from shop.backoffice.access import remember_order
from shop.checkout import cart, catalog, funnel, payment
from shop.forms import CheckoutForm, QuantityForm
from shop.orders import records
from shop.security import demo_tools
from shop.services import services
from shop.storage.db import get_db

bp = Blueprint("storefront", __name__)

# The test cards shown on the checkout page, one row each: (number, processor, Flex
# /evaluate, order shows). The page and its fill buttons read this one list.
TEST_CARDS = (
    ("4242 4242 4242 4242", "approved", "— (transmit queued)", "Paid"),
    ("5555 5555 5555 4444", "approved", "— (transmit queued)", "Paid"),
    ("4000 0000 0000 0002", "declined 05 do not honor", "APPROVED", "Rescued by Flex"),
    ("4000 0000 0000 0127", "declined N7 CVV mismatch", "CHALLENGE", "Declined"),
    ("4000 0000 0000 9995", "declined 51 insufficient funds", "DECLINED", "Declined"),
    ("4000 0000 0000 0119", "declined 96 system error", "APPROVED, answer lost (5xx)",
     "Awaiting confirmation, then Rescued by Flex (lookup)"),
    ("4000 0084 0000 1629", "3-D Secure, then declined 05 do not honor",
     "SUBMITTED, then APPROVED (webhook)", "Awaiting confirmation, then Rescued by Flex"),
)


def demo_shopper() -> dict[str, str]:
    """What a test card's button fills in besides the card number, in demo mode only: a
    made-up shopper, so paying with a test card is one click. Form field name -> value."""
    return {
        "email": "shopper@example.com", "name": "Ada Lovelace",
        "expiry": f"12/{(date.today().year + 3) % 100:02d}", "cvc": "123",
        "address": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701",
        "country": "US",
    }


ISSUED_CHECKOUTS = 5  # checkout ids remembered per session (a few open tabs)


@bp.get("/")
def catalog_page():
    return render_template("storefront/catalog.html", products=catalog.PRODUCTS)


@bp.post("/cart/add")
def add_to_cart():
    form = QuantityForm()
    if not form.validate() or catalog.get(form.sku.data) is None or form.quantity.data < 1:
        abort(400, "Choose a product and a quantity from 1 to 10.")
    cart.add(form.sku.data, form.quantity.data)
    flash(f"Added {catalog.get(form.sku.data).name} to your cart.", "success")
    return redirect(url_for("storefront.cart_page"))


@bp.get("/cart")
def cart_page():
    lines = cart.lines()
    return render_template("storefront/cart.html", lines=lines, total_cents=cart.total_cents(lines),
                           sensejs=services().sensejs, sense_key=funnel.cart_sense_key())


@bp.post("/cart/update")
def update_cart():
    form = QuantityForm()
    if not form.validate() or catalog.get(form.sku.data) is None:
        abort(400, "Choose a product and a quantity from 0 to 10.")
    cart.set_quantity(form.sku.data, form.quantity.data)
    return redirect(url_for("storefront.cart_page"))


@bp.route("/checkout", methods=("GET", "POST"))
def checkout_page():
    if request.method == "POST":
        # A replayed POST (double click, back + resubmit) finds its order, even once the
        # cart is gone, and shows it as it is now: a pending one says "do not pay again",
        # and recovery settles it if its request died. CSRFProtect has checked the token.
        replayed = records.get(get_db(), request.form.get("checkout_id", ""))
        if replayed is not None:
            return redirect(url_for("order_page.detail", order_id=replayed.id))

    lines = cart.lines()
    if not lines:
        flash("Your cart is empty.", "info")
        return redirect(url_for("storefront.cart_page"))
    total = cart.total_cents(lines)
    form = CheckoutForm()
    if request.method == "GET":
        return _render_checkout(form, lines, total)

    if not form.validate():
        return _render_checkout(form, lines, total, status=400)
    checkout_id = form.checkout_id.data
    if checkout_id not in _issued():
        form_error = "This checkout page has expired. Please check your cart and pay again."
        return _render_checkout(form, lines, total, form_error, status=400)
    if form.expected_total_cents.data != str(total):
        form_error = "Your cart changed while you were paying. Please check the new total."
        return _render_checkout(form, lines, total, form_error, status=409)

    remember_order(checkout_id)  # this session may see the order, whatever happens next
    purchase = payment.purchase_for(checkout_id, lines, form, request.remote_addr or "")
    order = payment.place_order(get_db(), services(), purchase, form.card())
    if order.refundable_cents:  # paid or rescued: the cart is bought
        cart.clear()
    session["checkouts"] = [c for c in _issued() if c != checkout_id]
    funnel.placed(order.id)
    return redirect(url_for("order_page.detail", order_id=order.id))


def _issued() -> list[str]:
    return session.get("checkouts", [])


def _render_checkout(form: CheckoutForm, lines, total: int, form_error: str | None = None,
                     status: int = 200):
    # Every render gets a new checkout id (a reload is a new attempt); the first one after
    # the cart page takes the id the cart page's SenseJS already used as senseKey.
    checkout_id = funnel.new_checkout_id()
    session["checkouts"] = [*_issued(), checkout_id][-ISSUED_CHECKOUTS:]
    form.checkout_id.data = checkout_id
    form.expected_total_cents.data = str(total)
    form.card_number.data = form.cvc.data = ""  # never echo card data back into a page
    if not form.country.data:
        form.country.data = "US"
    demo = demo_tools()  # production's shoppers are real people: no test cards, no demo shopper
    return render_template(
        "storefront/checkout.html", form=form, lines=lines, total_cents=total,
        checkout_id=checkout_id, sensejs=services().sensejs, sense_key=checkout_id,
        form_error=form_error, test_cards=_test_cards() if demo else [],
        demo_shopper=_demo_fill(form) if demo else None,
    ), status


def _test_cards():
    keys = ("number", "processor", "flex", "shows")
    return [dict(zip(keys, card, strict=True)) for card in TEST_CARDS]


def _demo_fill(form: CheckoutForm) -> dict[str, str]:
    """The demo shopper keyed by the fields' HTML ids, for static/app.js."""
    return {form[name].id: value for name, value in demo_shopper().items()}
