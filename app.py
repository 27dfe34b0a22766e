"""The demo storefront. `flask --app app run` or `gunicorn 'app:create_app()'`.

Configuration comes from the environment (and `.env`); see `.env.example`.
"""

from __future__ import annotations

import logging
import os

from dotenv import load_dotenv
from flask import Flask, render_template, request, session
from flask.helpers import get_load_dotenv
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from shop import cli, health, security, services, wording
from shop.backoffice import access, inspector, order_list, sandbox_demo
from shop.checkout import cart, storefront
from shop.orders import order_page
from shop.storage import db
from shop.webhooks import receiver

# Every setting, its default, and so its type. Each can be set in the environment.
DEV_SECRET_KEY = "dev-only-secret-key"  # noqa: S105 - refused when SHOP_ENV=production

DEFAULTS = {
    "SHOP_ENV": "development",  # "production": real secret key and Secure cookies required
    "SECRET_KEY": "",  # unset: DEV_SECRET_KEY in development, refused in production
    "DATABASE_URL": "",  # sqlite:///path or postgresql://…; default: the SQLite DATABASE file
    "DATABASE": "",  # the SQLite file when DATABASE_URL is unset; default: instance/shop.sqlite
    "DATABASE_POOL_SIZE": 10,  # PostgreSQL connections per process, at most
    # A transaction that cannot begin (database restarting, failing over, SQLite locked) is
    # retried for this long before the request gives up (a checkout then says "we are
    # confirming your payment" and recovery finishes it).
    "DATABASE_RETRY_SECONDS": 5.0,
    "FLEX_API_URL": "",  # empty: the embedded Flex sandbox (demo only, refused in production)
    "FLEX_APP_KEY": "",
    "FLEX_APP_SECRET": "",
    "FLEX_MID": "",
    "FLEX_SITE_ID": "",
    "FLEX_TOKENIZATION_KEY": "",
    "FLEX_SENSEJS_URL": "",
    # PURCHASE: Flex charges a rescued sale at once. AUTHORIZATION: Flex only authorizes it
    # ("Awaiting capture"); the merchant captures at shipment or cancels (order page).
    "FLEX_TRANSACTION_TYPE": "PURCHASE",
    "FLEX_WEBHOOK_KEY": "",  # subscriber key from Flex's portal (base64); demo: generated
    "FLEX_WEBHOOK_HOST": "",  # the host Flex posts to, if a proxy rewrites the Host header
    "FLEX_ENABLED": True,  # False: processor only, no Flex calls (the benchmark's baseline)
    "FLEX_SANDBOX_PORT": 0,
    "FLEX_CONNECT_TIMEOUT": 3.05,
    "FLEX_READ_TIMEOUT": 8.0,
    "FLEX_DEADLINE": 12.0,
    "FLEX_RELAY": True,
    "FLEX_RELAY_POLL_SECONDS": 0.5,
    "FLEX_RELAY_SENDERS": 16,  # transmits one relay sends at once (threads waiting on Flex)
    # A checkout still pending after this many seconds was interrupted (crash, kill): the
    # recovery sweep settles it. A little over a checkout's worst case (FLEX_DEADLINE + PSP).
    "RECOVER_PENDING_AFTER_SECONDS": 30.0,
    "PROCESSOR_LATENCY_MS": 250,
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "LOG_LEVEL": "INFO",
    "TRUSTED_PROXIES": 0,  # reverse proxies in front whose X-Forwarded-For/-Proto are believed
    # The back office's login (required with SHOP_ENV=production): a username, and the hash
    # of the password printed by `python -m shop.backoffice.access`, never the password itself.
    "MERCHANT_USERNAME": "",
    "MERCHANT_PASSWORD_HASH": "",
}


