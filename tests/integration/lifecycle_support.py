"""What the lifecycle tests share (test_lifecycle_scenarios.py, test_lifecycle_model.py): a
clock for the shop that a test moves forward, Flex's webhook sender played by the test (so
that a test decides when, how often and in which order each event arrives), crash points
that end a request without killing the test process, and "settled": the shop's order
against Flex's record of it.

Everything here is deterministic: nothing waits on a thread or a timer. Time passes only
when a test moves the shop's clock; an event arrives only when a test delivers it.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time as real_time
import types
from dataclasses import dataclass
from datetime import UTC, datetime

import requests

from flex.errors import FlexUnavailableError
from flex.webhooks import sign
from shop.orders import records
from shop.storage.db import get_db

KEY = base64.b64encode(b"the lifecycle tests' webhook subscriber key").decode()
HOST = "localhost"  # the Flask test client's Host header: the host Flex signs
FAR_AHEAD = 24 * 3600.0  # seconds the clock moves per settling round: every backoff is due

APPROVED = "4242424242424242"
APPROVED_MC = "5555555555554444"
OTHER_APPROVED = "4111111111111111"  # any other valid number: the processor approves
RESCUED = "4000000000000002"
CHALLENGED = "4000000000000127"
FLEX_DECLINED = "4000000000009995"
FLEX_DOWN = "4000000000000119"  # Flex decides APPROVED, its /evaluate answer is lost
CARDS = (APPROVED, APPROVED_MC, OTHER_APPROVED, RESCUED, CHALLENGED, FLEX_DECLINED, FLEX_DOWN)


# --- the shop's clock ---------------------------------------------------------------------

class ShopClock:
    """The wall clock of the shop's code (shop.* and the flex client library, not the
    sandbox): real time plus an offset that only `advance` changes. Every backoff, lease and
    "due at" in the shop reads `time.time()`, so moving this clock is how a test lets time
    pass without sleeping. time.monotonic (timeouts, deadlines) is left alone."""

    def __init__(self):
        self.offset = 0.0
        self.time = types.SimpleNamespace(**{
            name: getattr(real_time, name) for name in dir(real_time)
            if not name.startswith("__")})
        self.time.time = self.now

    def now(self) -> float:
        return real_time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def install(self, monkeypatch) -> ShopClock:
        """Points `time` in every loaded shop/flex module (not the sandbox) at this clock."""
        for name, module in list(sys.modules.items()):
            if (name.split(".")[0] in ("shop", "flex") and not name.startswith("flex_sandbox")
                    and getattr(module, "time", None) is real_time):
                monkeypatch.setattr(module, "time", self.time)
        return self


# --- crash points -------------------------------------------------------------------------

class SimulatedCrash(BaseException):  # noqa: N818 - it stands for a kill, not an error
    """A process killed at a crash point (shop/crash.py): a BaseException, so that no
    `except Exception` in the shop handles it; the request ends there, its open transaction
    rolled back, as a kill -9 leaves it."""


class CrashPoints:
    """shop/crash.py's SHOP_CRASH_AT points, armed one at a time by a test: the next time the
    shop reaches the armed point, the request ends with SimulatedCrash."""

    def __init__(self):
        self.armed: str | None = None
        self.fired: list[str] = []

    def crash_point(self, point: str) -> None:
        if point == self.armed:
            self.armed = None
            self.fired.append(point)
            raise SimulatedCrash(point)

    def install(self, monkeypatch) -> CrashPoints:
        """Replaces crash_point wherever the shop imported it. SHOP_CRASH_AT is set so that
        the shop installs its after-call hook (the vault and evaluate points); our
        crash_point ignores its value."""
        import shop.crash

        original = shop.crash.crash_point
        monkeypatch.setenv("SHOP_CRASH_AT", "armed-by-the-test")
        for name, module in list(sys.modules.items()):
            if name.startswith("shop") and getattr(module, "crash_point", None) is original:
                monkeypatch.setattr(module, "crash_point", self.crash_point)
        return self


# --- Flex's webhook sender, played by the test ----------------------------------------------

@dataclass
class Sent:
    """One event the sandbox queued for the merchant (its delivery log), as Flex sends it."""

    id: int
    event: str
    external_order_id: str | None
    order_session_key: str | None
    body: bytes


class Courier:
    """Flex's webhook sender, played by the test. The sandbox has no subscriber, so it only
    logs each event it means to send (GET /_sandbox/webhooks, in the order Flex emitted
    them); `collect` picks them up and the test delivers each one, signed with the
    subscriber key exactly as Flex signs, whenever it likes: at once, late, twice, out of
    order, or during the call that caused it."""

    def __init__(self, sandbox, app, clock: ShopClock | None = None, key: str = KEY):
        self.sandbox = sandbox
        self.client = app.test_client()
        self.clock = clock
        self.key = key
        self.seen = max((d["id"] for d in self._log()), default=0)
        self.queued: list[Sent] = []  # emitted by Flex, not delivered yet
        self.delivered: list[Sent] = []  # delivered at least once (answered 2xx)

    def _log(self) -> list[dict]:
        return requests.get(f"{self.sandbox.url}/_sandbox/webhooks", timeout=5).json()

    def collect(self) -> list[Sent]:
        """Queues what Flex emitted since the last look; returns the new events."""
        new = [d for d in self._log() if d["id"] > self.seen]
        if new:
            self.seen = new[-1]["id"]
            confirmations = {o["order_session_key"]: o["confirmation_id"] for o in
                             requests.get(f"{self.sandbox.url}/_sandbox/orders",
                                          timeout=5).json()}
        sent = [Sent(d["id"], d["event"], d["external_order_id"], d["order"], _body(
            d["event"], d["external_order_id"], d["order"], d["created_at"],
            confirmations.get(d["order"]), d["is_resent"])) for d in new]
        self.queued += sent
        return sent

    def deliver(self, sent: Sent, *, resent: bool = False):
        """Delivers one event (again, with IsResent when `resent`); returns the answer."""
        body = sent.body
        if resent:
            body = json.dumps({**json.loads(body), "IsResent": True}).encode()
        answer = self.post(body)
        if 200 <= answer.status_code < 300:
            if sent in self.queued:
                self.queued.remove(sent)
            if sent not in self.delivered:
                self.delivered.append(sent)
        return answer

    def deliver_all(self, event: str | None = None) -> list:
        """Collects, then delivers every queued event (only `event`s, if given), oldest
        first; returns the answers."""
        self.collect()
        return [self.deliver(s) for s in list(self.queued) if event in (None, s.event)]

    def post(self, body: dict | bytes):
        """POSTs one body to /webhooks/flex signed as Flex signs (the date from the shop's
        clock: a delivery is as fresh for the shop as when Flex sends it)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        now = datetime.fromtimestamp(self.clock.now() if self.clock else real_time.time(), UTC)
        return self.client.post("/webhooks/flex", data=raw,
                                headers=sign(raw, self.key, HOST, date=now))


