"""FlexClient reading the answers Flex's docs and real traffic show, served over real loopback
HTTP by a tiny recorded-answer server (no mocked `requests`). Each test says what Flex
answers; the server also records what the client sent."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.wrappers import Request, Response

from flex import (
    Card,
    FlexAuthError,
    FlexClient,
    FlexConfig,
    FlexConflictError,
    FlexNotFoundError,
    FlexRefundRefused,
    FlexRefused,
    FlexUnavailableError,
    FlexValidationError,
    OrderStatus,
    Outcome,
)
from tests.support import LoopbackServer

ENVELOPE = {"success": True, "result": None, "status": None, "statusCode": None, "errors": [],
            "customProperties": {}}
TOKEN = {**ENVELOPE, "accessToken": "header.payload.signature", "refreshToken": "r",
         "expires": 4102444800000, "id": "6f1e", "session": None}
TRACE = "00-3b4af05c51be4aa7dd77104ac75f252b-004c728c64ca280d-01"
# GET /orders/{id} as the wire contract (Flex's documented fields) has it.
ORDER = {"id": "5923dd8f-0d2e-4c1e-9d7a-2b1f4a5c6e7d", "status": 7, "statusName": "COMPLETED",
         "orderPlacedDate": "2026-11-24T23:34:51Z", "currencyCode": "USD",
         "currencySymbol": "$", "amount": 1800, "referenceNumber": "order-1",
         "email": "shopper@example.com", "firstName": "Ada", "lastName": "Lovelace",
         "billingAddress": None, "shippingAddress": None, "expiryDate": None,
         "correlationId": "0b3c", "refundedAmount": 0}
REFUND_FAILED = {  # real traffic
    "responseCode": "2001",
    "responseMessage": "Amount to refund (1.00) is greater than maximum refund amount in (0.00))",
    "transactionId": None, "success": False, "result": None, "status": "FAILED",
    "statusCode": None, "customProperties": {},
    "errors": [{"item1": "Amount to refund (1.00) is greater than maximum refund amount in "
                         "(0.00))", "item2": "2001", "item3": "2001", "item4": True}]}


class Recorded:
    """A loopback HTTP server answering each (method, path) with a recorded answer."""

    def __init__(self):
        self.answers: dict[tuple[str, str], tuple[int, object]] = {
            ("POST", "/v1/oauth2/token"): (200, TOKEN)}
        self.received: list[dict] = []
        self._server = LoopbackServer(self._app)
        self.api_url = f"{self._server.url}/v1"

    @Request.application
    def _app(self, request: Request) -> Response:
        raw = request.get_data()
        path = urlsplit(request.environ["RAW_URI"]).path  # as sent: still percent-encoded
        self.received.append({
            "method": request.method, "path": path,
            "query": parse_qs(request.query_string.decode()),
            "body": json.loads(raw) if raw else None,
            "authorization": request.headers.get("Authorization")})
        status, body = self.answers.get((request.method, path),
                                        (404, {"status": 404, "title": "Not Found"}))
        kind = "application/problem+json" if status >= 400 and "title" in body else (
            "application/json")
        return Response(json.dumps(body), status, content_type=kind)

    def answer(self, method: str, path: str, status: int, body: object) -> None:
        self.answers[(method, "/v1" + path)] = (status, body)

    def sent(self, path: str) -> list[dict]:
        return [r for r in self.received if r["path"] == "/v1" + path]

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def server():
    recorded = Recorded()
    yield recorded
    recorded.stop()


@pytest.fixture
def flex(server):
    client = FlexClient(FlexConfig(api_url=server.api_url, app_key="k", app_secret="s",
                                   mid="mid-1", tokenization_key="tk", deadline=2.0,
                                   read_timeout=1.0, backoff_base=0.01, backoff_cap=0.02))
    yield client
    client.close()


CARD = Card("4111111111111111", "123", 9, 2030, "Cure Tester")


def test_tokenize_keeps_the_8_digit_bin_flex_answers(flex, server):
    server.answer("POST", "/tokenize", 200, {**ENVELOPE, "cardBinInfo": None, "transaction": {
        "on_test_gateway": True, "succeeded": True, "created_at": "2024-04-04T12:00:00Z",
        "payment_method": {"token": "2c7c1141-666d-4095-a6e2-bbb15163ba70",
                           "last_four_digits": "1111", "first_six_digits": "41111111",
                           "first_name": "Cure", "last_name": "Tester", "month": 9,
                           "year": 2030, "number": None}}})
    vaulted = flex.tokenize(CARD)
    assert (vaulted.token, vaulted.bin, vaulted.last4, vaulted.brand) == (
        "2c7c1141-666d-4095-a6e2-bbb15163ba70", "41111111", "1111", "VISA")
    [sent] = server.sent("/tokenize")
    assert sent["query"] == {"mid": ["mid-1"], "environment": ["tk"]}


def test_flat_validation_errors_with_a_trace_id(flex, server):
    server.answer("POST", "/evaluate", 400, {
        "TraceId": [TRACE], "OrderId": ["Merchant's orderId is required"],
        "Transaction.Id": ["The Id field is required."]})
    with pytest.raises(FlexValidationError) as error:
        flex.evaluate({"isDeclined": True})
    assert error.value.fields == {"OrderId": ["Merchant's orderId is required"],
                                  "Transaction.Id": ["The Id field is required."]}
    assert error.value.trace_id == TRACE
    assert len(server.sent("/evaluate")) == 1  # a 400 is never retried


def test_problem_details_validation_errors(flex, server):
    server.answer("POST", "/evaluate", 400, {
        "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1", "status": 400,
        "title": "One or more validation errors occurred.", "traceId": TRACE,
        "errors": {"IdempotencyKey": ["The IdempotencyKey field is required."]}})
    with pytest.raises(FlexValidationError) as error:
        flex.evaluate({"isDeclined": True})
    assert error.value.fields == {"IdempotencyKey": ["The IdempotencyKey field is required."]}
    assert error.value.trace_id == TRACE
    assert "IdempotencyKey: The IdempotencyKey field is required." in str(error.value)


@pytest.mark.parametrize("word", ["SUCCESS", "success", "APPROVED"])
def test_refund_done_words(flex, word, server):
    server.answer("POST", "/orders/key-1/refund", 200, {**ENVELOPE, "status": word})
    refunded = flex.refund("key-1", 1250, "Customer request")
    assert (refunded.status, refunded.amount_cents, refunded.order_session_key) == (
        word, 1250, "key-1")
    [sent] = server.sent("/orders/key-1/refund")
    assert sent["body"] == {"amountToRefund": 12.5, "refundMessage": "Customer request"}


def test_refund_approved_in_the_response_message(flex, server):
    server.answer("POST", "/orders/key-1/refund", 200,
                       {**ENVELOPE, "status": None, "responseMessage": "APPROVED"})
    assert flex.refund("key-1", 100).status == "APPROVED"


@pytest.mark.parametrize("word", ["FAILED", "fail", "failed"])
def test_refund_refusal_words_keep_flexs_message(flex, word, server):
    server.answer("POST", "/orders/key-1/refund", 400, {**REFUND_FAILED, "status": word})
    with pytest.raises(FlexRefundRefused) as refused:
        flex.refund("key-1", 100)
    assert (refused.value.endpoint, refused.value.code) == ("refund", "2001")
    assert refused.value.message == REFUND_FAILED["responseMessage"]


def test_a_refund_refused_with_http_200_is_still_refused(flex, server):
    server.answer("POST", "/orders/key-1/refund", 200, REFUND_FAILED)
    with pytest.raises(FlexRefundRefused):
        flex.refund("key-1", 100)


def test_an_unknown_refund_word_leaves_the_outcome_unknown(flex, server):
    server.answer("POST", "/orders/key-1/refund", 200, {**ENVELOPE, "status": "PENDING"})
    with pytest.raises(FlexUnavailableError):
        flex.refund("key-1", 100)


def test_transmit_result(flex, server):
    server.answer("POST", "/transmit", 200,
                       {**ENVELOPE, "result": "success", "transmitId": "t-1"})
    assert flex.transmit({"orderId": "order-1"}).transmit_id == "t-1"


@pytest.mark.parametrize("body", [[], None, 0])
def test_an_answer_that_is_json_but_not_an_object_is_no_answer(flex, server, body):
    server.answer("POST", "/oauth2/token", 200, TOKEN)
    server.answer("POST", "/transmit", 200, body)
    with pytest.raises(FlexUnavailableError, match="unexpected body"):
        flex.transmit({"orderId": "order-1"})


def test_evaluate_capture_required(flex, server):
    server.answer("POST", "/evaluate", 200, {
        **ENVELOPE, "orderSessionKey": ORDER["id"], "orderId": ORDER["id"], "senseKey": None,
        "result": "Success", "status": "CAPTUREREQUIRED"})
    evaluation = flex.evaluate({"transactionType": "AUTHORIZATION"})
    assert evaluation.status is Outcome.CAPTUREREQUIRED and not evaluation.approved


def test_evaluate_with_an_unknown_status_is_not_a_decision(flex, server):
    server.answer("POST", "/evaluate", 200,
                       {**ENVELOPE, "orderSessionKey": "k", "status": "MAYBE"})
    with pytest.raises(FlexUnavailableError):
        flex.evaluate({})


def test_get_order(flex, server):
    server.answer("GET", f"/orders/{ORDER['id']}", 200, {**ENVELOPE, **ORDER})
    order = flex.get_order(ORDER["id"])
    assert (order.order_session_key, order.status, order.status_name) == (
        ORDER["id"], OrderStatus.COMPLETED, "COMPLETED")
    assert (order.merchant_order_id, order.amount_cents, order.currency, order.email) == (
        "order-1", 1800, "USD", "shopper@example.com")
    assert (order.placed_at, order.correlation_id, order.refunded_cents) == (
        "2026-11-24T23:34:51Z", "0b3c", 0)


def test_get_order_not_found_is_a_problem_details_404(flex, server):
    server.answer("GET", "/orders/nope", 404, {
        "type": "https://tools.ietf.org/html/rfc7231#section-6.5.4", "title": "Not Found",
        "status": 404, "detail": "Order not found", "traceId": TRACE})
    with pytest.raises(FlexNotFoundError, match="Order not found"):
        flex.get_order("nope")


def test_find_orders_sends_the_documented_query_and_reads_the_page(flex, server):
    older = {**ORDER, "id": "older", "status": 2, "statusName": "CANCELLED"}
    server.answer("GET", "/orders", 200, {
        "items": [ORDER, older], "totalCount": 2, "pageNumber": 1, "pageSize": 20})
    page = flex.find_orders(query="order-1", status=OrderStatus.COMPLETED, from_="2026-11-01",
                            to="2026-11-30")
    assert [o.order_session_key for o in page.items] == [ORDER["id"], "older"]
    assert page.items[1].status is OrderStatus.CANCELLED
    assert (page.total_count, page.page, page.page_size) == (2, 1, 20)
    [sent] = server.sent("/orders")
    assert sent["query"] == {"query": ["order-1"], "status": ["COMPLETED"],
                             "from": ["2026-11-01"], "to": ["2026-11-30"],
                             "pageNumber": ["1"], "pageSize": ["20"]}


def test_find_order_by_reference_matches_the_merchant_order_id_exactly(flex, server):
    by_email = {**ORDER, "id": "other", "referenceNumber": "order-9"}  # query matched its email
    server.answer("GET", "/orders", 200, {
        "items": [by_email, ORDER], "totalCount": 2, "pageNumber": 1, "pageSize": 100})
    assert flex.find_order_by_reference("order-1").order_session_key == ORDER["id"]
    server.answer("GET", "/orders", 200,
                       {"items": [], "totalCount": 0, "pageNumber": 1, "pageSize": 100})
    assert flex.find_order_by_reference("order-2") is None


@pytest.mark.filterwarnings("ignore:Flex deprecated POST /outcome:DeprecationWarning")
def test_outcome(flex, server):
    server.answer("POST", "/outcome", 200,
                       {**ENVELOPE, "status": "APPROVED", "confirmationId": "22ACD1D9"})
    result = flex.outcome("key-1")
    assert (result.status, result.confirmation_id, result.found) == ("APPROVED", "22ACD1D9", True)
    assert server.sent("/outcome")[0]["body"] == {"orderSessionKey": "key-1"}
    server.answer("POST", "/outcome", 200,
                       {**ENVELOPE, "status": "NOTFOUND", "confirmationId": None})
    assert flex.outcome("key-2").found is False


def test_capture(flex, server):
    server.answer("POST", "/capture", 200, {**ENVELOPE, "status": "SUCCESS"})
    captured = flex.capture("key-1", 1800, "USD", "idem-1")
    assert (captured.status, captured.amount_cents, captured.currency) == ("SUCCESS", 1800, "USD")
    assert server.sent("/capture")[0]["body"] == {
        "idempotencyKey": "idem-1", "orderId": "key-1", "amount": 1800, "currency": "USD"}


def test_a_refused_capture_is_flex_refused_not_a_refund_refusal(flex, server):
    server.answer("POST", "/capture", 400, {
        **ENVELOPE, "success": False, "status": "FAILED", "responseCode": "3001",
        "responseMessage": "Amount is greater than the authorized amount"})
    with pytest.raises(FlexRefused) as refused:
        flex.capture("key-1", 5000, "USD", "idem-1")
    assert not isinstance(refused.value, FlexRefundRefused)
    assert (refused.value.endpoint, refused.value.code, refused.value.message) == (
        "capture", "3001", "Amount is greater than the authorized amount")


def test_capture_key_reused_for_another_body_is_a_conflict(flex, server):
    server.answer("POST", "/capture", 409, {"title": "Conflict", "status": 409,
                                                 "detail": "idempotencyKey reused"})
    with pytest.raises(FlexConflictError):
        flex.capture("key-1", 1800, "USD", "idem-1")


def test_cancel_sends_no_body_or_the_idempotency_key(flex, server):
    server.answer("POST", "/orders/key-1/cancel", 200, {})
    assert flex.cancel("key-1").found is True
    assert flex.cancel("key-1", idempotency_key="idem-1").found is True
    assert [r["body"] for r in server.sent("/orders/key-1/cancel")] == [
        None, {"idempotencyKey": "idem-1"}]


def test_external_cancel_of_an_unknown_order_is_nothing_to_cancel(flex, server):
    server.answer("POST", "/orders/order-1/external-cancel", 200, {})
    assert flex.external_cancel("order-1").found is True
    assert flex.external_cancel("order-2").found is False  # 404 problem details


def test_a_merchant_order_id_is_one_path_segment(flex, server):
    server.answer("POST", "/orders/a%2Fb/external-cancel", 200, {})
    assert flex.external_cancel("a/b").found is True


def test_a_mid_mismatch_is_an_auth_error(flex, server):
    server.answer("POST", "/transmit", 403, {"title": "MID mismatch", "status": 403})
    with pytest.raises(FlexAuthError, match="MID mismatch"):
        flex.transmit({"mid": "someone-else"})


def test_the_bearer_is_sent_and_fetched_once(flex, server):
    server.answer("GET", "/orders/a", 200, {**ENVELOPE, "id": "a", "status": 7})
    server.answer("GET", "/orders/b", 200, {**ENVELOPE, "id": "b", "status": 7})
    flex.get_order("a")
    flex.get_order("b")
    assert len(server.sent("/oauth2/token")) == 1
    assert {r["authorization"] for r in server.sent("/orders/a") + server.sent("/orders/b")} == {
        "Bearer header.payload.signature"}
