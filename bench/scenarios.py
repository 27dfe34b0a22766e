"""What `python -m bench` runs: the sandbox's latencies, the run's sizes (shorter with the
BENCH_* knobs), the cores the pinned runs keep apart, and the scenarios with their results."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field

from .load import percentile
from .postgres import PostgresCluster
from .servers import WORKERS, Cluster, Shop, shop_env

LATENCY = {"tokenize": {"delay_ms": 60}, "evaluate": {"delay_ms": 150},
           "transmit": {"delay_ms": 50}}
DEFAULTS = {"BENCH_CHECKOUTS": 300, "BENCH_ROUNDS": 5, "BENCH_SATURATION_CHECKOUTS": 1500}
KNOBS = {name: int(os.environ.get(name, default)) for name, default in DEFAULTS.items()}
CHECKOUTS, ROUNDS = KNOBS["BENCH_CHECKOUTS"], KNOBS["BENCH_ROUNDS"]  # per scenario
SATURATION_CHECKOUTS = KNOBS["BENCH_SATURATION_CHECKOUTS"]  # per scenario, all rounds
WARMUP, CONCURRENCY = 20, 4
SATURATION_WARMUP, SATURATION = 64, 32  # shoppers at once: twice the shop's threads
APPROVED, RESCUED = "4242424242424242", "4000000000000002"

def split_cores() -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(the shop's cores, the sandbox's and load generator's) for the pinned runs: halves of
    the cores this process may use; None on a single core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    half = len(cores) // 2
    return tuple(cores[:half]), tuple(cores[half:])


CORES = split_cores()


@dataclass
class Scenario:
    name: str
    card: str
    factory: str = "app:create_app()"
    flex_enabled: bool = True
    faults: dict = field(default_factory=dict)
    # Production runs the relay as its own process (`flask flex relay`) beside web workers
    # started with FLEX_RELAY=0; True runs it as a thread in each web worker, as the demo does.
    relay_in_web: bool = False
    pinned: bool = False  # the shop on CORES[0], its sandbox and shoppers on CORES[1]

    @property
    def processes(self) -> int:
        """Processes with a Flex client of their own, so a token each."""
        return WORKERS if self.relay_in_web else WORKERS + 1

    def start_shop(self, sandbox_url: str, database: str) -> Shop:
        env = shop_env(database, sandbox_url, flex_enabled=self.flex_enabled,
                       relay_in_web=self.relay_in_web)
        return Shop(env, factory=self.factory, relay=not self.relay_in_web,
                    cpus=CORES[0] if self.pinned else None, shoppers=SATURATION)

    @property
    def load_cpus(self) -> tuple[int, ...] | None:
        """The cores its shoppers (and its sandbox) run on; None: every core."""
        return CORES[1] if self.pinned else None

    def start_cluster(self, sandbox_url: str, postgres: PostgresCluster) -> Cluster:
        """NODES web nodes and NODES relays on a schema of their own in `postgres`."""
        return Cluster(shop_env("", sandbox_url, flex_enabled=self.flex_enabled), postgres,
                       NODES, SATURATION)


SCENARIOS = (
    Scenario("processor-only (Flex off: the floor)", APPROVED, flex_enabled=False),
    Scenario("approved path (ours)", APPROVED),
    Scenario("approved path, /transmit hung", APPROVED, faults={"transmit": {"hang": True}}),
    Scenario("approved path, relay thread in the web workers", APPROVED, relay_in_web=True),
    Scenario("approved path, naive sequential", APPROVED, factory="bench.naive:create_app()"),
    Scenario("declined path -> evaluate", RESCUED),
)
SATURATION_SCENARIOS = (SCENARIOS[0], SCENARIOS[1])  # the floor and ours, at 32 shoppers
PINNED_SCENARIOS = (  # the same with the shop's cores apart (none on a single core)
    Scenario("processor-only, shop pinned (its floor)", APPROVED, flex_enabled=False,
             pinned=True),
    Scenario("approved path (ours), shop pinned", APPROVED, pinned=True),
) if CORES else ()
NODES = 2  # web nodes, and relays, in the PostgreSQL layout
POSTGRES_SCENARIOS = (  # the production layout, with a floor of its own, at 32 shoppers
    Scenario(f"processor-only, {NODES} nodes on PostgreSQL (its floor)", APPROVED,
             flex_enabled=False),
    Scenario(f"approved path, {NODES} nodes + {NODES} relays on PostgreSQL", APPROVED),
)


@dataclass
class Result:
    scenario: Scenario
    latencies_ms: list[float] = field(default_factory=list)
    token_calls: int = 0  # over the shop's whole life, warm-up included
    flex_calls: int = 0
    connections: int = 0  # new ones: not used by the same shop in an earlier turn
    seen_ports: set = field(default_factory=set)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p95(self) -> float:
        return percentile(self.latencies_ms, 95)



OTHERS_LIMIT = 0.05  # share of the cores other processes may use before a run is "busy"
ADDED_CPU_MS = 2.0  # goal: Flex's added shop CPU (web workers + relay) per approved checkout
