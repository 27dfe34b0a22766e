"""The helpers every test suite shares, in one module (fixtures live in the conftest.py
files; a test module imports helpers from here, never from another test module or a
conftest). Its sections, in order: processes, ports and waiting; the `slow` rule's process
watch; a loopback HTTP server (and the shop and a webhook subscriber served by it); pages;
the test cards; the shopper (Flask test client or HTTP); the Flex sandbox seen from outside;
the flex library's inputs; the shop and its database; the browser and the shop process it
browses; the order lifecycle's clock, courier and records. The throwaway PostgreSQL server
is the bench's (bench/postgres.py), which the tests share."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import types
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

import flex_sandbox
from bench.load import hidden  # the bench's own helpers (it imports nothing from the tests)
from bench.servers import free_port as free_port  # re-exported for the tests that need one
from flex import Address, Card, FlexClient, FlexConfig, ProcessorResult, Purchase
from flex.errors import FlexUnavailableError
from flex.webhooks import sign
from flex_sandbox import shared
from shop.orders import records
from shop.services import services
from shop.storage import db
from shop.storage.db import get_db
from shop.webhooks.effects import apply_due

ROOT = Path(__file__).resolve().parents[1]


# --- processes, ports, waiting ---------------------------------------------------------------

def wait_for(predicate, timeout: float = 15.0):
    """Polls `predicate` until it is truthy or `timeout` s pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return result


def child_pids(pid: int) -> set[int]:
    """The live child processes of `pid` (Linux /proc)."""
    children = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.update(int(c) for c in (task / "children").read_text().split())
        except FileNotFoundError:  # the thread just ended
            pass
    return {c for c in children if process_state(c) not in (None, "Z")}


def process_state(pid: int) -> str | None:
    """The one-letter state of `pid` (R, S, T, Z…), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def processes_mentioning(text: str) -> set[int]:
    """Live processes (not zombies) whose command line contains `text` (Linux /proc)."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.add(int(cmdline.parent.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return {pid for pid in found if process_state(pid) not in (None, "Z")}


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening, or still booting
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


@contextmanager
def running(command: list[str], ready_url: str, **popen) -> Iterator[subprocess.Popen]:
    """`command` as a process started in the repository root, once `ready_url` answers;
    terminated when the block ends (`popen`: Popen's env, stdout, …)."""
    process = subprocess.Popen(command, cwd=ROOT, **popen)
    try:
        wait_until_up(ready_url, process)
        yield process
    finally:
        process.terminate()
        process.wait(15)


RUNNING_ON = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")  # werkzeug's start line


