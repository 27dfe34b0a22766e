"""The order timeline's waterfall: calls grouped into charts and placed to scale."""

from __future__ import annotations

from flex.calllog import LoggedCall
from shop.orders.timeline import waterfalls


def call(call_id: int, endpoint: str, start: float, ms: int, *, why: str | None = None,
         action: str | None = None) -> LoggedCall:
    """A logged call that started at `start` (epoch seconds) and took `ms`."""
    return LoggedCall(call_id, "o1", endpoint, "POST", f"/v1/{endpoint}", 200, ms, 1, None,
                      None, None, start + ms / 1000, why, action)


def test_vault_beside_authorization_then_evaluate_on_one_scale():
    charts = waterfalls([
        call(2, "tokenize", 100.010, 40),
        call(1, "processor.authorize", 100.000, 250),
        call(3, "evaluate", 100.250, 750),
    ])
    assert len(charts) == 1
    chart = charts[0]
    assert chart.span_ms == 1000
    placed = {bar.call.endpoint: (bar.offset_ms, bar.x, bar.width) for bar in chart.bars}
    assert placed == {"processor.authorize": (0, 0, 250), "tokenize": (10, 10, 40),
                      "evaluate": (250, 250, 750)}


def test_later_calls_and_refunds_get_charts_of_their_own():
    charts = waterfalls([
        call(1, "processor.authorize", 100.0, 50),
        call(2, "tokenize", 100.0, 5),
        call(3, "transmit", 100.3, 20),  # the relay, right after the checkout
        call(4, "refund", 100.5, 10),  # soon, but a refund is its own action
        call(5, "evaluate", 160.0, 0),  # a recovery replay a minute later
    ])
    assert [[bar.call.id for bar in chart.bars] for chart in charts] == [[1, 2, 3], [4], [5]]
    assert charts[2].bars[0].width == 2  # a 0 ms call is still drawn


def test_processor_steps_are_not_flex_calls():
    assert not call(1, "processor.authorize", 0, 1).is_flex
    assert call(2, "evaluate", 0, 1).is_flex


def test_each_action_is_a_chart_timed_on_its_own_however_close_the_clicks():
    # The guide's clicks, half a second apart: a refund (its webhook's lookup is its own
    # action), then a refund in Flex's portal whose webhook asks for the refunded total.
    charts = waterfalls([
        call(1, "refund", 200.000, 5, why="refunding $9.00, as the merchant asked", action="a"),
        call(2, "order", 200.028, 7, why="checking the refunded total", action="b"),
        call(3, "order", 200.720, 12, why="checking the refunded total", action="c"),
    ])
    assert [[bar.call.id for bar in chart.bars] for chart in charts] == [[1], [2], [3]]
    assert [chart.span_ms for chart in charts] == [5, 7, 12]  # not 732 ms "in all"
    assert [chart.why for chart in charts] == [
        "refunding $9.00, as the merchant asked", "checking the refunded total",
        "checking the refunded total"]


def test_calls_of_one_action_share_a_chart_even_when_another_runs_between():
    charts = waterfalls([
        call(1, "processor.authorize", 100.0, 300, action="checkout"),
        call(2, "tokenize", 100.0, 50, action="checkout"),
        call(3, "transmit", 100.1, 20),  # the relay, with no action: by time
        call(4, "evaluate", 100.3, 100, action="checkout"),
    ])
    assert [[bar.call.id for bar in chart.bars] for chart in charts] == [[1, 2, 4], [3]]
    assert charts[0].span_ms == 400


def test_a_call_says_why_it_was_made_even_when_logged_without_a_purpose():
    assert call(1, "tokenize", 0, 1).why == "vaulting the card"
    assert call(2, "order", 0, 1, why="checking the refunded total").why == (
        "checking the refunded total")
    assert call(3, "token", 0, 1, action="x").why == "getting a bearer token"
