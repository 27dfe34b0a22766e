"""The benchmark's own bookkeeping: what counts as a new connection, and its backlog plot."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bench.plot import backlog_svg
from bench.saturation import connections


def call(endpoint: str, port: int) -> dict:
    return {"endpoint": endpoint, "remote_port": port}


def test_a_kept_alive_connection_is_new_only_in_the_first_turn_that_uses_it():
    seen: set = set()
    first = [call("tokenize", 5001), call("tokenize", 5001), call("transmit", 5002)]
    second = [call("tokenize", 5001), call("transmit", 5002), call("tokenize", 5003)]
    assert connections(first, seen) == (3, 2)
    assert connections(second, seen) == (3, 1)  # only 5003 is new


def test_calls_that_are_not_the_shops_flex_calls_are_not_counted():
    seen: set = set()
    assert connections([call("sense", 6001), call("evaluate", 6002)], seen) == (1, 1)
    assert seen == {6002}


def test_backlog_plot_is_an_svg_with_one_line_per_turn_and_a_mark_where_load_stopped():
    turns = [[(0.0, 0), (0.5, 40), (1.0, 3), (1.5, 0)], [(0.0, 0), (0.6, 55), (1.2, 0)]]
    svg = ET.fromstring(backlog_svg(turns, [1.0, 1.1], "backlog <pending>"))  # noqa: S314 - ours
    ns = "{http://www.w3.org/2000/svg}"
    lines = svg.findall(f"{ns}polyline")
    assert len(lines) == 2
    assert len(lines[0].get("points").split()) == 4
    assert len(svg.findall(f"{ns}line[@stroke-dasharray]")) == 2
    assert "55" in [text.text for text in svg.findall(f"{ns}text")]  # the y axis' top
    assert "backlog <pending>" in [text.text for text in svg.findall(f"{ns}text")]
