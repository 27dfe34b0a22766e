"""A local stand-in for Flex's sandbox API and SenseJS host.

Same paths, envelopes and status codes as Flex's real sandbox as far as they are documented
or were seen in real traffic; where Flex's docs are silent, the choices are written down in
docs/SANDBOX.md. Outcomes are deterministic by test card; faults and latency can be injected
per endpoint; webhooks are signed and sent as Flex sends them. It shares no state with the
client: it is a separate WSGI app.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from .http import problem
from .later import LaterDecisions
from .settings import config_from_env
from .state import State
from .tokens import Tokens
from .views.auth import auth
from .views.control import control
from .views.decisions import decisions
from .views.orders import orders
from .views.sense import sense
from .webhooks import WebhookSender


@dataclass
class Sandbox:
    """Everything one sandbox app holds; views reach it as `http.sandbox()`."""
    settings: dict
    state: State
    tokens: Tokens
    webhooks: WebhookSender
    later: LaterDecisions

    def stop(self) -> None:
        """Stops the threads it runs: pending decisions' timers, then the webhook sender."""
        self.later.stop()
        self.webhooks.stop()


def create_sandbox_app(config: dict | None = None) -> Flask:
    """The sandbox WSGI app; `config` overrides the FLEX_SANDBOX_* environment settings.
    Call `app.extensions["flex_sandbox"].stop()` when done (serve() does)."""
    settings = {**config_from_env(), **(config or {})}
    state = State()
    for endpoint, spec in settings["faults"].items():
        state.set_fault(endpoint, spec)
    webhooks = WebhookSender(settings["webhook_url"], settings["webhook_key"],
                             attempts=settings["webhook_attempts"],
                             backoff=settings["webhook_backoff"],
                             timeout=settings["webhook_timeout"], take_fault=state.take_fault)
    app = Flask(__name__)
    app.extensions["flex_sandbox"] = Sandbox(
        settings, state, Tokens(settings["app_key"], settings["mid"], settings["token_ttl"]),
        webhooks, LaterDecisions(state, webhooks))
    # ASP.NET redirects neither "/v1/evaluate/" nor "/v1//outcome": no Werkzeug redirects.
    # Empty path segments are dropped before routing instead (below).
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    app.wsgi_app = _EmptySegmentsIgnored(app.wsgi_app)
    for blueprint in (auth, decisions, orders, sense, control):
        app.register_blueprint(blueprint)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _server_error)
    return app


_SLASHES = re.compile(r"/{2,}")


class _EmptySegmentsIgnored:
    """WSGI middleware: `/v1//outcome` is `/v1/outcome`, on every route. Flex's own Node
    sample joins a base URL ending in "/" with "/outcome", and Flex answers it."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if "//" in path:
            environ["PATH_INFO"] = _SLASHES.sub("/", path)
        return self.wsgi_app(environ, start_response)


def _http_error(error: HTTPException) -> Response:
    """Unknown path, wrong method, …: problem details, never an HTML page."""
    response = problem(error.code or 500, error.name, error.description)
    if error.code == 405 and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def _server_error(error: Exception) -> Response:
    return problem(500, "Internal Server Error", type(error).__name__)
