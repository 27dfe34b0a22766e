"""The client's contract with Flex's API: each check is one thing this client relies on.

`make contract` runs these against the Flex API that `.env` names (Flex's real sandbox when
FLEX_API_URL is set, else a local sandbox) and prints each check with pass/fail; `make test`
runs them against the local sandbox. Cheap: a few calls each, one vaulted card shared."""

from __future__ import annotations

import uuid
from contextlib import closing

import pytest
import requests

from flex import (
    Address,
    Card,
    FlexAuthError,
    FlexClient,
    FlexConfig,
    FlexNotFoundError,
    FlexRefundRefused,
    FlexUnavailableError,
    FlexValidationError,
    Outcome,
    ProcessorResult,
    Purchase,
    ThreeDSecure,
)

# 4111… is a test card Flex's real sandbox accepts; the 4000… cards are the local sandbox's.
ANY_TEST_CARD = "4111111111111111"
LOCAL_APPROVES = "4000000000000002"
DECLINE = ProcessorResult(False, "psp-contract", "05", "Do not honor", "ContractPSP",
                          avs_result="Y", cvv_result="M")
THREE_D_SECURE = ThreeDSecure("2.2.0", "05", "AAABBEg0VhI0VniQEjRWAAAAAAA=",
                              ds_transaction_id=str(uuid.uuid4()),
                              authentication_value_algorithm="2",
                              directory_response_status="Y",
                              authentication_response_status="Y", enrolled="Y")


def card(number: str = ANY_TEST_CARD) -> Card:
    return Card(number, "123", 12, 2034, "Ada Lovelace")


def purchase(order_id: str) -> Purchase:
    return Purchase(order_id, 1800, "USD", "shopper@example.com",
                    Address("1 Main St", "Springfield", "IL", "62701", "US"),
                    customer_ip="203.0.113.9", sense_key=order_id)


def evaluate(flex: FlexClient, number: str = ANY_TEST_CARD, processor=DECLINE):
    """Vaults `number` and evaluates a declined $18.00 sale with it: (order id, Evaluation)."""
    order_id = str(uuid.uuid4())
    token = flex.tokenize(card(number), email="shopper@example.com", sense_key=order_id).token
    payload = flex.evaluate_payload(purchase(order_id), card(number).summary, token, processor,
                                    idempotency_key=order_id)
    return order_id, flex.evaluate(payload, ref=order_id)


@pytest.fixture(scope="module")
def decided(flex):
    """One evaluated order, shared by the checks that read it back."""
    return evaluate(flex)


def test_authenticate_returns_a_bearer(flex):
    assert flex.authenticate(force=True).count(".") == 2  # a JWT


def test_wrong_credentials_are_an_auth_error(target):
    config = FlexConfig(**{**vars(target.config), "app_secret": "not-the-secret"})
    with closing(FlexClient(config)) as wrong:
        with pytest.raises(FlexAuthError):
            wrong.authenticate()


def test_tokenize_returns_a_vault_token_and_the_bin(flex):
    vaulted = flex.tokenize(card(), email="shopper@example.com")
    assert vaulted.token and vaulted.last4 == "1111"
    assert vaulted.bin in ("411111", "41111111")  # 8 digits in real traffic


def test_transmit_is_accepted(flex):
    order_id = str(uuid.uuid4())
    approved = ProcessorResult(True, "psp-ok", "00", "Approved", "ContractPSP")
    flex.transmit(flex.transmit_payload(purchase(order_id), card().summary, approved))


def test_evaluate_answers_a_decision_and_an_order_session_key(decided):
    _, evaluation = decided
    assert evaluation.status in set(Outcome) and evaluation.order_session_key


def test_evaluate_names_a_missing_required_field(flex):
    order_id = str(uuid.uuid4())
    token = flex.tokenize(card()).token
    payload = flex.evaluate_payload(purchase(order_id), card().summary, token, DECLINE,
                                    idempotency_key=order_id)
    del payload["transaction"]["responseCode"]
    with pytest.raises(FlexValidationError) as refused:
        flex.evaluate(payload)
    assert any(name.lower() == "transaction.responsecode" for name in refused.value.fields)


def test_lookup_finds_the_order_by_key_and_by_merchant_order_id(flex, decided):
    order_id, evaluation = decided
    order = flex.get_order(evaluation.order_session_key)
    assert (order.order_session_key, order.merchant_order_id) == (
        evaluation.order_session_key, order_id)
    assert {"phone", "secondaryEmail"} <= set(order.raw)  # documented lookup fields
    found = flex.find_order_by_reference(order_id)
    assert found is not None and found.order_session_key == evaluation.order_session_key


def test_lookup_of_an_unknown_order_is_not_found(flex):
    with pytest.raises(FlexNotFoundError):
        flex.get_order(str(uuid.uuid4()))


def test_outcome_still_answers_but_is_deprecated(flex, decided):
    _, evaluation = decided
    with pytest.warns(DeprecationWarning):
        result = flex.outcome(evaluation.order_session_key)
    assert result.found


def test_flex_answers_its_node_samples_double_slash_paths(flex, target, decided):
    """Flex's own Node sample sends POST /v1//outcome (its base URL ends in "/")."""
    _, evaluation = decided
    answer = requests.post(f"{target.config.api_url.rstrip('/')}//outcome", timeout=15,
                           json={"orderSessionKey": evaluation.order_session_key},
                           headers={"Authorization": f"Bearer {flex.authenticate()}"})
    assert answer.status_code == 200 and answer.json().get("status")


def test_three_d_secure_is_answered_submitted(flex):
    processor = ProcessorResult(False, "psp-3ds", "05", "Do not honor", "ContractPSP",
                                cavv_result="2", three_d_secure=THREE_D_SECURE)
    _, evaluation = evaluate(flex, processor=processor)
    assert evaluation.submitted  # as Flex's real sandbox answered such an evaluate


def test_refund_of_a_flex_approved_order_then_over_the_rest_is_refused(flex, target):
    target.needs_local("test card that Flex approves (4000 0000 0000 0002)")
    _, evaluation = evaluate(flex, LOCAL_APPROVES)
    assert evaluation.approved
    done = flex.refund(evaluation.order_session_key, 500, "contract check")
    assert done.status == "SUCCESS" and done.raw.get("responseMessage") == "APPROVED"
    with pytest.raises(FlexRefundRefused):
        flex.refund(evaluation.order_session_key, 5000)


def test_an_unavailable_flex_is_reported_as_unknown_not_declined(flex, target):
    target.needs_local("fault injection")
    requests.put(f"{target.local.url}/_sandbox/faults/evaluate", json={"status": 503},
                 timeout=5).raise_for_status()
    try:
        with pytest.raises(FlexUnavailableError):
            evaluate(flex)
    finally:
        requests.delete(f"{target.local.url}/_sandbox/faults", timeout=5)


def test_a_sandbox_only_check_is_skipped_on_a_real_flex_with_its_reason(target):
    """What `make contract` prints for such a check when FLEX_API_URL names a real Flex."""
    real = type(target)(target.config, None)
    with pytest.raises(pytest.skip.Exception, match="needs the local sandbox's fault injection"):
        real.needs_local("fault injection")
