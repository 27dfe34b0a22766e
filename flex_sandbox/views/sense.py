"""The SenseJS host: GET /widget.js and the collector it posts to (POST /v1/sense)."""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, Response, request

from ..http import envelope, flex_call, invalid, ok, sandbox
from ..lenient import fold, pick

sense = Blueprint("sense", __name__)

FINGERPRINT = ("mid", "siteId", "timezone", "screen", "language", "userAgent")


@sense.get("/widget.js")
def widget() -> Response:
    script = resources.files("flex_sandbox").joinpath("widget.js").read_text()
    return Response(script, mimetype="application/javascript",
                    headers={"Cache-Control": "no-cache"})


@sense.route("/v1/sense", methods=("POST", "OPTIONS"))
def collect() -> Response:
    if request.method == "OPTIONS":  # CORS preflight: the shop's page is another origin
        return _cors(Response(status=204))
    return _cors(_store())


@flex_call("sense", auth="none")
def _store() -> Response:
    data = request.get_json(silent=True, force=True)  # sendBeacon posts text/plain
    data = fold(data) if isinstance(data, dict) else {}
    key = pick(data, "senseKey")
    if not key:
        return invalid({"SenseKey": ["The SenseKey field is required."]})
    fingerprint = {name: pick(data, name) for name in FINGERPRINT}
    with sandbox().state.lock:
        sandbox().state.sense.setdefault(str(key), []).append(fingerprint)
    return ok(envelope(result="success"))


def _cors(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    return response
