"""The benchmark's own bookkeeping: what counts as a new connection, its backlog plot, which
floor each layout is compared with, and how its report updates docs/PERFORMANCE.md."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.plot import backlog_svg
from bench.report import BLOCKS, DOC, saturation_report, update_doc
from bench.saturation import Saturated, Turn, connections


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


def saturated(name: str, latency_ms: float, *, flex: bool = True) -> Saturated:
    """A scenario's result: 100 checkouts in 10 s at `latency_ms`, transmits 0.2 s late."""
    result = Saturated(name, flex, latencies_ms=[latency_ms] * 99 + [latency_ms * 1.01],
                       checkouts=100, busy_seconds=10.0, flex_calls=200, new_connections=2,
                       web_cpu=1.0, load_cpu=0.5)
    if flex:
        result.lags_s = [0.2] * 100
        result.turns = [Turn([(0.0, 0), (1.0, 30), (2.0, 0)], 1.5, 0.5)]
    return result


def test_the_postgresql_layout_is_compared_with_its_own_floor():
    results = [saturated("floor", 100, flex=False), saturated("ours", 104),
               saturated("pg floor", 80, flex=False), saturated("pg ours", 104)]
    lines, goals = saturation_report(results, "")
    pg_p95 = [(text, met) for text, met in goals if "p95 ratio" in text and "PostgreSQL" in text]
    assert pg_p95 == [("p95 ratio ≤ 1.25 at 32 shoppers, 2 nodes on PostgreSQL (measured 1.30)",
                       False)]  # 104 / 80, not 104 / 100
    assert any(line.startswith("| pg ours | 10.0 |") for line in lines)


def test_the_pinned_shop_sets_the_saturation_goals_and_the_cpu_goal():
    floor, ours = saturated("floor", 100, flex=False), saturated("ours", 200)
    ours.web_cpu, ours.relay_cpu = 1.05, 0.01  # 0.5 ms + 0.1 ms per checkout more than the floor
    pinned = [saturated("pinned floor", 100, flex=False), saturated("pinned ours", 120)]
    pinned[1].web_cpu, pinned[1].relay_cpu = 1.15, 0.1  # 1.5 ms + 1.0 ms more
    lines, goals = saturation_report([floor, ours], "", pinned)
    met = dict(goals)
    assert met["Flex's added shop CPU per approved checkout ≤ 2.0 ms (measured 2.50 ms: web "
               "workers +1.50, relay +1.00; 32 shoppers, shop pinned; co-located: 0.60 ms)"] \
        is False
    assert met["p95 ratio ≤ 1.25 at 32 shoppers, shop pinned (measured 1.20)"] is True
    assert not any("ratio" in text and "co-located" in text for text in met)  # ours at 2.00
    assert any(line.startswith("| pinned ours |") for line in lines)


def test_without_postgresql_its_row_says_why_and_sets_no_goal():
    results = [saturated("floor", 100, flex=False), saturated("ours", 104)]
    lines, goals = saturation_report(results, "PostgreSQL is not installed")
    assert any("not measured: PostgreSQL is not installed" in line for line in lines)
    assert not any("PostgreSQL" in text for text, _ in goals)
    assert all(met for _, met in goals)


def test_the_report_rewrites_only_its_blocks_and_refuses_a_page_without_one(tmp_path):
    page = tmp_path / "PERFORMANCE.md"
    page.write_text("# Title\n\nHand-written prose.\n\n<!-- bench:goals -->\n- old goal\n"
                    "<!-- /bench:goals -->\n\nMore prose.\n<!-- bench:run -->\n"
                    "<!-- /bench:run -->\n")
    update_doc({"goals": ["- met: new goal", "- **MISSED**: another"], "run": ["Machine: x."]},
               page)
    assert page.read_text() == (
        "# Title\n\nHand-written prose.\n\n<!-- bench:goals -->\n- met: new goal\n"
        "- **MISSED**: another\n<!-- /bench:goals -->\n\nMore prose.\n<!-- bench:run -->\n"
        "Machine: x.\n<!-- /bench:run -->\n")
    before = page.read_text()
    with pytest.raises(ValueError, match="bench:latency"):
        update_doc({"goals": ["- changed"], "latency": ["| table |"]}, page)
    assert page.read_text() == before  # nothing written when a block is missing


def test_the_performance_page_has_every_block_the_bench_writes():
    text = DOC.read_text()
    for name in BLOCKS:
        assert text.count(f"<!-- bench:{name} -->") == 1, name
        assert text.count(f"<!-- /bench:{name} -->") == 1, name


def test_the_bench_imports_nothing_from_the_tests():
    bench = Path(__file__).resolve().parents[2] / "bench"
    for module in bench.glob("*.py"):
        tree = ast.parse(module.read_text())
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom)]
        assert not [name for name in imported if name.split(".")[0] == "tests"], module.name
