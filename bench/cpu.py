"""python -m bench.cpu — what Flex adds to the shop's CPU per approved checkout, quickly.

The saturation measurement of `python -m bench` without the rest: a shop with Flex off (the
floor) and one with Flex on take turns at 32 shoppers, ROUNDS times, and each round's CPU
per checkout (web workers and relay, from /proc) is printed with the medians, then the
throughput, p95 and p99 ratios of all rounds. On a busy machine the latency numbers are
noise, but CPU time per checkout holds fairly well.

Options (environment): CPU_ROUNDS (default 5), CPU_CHECKOUTS per turn (default 200),
CPU_COLOCATED=1: the shop, the sandbox and the shoppers on every core (by default the shop
has half the cores to itself, as in the bench's CPU goal),
CPU_PROFILE=DIR: also run py-spy (`record --format raw`, folded stacks) on the Flex shop's
first web worker and its relay during one extra turn, written to DIR.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from . import saturation
from .load import drive
from .saturation import Saturated
from .scenarios import (
    APPROVED,
    CORES,
    LATENCY,
    PINNED_SCENARIOS,
    SATURATION,
    SATURATION_SCENARIOS,
    SATURATION_WARMUP,
)
from .servers import Sandbox, children

ROUNDS = int(os.environ.get("CPU_ROUNDS", 5))
CHECKOUTS = int(os.environ.get("CPU_CHECKOUTS", 200))
SCENARIOS = (SATURATION_SCENARIOS if os.environ.get("CPU_COLOCATED") == "1" or not CORES
             else PINNED_SCENARIOS)


def profile(shop, sandbox: Sandbox, folder: Path) -> None:
    """One more turn on the Flex shop with py-spy on a web worker and on the relay."""
    spy = Path(sys.executable).with_name("py-spy")
    targets = {"web": children(shop.web.pid)[0], "relay": shop.relay.pid}
    seconds = str(max(5, CHECKOUTS // 20))
    spies = [subprocess.Popen([str(spy), "record", "--pid", str(pid), "--format", "raw",
                               "--duration", seconds, "--rate", "250", "--gil",
                               "-o", str(folder / f"{name}.folded")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, pid in targets.items()]
    sandbox.set_faults(LATENCY)
    drive(shop.urls, APPROVED, CHECKOUTS * 2, SATURATION, SCENARIOS[0].load_cpus)
    for spy_process in spies:
        spy_process.wait()
    print(f"py-spy folded stacks in {folder}")


def main() -> int:
    sandbox = Sandbox(CORES[1] if SCENARIOS[0].pinned else None)
    shops = []
    results = [Saturated(s.name, s.flex_enabled) for s in SCENARIOS]
    per_round: list[list[tuple[float, float]]] = [[] for _ in SCENARIOS]
    try:
        with tempfile.TemporaryDirectory() as folder:
            for n, scenario in enumerate(SCENARIOS):
                shops.append(scenario.start_shop(sandbox.base_url, f"{folder}/cpu{n}.sqlite"))
                sandbox.set_faults(LATENCY)
                drive(shops[-1].urls, APPROVED, SATURATION_WARMUP, SATURATION,
                      scenario.load_cpus)
                saturation.wait_drained(shops[-1].database)
            for turn in range(ROUNDS):
                for n, (result, shop) in enumerate(zip(results, shops, strict=True)):
                    before = (result.web_cpu, result.relay_cpu, result.checkouts)
                    saturation.take_turn(result, shop, sandbox, APPROVED, CHECKOUTS,
                                         SATURATION, LATENCY, SCENARIOS[0].load_cpus)
                    count = result.checkouts - before[2]
                    per_round[n].append(((result.web_cpu - before[0]) * 1000 / count,
                                         (result.relay_cpu - before[1]) * 1000 / count))
                floor, ours = (rounds[-1] for rounds in per_round)
                print(f"round {turn + 1}: floor web {floor[0]:.2f} relay {floor[1]:.2f} | "
                      f"flex web {ours[0]:.2f} relay {ours[1]:.2f} | added "
                      f"{sum(ours) - sum(floor):.2f} ms", flush=True)
            if os.environ.get("CPU_PROFILE"):
                folder_out = Path(os.environ["CPU_PROFILE"])
                folder_out.mkdir(parents=True, exist_ok=True)
                profile(shops[1], sandbox, folder_out)
    finally:
        for shop in shops:
            shop.stop()
        sandbox.stop()
    added = [sum(o) - sum(f) for f, o in zip(*per_round, strict=True)]
    web = [o[0] - f[0] for f, o in zip(*per_round, strict=True)]
    relay = [o[1] - f[1] for f, o in zip(*per_round, strict=True)]
    print(f"median over {ROUNDS} rounds of {CHECKOUTS}: floor web "
          f"{statistics.median(r[0] for r in per_round[0]):.2f} ms; Flex adds web "
          f"{statistics.median(web):.2f} + relay {statistics.median(relay):.2f} ms; "
          f"added total {statistics.median(added):.2f} ms (min {min(added):.2f}, "
          f"max {max(added):.2f}); lag p95 {results[1].lag_p95:.2f} s")
    floor_run, ours_run = results
    print(f"ours / floor, all rounds: throughput {ours_run.throughput / floor_run.throughput:.2f},"
          f" p95 {ours_run.percentile(95) / floor_run.percentile(95):.2f}, p99 "
          f"{ours_run.percentile(99) / floor_run.percentile(99):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