class ShopServer:
    """The real app as its own process (`flask run`, threaded) on a loopback port.
    Settings come from `env` on top of this process's environment; output goes to `log`."""

    def __init__(self, env: dict, log: Path):
        self.env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
        self.log = log
        self.port: int | None = None  # known once started; a restart keeps it
        self.url: str | None = None
        self.process: subprocess.Popen | None = None

    def start(self) -> ShopServer:
        """Starts the app: the first time on a port the OS picks (a free port chosen here
        could be taken by another test's server before flask binds it, and the test would
        talk to that one), then again on the same port, so a restart keeps the URL."""
        started = len(RUNNING_ON.findall(self.log.read_text())) if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "app", "run",
                 "--port", str(self.port or 0), "--no-reload", "--no-debugger"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        self.port = self._bound_port(started)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until_up(self.url, self.process)
        return self

    def _bound_port(self, lines_before: int, timeout: float = 20.0) -> int:
        """The port this start's server printed it listens on (werkzeug's "Running on")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ports = RUNNING_ON.findall(self.log.read_text())
            if len(ports) > lines_before:
                return int(ports[lines_before])
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: see {self.log}")
            time.sleep(0.05)
        raise RuntimeError(f"the server did not say where it listens within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, exactly like a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


# --- the `slow` rule: who starts or signals a process (tests/conftest.py) ----------------

# Tools that answer and exit within milliseconds (`git ls-files`, `openssl req` making a
# test certificate): not what `slow` is about.
QUICK_TOOLS = {"git", "openssl"}
PROCESS_EVENTS = {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn",
                  "os.exec", "os.system", "os.kill", "os.killpg"}


class ProcessWatch:
    """Records the processes started or signalled during the setup and call of a test not
    marked slow (Python's audit hooks see every subprocess, fork and kill). Teardown is not
    watched: the session's fixtures end there, in whichever test happens to run last."""

    def __init__(self):
        self.watching = False
        self.seen: list[str] = []

    def __call__(self, event: str, args: tuple) -> None:
        if self.watching and event in PROCESS_EVENTS and (what := self.describe(event, args)):
            self.seen.append(what)

    @staticmethod
    def describe(event: str, args: tuple) -> str | None:
        if event == "subprocess.Popen":
            command = args[1] if isinstance(args[1], list | tuple) else [args[1]]
            if Path(str(command[0])).name in QUICK_TOOLS:
                return None
            return f"started {' '.join(map(str, command))[:120]}"
        if event in ("os.kill", "os.killpg"):
            # signal 0 only asks whether the process exists
            return f"sent signal {args[1]} to process {args[0]}" if args[1] else None
        return f"{event} {args!r:.120}"


# --- a loopback HTTP server -----------------------------------------------------------------

class LoopbackServer:
    """A WSGI app served over real HTTP on a free loopback port by a thread (werkzeug's
    threaded server: HTTP/1.1, kept-alive connections, a thread each), over TLS with
    `ssl_context`; `stop()` ends and joins it."""

    def __init__(self, app, ssl_context: ssl.SSLContext | None = None):
        self._server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ssl_context)
        self.port = self._server.server_port
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if ssl_context else 'http'}://{self.host}"
        # A short poll interval: stop() returns within it.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"loopback-{self.port}")
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class LiveShop(LoopbackServer):
    """The shop app over real HTTP (so that the sandbox's webhook sender can reach it)."""

    def __init__(self, app):
        super().__init__(app)
        self.webhook_url = f"{self.url}/webhooks/flex"

    def post(self, body: dict | bytes, *, key: str | None = None, headers: dict | None = None,
             **signing) -> requests.Response:
        """POSTs `body` to the webhook receiver signed as Flex signs it, with `key` (default
        WEBHOOK_KEY); `headers` replace signed ones (tampering)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        signed = sign(raw, key or WEBHOOK_KEY, self.host, **signing)
        return requests.post(self.webhook_url, data=raw, headers={**signed, **(headers or {})},
                             timeout=10)


class Subscriber:
    """A merchant's webhook endpoint: records every POST; answers `statuses` in turn (then
    200); a status of None holds the answer until released (a subscriber that times out)."""

    def __init__(self, statuses=()):
        self.received: list[dict] = []
        self.statuses = list(statuses)
        self.release = threading.Event()
        self._changed = threading.Condition()
        self._server = LoopbackServer(self._app)
        self.url = f"{self._server.url}/webhooks/flex"

    @Request.application
    def _app(self, request: Request) -> Response:
        with self._changed:
            self.received.append({"headers": dict(request.headers), "body": request.get_data()})
            status = self.statuses.pop(0) if self.statuses else 200
            self._changed.notify_all()
        if status is None:
            self.release.wait(5)
            status = 200
        return Response("ok", status)

    def wait_for(self, count: int, timeout: float = 5) -> list[dict]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.received) >= count, timeout), (
                f"{len(self.received)} of {count} webhooks arrived")
            return list(self.received)

    def events(self) -> list[dict]:
        with self._changed:
            return [json.loads(r["body"]) for r in self.received]

    def close(self) -> None:
        self.release.set()
        self._server.stop()


# --- pages ----------------------------------------------------------------------------------

def status_label(html: str) -> str:
    """The text of the page's one role="status" element: the order's status label."""
    found = re.findall(r'role="status"[^>]*>\s*([^<]*?)\s*<', html)
    assert len(found) == 1, f"expected one status label, found {found}"
    return found[0]


# --- test cards (the simulated processor's and the sandbox's) -------------------------------

APPROVED = "4242424242424242"
APPROVED_MC = "5555555555554444"
OTHER_APPROVED = "4111111111111111"  # any other valid number: the processor approves
RESCUED = "4000000000000002"
CHALLENGED = "4000000000000127"
FLEX_DECLINED = "4000000000009995"
FLEX_DOWN = "4000000000000119"  # Flex decides APPROVED, its /evaluate answer is lost
THREE_D_SECURE = "4000008400001629"  # authenticated, then declined: Flex answers SUBMITTED
CARDS = (APPROVED, APPROVED_MC, OTHER_APPROVED, RESCUED, CHALLENGED, FLEX_DECLINED, FLEX_DOWN)


def spaced(number: str) -> str:
    """A card number in groups of four, as the checkout page shows it and a shopper types it."""
    digits = number.replace(" ", "")
    return " ".join(digits[i:i + 4] for i in range(0, len(digits), 4))


# --- the shopper ----------------------------------------------------------------------------

class Shopper:
    """One shopper's cookie session filling the storefront's forms: through the Flask test
    client (`Shopper(app.test_client())`) or over HTTP against a running shop (`Shopper(url)`).
    Answers are the test client's or requests' response (both have status_code, headers
    and text); a POST never follows the redirect."""

    def __init__(self, client_or_url):
        self.client = None if isinstance(client_or_url, str) else client_or_url
        self.url = client_or_url if self.client is None else ""
        self.http = requests.Session() if self.client is None else None
        if self.http is not None:
            # A fresh connection per request: gunicorn closes an idle keep-alive connection
            # after 2 s, and on a busy machine the next POST could leave on the connection it
            # just closed, which a browser would send again and requests does not.
            self.http.headers["Connection"] = "close"

    def get(self, path: str) -> str:
        """The page at `path`, as text."""
        if self.client is not None:
            return self.client.get(path).get_data(as_text=True)
        return self.http.get(f"{self.url}{path}", timeout=10).text

    def post(self, path: str, data: dict):
        if self.client is not None:
            return self.client.post(path, data=data)
        return self.http.post(f"{self.url}{path}", data=data, allow_redirects=False, timeout=30)

    def fill_cart(self, sku: str = "mug", quantity: int = 1) -> None:
        page = self.get("/")
        answer = self.post("/cart/add", {
            "csrf_token": hidden(page, "csrf_token"), "sku": sku, "quantity": quantity})
        assert answer.status_code == 302, answer.text[:300]

    def checkout_form(self, card: str = spaced(APPROVED), page: str | None = None) -> dict:
        """The checkout form for the cart as it is, filled in with `card` (by default the
        approved test card, spaced as a shopper types it): the form of `page`, a checkout
        page already open, or of the checkout page opened now (each opening is a new
        checkout id)."""
        page = self.get("/checkout") if page is None else page
        return {name: hidden(page, name)
                for name in ("csrf_token", "checkout_id", "expected_total_cents")} | {
            "email": "shopper@example.com", "name": "Ada Lovelace", "card_number": card,
            "expiry": "12/34", "cvc": "123", "address": "1 Main St", "city": "Springfield",
            "state": "IL", "zip_code": "62701", "country": "US"}

    def ready_to_pay(self, card: str = spaced(APPROVED), sku: str = "mug",
                     quantity: int = 1) -> dict:
        """Fills the cart and opens the checkout: its form, filled in with `card`."""
        self.fill_cart(sku, quantity)
        return self.checkout_form(card)

    def pay(self, card: str, sku: str = "mug", quantity: int = 1) -> str:
        """Fills the cart, pays with `card`; returns the order id (the checkout id)."""
        form = self.ready_to_pay(card, sku, quantity)
        answer = self.post("/checkout", form)
        assert answer.status_code == 302, answer.text[:500]
        assert answer.headers["Location"].rsplit("/", 1)[-1] == form["checkout_id"]
        return form["checkout_id"]

    def refund(self, order_id: str, dollars: str):
        page = self.get(f"/orders/{order_id}")
        return self.post(f"/orders/{order_id}/refund",
                         {"csrf_token": hidden(page, "csrf_token"), "amount": dollars})

    def close(self) -> None:
        if self.http is not None:
            self.http.close()

    def __enter__(self) -> Shopper:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def pay(client, card: str, sku: str = "mug", quantity: int = 1) -> tuple[str, str]:
    """A shopper on the Flask test client `client` pays with `card`: (order id, order page)."""
    order_id = Shopper(client).pay(card, sku, quantity)
    return order_id, client.get(f"/orders/{order_id}").get_data(as_text=True)


# --- the Flex sandbox, from the outside -----------------------------------------------------

WEBHOOK_KEY = base64.b64encode(b"the tests' webhook subscriber key, 32+ bytes long").decode()
OTHER_MID = "11111111-2222-3333-4444-555555555555"


def flex_config(server, **overrides) -> FlexConfig:
    """A FlexConfig for the sandbox `server`, with short timeouts and backoffs."""
    settings = {
        "api_url": server.api_url,
        "app_key": flex_sandbox.DEFAULT_APP_KEY,
        "app_secret": flex_sandbox.DEFAULT_APP_SECRET,
        "mid": flex_sandbox.DEFAULT_MID,
        "tokenization_key": flex_sandbox.DEFAULT_TOKENIZATION_KEY,
        "site_id": flex_sandbox.DEFAULT_SITE_ID,
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "deadline": 3.0,
        "backoff_base": 0.05,
        "backoff_cap": 0.1,
    }
    return FlexConfig(**{**settings, **overrides})


def flex_settings(server) -> dict[str, str]:
    """The FLEX_* settings that point the shop at `server` as at a real Flex API."""
    return {
        "FLEX_API_URL": server.api_url,
        "FLEX_APP_KEY": flex_sandbox.DEFAULT_APP_KEY,
        "FLEX_APP_SECRET": flex_sandbox.DEFAULT_APP_SECRET,
        "FLEX_MID": flex_sandbox.DEFAULT_MID,
        "FLEX_SITE_ID": flex_sandbox.DEFAULT_SITE_ID,
        "FLEX_TOKENIZATION_KEY": flex_sandbox.DEFAULT_TOKENIZATION_KEY,
        "FLEX_SENSEJS_URL": f"{server.url}/widget.js",
    }


def calls(server, endpoint: str | None = None) -> list[dict]:
    """The calls the sandbox recorded (to `endpoint` only, if given), oldest first."""
    params = {"endpoint": endpoint} if endpoint else {}
    return requests.get(f"{server.url}/_sandbox/calls", params=params, timeout=5).json()


def set_fault(server, endpoint: str, **spec) -> None:
    requests.put(f"{server.url}/_sandbox/faults/{endpoint}", json=spec,
                 timeout=5).raise_for_status()


def clear_faults(server) -> None:
    """Removes every fault; calls held by a `hang` fault are answered now."""
    requests.delete(f"{server.url}/_sandbox/faults", timeout=5).raise_for_status()


def sandbox_orders(server, order_id: str) -> list[dict]:
    """The sandbox's orders for merchant order `order_id` (its own view, not Flex's API)."""
    decided = requests.get(f"{server.url}/_sandbox/orders", timeout=5).json()
    return [o for o in decided if o["merchant_order_id"] == order_id]


def deliveries(server) -> list[dict]:
    """The sandbox's webhook delivery log, oldest first."""
    return requests.get(f"{server.url}/_sandbox/webhooks", timeout=5).json()


