"""A model-based test of the order lifecycle (Hypothesis stateful testing) against the sandbox
over loopback HTTP: random interleavings of checkouts with every test card, refunds from the
shop (full, half, a cent; answered, answer lost, crashed), refunds in Flex's portal,
chargebacks, captures and cancels (authorization mode; answered, lost, with webhooks during
the call), Flex's webhooks delivered late, twice, out of order or during the call that
caused them, stray signed order.cancelled / order.expired, crash points (shop/crash.py),
recovery sweeps after some time, relay runs.

After every step: never over-refunded (shop or Flex), at most one Flex order per merchant
order. After every run, once settled (every event delivered, the sweeps run with the
shop's clock a day ahead, repeatedly): each order agrees with Flex's record (status,
refunded amount, chargeback, captured or cancelled), every transmit was delivered, no
stored event is left unapplied.

`make test` runs a fixed, bounded search (derandomized: the same examples every run, about
20 s on a quiet machine); `make fuzz` runs a longer randomized one
(LIFECYCLE_FUZZ_EXAMPLES, default 500).
"""

from __future__ import annotations

import gc
import os
import uuid
from collections import Counter

import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from jinja2 import BytecodeCache

from tests.support import (
    CARDS,
    WEBHOOK_KEY,
    CallHooks,
    Courier,
    CrashPoints,
    ShopClock,
    Shopper,
    SimulatedCrash,
    agreement,
    close_app,
    event_body,
    flex_settings,
    hidden,
    sandbox_orders,
    settle,
    shop_record,
    unapplied_events,
    undelivered_transmits,
)

pytestmark = [pytest.mark.lifecycle, pytest.mark.model]

FUZZ_EXAMPLES = int(os.environ.get("LIFECYCLE_FUZZ_EXAMPLES") or 0)
SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES or 20,
    stateful_step_count=25 if FUZZ_EXAMPLES else 20,
    derandomize=not FUZZ_EXAMPLES,  # make test: the same examples on every run
    database=None,  # nothing remembered between runs: a run is what its settings say
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
)

class _CompiledTemplates(BytecodeCache):
    """Jinja's compiled templates kept in memory for every example's app."""

    def __init__(self):
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = _CompiledTemplates()
CHECKOUT_CRASHES = (None, "after_order_insert", "after_authorize", "after_vault",
                    "after_evaluate_sent")
REFUND_ANSWERS = ("answered", "answer lost", "after_refund_reserved", "after_refund_sent")
CHARGED = ("COMPLETED", "RETURNED")


