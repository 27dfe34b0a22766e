"""The bench's report: its tables and goals, and docs/PERFORMANCE.md brought up to date.

The page's prose is written by hand; the bench rewrites only the blocks between its markers,
`<!-- bench:NAME -->` and `<!-- /bench:NAME -->` (NAME: one of BLOCKS), so a run changes
numbers, never sentences.
"""

from __future__ import annotations

import math
import os
import platform
import re
from pathlib import Path

from . import saturation
from .saturation import Saturated
from .scenarios import (
    ADDED_CPU_MS,
    CHECKOUTS,
    CONCURRENCY,
    CORES,
    DEFAULTS,
    KNOBS,
    LATENCY,
    NODES,
    OTHERS_LIMIT,
    POSTGRES_SCENARIOS,
    ROUNDS,
    SATURATION,
    SATURATION_CHECKOUTS,
    SATURATION_WARMUP,
    WARMUP,
    Result,
)
from .servers import PROCESSOR_MS, RELAY_PRIORITY, ROOT, THREADS, WORKERS

DOC = ROOT / "docs" / "PERFORMANCE.md"
BLOCKS = ("run", "settings", "latency", "saturation", "goals")  # the page's generated blocks

Goal = tuple[str, bool]  # (what is checked, with the number measured; met)


def machine() -> str:
    """The machine the run measured: CPU, cores, memory, Python, kernel."""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return (f"{cpu}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.0f} GiB RAM, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def mark(met: bool) -> str:
    """How the page writes a goal's verdict."""
    return "met" if met else "**MISSED**"


def latency_report(results: list[Result], minutes: float, throughput: float,
                   ) -> tuple[list[str], list[Goal]]:
    floor = results[0].p95
    checks = {
        "approved path (ours)": ("p95 ratio ≤ 1.05", lambda r: r.p95 / floor <= 1.05),
        "approved path, /transmit hung": ("p95 ratio ≤ 1.05", lambda r: r.p95 / floor <= 1.05),
        "declined path -> evaluate": (
            f"p95 ≤ {floor:.0f} + 150 + 15 ms", lambda r: r.p95 <= floor + 150 + 15),
    }
    lines = ["| scenario | p50 ms | p95 ms | ratio to processor-only p95 | goal | met |",
             "|---|---:|---:|---:|---|---|"]
    goals: list[Goal] = []
    for r in results:
        goal, check = checks.get(r.scenario.name, ("—", None))
        met = "—"
        if check is not None:
            goals.append((f"{r.scenario.name}, {CONCURRENCY} shoppers: {goal} "
                          f"(measured {r.p95:.0f} ms, ratio {r.p95 / floor:.2f})", check(r)))
            met = "yes" if goals[-1][1] else "**NO**"
        lines.append(f"| {r.scenario.name} | {r.p50:.1f} | {r.p95:.1f} | "
                     f"{r.p95 / floor:.2f} | {goal} | {met} |")

    flex_runs = [r for r in results if r.scenario.flex_enabled]
    tokens = max(r.token_calls / r.scenario.processes for r in flex_runs)
    calls = sum(r.flex_calls for r in flex_runs)
    new = sum(r.connections for r in flex_runs)
    reuse = 1 - new / calls
    goals += [(f"token calls ≤ 1 per process per 10 min (measured {tokens:.1f} per process "
               f"in {minutes:.1f} min)", tokens <= math.ceil(minutes / 10)),
              (f"connection reuse ≥ 95 % at {CONCURRENCY} shoppers (measured {reuse:.1%})",
               reuse >= 0.95)]
    lines += [
        "",
        f"- Token calls: at most {tokens:.1f} per process ({WORKERS} web workers and a relay "
        f"process per shop, each shop up {minutes:.1f} min, warm-up included) — "
        f"goal ≤ 1 per process per 10 min: {mark(goals[-2][1])}",
        f"- Connections to the sandbox: {new} new TCP connections for {calls} Flex "
        f"calls = {reuse:.1%} reuse — goal ≥ 95 %: {mark(goals[-1][1])}",
        f"- Checkout page throughput: {throughput:.0f} GET /checkout per second at "
        f"concurrency {CONCURRENCY}",
    ]
    return lines, goals


def added_cpu_ms(floor: Saturated, ours: Saturated) -> tuple[float, float, float]:
    """(in all, web workers, relay): the shop CPU per checkout Flex adds, in ms."""
    web = ours.cpu_ms(ours.web_cpu) - floor.cpu_ms(floor.web_cpu)
    relay = ours.cpu_ms(ours.relay_cpu) - floor.cpu_ms(floor.relay_cpu)
    return web + relay, web, relay


def saturation_report(results: list[Saturated], missing_postgres: str,
                      pinned: list[Saturated] | tuple = ()) -> tuple[list[str], list[Goal]]:
    """The tables and goals of the saturation scenarios: the single shop's floor and ours,
    then, if PostgreSQL was there, the PostgreSQL layout's floor and ours, then, if the
    shop could be pinned to cores of its own, the single shop's pinned floor and ours."""
    floor, ours = results[:2]
    outbox_layouts = [(floor, ours)] + ([tuple(results[2:4])] if len(results) == 4 else [])
    layouts = outbox_layouts + ([tuple(pinned)] if pinned else [])
    lines = [f"| scenario ({SATURATION} shoppers) | checkouts/s | p50 ms | p95 ms | p99 ms "
             "| throughput ratio | p95 ratio | p99 ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for base, r in [(layout[0], r) for layout in layouts for r in layout]:
        lines.append(f"| {r.name} | {r.throughput:.1f} | {r.percentile(50):.1f} | "
                     f"{r.percentile(95):.1f} | {r.percentile(99):.1f} | "
                     f"{r.throughput / base.throughput:.2f} | "
                     f"{r.percentile(95) / base.percentile(95):.2f} | "
                     f"{r.percentile(99) / base.percentile(99):.2f} |")
    if missing_postgres:
        lines.append(f"| {POSTGRES_SCENARIOS[1].name} | not measured: {missing_postgres} "
                     "| | | | | | |")
    if not pinned:
        lines.append("| shop pinned | not measured: a single core, none to keep apart "
                     "| | | | | | |")
    lines += ["", "Ratios are to the processor-only floor of the same layout (the row above). "
              "Co-located (the rows without \"pinned\"): the shop, the sandbox and the "
              "shoppers share every core. Pinned: the shop's web workers and relay run on "
              + (f"core(s) {','.join(map(str, CORES[0]))}, the sandbox (a second one, of its "
                 f"own) and the shoppers on core(s) {','.join(map(str, CORES[1]))}"
                 if CORES else "half the cores, the sandbox and the shoppers on the others")
              + ", so the ratios are what the shop pays, not Flex's servers sharing its "
              "cores.",
              "", "CPU per checkout (ms), from /proc/<pid>/stat (utime + stime):", "",
              "| scenario | shop web workers | shop relay | PostgreSQL server | shop total "
              "| sandbox (Flex) | load generator |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in [r for layout in layouts for r in layout]:
        database = f"{r.cpu_ms(r.database_cpu):.2f}" if r in results[2:] else "(in the workers)"
        lines.append(f"| {r.name} | {r.cpu_ms(r.web_cpu):.2f} | {r.cpu_ms(r.relay_cpu):.2f} | "
                     f"{database} | {r.cpu_ms(r.web_cpu + r.relay_cpu + r.database_cpu):.2f} | "
                     f"{r.cpu_ms(r.sandbox_cpu):.2f} | {r.cpu_ms(r.load_cpu):.2f} |")

    total = {r.name: r.cpu_ms(r.web_cpu + r.relay_cpu + r.sandbox_cpu + r.load_cpu)
             for r in (floor, ours)}
    lines += ["", f"- All CPU per checkout on this machine (single shop): {total[floor.name]:.2f}"
              f" ms with Flex off, {total[ours.name]:.2f} ms with Flex on. Where the cores are "
              f"the limit, throughput falls in that proportion: a ceiling of "
              f"{total[floor.name] / total[ours.name]:.2f} for the throughput ratio here, of "
              f"which the sandbox (Flex's own servers, elsewhere in production) takes "
              f"{ours.cpu_ms(ours.sandbox_cpu) - floor.cpu_ms(floor.sandbox_cpu):.2f} ms."]
    # Measured where the shop has its cores to itself, as the ratios are: co-located, the
    # sandbox and the shoppers run on the web workers' cores and make the same work dearer.
    apart, apart_ours = pinned if pinned else (floor, ours)
    where = "shop pinned" if pinned else "co-located (no core to pin the shop apart)"
    added, web, relay = added_cpu_ms(apart, apart_ours)
    colocated = f"co-located: {added_cpu_ms(floor, ours)[0]:.2f} ms" if pinned else ""
    goals = [(f"Flex's added shop CPU per approved checkout ≤ {ADDED_CPU_MS} ms (measured "
              f"{added:.2f} ms: web workers +{web:.2f}, relay +{relay:.2f}; {SATURATION} "
              f"shoppers, {where}" + (f"; {colocated})" if pinned else ")"),
              added <= ADDED_CPU_MS)]
    lines += ["", f"- Flex's added shop CPU per approved checkout (web workers + relay, Flex "
              f"on − Flex off), {where}: {added:.2f} ms (web +{web:.2f}, relay +{relay:.2f}) "
              f"— goal ≤ {ADDED_CPU_MS} ms: {mark(goals[0][1])}"
              + (f" ({colocated})" if pinned else "")]
    ratio = {p: apart_ours.percentile(p) / apart.percentile(p) for p in (95, 99)}
    throughput = apart_ours.throughput / apart.throughput
    goals += [
        (f"throughput ratio ≥ 0.83 at {SATURATION} shoppers, {where} (measured "
         f"{throughput:.2f})", throughput >= 0.83),
        (f"p95 ratio ≤ 1.25 at {SATURATION} shoppers, {where} (measured {ratio[95]:.2f})",
         ratio[95] <= 1.25),
        (f"p99 ratio ≤ 1.35 at {SATURATION} shoppers, {where} (measured {ratio[99]:.2f})",
         ratio[99] <= 1.35),
    ]
    for base, flex in outbox_layouts:
        more_lines, more_goals = outbox_report(base, flex, single=flex is ours)
        lines += more_lines
        goals += more_goals
    lines += ["", f"Sampled every {saturation.SAMPLE_SECONDS} s, single shop: "
              "[plot](transmit-backlog.svg)", "",
              "![Outbox backlog during the saturation turns](transmit-backlog.svg)"]
    return lines, goals


def outbox_report(floor: Saturated, ours: Saturated, *, single: bool,
                  ) -> tuple[list[str], list[Goal]]:
    """Connection reuse, transmit lag and backlog drain of one layout's Flex-on scenario
    (and, for the PostgreSQL layout, its p95 ratio to its own floor)."""
    where = "" if single else f", {NODES} nodes on PostgreSQL"
    reuse = 1 - ours.new_connections / ours.flex_calls
    peak = max(n for turn in ours.turns for _, n in turn.backlog)
    drain = ours.drain_max
    drained = "not within 30 s" if drain is None else f"{drain:.1f} s"
    ratio = ours.percentile(95) / floor.percentile(95)
    goals = [
        (f"p95 ratio ≤ 1.25 at {SATURATION} shoppers{where} (measured {ratio:.2f})",
         ratio <= 1.25),
        (f"connection reuse ≥ 95 % at {SATURATION} shoppers{where} (measured {reuse:.1%})",
         reuse >= 0.95),
        (f"transmit lag p95 ≤ 1 s{where} (measured {ours.lag_p95:.2f} s)", ours.lag_p95 <= 1.0),
        (f"backlog drained ≤ 5 s after load stops{where} (measured {drained})",
         drain is not None and drain <= 5.0),
    ]
    lines = ["", f"**{ours.name}**" + (" (single shop)" if single else "") + ":",
             f"- p95 {ours.percentile(95):.1f} ms against its floor's "
             f"{floor.percentile(95):.1f} ms: ratio {ratio:.2f} — goal ≤ 1.25: "
             f"{mark(goals[0][1])}",
             f"- Connections to the sandbox: {ours.new_connections} new TCP connections for "
             f"{ours.flex_calls} Flex calls = {reuse:.1%} reuse — goal ≥ 95 %: "
             f"{mark(goals[1][1])}",
             f"- Transmit lag (order commit → /transmit delivered, from the outbox's created_at "
             f"and delivered_at), {len(ours.lags_s)} transmits: p50 {ours.lag_p50:.2f} s, p95 "
             f"{ours.lag_p95:.2f} s — goal p95 ≤ 1 s: {mark(goals[2][1])}",
             f"- Outbox backlog: at most {peak} pending; empty {drained} after the shoppers "
             f"stopped (slowest of {len(ours.turns)} turns) — goal ≤ 5 s: {mark(goals[3][1])}"]
    return lines, goals[1:] if single else goals  # the single shop's p95 goal is listed above



def caveats(others_share: float) -> list[str]:
    """Why this run's numbers may not be the documented ones, if they may not."""
    notes = []
    changed = {name: value for name, value in KNOBS.items() if value != DEFAULTS[name]}
    if changed:
        notes.append("**Short run, not the documented configuration** ("
                     + ", ".join(f"{k}={v}" for k, v in changed.items()) + ").")
    if others_share > OTHERS_LIMIT:
        notes.append(f"**Measured on a busy machine**: processes other than the bench's used "
                     f"{others_share:.0%} of the cores during the run, so these numbers are "
                     "noisy, not final.")
    return notes




def run_block(others_share: float) -> list[str]:
    """Where the numbers were measured, and why they may not be the documented ones."""
    return [f"Machine: {machine()}."] + [f"\n{note}" for note in caveats(others_share)]


def settings_block() -> list[str]:
    """The run's settings, which the page's prose refers to."""
    sandbox_latency = ", ".join(f"{k} {v['delay_ms']} ms" for k, v in LATENCY.items())
    rows = [
        ("shop", f"gunicorn, {WORKERS} workers × {THREADS} threads, FLEX_RELAY=0, each worker"
                 f" holding at most its share of the shoppers' connections, and one relay process"
                 f" (`{' '.join(RELAY_PRIORITY)} flask --app app flex relay`)"),
        ("simulated processor", f"{PROCESSOR_MS} ms per authorization"),
        ("sandbox latencies", sandbox_latency),
        ("latency runs", f"{CONCURRENCY} shoppers; {WARMUP} warm-up checkouts per shop, then "
                         f"{ROUNDS} rounds of {CHECKOUTS // ROUNDS} ({CHECKOUTS} per scenario)"),
        ("saturation runs", f"{SATURATION} shoppers; {SATURATION_WARMUP} warm-up checkouts per "
                            f"shop, then {ROUNDS} rounds of {SATURATION_CHECKOUTS // ROUNDS} "
                            f"({SATURATION_CHECKOUTS} per scenario)"),
        ("pinned runs", "the shop on core(s) " + ",".join(map(str, CORES[0])) + "; its sandbox"
                        " and shoppers on core(s) " + ",".join(map(str, CORES[1]))
                        if CORES else "not measured: a single core"),
        ("PostgreSQL layout", f"{NODES} web nodes and {NODES} relays on one throwaway server"),
        ("busy machine", f"other processes used more than {OTHERS_LIMIT:.0%} of the cores"),
    ]
    return ["| setting | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]


def goals_block(goals: list[Goal]) -> list[str]:
    """Every goal with its verdict and the number measured."""
    return [f"- {mark(met)}: {text}" for text, met in goals]


def update_doc(blocks: dict[str, list[str]], path: Path = DOC) -> None:
    """Rewrites each named block of `path` between its markers, leaving every other line as
    written; raises ValueError, writing nothing, if a block's markers are missing."""
    text = path.read_text()
    for name, lines in blocks.items():
        pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{path.name} has no <!-- bench:{name} --> … "
                             f"<!-- /bench:{name} --> block")
        body = "".join(f"{line}\n" for line in lines)
        text = pattern.sub(lambda m, body=body: m[1] + body + m[2], text, count=1)
    path.write_text(text)