def access_token(server) -> str:
    answer = requests.post(f"{server.api_url}/oauth2/token", timeout=5, json={
        "AppKey": flex_sandbox.DEFAULT_APP_KEY, "AppSecret": flex_sandbox.DEFAULT_APP_SECRET})
    return answer.json()["accessToken"]


def evaluation(card: str, order_id="o-1", key="k-1", amount=1800, **extra) -> dict:
    """An /evaluate body; `card` is a vault token or a raw PAN (sent with no `token` field)."""
    method = {"cardNumber": card} if card.isdigit() else {"cardNumber": card, "token": True}
    return {
        "isDeclined": True, "isMIT": False, "mid": flex_sandbox.DEFAULT_MID, "orderId": order_id,
        "idempotencyKey": key, "senseKey": order_id,
        "transaction": {"id": "t", "amount": amount, "currency": "USD", "responseCode": "05",
                        "responseCodeSource": "PSP", "avsResultCode": "NA",
                        "cvvResultCode": "NA", "cavvResultCode": "NA"},
        "payer": {"email": "a@b.co"},
        "billingInformation": {"firstName": "Ada", "lastName": "Lovelace", "country": "US",
                               "addressLine1": "1 Main", "city": "X", "zipcode": "62701"},
        "paymentMethod": method, **extra,
    }


