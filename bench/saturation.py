"""The saturation run: more shoppers than the shop has threads, Flex on vs off, taking turns.

Per scenario: throughput, POST /checkout p50/p95/p99, the shop's CPU per checkout (web
workers and relay apart from the sandbox and the load generator, which share this machine's
cores though Flex's own servers would not), new connections to Flex, and, with Flex on, how
long each /transmit waited in the outbox and how the backlog grew and drained.
"""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field

from .load import drive, percentile
from .servers import Cluster, Sandbox, Shop

FLEX_CALLS = ("token", "tokenize", "transmit", "evaluate", "refund", "order")
SAMPLE_SECONDS = 0.1  # backlog sampling period
DRAIN_LIMIT = 30.0  # seconds the bench waits for the backlog to empty after a turn


@dataclass
class Turn:
    """One turn's backlog: (seconds since the turn started, pending transmits) samples."""

    backlog: list[tuple[float, int]]
    load_seconds: float  # when the shoppers were done, on the same clock
    drain_seconds: float | None  # load end -> backlog empty; None: not within DRAIN_LIMIT


@dataclass
class Saturated:
    name: str
    flex_enabled: bool
    latencies_ms: list[float] = field(default_factory=list)
    checkouts: int = 0
    busy_seconds: float = 0.0  # first shopper's start to last shopper's end, summed
    web_cpu: float = 0.0  # seconds
    relay_cpu: float = 0.0
    database_cpu: float = 0.0  # a PostgreSQL server's; SQLite's is in the web workers'
    sandbox_cpu: float = 0.0
    load_cpu: float = 0.0
    flex_calls: int = 0
    new_connections: int = 0
    lags_s: list[float] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    seen_ports: set = field(default_factory=set)

    @property
    def throughput(self) -> float:
        """Checkouts per second."""
        return self.checkouts / self.busy_seconds

    def percentile(self, p: int) -> float:
        """The `p`th percentile of the POST /checkout latencies, in ms."""
        return percentile(self.latencies_ms, p)

    def cpu_ms(self, seconds: float) -> float:
        """CPU ms per checkout."""
        return seconds * 1000 / self.checkouts

    @property
    def lag_p50(self) -> float:
        return statistics.median(self.lags_s)

    @property
    def lag_p95(self) -> float:
        return percentile(self.lags_s, 95)

    @property
    def drain_max(self) -> float | None:
        """The slowest turn's drain (seconds), None if one never drained."""
        drains = [t.drain_seconds for t in self.turns]
        return None if None in drains else max(drains)


def read_only(database: str):
    """A DB-API connection that reads a shop's database beside the shop: a SQLite file
    (read-only; WAL lets it read while the shop writes) or a postgresql:// URL. Every
    statement sees what was committed before it (no transaction is held open)."""
    if database.startswith(("postgresql://", "postgres://")):
        import psycopg  # only the PostgreSQL scenarios need the driver

        return psycopg.connect(database, autocommit=True)
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)


def count_pending(conn) -> int:
    """Transmits waiting in the outbox, on a `read_only` connection."""
    return conn.execute("SELECT COUNT(*) FROM flex_outbox WHERE state = 'pending'"
                        ).fetchone()[0]


def pending(database: str) -> int:
    """Transmits waiting in the shop's outbox."""
    with closing(read_only(database)) as conn:
        return count_pending(conn)


def wait_drained(database: str, limit: float = DRAIN_LIMIT) -> bool:
    """Waits (bounded) until the shop's outbox is empty, e.g. after a warm-up, so that its
    relay does not work during the next scenario's turn. False if it did not empty."""
    deadline = time.monotonic() + limit
    while pending(database):
        if time.monotonic() > deadline:
            return False
        time.sleep(SAMPLE_SECONDS)
    return True


class BacklogSampler:
    """Samples the outbox backlog every SAMPLE_SECONDS in a thread, from `started` on."""

    def __init__(self, database: str, started: float):
        self.database, self.started = database, started
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backlog-sampler")
        self._thread.start()

    def _run(self) -> None:
        with closing(read_only(self.database)) as conn:  # one connection for every sample
            while not self._stop.is_set():
                self.samples.append((time.monotonic() - self.started, count_pending(conn)))
                self._stop.wait(SAMPLE_SECONDS)

    def drained_at(self, after: float, limit: float) -> float | None:
        """Waits (bounded) for a sample taken after `after` with an empty backlog."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if any(t >= after and n == 0 for t, n in self.samples):
                return next(t for t, n in self.samples if t >= after and n == 0)
            time.sleep(SAMPLE_SECONDS)
        return None

    def stop(self) -> list[tuple[float, int]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def take_turn(result: Saturated, shop: Shop | Cluster, sandbox: Sandbox, card: str,
              count: int, concurrency: int, latency: dict,
              cpus: tuple[int, ...] | None = None) -> None:
    """`count` checkouts from `concurrency` shoppers (on `cpus`, if given); with Flex on,
    until the outbox drains."""
    sandbox.set_faults(latency)  # also empties the sandbox's call view
    cpu0 = shop.cpu_seconds()
    sandbox0 = sandbox.cpu_seconds()
    wall_started, started = time.time(), time.monotonic()
    sampler = BacklogSampler(shop.database, started) if result.flex_enabled else None
    load = drive(shop.urls, card, count, concurrency, cpus)
    if sampler:
        load_end = load.ended - started
        drained = sampler.drained_at(load_end, DRAIN_LIMIT)
        result.turns.append(Turn(sampler.stop(), load_end,
                                 None if drained is None else drained - load_end))
        result.lags_s += transmit_lags(shop.database, wall_started)
    cpu1 = shop.cpu_seconds()
    result.web_cpu += cpu1.web - cpu0.web
    result.relay_cpu += cpu1.relay - cpu0.relay
    result.database_cpu += cpu1.database - cpu0.database
    result.sandbox_cpu += sandbox.cpu_seconds() - sandbox0
    result.load_cpu += load.cpu_seconds
    result.latencies_ms += load.latencies_ms
    result.checkouts += count
    result.busy_seconds += load.seconds
    calls, new = connections(sandbox.calls(), result.seen_ports)
    result.flex_calls += calls
    result.new_connections += new


def connections(calls: list[dict], seen_ports: set) -> tuple[int, int]:
    """(Flex calls, connections not seen before) in a turn's calls; adds to `seen_ports`.
    The sandbox records each call's client port: a port seen in an earlier turn of the same
    shop is a kept-alive connection, not a new one."""
    ports = [c["remote_port"] for c in calls if c["endpoint"] in FLEX_CALLS]
    new = set(ports) - seen_ports
    seen_ports |= new
    return len(ports), len(new)


def transmit_lags(database: str, since: float) -> list[float]:
    """Seconds from order commit (the outbox row's created_at) to /transmit delivered."""
    with closing(read_only(database)) as conn:  # a few thousand rows: filtered here
        rows = conn.execute("SELECT created_at, delivered_at FROM flex_outbox"
                            " WHERE state = 'delivered'").fetchall()
    return [delivered - created for created, delivered in rows if created >= since]
