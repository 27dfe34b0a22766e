"""python -m bench — does the Flex integration add latency or CPU to the checkout?

Starts the Flex sandbox (gunicorn, one process: its state is in memory) and, per scenario,
the shop as in production (gunicorn, 2 workers x 8 threads, and a relay process), all on
loopback, with the simulated processor at 80 ms and realistic sandbox latencies.

1. Latency: full checkouts (GET pages for the CSRF token and checkout id, then POST
   /checkout) from 4 concurrent shoppers; the POST is timed.
2. Saturation: 32 concurrent shoppers (more than the shop's 16 threads), Flex on vs off:
   throughput, p50/p95/p99, the shop's CPU per checkout, and how long /transmit waits in
   the outbox; co-located (everything shares every core) and with the shop pinned
   (taskset: the web workers and relay on half the cores, the sandbox and the load
   generator on the others, so the ratio is what the shop pays, not Flex's servers sharing
   its cores). Then the same, co-located, for the production layout: 2 web nodes and 2
   relay processes on a throwaway PostgreSQL server, against the same layout with Flex off
   (left out, and said so, when PostgreSQL is not installed).

In both, the scenarios take turns, round after round, so a machine that slows down or speeds
up during the run weighs on every scenario alike. Prints the tables and which goals are met,
rewrites the generated blocks of docs/PERFORMANCE.md (bench/report.py) and
docs/transmit-backlog.svg, and exits 1 if a goal is missed.

Shorter runs for development (the doc then says it is not the documented configuration):
BENCH_CHECKOUTS, BENCH_ROUNDS, BENCH_SATURATION_CHECKOUTS (per scenario, all rounds).
"""

from __future__ import annotations

import os
import resource
import sqlite3
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

from . import report, saturation
from .load import drive, page_throughput
from .plot import backlog_svg
from .postgres import PostgresCluster, postgres_bindir
from .saturation import Saturated, connections
from .scenarios import (
    CHECKOUTS,
    CONCURRENCY,
    CORES,
    LATENCY,
    PINNED_SCENARIOS,
    POSTGRES_SCENARIOS,
    ROUNDS,
    SATURATION,
    SATURATION_CHECKOUTS,
    SATURATION_SCENARIOS,
    SATURATION_WARMUP,
    SCENARIOS,
    WARMUP,
    Result,
)
from .servers import ROOT, TICKS_PER_SECOND, Cluster, Sandbox, Shop, postgres_cpu_seconds

BACKLOG_SVG = ROOT / "docs" / "transmit-backlog.svg"


def take_turn(result: Result, shop: Shop, sandbox: Sandbox, count: int) -> None:
    """`count` timed checkouts on the scenario's shop, added to its result."""
    scenario = result.scenario
    sandbox.set_faults({**LATENCY, **scenario.faults})  # also empties the call view
    try:
        result.latencies_ms += drive(shop.url, scenario.card, count, CONCURRENCY).latencies_ms
        time.sleep(1.0)  # let queued transmits go out (relay poll: 0.5 s), to count them too
        calls = sandbox.calls()
    finally:
        sandbox.clear_faults()  # releases hung calls
    flex_calls, new = connections(calls, result.seen_ports)
    result.flex_calls += flex_calls
    result.connections += new


def token_calls(database: str) -> int:
    """How often the shop asked Flex for a token, from its own log of Flex calls."""
    with closing(sqlite3.connect(database)) as conn:
        return conn.execute("SELECT COUNT(*) FROM flex_calls WHERE endpoint = 'token'"
                            ).fetchone()[0]


def start_postgres() -> tuple[PostgresCluster | None, str]:
    """A throwaway PostgreSQL server for the production layout's scenarios, or None and why
    there is none (not installed: those scenarios are left out, which is not an error)."""
    bindir = postgres_bindir()
    if bindir is None:
        return None, ("PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin"
                      " or pg_config --bindir)")
    try:
        import psycopg  # noqa: F401 - only checking that the driver is there
    except ImportError:
        return None, "psycopg is not installed (pip install -r requirements.txt)"
    return PostgresCluster(bindir).start(), ""