def decide(flex, card=RESCUED, order_id="o-1", amount=1800, **extra) -> str:
    """Evaluates a decline through `flex` (the `flex` fixture's caller); returns the new
    order's orderSessionKey."""
    answer = flex("POST", "/evaluate", json=evaluation(card, order_id, str(uuid.uuid4()),
                                                       amount, **extra))
    assert answer.status_code == 200, answer.text
    return answer.json()["orderSessionKey"]


def assert_problem(answer: requests.Response, status: int) -> dict:
    """An error answered as RFC 9457 problem details (never HTML, never a redirect)."""
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    body = answer.json()
    assert body["status"] == status and body["title"] and body["type"]
    assert body["traceId"].startswith("00-")
    return body


def assert_flat_validation(answer: requests.Response, *fields: str) -> dict:
    """A 400 in the flat form real traffic shows: field -> [messages], plus TraceId."""
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["TraceId"][0].startswith("00-") and "title" not in body
    for name in fields:
        assert isinstance(body[name], list) and body[name], name
    return body


# --- the flex library's inputs --------------------------------------------------------------

def card(number=RESCUED) -> Card:
    return Card(number=number, cvc="123", exp_month=12, exp_year=2034, holder_name="Ada Lovelace")


def purchase(order_id="order-1", amount=1800) -> Purchase:
    return Purchase(order_id, amount, "USD", "shopper@example.com",
                    Address("1 Main St", "Springfield", "IL", "62701", "US"),
                    customer_ip="127.0.0.1", sense_key=order_id)