def create_app(test_config: dict | None = None) -> Flask:
    if get_load_dotenv():  # FLASK_SKIP_DOTENV=1 ignores .env here too, as `flask` itself does
        load_dotenv()
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(DEFAULTS)
    app.config.update(_from_environment())
    if test_config:
        app.config.update(test_config)
    if not app.config["DATABASE"] and not app.config["DATABASE_URL"]:
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["DATABASE"] = os.path.join(app.instance_path, "shop.sqlite")
    production = app.config["SHOP_ENV"] == "production"
    if production and not app.config["SECRET_KEY"]:
        raise RuntimeError("SECRET_KEY is not set: with SHOP_ENV=production set it to a long "
                           "random string, the same on every web node.")
    if production and app.config["SECRET_KEY"] == DEV_SECRET_KEY:
        raise RuntimeError(f"SECRET_KEY is the development default ({DEV_SECRET_KEY!r}): with "
                           "SHOP_ENV=production set it to a long random string.")
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or DEV_SECRET_KEY
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=production,  # local demo runs on plain http://127.0.0.1
    )

    if app.config["TRUSTED_PROXIES"]:
        # Behind a load balancer the peer is the proxy: the shopper's IP (Flex's customerIp)
        # is in X-Forwarded-For. Only as many hops as are really ours are believed.
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(asctime)s %(name)s %(message)s")
    csrf = CSRFProtect(app)
    csrf.exempt(receiver.bp)  # Flex signs its webhooks; every other POST carries a CSRF token
    access.init_app(app)  # first: production refuses to start without the merchant login
    db.init_app(app)
    services.init_app(app)
    receiver.init_app(app)
    security.init_app(app)
    cli.init_app(app)
    # Each blueprint is named after its module; its pages are in templates/<its name>/.
    for blueprint in (storefront.bp, order_page.bp, receiver.bp, health.bp,  # the shop
                      order_list.bp, inspector.bp, sandbox_demo.bp):  # the back office
        app.register_blueprint(blueprint)
    _template_helpers(app)
    _error_pages(app)
    return app


def _from_environment() -> dict:
    """Reads each known setting from the environment, typed like its default."""
    settings = {}
    for name, default in DEFAULTS.items():
        raw = os.environ.get(name)
        if raw is None:
            continue
        if isinstance(default, bool):
            settings[name] = raw.strip().lower() in {"1", "true", "yes", "on"}
        elif isinstance(default, int | float):
            try:
                settings[name] = type(default)(raw)
            except ValueError:
                kind = "a whole number" if isinstance(default, int) else "a number"
                raise services.ConfigError(f"{name} must be {kind}, not {raw!r}.") from None
        else:
            settings[name] = raw
    return settings


def _template_helpers(app: Flask) -> None:
    wording.register(app)

    @app.context_processor
    def shop_globals() -> dict:
        return {"cart_count": cart.count(), "flex_mode": services.services().mode}


def _error_pages(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        message = "This form expired or was not sent from this site. Go back, reload and retry."
        return render_template("error.html", code=400, title="Form expired", message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return render_template(
            "error.html", code=exc.code, title=exc.name, message=exc.description
        ), exc.code

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        if db.unavailable(exc):
            return _database_unavailable(app, exc)
        app.logger.exception("unhandled error")
        message = "Something went wrong on our side. Please check your orders before retrying."
        return render_template("error.html", code=500, title="Server error", message=message), 500


def _database_unavailable(app: Flask, exc: Exception):
    """The database stayed unreachable past its retries. A checkout that had begun may have
    been charged: the shopper is told we are confirming it (the order is pending, and the
    recovery sweep settles it with the processor and Flex), never shown an error page."""
    app.logger.warning("database unavailable during %s %s: %s", request.method, request.path,
                       exc, exc_info=exc)
    checkout_id = request.form.get("checkout_id", "") if request.method == "POST" else ""
    if request.endpoint == "storefront.checkout_page" and checkout_id in session.get("orders", []):
        return render_template("storefront/confirming.html", order_id=checkout_id), 202
    message = "The shop cannot reach its records for a moment. Please try again in a minute."
    return render_template("error.html", code=503, title="Briefly unavailable",
                           message=message), 503, {"Retry-After": "30"}
