"""The webhook sender: Flex's signed POSTs to the merchant's subscriber URL, delivered by one
background thread with bounded retries and backoff, and a log of every delivery.

Signing scheme (Flex's docs, confirmed against a published signed example):
  x-fc-content-sha512 = b64(SHA-512(body))
  x-fc-authorization  = "HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;x-fc-content-sha512
                         &Signature=" + b64(HMAC-SHA512(b64decode(subscriber key),
                         "POST\\n" + nonce + ";" + date + ";" + host + ";" + content hash))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from urllib.parse import urlsplit

import requests

from .rules import wire_time

SIGNED_HEADERS = "x-fc-nonce;x-fc-date;host;x-fc-content-sha512"
MAX_BACKOFF = 60.0  # seconds between two attempts at most
MAX_LOG = 1000  # deliveries kept for GET /_sandbox/webhooks


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha512(body).digest()).decode()


def signature(key_b64: str, nonce: str, date: str, host: str, body_hash: str) -> str:
    """Flex's webhook signature: b64(HMAC-SHA512(b64decode(key), the signed string))."""
    message = f"POST\n{nonce};{date};{host};{body_hash}".encode()
    return base64.b64encode(
        hmac.new(base64.b64decode(key_b64), message, hashlib.sha512).digest()).decode()


def signed_headers(key_b64: str, host: str, body: bytes, *, nonce: str | None = None,
                   date: str | None = None) -> dict[str, str]:
    """The headers of one signed POST (a fresh nonce and the current date unless given)."""
    nonce = nonce or secrets.token_hex(16)
    date = date or formatdate(usegmt=True)  # RFC 1123, GMT
    body_hash = content_hash(body)
    sig = signature(key_b64, nonce, date, host, body_hash)
    return {"x-fc-nonce": nonce, "x-fc-date": date, "host": host,
            "x-fc-content-sha512": body_hash,
            "x-fc-authorization": f"HMAC-SHA512 SignedHeaders={SIGNED_HEADERS}&Signature={sig}",
            "content-type": "application/json"}


def valid_key(key: str) -> bool:
    """A subscriber key as Flex's portal gives it: non-empty base64."""
    try:
        return bool(base64.b64decode(key, validate=True))
    except (binascii.Error, ValueError):
        return False


@dataclass
class Delivery:
    id: int
    event: str
    order_session_key: str | None
    body: bytes
    due: float  # time.monotonic() of the next attempt
    attempts: int = 0
    last_status: int | str | None = None  # HTTP status, or what went wrong
    delivered: bool = False
    gave_up: bool = False
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def view(self) -> dict:
        event = json.loads(self.body)
        return {"id": self.id, "event": self.event, "order": self.order_session_key,
                "external_order_id": event.get("ExternalOrderId"),
                "is_resent": event.get("IsResent"), "attempts": self.attempts,
                "last_status": self.last_status, "delivered": self.delivered,
                "gave_up": self.gave_up, "created_at": self.created_at}


class WebhookSender:
    """Queues events and POSTs them from one thread; `stop()` ends and joins that thread."""

    def __init__(self, url: str | None, key: str | None, *, attempts: int, backoff: float,
                 timeout: float, take_fault: Callable[[str], dict]):
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        self._take_fault = take_fault
        self._log: list[Delivery] = []
        self._ids = itertools.count(1)
        self._wake = threading.Condition()  # guards everything below and url/key
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self.url: str | None = None
        self.key: str | None = None
        if url or key:  # one without the other is a mistake worth an error at start
            self.subscribe(url or "", key or "")

    def subscribe(self, url: str, key: str) -> None:
        """Where to POST and the base64 subscriber key to sign with."""
        if not urlsplit(url).scheme.startswith("http") or not urlsplit(url).netloc:
            raise ValueError("url must be an http(s) URL")
        if not valid_key(key):
            raise ValueError("key must be base64, as Flex's portal shows it")
        with self._wake:
            self.url, self.key = url, key

    def send(self, event: str, *, order_session_key: str | None, external_order_id: str | None,
             confirmation_id: str | None, delay: float = 0.0) -> None:
        """Queues one event for delivery `delay` seconds from now."""
        body = {"Event": event, "TimeStamp": wire_time(), "EventData": None,
                "ExternalOrderId": external_order_id, "OrderId": order_session_key,
                "ConfirmationId": confirmation_id, "IsTestMode": True, "IsResent": False}
        self._queue(event, order_session_key, json.dumps(body, separators=(",", ":")), delay)

    def resend(self, order_session_key: str) -> bool:
        """Redelivers the order's last event marked IsResent:true; False if it has none."""
        with self._wake:
            sent = [d for d in self._log if d.order_session_key == order_session_key]
        if not sent:
            return False
        body = {**json.loads(sent[-1].body), "IsResent": True}
        self._queue(sent[-1].event, order_session_key,
                    json.dumps(body, separators=(",", ":")), 0.0)
        return True

    def log(self) -> list[dict]:
        with self._wake:
            return [d.view() for d in self._log]

    def pending(self) -> int:
        with self._wake:
            return sum(1 for d in self._log if not d.delivered and not d.gave_up)

    def clear(self) -> None:
        with self._wake:
            self._log.clear()

    def stop(self) -> None:
        """Stops delivering (undelivered events are dropped) and joins the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()
        self._session.close()

    def _queue(self, event: str, order_session_key: str | None, text: str,
               delay: float) -> None:
        delivery = Delivery(next(self._ids), event, order_session_key, text.encode(),
                            time.monotonic() + delay)
        with self._wake:
            if self._stopping:
                return
            if not self.url:
                delivery.last_status, delivery.gave_up = "no subscriber", True
            self._log.append(delivery)
            del self._log[:-MAX_LOG]
            if self._thread is None and not delivery.gave_up:
                self._thread = threading.Thread(target=self._run, name="flex-sandbox-webhooks",
                                                daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            delivery = self._next_due()
            if delivery is None:
                return
            status = self._attempt(delivery)
            with self._wake:
                delivery.attempts += 1
                delivery.last_status = status
                delivery.delivered = isinstance(status, int) and 200 <= status < 300
                if not delivery.delivered:
                    if delivery.attempts >= self.attempts:
                        delivery.gave_up = True
                    else:
                        wait = min(self.backoff * 2 ** (delivery.attempts - 1), MAX_BACKOFF)
                        delivery.due = time.monotonic() + wait

    def _next_due(self) -> Delivery | None:
        """Blocks until a delivery is due (returned) or the sender stops (None)."""
        with self._wake:
            while not self._stopping:
                waiting = [d for d in self._log if not d.delivered and not d.gave_up]
                now = time.monotonic()
                due = min(waiting, key=lambda d: d.due, default=None)
                if due is not None and due.due <= now:
                    return due
                self._wake.wait(None if due is None else due.due - now)
            return None

    def _attempt(self, delivery: Delivery) -> int | str:
        """One signed POST; the HTTP status, or why there was none."""
        fault = self._take_fault("webhook")
        if fault.get("delay_ms"):
            with self._wake:
                self._wake.wait_for(lambda: self._stopping, fault["delay_ms"] / 1000)
        if fault.get("status") or fault.get("reset") or fault.get("malformed"):
            return "injected fault"
        with self._wake:
            url, key = self.url, self.key
        host = urlsplit(url).netloc
        try:
            answer = self._session.post(url, data=delivery.body, timeout=self.timeout,
                                        headers=signed_headers(key, host, delivery.body),
                                        allow_redirects=False)
        except requests.RequestException as error:
            return type(error).__name__
        answer.close()
        return answer.status_code