DECLINE = ProcessorResult(False, "txn-1", "05", "Do not honor", "SimulatedPSP",
                          timestamp_utc="2026-11-24T12:00:00.000Z")


def evaluate_payload(flex_client: FlexClient, number=RESCUED, order_id="order-1",
                     amount=1800) -> dict:
    """An /evaluate body as the client builds it, for a card vaulted just now."""
    vaulted = flex_client.tokenize(card(number), email="shopper@example.com", sense_key=order_id)
    return flex_client.evaluate_payload(purchase(order_id, amount), card(number).summary,
                                        vaulted.token, DECLINE, idempotency_key=order_id)


class MemoryStore:
    """The RecoveryStore protocol in memory: what the library asks the merchant to keep."""

    def __init__(self, evaluates=(), refunds=()):
        self.evaluates = list(evaluates)
        self.refunds = list(refunds)
        self.settled: dict = {}
        self.retried: dict = {}

    def due_evaluates(self, now, limit):
        return [e for e in self.evaluates if e.order_id not in self.settled][:limit]

    def settle_evaluate(self, order_id, decision, order_session_key, steps, reason):
        self.settled[order_id] = (decision, order_session_key, steps, reason)

    def retry_evaluate(self, order_id, retry_at, steps, reason):
        self.retried[order_id] = (retry_at, steps, reason)

    def due_refunds(self, now, limit):
        return [r for r in self.refunds if r.refund_id not in self.settled][:limit]

    def settle_refund(self, refund_id, verdict, steps, reason):
        self.settled[refund_id] = (verdict, None, steps, reason)

    def retry_refund(self, refund_id, retry_at, steps, reason):
        self.retried[refund_id] = (retry_at, steps, reason)


# --- the shop -------------------------------------------------------------------------------

MERCHANT_PASSWORD = "correct horse battery staple"  # noqa: S105 - the tests' merchant
# What SHOP_ENV=production requires beyond the Flex settings: a real secret key and the
# back office's login (a cheap hash: the tests sign in often).
PRODUCTION = {
    "SHOP_ENV": "production",
    "SECRET_KEY": "a-long-random-test-secret",
    "MERCHANT_USERNAME": "merchant",
    "MERCHANT_PASSWORD_HASH": generate_password_hash(MERCHANT_PASSWORD, "pbkdf2:sha256:1000"),
}


def sign_in(client, password: str = MERCHANT_PASSWORD):
    """Signs the merchant in through the login form; returns the answer (303 when it took)."""
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"csrf_token": hidden(page, "csrf_token"),
                                       "username": "merchant", "password": password})


def services_of(app):
    with app.app_context():
        return services()


def close_app(app) -> None:
    """Stops what an app started: its relay, vault threads and connections."""
    app.extensions["services"].close()
    app.extensions["database"].close()


def sqlite_files(app) -> list[Path]:
    """The SQLite database file of an app on SQLite, and its write-ahead log if any."""
    database = Path(db.database_url(app.config).split(":///", 1)[1])
    return [p for p in (database, Path(f"{database}-wal")) if p.exists()]


def db_rows(url: str, sql: str, *params) -> list[tuple]:
    """Runs one query on the shop's database, as an operator would look at it."""
    conn = db.connect(url)
    try:
        with conn:
            cursor = conn.execute(sql, params)
            return [tuple(row) for row in cursor] if cursor.description else []
    finally:
        conn.close()