def event_body(event: str, merchant_order_id: str | None, order_session_key: str | None,
               **fields) -> dict:
    """A webhook body as Flex's docs print it, stamped now."""
    return json.loads(_body(event, merchant_order_id, order_session_key,
                            datetime.now(UTC).isoformat(), "22ACD1D9", False)) | fields


def _body(event, merchant_order_id, order_session_key, happened_at, confirmation_id,
          is_resent) -> bytes:
    return json.dumps({
        "Event": event, "TimeStamp": happened_at.replace("+00:00", "Z"), "EventData": None,
        "ExternalOrderId": merchant_order_id, "OrderId": order_session_key,
        "ConfirmationId": confirmation_id, "IsTestMode": True, "IsResent": is_resent,
    }, separators=(",", ":")).encode()


# --- the Flex client, with what happens during a call ---------------------------------------

class CallHooks:
    """Wraps calls of the shop's FlexClient: `during[name]` runs after Flex acted on the call
    and before the shop sees the answer (a webhook delivered during the call that caused it);
    `lose[name]` makes Flex act and the answer never arrive (the shop sees a timeout)."""

    def __init__(self, app, names=("evaluate", "refund", "capture", "cancel")):
        self.during: dict[str, object] = {}
        self.lose: set[str] = set()
        client = app.extensions["services"].client
        for name in names:  # on this app's client only: it goes with the app
            setattr(client, name, self._wrap(name, getattr(client, name)))

    def _wrap(self, name, call):
        def wrapped(*args, **kwargs):
            try:
                return call(*args, **kwargs)
            finally:
                hook = self.during.pop(name, None)
                if hook is not None:
                    hook()
                if name in self.lose:
                    self.lose.discard(name)
                    raise FlexUnavailableError(f"{name}: the answer was lost (test)")
        return wrapped


# --- the shop's order against Flex's record --------------------------------------------------

@dataclass(frozen=True)
class FlexRecord:
    """Flex's record of one merchant order: GET /v1/orders/{key} (status, refundedAmount)
    and the chargeback flag, which only the sandbox's own view shows."""

    key: str
    status: str  # statusName: COMPLETED, RETURNED, CAPTUREREQUIRED, CANCELLED, …
    amount_cents: int
    refunded_cents: int
    chargeback: bool


def flex_orders(sandbox, merchant_order_id: str) -> list[dict]:
    every = requests.get(f"{sandbox.url}/_sandbox/orders", timeout=5).json()
    return [o for o in every if o["merchant_order_id"] == merchant_order_id]


