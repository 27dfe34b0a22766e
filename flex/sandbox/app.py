"""A local stand-in for Flex's sandbox API and SenseJS host.

Same paths, envelopes and status codes as Flex's real sandbox as far as they are documented
or were seen in real traffic; where Flex's docs are silent, the choices are written down in
docs/SANDBOX.md. Outcomes are deterministic by test card; faults and latency can be injected
per endpoint; webhooks are signed and sent as Flex sends them. It shares no state with the
client: it is a separate WSGI app.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from .http import problem
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


def create_sandbox_app(config: dict | None = None) -> Flask:
    """The sandbox WSGI app; `config` overrides the FLEX_SANDBOX_* environment settings.
    Call `app.extensions["flex_sandbox"].webhooks.stop()` when done (serve() does)."""
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
        webhooks)
    # ASP.NET neither redirects "/v1/evaluate/" nor merges "//": no Werkzeug redirects here.
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    for blueprint in (auth, decisions, orders, sense, control):
        app.register_blueprint(blueprint)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _server_error)
    return app


def _http_error(error: HTTPException) -> Response:
    """Unknown path, wrong method, …: problem details, never an HTML page."""
    response = problem(error.code or 500, error.name, error.description)
    if error.code == 405 and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def _server_error(error: Exception) -> Response:
    return problem(500, "Internal Server Error", type(error).__name__)
