"""Security headers: a nonce-based Content-Security-Policy that allows only this site and
the SenseJS origin, plus the usual hardening headers (HSTS in production); and the demo's
own tools switched off in production."""

from __future__ import annotations

import functools
import logging
import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, g, request

from shop.services import services

log = logging.getLogger(__name__)

# Production is served over HTTPS only: browsers must never try plain http again for a year.
# Not in development, where the demo runs on http://127.0.0.1 and HSTS would stick to it.
HSTS = "max-age=31536000; includeSubDomains"


def demo_tools() -> bool:
    """The demo reset and the sandbox's "simulate" buttons are for development: with
    SHOP_ENV=production they do not exist. (The back office is behind a login there:
    shop/backoffice/access.py.)"""
    return current_app.config["SHOP_ENV"] != "production"


def demo_only(view):
    @functools.wraps(view)
    def guarded(*args, **kwargs):
        if not demo_tools():
            abort(404)
        return view(*args, **kwargs)
    return guarded


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def plain_http_warning(app: Flask):
    """In production, warns (once per process) when a request arrives over plain HTTP with
    no X-Forwarded-Proto: the Secure session cookie never comes back over http, so every
    form would fail as "Form expired" with nothing else to say why."""
    warned = []

    def check() -> None:
        if warned or request.scheme != "http" or "X-Forwarded-Proto" in request.headers:
            return
        warned.append(True)
        log.warning(
            "SHOP_ENV=production got a request over plain HTTP (%s, no X-Forwarded-Proto): "
            "its Secure session cookie will not come back, so forms will say 'Form expired'. "
            "Serve the shop over HTTPS (deploy/nginx.conf; locally, docs/DEPLOY.md 'Production "
            "mode on your machine'); behind a TLS proxy, set TRUSTED_PROXIES.", request.url)

    return check


def init_app(app: Flask) -> None:
    @app.before_request
    def make_nonce() -> None:
        g.csp_nonce = secrets.token_urlsafe(16)

    if app.config["SHOP_ENV"] == "production":
        app.before_request(plain_http_warning(app))

    @app.context_processor
    def inject_nonce() -> dict:
        return {"csp_nonce": g.get("csp_nonce", ""), "demo_tools": demo_tools()}

    @app.after_request
    def set_headers(response: Response) -> Response:
        sense = _origin(services().sensejs.url)
        nonce = g.get("csp_nonce", "")
        response.headers["Content-Security-Policy"] = "; ".join((
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}' {sense}",
            f"connect-src 'self' {sense}",
            "img-src 'self' data:",
            "style-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ))
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        if current_app.config["SHOP_ENV"] == "production":
            response.headers["Strict-Transport-Security"] = HSTS
        return response
