"""`POST /webhooks/flex`: receives Flex's signed webhooks.

Verify (flex.webhooks.verify: content hash, HMAC-SHA512 signature, date within 5 minutes,
nonce never seen, in the database so every node refuses a replay: else 401; signed but a body
that is not a readable Flex event: 400, never 500, with the reason counted), store the raw
event under its event id BEFORE answering 2xx, then apply it (shop/webhooks/effects.py) if
that is quick;
what must wait is applied by the relay's sweep. A redelivery is counted and changes nothing.

Settings: FLEX_WEBHOOK_KEY (the subscriber key from Flex's portal, base64) and
FLEX_WEBHOOK_HOST (the public host Flex posts to, when a proxy rewrites the Host header).
With the embedded sandbox (the demo) the key is generated once beside the database and the
sandbox is subscribed to this receiver on the first request, when this shop's URL is known.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from flask import Blueprint, Flask, current_app, jsonify, request, url_for

from flex.webhooks import WebhookRejected, WebhookUnreadable, verify
from shop.services import ConfigError, sandbox_directory, services
from shop.storage.db import database, get_db
from shop.webhooks import effects, events

log = logging.getLogger(__name__)

bp = Blueprint("receiver", __name__)

DEMO_KEY_FILE = "flex-webhook.key"  # beside the database, shared by the shop's processes
SUBSCRIBE_TIMEOUT = (1.0, 2.0)  # (connect, read) seconds: it runs inside a shopper's request
SUBSCRIBE_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class Receiver:
    key: str  # empty: not configured, every delivery is answered 503
    host: str | None  # the signed host, if not the request's Host header


def receiver() -> Receiver:
    return current_app.extensions["flex_webhooks"]


@bp.post("/webhooks/flex")
def receive():
    settings = receiver()
    if not settings.key:
        return jsonify(error="webhooks not configured"), 503
    raw_body = request.get_data()
    try:
        event = verify(raw_body, request.headers, settings.key,
                       nonces=events.SqlNonceStore(database()), host=settings.host)
    except WebhookRejected as refused:
        # Nothing of the request is kept: a reason (never the body) and a counter. Signed but
        # unreadable is the body's fault (400); anything else is not proven to be Flex (401).
        unreadable = isinstance(refused, WebhookUnreadable)
        log.warning("Flex webhook refused from %s: %s", request.remote_addr, refused.reason)
        events.count_rejection(get_db(), refused.reason)
        return jsonify(error=refused.reason), 400 if unreadable else 401
    conn = get_db()
    order_id = events.order_for(conn, event)
    if not events.store(conn, event, raw_body, request.headers, order_id,
                        effects.LEASE_SECONDS):
        log.info("Flex webhook %s for order %s: a redelivery, already stored",
                 event.event_type, order_id)
        return jsonify(status="duplicate"), 200
    # Stored: from here on a failure is the sweep's to retry, not Flex's to redeliver.
    try:
        effect = effects.apply(conn, services().client, event, order_id)
    except Exception:
        log.exception("applying Flex webhook %s failed; the sweep retries it", event.event_id)
        effect = None
    log.info("Flex webhook %s for order %s: %s", event.event_type, order_id,
             effect or "stored, applied later")
    return jsonify(status="received"), 200


class DemoSubscription:
    """Subscribes the embedded sandbox to this shop's receiver, once per process, on the first
    request (only a request knows the URL this shop is reached at)."""

    def __init__(self, sandbox_url: str, key: str):
        self.sandbox_url = sandbox_url
        self.key = key
        self.done = False
        self._next_try = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        if self.done or time.monotonic() < self._next_try:
            return
        if not self._lock.acquire(blocking=False):  # another request is subscribing
            return
        try:
            url = url_for("receiver.receive", _external=True)
            requests.put(f"{self.sandbox_url}/_sandbox/webhooks",
                         json={"url": url, "key": self.key},
                         timeout=SUBSCRIBE_TIMEOUT).raise_for_status()
            self.done = True
            log.info("embedded Flex sandbox sends its webhooks to %s", url)
        except requests.RequestException as exc:
            self._next_try = time.monotonic() + SUBSCRIBE_RETRY_SECONDS
            log.warning("could not subscribe the embedded sandbox to webhooks: %s", exc)
        finally:
            self._lock.release()

    def forget(self, _url: str = "") -> None:
        """The sandbox was restarted and knows no subscriber: subscribe again."""
        self.done, self._next_try = False, 0.0


def demo_key(directory: str | Path) -> str:
    """The demo's subscriber key: 64 random bytes, base64, made once in `directory` (mode
    0600) and read by every process of the shop after that."""
    path = Path(directory) / DEMO_KEY_FILE
    if not path.exists():
        draft = path.with_name(f"{DEMO_KEY_FILE}.{os.getpid()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(base64.b64encode(secrets.token_bytes(64)).decode())
        try:
            os.link(draft, path)  # atomic: the first process's complete key wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def _valid_key(key: str) -> bool:
    try:
        return bool(base64.b64decode(key, validate=True))
    except (binascii.Error, ValueError):
        return False


def init_app(app: Flask) -> None:
    key = app.config["FLEX_WEBHOOK_KEY"].strip()
    if key and not _valid_key(key):
        raise ConfigError("FLEX_WEBHOOK_KEY is not valid base64: copy the subscriber key "
                          "exactly as Flex's portal shows it.")
    sandbox_url = app.extensions["services"].sandbox_url
    if sandbox_url:
        key = key or demo_key(sandbox_directory(app))
        subscription = DemoSubscription(sandbox_url, key)
        app.extensions["services"].sandbox.on_restart.append(subscription.forget)
        app.before_request(subscription)
    elif not key:
        log.warning("FLEX_WEBHOOK_KEY is not set: POST /webhooks/flex answers 503 to every "
                    "webhook until it is (the subscriber key from Flex's portal).")
    app.extensions["flex_webhooks"] = Receiver(key, app.config["FLEX_WEBHOOK_HOST"] or None)