def sweep(app) -> int:
    """What the relay loop does every round: apply the stored events that had to wait."""
    with app.app_context():
        return apply_due(app.extensions["database"], services().client)


def label_of(client, order_id: str) -> str:
    return status_label(client.get(f"/orders/{order_id}").get_data(as_text=True))


def settles_to(app, client, order_id: str, label: str, timeout: float = 15) -> bool:
    """Polls (bounded) until the order shows `label`, sweeping as the relay would."""
    return wait_for(lambda: sweep(app) is not None and label_of(client, order_id) == label,
                    timeout)


# --- the browser (Playwright), and the shop process it browses -----------------------------

CHECKOUT_FIELDS = (
    ("Email", "shopper@example.com"),
    ("Name on card", "Ada Lovelace"),
    ("Card number", None),  # the card under test
    ("Expiry (MM/YY)", "12/34"),
    ("CVC", "123"),
    ("Address", "1 Main St"),
    ("City", "Springfield"),
    ("State", "IL"),
    ("ZIP", "62701"),
    ("Country", "US"),
)
AXE = Axe()


def open_checkout(page: Page, quantity: int = 1) -> str:
    """Puts a Flex Mug in the cart, opens the checkout; returns the page's checkout id."""
    page.goto("/")
    mug = page.get_by_role("article").filter(has_text="Flex Mug")
    mug.get_by_label("Quantity").fill(str(quantity))
    mug.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Checkout").click()
    expect(page).to_have_url(re.compile(r"/checkout$"))
    return page.locator("input[name=checkout_id]").input_value()


def fill_checkout(page: Page, card: str) -> None:
    """Fills every checkout field, typing the card number as a shopper does (spaced)."""
    for label, value in CHECKOUT_FIELDS:
        page.get_by_label(label, exact=True).fill(value or spaced(card))


def pay_in_browser(page: Page, card: str, quantity: int = 1) -> str:
    """Checks out with `card`; returns the order id (the checkout id)."""
    checkout_id = open_checkout(page, quantity)
    fill_checkout(page, card)
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/orders/{checkout_id}$"))
    return checkout_id


def expect_status(page: Page, label: str) -> None:
    """The order page's one role=status element carries exactly `label`."""
    expect(page.get_by_role("status")).to_have_text(label)


def sense_post(response) -> bool:
    """Whether a browser response answers SenseJS's POST to Flex."""
    return response.url.endswith("/v1/sense") and response.request.method == "POST"


def violations(page: Page, name: str) -> list[str]:
    """axe-core's violations on the page, and sideways scrolling (nothing may be clipped)."""
    results = AXE.run(page)
    found = [f"{name}: {v['id']} ({v['impact']}) on {[n['target'] for n in v['nodes']]}"
             for v in results.response["violations"]]
    width = page.viewport_size["width"]
    if page.evaluate("document.documentElement.scrollWidth") > width:
        found.append(f"{name}: wider than the {width} px screen")
    return found


@dataclass(frozen=True)
class SandboxAt:
    """A Flex sandbox known by its URL only (another process runs it): what calls(),
    set_fault() and the other control-plane helpers need of a sandbox."""

    url: str

    @property
    def api_url(self) -> str:
        return f"{self.url}/v1"


class RunningShop:
    """The app running as its own process for the browser tests (tests/e2e/conftest.py), and
    the sandbox it embeds."""

    def __init__(self, url: str, sandbox: SandboxAt, database: str):
        self.url = url
        self.sandbox = sandbox
        self.database = database  # the server's SQLite file

    def buy(self, card: str, quantity: int = 1) -> str:
        """Places an order over plain HTTP (a cookie session of its own, not the browser's),
        for tests that need an order to look at rather than the journey to it."""
        with Shopper(self.url) as shopper:
            return shopper.pay(card, quantity=quantity)


