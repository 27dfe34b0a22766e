"""The /flex inspector: every call, newest first, 50 a page, filtered by endpoint, status
class and order id through a plain GET form."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from flex.calllog import CallLog
from flex.client import CallReport
from shop.storage.db import Database
from shop.storage.flex_store import SqlCallLog

pytestmark = pytest.mark.e2e

STATUSES = (200, 503, None)  # 2xx, 5xx, no answer: 20 of each


@pytest.fixture(scope="module")
def seeded(shop) -> str:
    """60 evaluate calls of one order, filed through the call log as the client files them;
    returns the order id."""
    order_id = str(uuid.uuid4())
    database = Database(f"sqlite:///{shop.database}", pool_size=1)
    record = CallLog(SqlCallLog(database)).record
    for n in range(60):
        status = STATUSES[n % 3]
        record(CallReport(endpoint="evaluate", method="POST", path="/v1/evaluate",
                          status=status, ms=n, attempt=1, request={"n": n}, response=None,
                          error=None if status == 200 else "seeded", ref=order_id))
    database.close()
    return order_id


def listed_ms(page: Page) -> list[int]:
    heads = page.locator("ol.timeline > li .call-head .muted").all_inner_texts()
    return [int(re.match(r"(\d+) ms", text)[1]) for text in heads]


def test_calls_are_paged_newest_first(page: Page, seeded):
    page.goto(f"/flex?order={seeded[:8]}")
    expect(page.get_by_text("60 calls, page 1 of 2")).to_be_visible()
    assert listed_ms(page) == list(range(59, 9, -1))  # 50, the newest first
    page.get_by_role("navigation", name="Pages of calls").get_by_role(
        "link", name="Older calls").click()
    expect(page.get_by_text("60 calls, page 2 of 2")).to_be_visible()
    assert listed_ms(page) == list(range(9, -1, -1))
    expect(page.get_by_role("link", name="Newer calls")).to_be_visible()


def test_filters_by_endpoint_status_class_and_order(page: Page, seeded):
    page.goto("/flex")
    expect(page.get_by_role("navigation", name="Inspector").get_by_role(
        "link", name="Flex calls")).to_have_attribute("aria-current", "page")
    page.get_by_label("Endpoint").select_option("evaluate")
    page.get_by_label("Status").select_option(label="5xx")
    page.get_by_label("Order id").fill(seeded[:8])
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"endpoint=evaluate&status=5xx&order="))
    expect(page.get_by_text("20 calls, page 1 of 1")).to_be_visible()
    assert listed_ms(page) == list(range(58, 0, -3))  # n % 3 == 1: the 503s
    page.get_by_label("Status").select_option(label="No answer")
    page.get_by_role("button", name="Filter").click()
    assert listed_ms(page) == list(range(59, 0, -3))
    expect(page.locator("ol.timeline .badge").first).to_have_text("no answer")
