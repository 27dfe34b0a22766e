"""A durable queue for /transmit (the transactional-outbox pattern, on SQLite).

The approved order and its outbox row are written in ONE transaction by the caller
(`enqueue(conn, ...)`), so a crash can never leave a paid order without its transmit.
A relay thread delivers due rows at least once, several at a time, with capped exponential
backoff.
Several relays (e.g. one per gunicorn worker) may run: a row is leased before it is sent,
so two relays do not send the same row at the same time.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .client import FlexClient
from .errors import FlexError, FlexValidationError
from .sqlite import per_thread

log = logging.getLogger("flex.outbox")

SCHEMA = """
CREATE TABLE IF NOT EXISTS flex_outbox (
    order_id        TEXT PRIMARY KEY,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at REAL NOT NULL,
    leased_until    REAL NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    delivered_at    REAL
);
CREATE INDEX IF NOT EXISTS flex_outbox_due ON flex_outbox (state, next_attempt_at);
"""


@dataclass(frozen=True)
class OutboxRow:
    order_id: str
    state: str
    attempts: int
    last_error: str | None
    next_attempt_at: float
    created_at: float
    delivered_at: float | None


def create_table(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def enqueue(conn: sqlite3.Connection, order_id: str, payload: dict) -> None:
    """Adds a transmit to the caller's open transaction. Idempotent per order."""
    now = time.time()
    conn.execute(
        "INSERT OR IGNORE INTO flex_outbox (order_id, payload, next_attempt_at, created_at)"
        " VALUES (?, ?, ?, ?)",
        (order_id, json.dumps(payload), now, now),
    )


def recent(conn: sqlite3.Connection, limit: int = 50) -> list[OutboxRow]:
    rows = conn.execute(
        "SELECT order_id, state, attempts, last_error, next_attempt_at, created_at, delivered_at"
        " FROM flex_outbox ORDER BY created_at DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [OutboxRow(*row) for row in rows]


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    found = dict(conn.execute("SELECT state, COUNT(*) FROM flex_outbox GROUP BY state"))
    return {state: found.get(state, 0) for state in ("pending", "delivered", "failed")}


class Relay:
    """Delivers queued transmits. `connect` opens a new SQLite connection; the relay keeps
    one per thread that runs it."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        client: FlexClient,
        *,
        poll_interval: float = 0.5,
        max_attempts: int = 12,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        lease: float | None = None,
        batch: int = 20,
        senders: int = 8,
        also_run: Callable[[], object] | None = None,
    ):
        # The relay's own writes (lease, delivered) need no fsync: if a power cut loses one,
        # the row is sent again, which at-least-once delivery allows anyway.
        self._connection = per_thread(connect, "synchronous = NORMAL")
        self.client = client
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        # A row is leased for longer than one transmit can take, so a crashed relay's rows
        # come back soon, while a slow one's are not sent twice at the same time.
        self.lease = lease if lease is not None else 2 * client.config.deadline
        self.batch = batch
        # Transmits sent at once: one at a time, a relay could not keep up with a busy shop
        # (each send waits a round trip). The client's connection pool must hold as many.
        self.senders = senders
        self.also_run = also_run  # more periodic work for the same thread (e.g. reconciliation)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Deliver now instead of at the next poll (call after committing an enqueue)."""
        self._wake.set()

    def start(self) -> threading.Thread:
        """Runs the relay in a daemon thread; the running one if it was started already."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self.run_forever, name="flex-relay",
                                            daemon=True)
            self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def run_forever(self) -> None:
        with self._sender_pool() as senders:  # kept for the loop's life, with their connections
            while not self._stop.is_set():
                more = False
                try:
                    more = self._run_batch(senders)[0] == self.batch  # full: more may be due
                    if self.also_run:
                        self.also_run()
                except Exception:  # keep relaying whatever one bad round raised
                    log.exception("relay round failed")
                if not more:
                    self._wake.wait(self.poll_interval)
                    self._wake.clear()

    def run_once(self) -> int:
        """Delivers the due rows (up to `batch`, `senders` at a time); returns how many were
        delivered."""
        with self._sender_pool() as senders:
            return self._run_batch(senders)[1]

    def _sender_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.senders, thread_name_prefix="flex-relay-send")

    def _run_batch(self, senders: ThreadPoolExecutor) -> tuple[int, int]:
        """(rows that were due, rows delivered). Only the sends run on the sender threads;
        the outbox's own writes stay on this thread's connection."""
        conn = self._connection()
        due = self._due(conn)
        rows = self._lease(conn, due)
        outcomes = list(senders.map(self._send, rows))
        delivered = [(at, order_id) for (order_id, _), (at, error) in zip(rows, outcomes,
                                                                         strict=True)
                     if error is None]
        with conn:  # one commit for the batch: a crash before it only means a resend
            conn.executemany(
                "UPDATE flex_outbox SET state = 'delivered', attempts = attempts + 1,"
                " delivered_at = ?, last_error = NULL, leased_until = 0 WHERE order_id = ?",
                delivered,
            )
        for (order_id, _), (_, error) in zip(rows, outcomes, strict=True):
            if error is not None:
                self._record_failure(conn, order_id, error)
        return len(due), len(delivered)

    def _due(self, conn: sqlite3.Connection) -> list[tuple[str, str]]:
        now = time.time()
        return conn.execute(
            "SELECT order_id, payload FROM flex_outbox WHERE state = 'pending'"
            " AND next_attempt_at <= ? AND leased_until <= ? ORDER BY next_attempt_at LIMIT ?",
            (now, now, self.batch),
        ).fetchall()

    def _lease(self, conn: sqlite3.Connection, due: list[tuple[str, str]],
               ) -> list[tuple[str, str]]:
        """Claims the due rows for this relay, in one transaction; leaves out those another
        relay claimed first."""
        now = time.time()
        with conn:
            return [(order_id, payload) for order_id, payload in due if conn.execute(
                "UPDATE flex_outbox SET leased_until = ? WHERE order_id = ?"
                " AND state = 'pending' AND leased_until <= ?",
                (now + self.lease, order_id, now),
            ).rowcount == 1]

    def _send(self, row: tuple[str, str]) -> tuple[float, FlexError | None]:
        """Sends one row's transmit: (when it was answered, the error if it failed)."""
        order_id, payload = row
        try:
            self.client.transmit(json.loads(payload), ref=order_id)
        except FlexError as exc:
            return time.time(), exc
        return time.time(), None

    def _record_failure(self, conn: sqlite3.Connection, order_id: str, exc: FlexError) -> None:
        attempts = conn.execute(
            "SELECT attempts FROM flex_outbox WHERE order_id = ?", (order_id,)
        ).fetchone()[0] + 1
        # A 400 will not get better by retrying; everything else might.
        final = isinstance(exc, FlexValidationError) or attempts >= self.max_attempts
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempts - 1))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto
        log.warning("transmit for order %s failed (attempt %d): %s", order_id, attempts, exc)
        with conn:
            conn.execute(
                "UPDATE flex_outbox SET state = ?, attempts = ?, last_error = ?,"
                " next_attempt_at = ?, leased_until = 0 WHERE order_id = ?",
                ("failed" if final else "pending", attempts, str(exc)[:500],
                 time.time() + delay, order_id),
            )