@contextmanager
def running_shop(tmp_path_factory, name: str, **settings: str) -> Iterator[RunningShop]:
    """The app as its own process with its embedded sandbox, on loopback ports the OS picks
    (the sandbox's is read from the URL file it publishes beside the database)."""
    directory = tmp_path_factory.mktemp(name)
    database = str(directory / "shop.sqlite")
    server = ShopServer({
        "DATABASE": database,
        "FLEX_API_URL": None,  # always the embedded sandbox
        "FLEX_SANDBOX_FAULTS": None,
        # A lost /evaluate answer stays "Awaiting confirmation" for the whole session: its
        # webhook (which would settle it) is held back, so tests see that state steadily.
        "FLEX_SANDBOX_LOST_ANSWER_WEBHOOK_DELAY": "3600",
        # Likewise a SUBMITTED (3-D Secure) evaluation waits until a test decides it.
        "FLEX_SANDBOX_SUBMITTED_DELAY": "3600",
        "FLEX_SANDBOX_PORT": None,
        "PROCESSOR_LATENCY_MS": "50",
        "FLEX_RELAY_POLL_SECONDS": "0.2",
        "FLEX_READ_TIMEOUT": "3",
        "FLEX_DEADLINE": "5",
        **settings,
    }, tmp_path_factory.mktemp(f"{name}-log") / "server.log")
    try:
        server.start()
        yield RunningShop(server.url, SandboxAt(shared.running_url(directory)), database)
    finally:
        server.stop()
        # The sandbox process beside the database leaves by itself once the shop has gone.
        if not wait_for(lambda: shared.running_url(directory) is None,
                        timeout=shared.UNUSED_GRACE + 20):
            for pid in processes_mentioning(f"{directory}/"):
                os.kill(pid, signal.SIGKILL)
            pytest.fail("the sandbox process outlived the shop")
        assert not (directory / shared.URL_FILE).exists(), "a clean stop left a stale URL"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium",
                      shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None  # Playwright's own build, if `playwright install chromium` fetched one


# --- the order lifecycle (test_lifecycle_*) --------------------------------------------------
# A clock for the shop that a test moves forward, Flex's webhook sender played by the test (so
# that a test decides when, how often and in which order each event arrives), crash points
# that end a request without killing the test process, and "settled": the shop's order
# against Flex's record of it. Nothing here waits on a thread or a timer: time passes only
# when a test moves the shop's clock; an event arrives only when a test delivers it.

HOST = "localhost"  # the Flask test client's Host header: the host Flex signs
FAR_AHEAD = 24 * 3600.0  # seconds the clock moves per settling round: every backoff is due


# --- the lifecycle: the shop's clock ------------------------------------------------------

class ShopClock:
    """The wall clock of the shop's code (shop.* and the flex client library, not the
    sandbox): real time plus an offset that only `advance` changes. Every backoff, lease and
    "due at" in the shop reads `time.time()`, so moving this clock is how a test lets time
    pass without sleeping. time.monotonic (timeouts, deadlines) is left alone."""

    def __init__(self):
        self.offset = 0.0
        self.time = types.SimpleNamespace(**{
            name: getattr(time, name) for name in dir(time)
            if not name.startswith("__")})
        self.time.time = self.now

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def install(self, monkeypatch) -> ShopClock:
        """Points `time` in every loaded shop/flex module (not the sandbox) at this clock."""
        for name, module in list(sys.modules.items()):
            if (name.split(".")[0] in ("shop", "flex") and not name.startswith("flex_sandbox")
                    and getattr(module, "time", None) is time):
                monkeypatch.setattr(module, "time", self.time)
        return self


# --- the lifecycle: crash points --------------------------------------------------------

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


# --- the lifecycle: Flex's webhook sender, played by the test ----------------------------

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

    def __init__(self, sandbox, app, clock: ShopClock | None = None, key: str = WEBHOOK_KEY):
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
        now = datetime.fromtimestamp(self.clock.now() if self.clock else time.time(), UTC)
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


# --- the lifecycle: the Flex client, with what happens during a call ---------------------

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


# --- the lifecycle: the shop's order against Flex's record --------------------------------

@dataclass(frozen=True)
class FlexRecord:
    """Flex's record of one merchant order: GET /v1/orders/{key} (status, refundedAmount)
    and the chargeback flag, which only the sandbox's own view shows."""

    key: str
    status: str  # statusName: COMPLETED, RETURNED, CAPTUREREQUIRED, CANCELLED, …
    amount_cents: int
    refunded_cents: int
    chargeback: bool


def flex_record(sandbox, app, merchant_order_id: str) -> FlexRecord | None:
    """Flex's order for a merchant order id (asserting there is at most one), or None."""
    found = sandbox_orders(sandbox, merchant_order_id)
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
