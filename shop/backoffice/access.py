"""Who may see what, in production (SHOP_ENV=production).

- The back office (the order list, any order's page, refunds, capture/cancel, the Flex
  inspector, the webhooks page) needs the merchant's login: Flask-Login, with one merchant
  account from the environment (MERCHANT_USERNAME, and MERCHANT_PASSWORD_HASH as printed by
  `python -m shop.backoffice.access`; never a plain password).
- A shopper sees the orders their own session placed, and an order whose signed link
  (on the order page, signed with SECRET_KEY) they hold; anyone else gets 404.
In development (the demo) the back office is open to everyone, and the page footer says so.
"""

from __future__ import annotations

import functools
import hmac
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import click
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.security import check_password_hash, generate_password_hash

from shop.forms import LoginForm
from shop.services import ConfigError

log = logging.getLogger(__name__)

bp = Blueprint("access", __name__)

LOGIN_SETTINGS = ("MERCHANT_USERNAME", "MERCHANT_PASSWORD_HASH")
HASH_METHODS = ("scrypt:", "pbkdf2:")  # what werkzeug's generate_password_hash writes
OWN_ORDERS_KEPT = 20  # order ids remembered per session (the cookie stays small)
LINK_SALT = "order-link"


@dataclass(frozen=True)
class Merchant(UserMixin):
    """The one back-office account."""

    id: str


def production() -> bool:
    return current_app.config["SHOP_ENV"] == "production"


def back_office() -> bool:
    """True when this request may use the back office: anyone in the demo, the signed-in
    merchant in production."""
    return not production() or current_user.is_authenticated


def merchant_only(view):
    """Back-office views: in production, a visitor who is not signed in goes to the login
    page (and comes back after it)."""
    @functools.wraps(view)
    def guarded(*args, **kwargs):
        if not back_office():
            return current_app.login_manager.unauthorized()
        return view(*args, **kwargs)
    return guarded


def remember_order(order_id: str) -> None:
    """This session placed (or was given the link to) `order_id`: it may see its page."""
    owned = [o for o in session.get("orders", []) if o != order_id]
    session["orders"] = [*owned, order_id][-OWN_ORDERS_KEPT:]


def may_see_order(order_id: str) -> bool:
    """The back office, the session that placed the order, or the holder of its signed link
    (who is then remembered, so the links on the page keep working)."""
    if back_office() or order_id in session.get("orders", []):
        return True
    key = request.args.get("key", "")
    try:
        signed_for = _links().loads(key)
    except BadSignature:
        return False
    if signed_for != order_id:
        return False
    remember_order(order_id)
    return True


def order_link(order_id: str) -> str:
    """The order page's private link: whoever holds it sees the order (the shopper's
    receipt). It never expires, like a receipt; it opens this one order's page only."""
    return url_for("order_page.detail", order_id=order_id, key=_links().dumps(order_id),
                   _external=True)


def _links() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=LINK_SALT)


@bp.route("/login", methods=("GET", "POST"))
def login():
    if back_office():
        return redirect(_next_page(), 303)
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("access/login.html", form=form), 400 if form.is_submitted() else 200
    account = current_app.extensions["merchant_login"]
    name_ok = hmac.compare_digest(form.username.data.encode(), account.username.encode())
    # Checked even when the name is wrong: a wrong name then costs as long as a wrong
    # password, and timing does not tell which one was wrong.
    password_ok = check_password_hash(account.password_hash, form.password.data)
    if not (name_ok and password_ok):
        log.warning("merchant login refused from %s", request.remote_addr)
        form.password.errors = ["Wrong username or password."]
        return render_template("access/login.html", form=form), 401
    session.clear()  # nothing from before the login carries over
    login_user(Merchant(account.username))
    log.info("merchant %s signed in from %s", account.username, request.remote_addr)
    return redirect(_next_page(), 303)


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("storefront.catalog_page"), 303)


def _next_page() -> str:
    """Where to go after signing in: `next` if it is a path on this site, else the orders."""
    target = request.args.get("next", "")
    parts = urlsplit(target)
    # Not "//host" nor "/\\host" (browsers read a backslash as a slash): both leave the site.
    if (target.startswith("/") and not target.startswith("//") and "\\" not in target
            and not parts.scheme and not parts.netloc):
        return target
    return url_for("order_list.orders")


@dataclass(frozen=True)
class MerchantLogin:
    username: str
    password_hash: str


# Runs without the app: production needs no settings to make its own hash.
HASH_COMMAND = "python -m shop.backoffice.access"


@click.command()
@click.password_option(help="The merchant's back-office password (prompted for if omitted).")
def hash_password(password: str) -> None:
    """Print a MERCHANT_PASSWORD_HASH line for .env: werkzeug's scrypt hash of the password,
    never the password itself."""
    click.echo(f"MERCHANT_PASSWORD_HASH='{generate_password_hash(password)}'")


def _merchant_login(config) -> MerchantLogin | None:
    """The back-office account; production refuses to start without one."""
    username = str(config.get("MERCHANT_USERNAME") or "").strip()
    password_hash = str(config.get("MERCHANT_PASSWORD_HASH") or "").strip()
    if config["SHOP_ENV"] != "production" and not (username or password_hash):
        return None
    missing = [name for name, value in zip(LOGIN_SETTINGS, (username, password_hash),
                                           strict=True) if not value]
    if missing:
        raise ConfigError(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: "
            "SHOP_ENV=production puts the back office behind a merchant login. Make the "
            f"hash with `{HASH_COMMAND}`."
        )
    if not password_hash.startswith(HASH_METHODS):
        raise ConfigError(
            "MERCHANT_PASSWORD_HASH must be a password hash (scrypt:… or pbkdf2:…), never the "
            f"password itself. Make it with `{HASH_COMMAND}`."
        )
    return MerchantLogin(username, password_hash)


def init_app(app: Flask) -> None:
    account = _merchant_login(app.config)
    app.extensions["merchant_login"] = account
    manager = LoginManager(app)
    manager.login_view = "access.login"
    manager.login_message = "Sign in to use the back office."
    manager.login_message_category = "info"

    @manager.user_loader
    def load_merchant(user_id: str) -> Merchant | None:
        if account is not None and hmac.compare_digest(user_id, account.username):
            return Merchant(user_id)
        return None

    @app.context_processor
    def access_globals() -> dict:
        return {"back_office": back_office(), "signed_in": current_user.is_authenticated,
                "login_enabled": account is not None}

    app.register_blueprint(bp)


if __name__ == "__main__":
    hash_password()
