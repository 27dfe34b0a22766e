"""The call log stores bodies on one line and pages show them indented, as before."""

from __future__ import annotations

import json

from flex.calllog import CallLog, LoggedCall
from flex.client import CallReport


class ListStore:
    def __init__(self):
        self.calls: list[LoggedCall] = []

    def add(self, call: LoggedCall) -> None:
        self.calls.append(call)


def report(request: object, response: object) -> CallReport:
    return CallReport(endpoint="transmit", method="POST", path="/v1/transmit", status=200, ms=52,
                      attempt=1, request=request, response=response, error=None, ref="o1")


BODY = {"orderId": "o1", "amount": 2599, "items": [{"sku": "mug", "quantity": 1}],
        "payment_method": {"number": "424242******4242"}}


def test_bodies_are_stored_on_one_line_and_shown_indented_with_sorted_keys():
    store = ListStore()
    CallLog(store).record(report(BODY, {"transmitId": "t-1"}))
    call = store.calls[0]
    assert "\n" not in call.request_json and json.loads(call.request_json) == BODY
    assert call.request_pretty == json.dumps(BODY, indent=2, sort_keys=True)
    assert call.response_pretty == '{\n  "transmitId": "t-1"\n}'


def test_an_answer_that_is_not_json_is_stored_and_shown_as_it_came():
    store = ListStore()
    CallLog(store).record(report(BODY, "<html>502 Bad Gateway</html>"))
    call = store.calls[0]
    assert call.response_json == call.response_pretty == "<html>502 Bad Gateway</html>"


def test_a_processor_step_shows_its_outcome_indented():
    store = ListStore()
    CallLog(store).record_step("o1", "processor.authorize", 1_700_000_000.0, 80,
                               {"approved": False, "response_code": "05"})
    step = store.calls[0]
    assert step.request_pretty is None
    assert step.response_pretty == '{\n  "approved": false,\n  "response_code": "05"\n}'


def test_rows_stored_indented_before_show_the_same():
    indented = json.dumps(BODY, indent=2, sort_keys=True)
    row = LoggedCall(1, "o1", "transmit", "POST", "/v1/transmit", 200, 52, 1, None, indented,
                     None, 1_700_000_000.0)
    assert row.request_pretty == indented
    assert row.response_pretty is None