class LifecycleModel(RuleBasedStateMachine):
    """One shop (a fresh database) per example, in purchase or authorization mode."""

    orders = Bundle("orders")

    def __init__(self, sandbox, directory, monkeypatch, clock, crashes, tried):
        super().__init__()
        self.tried = tried
        self.sandbox, self.directory, self.monkeypatch = sandbox, directory, monkeypatch
        self.clock, self.crashes = clock, crashes
        self.app = None
        self.placed: list[str] = []

    # --- set-up -----------------------------------------------------------------------------

    # Every example starts with one checkout: the rules need an order to act on.
    @initialize(target=orders, mode=st.sampled_from(["PURCHASE", "AUTHORIZATION"]),
                card=st.sampled_from(CARDS), quantity=st.integers(1, 2),
                crash=st.sampled_from(CHECKOUT_CRASHES), webhooks_during=st.booleans())
    def start(self, mode, card, quantity, crash, webhooks_during):
        requests.post(f"{self.sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
        from app import create_app

        self.mode = mode
        self.app = create_app({
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{self.directory / f'{uuid.uuid4().hex}.sqlite'}",
            **flex_settings(self.sandbox),
            "FLEX_RELAY": False, "FLEX_READ_TIMEOUT": 2.0, "FLEX_DEADLINE": 3.0,
            "PROCESSOR_LATENCY_MS": 0, "FLEX_WEBHOOK_KEY": WEBHOOK_KEY,
            "FLEX_TRANSACTION_TYPE": mode,
        })
        self.app.jinja_env.bytecode_cache = TEMPLATES  # compiled once, not once per example
        self.courier = Courier(self.sandbox, self.app, self.clock)
        self.hooks = CallHooks(self.app)
        return self._checkout(card, quantity, crash, webhooks_during)

    def teardown(self):
        if self.app is None:
            return
        try:
            self.crashes.armed = None
            settle(self.app, self.courier, self.clock)
            wrong = {order_id: found for order_id in self.placed
                     if (found := agreement(self.sandbox, self.app, order_id))}
            assert wrong == {}, f"after settling, the shop disagrees with Flex: {wrong}"
            assert unapplied_events(self.app) == []
            assert undelivered_transmits(self.app) == []
        finally:
            close_app(self.app)
            self.app = self.courier = self.hooks = None
            gc.collect()  # what a finished example leaves in cycles holds files open

    # --- the shopper and the merchant -------------------------------------------------------

    def _send(self, call, crash: str | None = None, during: str | None = None):
        """Runs one request, with a crash point armed and/or Flex's webhooks delivered during
        the Flex call `during`; a crash ends the request as a kill would."""
        self.crashes.armed = crash
        if during:
            self.hooks.during[during] = self.courier.deliver_all
        try:
            answer = call()
        except SimulatedCrash:
            answer = None
        finally:
            self.crashes.armed = None
            self.hooks.during.clear()
            self.hooks.lose.clear()
        self.courier.collect()
        assert answer is None or answer.status_code < 500, answer.get_data(as_text=True)[:500]
        return answer

    def _checkout(self, card, quantity, crash, webhooks_during) -> str:
        shopper = Shopper(self.app.test_client())  # a new shopper: a cart of their own
        form = shopper.ready_to_pay(card, quantity=quantity)
        self._send(lambda: shopper.post("/checkout", form), crash,
                   "evaluate" if webhooks_during else None)
        self.placed.append(form["checkout_id"])
        self.tried["checkouts"] += 1
        return form["checkout_id"]

    @rule(target=orders, card=st.sampled_from(CARDS), quantity=st.integers(1, 2),
          crash=st.sampled_from(CHECKOUT_CRASHES), webhooks_during=st.booleans())
    def checkout(self, card, quantity, crash, webhooks_during):
        return self._checkout(card, quantity, crash, webhooks_during)

    def _post_form(self, order_id: str, action: str, **fields):
        client = self.app.test_client()
        page = client.get("/").get_data(as_text=True)  # a pending order's page has no form
        return client.post(f"/orders/{order_id}/{action}",
                           data={"csrf_token": hidden(page, "csrf_token"), **fields})

    @rule(order=orders, share=st.sampled_from(["all that is left", "half", "a cent"]),
          answer=st.sampled_from(REFUND_ANSWERS), webhooks_during=st.booleans())
    def refund(self, order, share, answer, webhooks_during):
        found = shop_record(self.app, order, label=False)
        left = found.amount_cents - found.reserved_cents
        cents = {"all that is left": left, "half": left // 2, "a cent": 1}[share] or 1
        if answer == "answer lost":
            self.hooks.lose.add("refund")
        crash = answer if answer.startswith("after_") else None
        self._send(lambda: self._post_form(order, "refund", amount=f"{cents / 100:.2f}"),
                   crash, "refund" if webhooks_during else None)

    @precondition(lambda self: self.mode == "AUTHORIZATION")
    @rule(order=orders, action=st.sampled_from(["capture", "cancel"]),
          answer_lost=st.booleans(), webhooks_during=st.booleans())
    def capture_or_cancel(self, order, action, answer_lost, webhooks_during):
        if answer_lost:
            self.hooks.lose.add(action)
        self._send(lambda: self._post_form(order, action), None,
                   action if webhooks_during else None)

    # --- Flex's portal, the card network, and Flex's webhooks ----------------------------------

    def _flex_order(self, order_id: str) -> dict | None:
        found = sandbox_orders(self.sandbox, order_id)
        return found[0] if found else None

    @rule(order=orders, share=st.sampled_from(["all that is left", "half", "a cent"]))
    def portal_refund(self, order, share):
        flex = self._flex_order(order)
        if flex is None or flex["status"] not in CHARGED:
            return
        left = flex["amount_cents"] - flex["refunded_cents"]
        cents = min(left, {"all that is left": left, "half": left // 2, "a cent": 1}[share])
        if cents > 0:
            requests.post(f"{self.sandbox.url}/_sandbox/orders/{flex['order_session_key']}"
                          "/refund", json={"amount_cents": cents}, timeout=5).raise_for_status()
        self.courier.collect()

    @rule(order=orders)
    def chargeback(self, order):
        flex = self._flex_order(order)
        if flex is None or flex["status"] not in CHARGED or flex["chargeback"]:
            return
        requests.post(f"{self.sandbox.url}/_sandbox/orders/{flex['order_session_key']}"
                      "/chargeback", timeout=5).raise_for_status()
        self.courier.collect()

    # No precondition on what Flex emitted: the rules a step may draw must not depend on
    # state outside the drawn data (Hypothesis replays them), so an empty queue is a no-op.
    @rule(pick=st.integers(0, 1000))
    def deliver(self, pick):
        """One of the events Flex emitted, in any order, as late as the model likes."""
        queued = self.courier.queued
        if not queued:
            return
        answer = self.courier.deliver(queued[pick % len(queued)])
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        self.courier.collect()

    @rule(pick=st.integers(0, 1000), resent=st.booleans())
    def deliver_again(self, pick, resent):
        """A redelivery: Flex retrying after a slow answer, or a resend (IsResent: true)."""
        delivered = self.courier.delivered
        if not delivered:
            return
        answer = self.courier.deliver(delivered[pick % len(delivered)], resent=resent)
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        self.courier.collect()

    @rule(order=orders, event=st.sampled_from(["order.cancelled", "order.expired"]))
    def stray_event(self, order, event):
        """A signed event Flex's record does not bear out (late, or about another state)."""
        flex = self._flex_order(order)
        answer = self.courier.post(event_body(event, order, flex and flex["order_session_key"]))
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        self.courier.collect()

    # --- time -------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([0, 5, 60, 3600]), relay=st.booleans())
    def time_passes(self, seconds, relay):
        """`seconds` on the shop's clock, then the recovery sweep (or the relay, which
        delivers transmits) as the relay loop runs them."""
        self.clock.advance(seconds)
        with self.app.app_context():
            services = self.app.extensions["services"]
            services.relay.run_once() if relay else services.sweep.run()
        self.courier.collect()

    # --- always -----------------------------------------------------------------------------

    @invariant()
    def never_over_refunded_and_one_flex_order_each(self):
        if self.app is None:
            return
        self.tried["steps"] += 1
        mine = set(self.placed)
        flex = [o for o in requests.get(f"{self.sandbox.url}/_sandbox/orders", timeout=5).json()
                if o["merchant_order_id"] in mine]
        per_order = Counter(o["merchant_order_id"] for o in flex)
        assert max(per_order.values(), default=0) <= 1, per_order
        assert all(o["refunded_cents"] <= o["amount_cents"] for o in flex), flex
        with self.app.app_context():
            over = self.app.extensions["database"]
            with over.connection() as conn:
                rows = conn.execute("SELECT id, refund_reserved_cents, amount_cents FROM orders"
                                    " WHERE refund_reserved_cents > amount_cents").fetchall()
        assert [tuple(row) for row in rows] == []


def test_the_order_lifecycle_agrees_with_flex_after_any_interleaving(sandbox, tmp_path,
                                                                     monkeypatch):
    clock = ShopClock().install(monkeypatch)
    crashes = CrashPoints().install(monkeypatch)
    tried = Counter()

    def model():
        tried["examples"] += 1
        return LifecycleModel(sandbox, tmp_path, monkeypatch, clock, crashes, tried)

    run_state_machine_as_test(model, settings=SETTINGS)
    # make fuzz shows this line (-rP); the open files show that examples leave none behind
    print(f"lifecycle model: {tried['examples']} examples, {tried['steps']} steps, "
          f"{tried['checkouts']} checkouts; {len(os.listdir('/proc/self/fd'))} open files")
