"""The real FlexClient against the sandbox over loopback HTTP."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import requests

import flex
import flex_sandbox
from flex import (
    FlexAuthError,
    FlexClient,
    FlexNotFoundError,
    FlexRefundRefused,
    FlexUnavailableError,
    FlexValidationError,
    OrderStatus,
    Outcome,
)
from tests.support import DECLINE, calls, card, evaluate_payload, flex_config, purchase, set_fault

CARDS = {
    "4000000000000002": "APPROVED",
    "4000000000000127": "CHALLENGE",
    "4000000000009995": "DECLINED",
    "4111111111111111": "DECLINED",
}


def transmit_payload(flex_client: FlexClient) -> dict:
    return flex_client.transmit_payload(purchase(), card("4242424242424242").summary, DECLINE)


def finished(server, endpoint: str, reports: list) -> list[dict]:
    """The sandbox's record of `endpoint`, once every attempt the client sent has finished
    there. A request the client gave up on (timeout, hang) is still running in the sandbox
    and is recorded when it ends: a test that leaves one behind pollutes the next test's
    fresh sandbox. There is no event to wait on, so this polls, bounded."""
    sent = sum(1 for r in reports if r.endpoint == endpoint)
    deadline = time.monotonic() + 10
    while len(found := calls(server, endpoint)) < sent and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def test_tokenize_returns_the_vault_token_and_card_summary(flex_client):
    vaulted = flex_client.tokenize(card("4242424242424242"), email="a@b.co", sense_key="k")
    assert len(vaulted.token) == 36
    assert (vaulted.brand, vaulted.last4) == ("VISA", "4242")
    assert vaulted.bin == "42424242"  # Flex's first_six_digits has carried 8 digits


@pytest.mark.parametrize(("number", "status"), CARDS.items())
def test_evaluate_outcome_by_test_card(flex_client, number, status):
    evaluation = flex_client.evaluate(evaluate_payload(flex_client, number))
    assert evaluation.status == Outcome(status)
    assert evaluation.approved is (status == "APPROVED")
    assert len(evaluation.order_session_key) == 36


def test_flex_unavailable_card_is_retried_then_reported_unavailable(flex_client, fresh_sandbox):
    payload = evaluate_payload(flex_client, "4000000000000119")
    with pytest.raises(FlexUnavailableError):
        flex_client.evaluate(payload)
    attempts = calls(fresh_sandbox, "evaluate")
    assert [c["status"] for c in attempts] == [503, 503, 503]  # 1 try + max_retries 2


def test_transmit_and_get_order(flex_client):
    transmitted = flex_client.transmit(transmit_payload(flex_client))
    assert transmitted.transmit_id and transmitted.raw["result"] == "success"
    evaluation = flex_client.evaluate(evaluate_payload(flex_client))
    order = flex_client.get_order(evaluation.order_session_key)
    assert order.order_session_key == evaluation.order_session_key
    assert (order.status, order.status_name) == (OrderStatus.COMPLETED, "COMPLETED")
    assert (order.amount_cents, order.currency) == (1800, "USD")


def test_orders_are_found_by_the_merchants_order_id(flex_client):
    key = flex_client.evaluate(evaluate_payload(flex_client, order_id="order-7")).order_session_key
    found = flex_client.find_orders(query="order-7")
    assert (found.total_count, [o.order_session_key for o in found.items]) == (1, [key])
    assert flex_client.find_order_by_reference("order-7").merchant_order_id == "order-7"
    assert flex_client.find_order_by_reference("order-8") is None


def test_outcome_of_a_decided_and_an_unknown_order_is_deprecated(flex_client):
    key = flex_client.evaluate(evaluate_payload(flex_client)).order_session_key
    with pytest.warns(DeprecationWarning, match="get_order"):
        decided = flex_client.outcome(key)
    assert (decided.status, decided.found) == ("APPROVED", True)
    assert len(decided.confirmation_id) == 8
    with pytest.warns(DeprecationWarning):
        unknown = flex_client.outcome("00000000-0000-4000-8000-000000000000")
    assert (unknown.status, unknown.found) == ("NOTFOUND", False)


def test_a_mid_that_is_not_the_tokens_is_refused(flex_client):
    payload = {**evaluate_payload(flex_client), "mid": "11111111-2222-4333-8444-555555555555"}
    with pytest.raises(FlexAuthError) as refused:
        flex_client.evaluate(payload)
    assert refused.value.status == 403


def test_a_refund_of_nothing_is_refused_before_it_is_sent(flex_client, fresh_sandbox):
    key = flex_client.evaluate(evaluate_payload(flex_client)).order_session_key
    with pytest.raises(ValueError, match="positive whole number of cents"):
        flex_client.refund(key, 0)
    assert calls(fresh_sandbox, "refund") == []


def test_get_order_of_an_unknown_key_is_not_found(flex_client):
    with pytest.raises(FlexNotFoundError) as error:
        flex_client.get_order("00000000-0000-4000-8000-000000000000")
    assert error.value.status == 404


def test_refunds_partial_full_and_over_refund(flex_client):
    key = flex_client.evaluate(evaluate_payload(flex_client)).order_session_key  # $18.00
    refunded = flex_client.refund(key, 1000, "Customer request")
    assert (refunded.status, refunded.amount_cents, refunded.order_session_key) == (
        "SUCCESS", 1000, key)
    with pytest.raises(FlexRefundRefused) as refused:
        flex_client.refund(key, 801)
    assert (refused.value.endpoint, refused.value.code) == ("refund", "2001")
    assert refused.value.message == (
        "Amount to refund (8.01) is greater than maximum refund amount in (8.00))")
    flex_client.refund(key, 800)
    assert flex_client.get_order(key).status == OrderStatus.RETURNED


def test_one_token_for_many_calls(flex_client, fresh_sandbox):
    for i in range(5):
        flex_client.evaluate(evaluate_payload(flex_client, order_id=f"order-{i}"))
    assert len(calls(fresh_sandbox, "token")) == 1


def test_concurrent_cold_start_fetches_one_token(flex_client, fresh_sandbox):
    threads = [threading.Thread(target=flex_client.tokenize, args=(card(),)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(calls(fresh_sandbox, "token")) == 1
    assert len(calls(fresh_sandbox, "tokenize")) == 8


def test_token_renewed_before_expiry():
    with flex_sandbox.serve(config={"token_ttl": 1.0, "faults": {}}) as server:
        flex = FlexClient(flex_config(server))
        flex.REFRESH_MARGIN = 0.2
        flex.authenticate()
        time.sleep(0.9)  # inside the refresh margin: renewed before Flex would say 401
        flex.tokenize(card())
        assert [c["status"] for c in calls(server, "token")] == [200, 200]
        assert all(c["status"] == 200 for c in calls(server, "tokenize"))
        flex.close()


def test_token_renewed_once_after_a_401(flex_client, fresh_sandbox):
    flex_client.authenticate()
    requests.post(f"{fresh_sandbox.url}/_sandbox/tokens/expire", timeout=5).raise_for_status()
    flex_client.transmit(transmit_payload(flex_client))
    assert [c["status"] for c in calls(fresh_sandbox, "transmit")] == [401, 200]
    assert len(calls(fresh_sandbox, "token")) == 2


def test_bad_credentials_raise_auth_error(fresh_sandbox):
    flex = FlexClient(flex_config(fresh_sandbox, app_secret="wrong"))
    with pytest.raises(FlexAuthError):
        flex.authenticate()
    assert [c["status"] for c in calls(fresh_sandbox, "token")] == [400]


def test_validation_error_keeps_field_errors_and_is_not_retried(flex_client, fresh_sandbox):
    payload = evaluate_payload(flex_client, amount=10)  # sandbox: must be > 10 cents
    del payload["transaction"]["responseCode"]  # one of the fields real Flex requires
    with pytest.raises(FlexValidationError) as error:
        flex_client.evaluate(payload)
    assert "Transaction.Amount" in error.value.fields
    assert "Transaction.ResponseCode" in error.value.fields
    assert error.value.trace_id and "TraceId" not in error.value.fields
    assert len(calls(fresh_sandbox, "evaluate")) == 1


def test_retries_keep_the_idempotency_key(flex_client, fresh_sandbox):
    payload = evaluate_payload(flex_client)
    set_fault(fresh_sandbox, "evaluate", status=503, times=2)
    assert flex_client.evaluate(payload).approved
    attempts = calls(fresh_sandbox, "evaluate")
    assert [c["status"] for c in attempts] == [503, 503, 200]
    assert {c["request"]["idempotencyKey"] for c in attempts} == {"order-1"}


@pytest.mark.parametrize("fault", [
    {"status": 500}, {"status": 503}, {"status": 429}, {"reset": True}, {"malformed": True},
    {"delay_ms": 1500}, {"hang": True},
], ids=["500", "503", "429", "reset", "malformed", "past-timeout", "hang"])
def test_each_fault_is_a_bounded_unavailable_error(flex_client, fresh_sandbox, reports, fault):
    body = transmit_payload(flex_client)
    flex_client.authenticate()
    set_fault(fresh_sandbox, "transmit", **fault)
    started = time.monotonic()
    with pytest.raises(FlexUnavailableError):
        flex_client.transmit(body)
    elapsed = time.monotonic() - started
    assert elapsed < flex_client.config.deadline + 0.2  # never beyond the deadline
    requests.delete(f"{fresh_sandbox.url}/_sandbox/faults", timeout=5)  # lets hung calls end
    attempts = finished(fresh_sandbox, "transmit", reports)
    sent = [r for r in reports if r.endpoint == "transmit"]
    expected = 1 if "malformed" in fault else 3  # a 200 with a broken body is not retried
    assert len(attempts) == len(sent) <= expected


def test_retry_after_is_honoured(flex_client, fresh_sandbox):
    flex_client.authenticate()
    set_fault(fresh_sandbox, "transmit", status=429, retry_after=1, times=1)
    started = time.monotonic()
    flex_client.transmit(transmit_payload(flex_client))
    assert time.monotonic() - started >= 1.0
    assert [c["status"] for c in calls(fresh_sandbox, "transmit")] == [429, 200]


def test_deadline_caps_retries(fresh_sandbox, reports):
    flex = FlexClient(flex_config(fresh_sandbox, read_timeout=0.3, deadline=0.5),
                      on_call=reports.append)
    flex.authenticate()
    set_fault(fresh_sandbox, "evaluate", delay_ms=400)
    started = time.monotonic()
    with pytest.raises(FlexUnavailableError):
        flex.evaluate({"orderId": "x"})
    assert time.monotonic() - started < 0.7
    finished(fresh_sandbox, "evaluate", reports)  # no delayed call left for the next test
    flex.close()


def test_a_slow_token_endpoint_is_bounded_by_the_callers_deadline(fresh_sandbox, reports):
    """A cold client whose token fetch is slow: the call that fetches it and a second thread
    waiting for that fetch both give up at their own deadline, not the token call's."""
    flex = FlexClient(flex_config(fresh_sandbox, read_timeout=5.0, deadline=10.0),
                      on_call=reports.append)
    set_fault(fresh_sandbox, "token", delay_ms=3000)
    outcomes: dict[str, tuple[type, float]] = {}

    def evaluate(name: str) -> None:
        started = time.monotonic()
        try:
            flex.evaluate({"orderId": name}, deadline=0.5)
            outcomes[name] = (type(None), time.monotonic() - started)
        except Exception as exc:  # the test records whatever it raised
            outcomes[name] = (type(exc), time.monotonic() - started)

    threads = [threading.Thread(target=evaluate, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    try:
        for name, (raised, seconds) in outcomes.items():
            assert raised is FlexUnavailableError, name
            assert seconds < 1.2, f"{name} took {seconds:.2f} s with a 0.5 s deadline"
        assert len(outcomes) == 2
        assert calls(fresh_sandbox, "evaluate") == []  # no token, no evaluate
    finally:
        requests.delete(f"{fresh_sandbox.url}/_sandbox/faults", timeout=5)
        finished(fresh_sandbox, "token", reports)
        flex.close()


def test_refund_is_not_retried_once_it_may_have_reached_flex(flex_client, fresh_sandbox):
    key = flex_client.evaluate(evaluate_payload(flex_client)).order_session_key
    set_fault(fresh_sandbox, "refund", status=500)
    with pytest.raises(FlexUnavailableError):
        flex_client.refund(key, 500)
    assert len(calls(fresh_sandbox, "refund")) == 1


def test_reports_carry_no_card_data_or_secrets(flex_client, reports):
    evaluation = flex_client.evaluate(evaluate_payload(flex_client))
    flex_client.refund(evaluation.order_session_key, 100)
    text = json.dumps([vars(r) for r in reports], default=str)
    assert {r.endpoint for r in reports} == {"token", "tokenize", "evaluate", "refund"}
    assert "4000000000000002" not in text
    assert '"verification_value": "123"' not in text
    assert flex_sandbox.DEFAULT_APP_SECRET not in text
    assert flex_client._token not in text  # the bearer itself
    tokenize = next(r for r in reports if r.endpoint == "tokenize")
    assert tokenize.request["payment_method"]["credit_card"]["number"] == "400000******0002"


def test_the_readme_quickstart_runs_against_the_sandbox(fresh_sandbox, capsys):
    readme = (Path(flex.__file__).parent / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert "http://127.0.0.1:8100/v1" in code
    for credential in (flex_sandbox.DEFAULT_APP_KEY, flex_sandbox.DEFAULT_APP_SECRET,
                       flex_sandbox.DEFAULT_MID, flex_sandbox.DEFAULT_TOKENIZATION_KEY,
                       flex_sandbox.DEFAULT_SITE_ID):
        assert f'"{credential}"' in code  # the sandbox's credentials, shown literally
    exec(code.replace("http://127.0.0.1:8100/v1", fresh_sandbox.api_url), {})  # noqa: S102
    assert capsys.readouterr().out.split()[:2] == ["APPROVED", "SUCCESS"]
    assert [c["status"] for c in calls(fresh_sandbox)
            if c["endpoint"] != "token"] == [200, 200, 200, 200]