def flex_record(sandbox, app, merchant_order_id: str) -> FlexRecord | None:
    """Flex's order for a merchant order id (asserting there is at most one), or None."""
    found = flex_orders(sandbox, merchant_order_id)
    assert len(found) <= 1, f"{len(found)} Flex orders for merchant order {merchant_order_id}"
    if not found:
        return None
    key = found[0]["order_session_key"]
    token = app.extensions["services"].client.authenticate()
    answer = requests.get(f"{sandbox.api_url}/orders/{key}", timeout=5,
                          headers={"Authorization": f"Bearer {token}"})
    answer.raise_for_status()
    looked_up = answer.json()
    return FlexRecord(key, looked_up["statusName"], looked_up["amount"],
                      looked_up["refundedAmount"], found[0]["chargeback"])


@dataclass(frozen=True)
class ShopRecord:
    """The shop's order as the merchant sees it: the page's status label, and the money."""

    label: str
    amount_cents: int
    refunded_cents: int  # refunds that succeeded
    reserved_cents: int  # succeeded + in flight / unknown
    chargeback: bool
    order_session_key: str | None


def shop_record(app, order_id: str, *, label: bool = True) -> ShopRecord:
    """The order as the merchant sees it (`label=False`: the money only, without rendering
    the page)."""
    page = app.test_client().get(f"/orders/{order_id}").get_data(as_text=True) if label else ""
    with app.test_request_context():
        order = records.get(get_db(), order_id)
    return ShopRecord(status_label(page) if label else "", order.amount_cents, order.refunded_cents,
                      order.refund_reserved_cents, order.chargeback_at is not None,
                      order.order_session_key)


def status_label(html: str) -> str:
    """The text of the page's one role="status" element: the order's status label."""
    found = re.findall(r'role="status"[^>]*>\s*([^<]*?)\s*<', html)
    assert len(found) == 1, f"expected one status label, found {found}"
    return found[0]


def expected_label(flex: FlexRecord | None, shop: ShopRecord) -> str | set[str]:
    """What the shop must show, once settled, for what Flex holds."""
    if flex is None:  # Flex never charged it: the processor's answer stands
        if shop.refunded_cents:
            return "Refunded" if shop.refunded_cents >= shop.amount_cents else (
                "Partially refunded")
        return {"Paid", "Declined"}
    if flex.chargeback:
        return "Chargeback"
    if flex.status in ("COMPLETED", "RETURNED"):
        if flex.refunded_cents >= flex.amount_cents:
            return "Refunded"
        return "Partially refunded" if flex.refunded_cents else "Rescued by Flex"
    if flex.status == "CAPTUREREQUIRED":
        return "Awaiting capture"
    return "Declined"  # CANCELLED: declined, challenged, or an authorization voided


def agreement(sandbox, app, order_id: str) -> list[str]:
    """How the shop's settled order disagrees with Flex's record (empty: they agree)."""
    flex, shop = flex_record(sandbox, app, order_id), shop_record(app, order_id)
    wrong = []
    want = expected_label(flex, shop)
    if shop.label not in ({want} if isinstance(want, str) else want):
        wrong.append(f"shop shows {shop.label!r}, Flex's record means {want!r} ({flex})")
    if shop.reserved_cents != shop.refunded_cents:
        wrong.append(f"{shop.reserved_cents - shop.refunded_cents} cents of refunds still "
                     "in flight or unknown after settling")
    if shop.refunded_cents > shop.amount_cents:
        wrong.append(f"over-refunded: {shop.refunded_cents} of {shop.amount_cents} cents")
    if flex is not None and flex.status in ("COMPLETED", "RETURNED"):
        if shop.refunded_cents != flex.refunded_cents:
            wrong.append(f"shop refunded {shop.refunded_cents} cents, Flex "
                         f"{flex.refunded_cents}")
        if shop.chargeback != flex.chargeback:
            wrong.append(f"shop chargeback {shop.chargeback}, Flex {flex.chargeback}")
        if shop.order_session_key != flex.key:
            wrong.append(f"shop holds orderSessionKey {shop.order_session_key}, Flex {flex.key}")
    return wrong


def settle(app, courier: Courier, clock: ShopClock, rounds: int = 6) -> None:
    """Lets time pass until nothing is left to do: every event Flex emitted is delivered
    (Flex retries until a 2xx), the relay delivers the transmits, and the recovery sweep runs
    with the shop's clock moved a day ahead each round, so every backoff is due."""
    services = app.extensions["services"]
    for _ in range(rounds):
        courier.deliver_all()
        clock.advance(FAR_AHEAD)
        with app.app_context():
            services.sweep.run()
            services.relay.run_once()
    courier.deliver_all()


def unapplied_events(app) -> list[tuple]:
    """Stored webhook events that were never applied."""
    with app.test_request_context():
        rows = get_db().execute(
            "SELECT event_type, event_id FROM webhook_events WHERE applied_at IS NULL")
        return [tuple(row) for row in rows]


def undelivered_transmits(app) -> list[tuple]:
    with app.test_request_context():
        rows = get_db().execute(
            "SELECT order_id, state, last_error FROM flex_outbox WHERE state != 'delivered'")
        return [tuple(row) for row in rows]
