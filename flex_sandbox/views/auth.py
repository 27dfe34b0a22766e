"""Bearer tokens and the card vault: POST /v1/oauth2/token and POST /v1/tokenize."""

from __future__ import annotations

import secrets
import uuid

from flask import Blueprint, Response

from ..http import envelope, flex_call, invalid, ok, problem, request_body, sandbox, token_mid
from ..lenient import as_int, json_body, pick, query
from ..rules import TOKENIZE_REQUIRED, is_pan, missing, wire_time

auth = Blueprint("auth", __name__, url_prefix="/v1")


@auth.post("/oauth2/token")
@flex_call("token", auth="none")
def token() -> Response:
    body = json_body() or {}
    settings = sandbox().settings
    if pick(body, "appKey") != settings["app_key"] or (
            pick(body, "appSecret") != settings["app_secret"]):
        return invalid({"AppKey": ["Invalid AppKey or AppSecret."]})
    access, expires = sandbox().tokens.issue()
    return ok(envelope(accessToken=access, refreshToken=secrets.token_urlsafe(32),
                       expires=int(expires * 1000), id=str(uuid.uuid4()), session=None,
                       daysToEnforceMFA=None, skipAvailable=None))


@auth.post("/tokenize")
@flex_call("tokenize", auth="optional")
def tokenize() -> Response:
    refusal = _merchant_refusal()
    if refusal is not None:
        return refusal
    body, refusal = request_body(check_mid=False)
    if refusal is not None:
        return refusal
    errors = missing(body, TOKENIZE_REQUIRED)
    card = pick(body, "payment_method.credit_card") or {}
    number = str(card.get("number") or "")
    if number and not is_pan(number):
        errors["Payment_method.Credit_card.Number"] = ["The card number is not valid."]
    if errors:
        return invalid(errors)
    vault_token = str(uuid.uuid4())
    with sandbox().state.lock:
        sandbox().state.vault[vault_token] = {"number": number}
    return ok(envelope(transaction={
        "on_test_gateway": True, "succeeded": True,
        "created_at": wire_time(timespec="seconds"),
        "payment_method": {
            "token": vault_token, "last_four_digits": number[-4:],
            "first_six_digits": number[:8],  # 8 digits despite the name, as real traffic shows
            "first_name": card.get("first_name"), "last_name": card.get("last_name"),
            "month": as_int(card.get("month")) or 0, "year": as_int(card.get("year")) or 0,
            "number": None,
        },
    }, cardBinInfo=None))


def _merchant_refusal() -> Response | None:
    """With a bearer, `?mid=&environment=` are optional (the MID comes from the token) but
    checked when sent; without one both are required."""
    settings = sandbox().settings
    mid, environment = query("mid"), query("environment")
    bearer = token_mid()
    if bearer is None and mid is None and environment is None:
        return problem(401, "Unauthorized",
                       "Send a bearer token, or ?mid= and &environment= (tokenization key).")
    wrong_mid = mid is not None and mid.lower() != (bearer or settings["mid"]).lower()
    wrong_key = environment is not None and environment != settings["tokenization_key"]
    if wrong_mid or wrong_key or (bearer is None and None in (mid, environment)):
        return invalid({"Environment": ["Unknown mid or tokenization key."]})
    return None