def run_saturation(sandbox: Sandbox, folder: str, postgres: PostgresCluster | None,
                   ) -> tuple[list[Saturated], list[Saturated]]:
    """The saturation scenarios (and, given `postgres`, the PostgreSQL layout's), then the
    pinned ones against a sandbox of their own on the other cores, taking turns; each shop
    warmed up first. Returns (co-located results, pinned results)."""
    scenarios = (SATURATION_SCENARIOS + (POSTGRES_SCENARIOS if postgres else ())
                 + PINNED_SCENARIOS)
    results = [Saturated(s.name, s.flex_enabled) for s in scenarios]
    shops: list[Shop | Cluster] = []
    pinned_sandbox = Sandbox(CORES[1]) if PINNED_SCENARIOS else None
    sandboxes = [pinned_sandbox if s.pinned else sandbox for s in scenarios]
    try:
        for n, (scenario, flex) in enumerate(zip(scenarios, sandboxes, strict=True)):
            shops.append(scenario.start_cluster(flex.base_url, postgres)
                         if scenario in POSTGRES_SCENARIOS else
                         scenario.start_shop(flex.base_url, f"{folder}/saturation{n}.sqlite"))
            flex.set_faults(LATENCY)
            drive(shops[-1].urls, scenario.card, SATURATION_WARMUP, SATURATION,
                  scenario.load_cpus)
            saturation.wait_drained(shops[-1].database)  # its relay idle before the turns
            connections(flex.calls(), results[n].seen_ports)  # opened warming up: not new
        for turn in range(1, ROUNDS + 1):
            print(f"saturation round {turn} of {ROUNDS}: {SATURATION_CHECKOUTS // ROUNDS} "
                  f"checkouts per scenario from {SATURATION} shoppers …", flush=True)
            for result, shop, scenario, flex in zip(results, shops, scenarios, sandboxes,
                                                    strict=True):
                saturation.take_turn(result, shop, flex, scenario.card,
                                     SATURATION_CHECKOUTS // ROUNDS, SATURATION, LATENCY,
                                     scenario.load_cpus)
    finally:
        for shop in shops:
            shop.stop()
        if pinned_sandbox:
            pinned_sandbox.stop()
    pinned = len(PINNED_SCENARIOS)
    return (results[:-pinned], results[-pinned:]) if pinned else (results, [])


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND


def own_cpu_seconds() -> float:
    """CPU seconds of this process and every process it started and has waited for."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def run_latency(sandbox: Sandbox, folder: str) -> tuple[list[Result], float, float]:
    """The latency scenarios, taking turns; returns results, minutes the shops were up, and
    the checkout page's throughput."""
    shops: list[Shop] = []
    try:
        print("starting a shop per scenario and warming each up …", flush=True)
        started = time.monotonic()
        results = [Result(scenario) for scenario in SCENARIOS]
        for n, (scenario, result) in enumerate(zip(SCENARIOS, results, strict=True)):
            shops.append(scenario.start_shop(sandbox.base_url, f"{folder}/{n}.sqlite"))
            sandbox.set_faults({**LATENCY, **scenario.faults})
            drive(shops[-1].url, scenario.card, WARMUP, CONCURRENCY)
            connections(sandbox.calls(), result.seen_ports)  # opened warming up: not new
        sandbox.clear_faults()  # releases the hung scenario's transmits too
        for shop in shops:
            saturation.wait_drained(shop.database)  # every relay idle before the turns
        for turn in range(1, ROUNDS + 1):
            print(f"round {turn} of {ROUNDS}: {CHECKOUTS // ROUNDS} checkouts per scenario"
                  f" from {CONCURRENCY} shoppers …", flush=True)
            for result, shop in zip(results, shops, strict=True):
                take_turn(result, shop, sandbox, CHECKOUTS // ROUNDS)
        for shop in shops:
            shop.stop()
        shops.clear()
        minutes = (time.monotonic() - started) / 60
        for n, result in enumerate(results):
            result.token_calls = token_calls(f"{folder}/{n}.sqlite")
        sandbox.set_faults(LATENCY)
        shops.append(SCENARIOS[1].start_shop(sandbox.base_url, f"{folder}/pages.sqlite"))
        throughput = page_throughput(shops[-1].url, CONCURRENCY)
    finally:
        for shop in shops:
            shop.stop()
    return results, minutes, throughput


def main() -> int:
    started, busy, own = time.monotonic(), machine_busy_seconds(), own_cpu_seconds()
    sandbox, postgres, postgres_cpu = Sandbox(), None, 0.0
    try:
        with tempfile.TemporaryDirectory() as folder:
            results, minutes, throughput = run_latency(sandbox, folder)
            postgres, missing_postgres = start_postgres()
            saturated_results, pinned_results = run_saturation(sandbox, folder, postgres)
    finally:
        sandbox.stop()
        if postgres:
            postgres_cpu = postgres_cpu_seconds(postgres, ended_too=True)  # not our children
            postgres.stop()
    others = (machine_busy_seconds() - busy) - (own_cpu_seconds() - own + postgres_cpu)
    others_share = others / ((time.monotonic() - started) * (os.cpu_count() or 1))
    latency, goals = report.latency_report(results, minutes, throughput)
    saturated, more_goals = report.saturation_report(saturated_results, missing_postgres,
                                                     pinned_results)
    ours = saturated_results[1]
    goals += more_goals
    run = report.run_block(others_share)
    print("\n".join(run + [""] + latency + [""] + saturated))
    print("\nGoals:")
    for text, met in goals:
        print(f"  {'met   ' if met else 'MISSED'}  {text}")
    BACKLOG_SVG.write_text(backlog_svg([t.backlog for t in ours.turns],
                                       [t.load_seconds for t in ours.turns],
                                       f"Outbox backlog (pending transmits), {SATURATION} "
                                       "shoppers, one line per turn"))
    report.update_doc({"run": run, "settings": report.settings_block(), "latency": latency,
                       "saturation": saturated, "goals": report.goals_block(goals)})
    all_met = all(met for _, met in goals)
    print("\nwritten to docs/PERFORMANCE.md (its generated blocks) and "
          "docs/transmit-backlog.svg" + ("" if all_met else "\nA GOAL WAS MISSED"))
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
