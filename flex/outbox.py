"""Delivers /transmit from a durable queue (the transactional-outbox pattern).

Your order database holds the queue: write the approved order and its outbox row in ONE
transaction, so a crash can never leave a paid order without its transmit. A `Relay` then
delivers due rows at least once, with capped exponential backoff, through an `OutboxStore`
you implement on that database (the demo shop's, for SQLite and PostgreSQL, is in
shop/storage/flex_store.py). Several relays may run, in one process or many: a row is claimed with a
lease before it is sent, so two relays do not send the same row at the same time, and the
rows of a relay that crashed come back when its lease ends. Rows are claimed several at a
time, and marked delivered several at a time, each in one statement: the database work per
transmit is a fraction of a round trip.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from .backoff import backoff_delay
from .client import FlexClient
from .errors import FlexError, FlexValidationError

log = logging.getLogger("flex.outbox")

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"  # an outbox row's states


@dataclass(frozen=True)
class Transmit:
    """A claimed outbox row: the order it belongs to, the /transmit body, attempts so far."""

    order_id: str
    payload: dict
    attempts: int


@dataclass(frozen=True)
class OutboxRow:
    """An outbox row as the merchant's pages show it. Times are epoch seconds."""

    order_id: str
    state: str  # PENDING | DELIVERED | FAILED
    attempts: int
    last_error: str | None
    next_attempt_at: float
    created_at: float
    delivered_at: float | None

    @property
    def dead_lettered(self) -> bool:
        """True when the relay gave up on it (FAILED): the reason is in `last_error`."""
        return self.state == FAILED


class OutboxStore(Protocol):
    """The queue's storage, implemented by the merchant on the order database."""

    def claim(self, lease_seconds: float, limit: int) -> list[Transmit]:
        """Claims up to `limit` pending rows due first (none leased) for `lease_seconds`, in
        one statement; [] if none is due. Atomic: two relays never claim the same row (e.g.
        FOR UPDATE SKIP LOCKED)."""

    def mark_delivered(self, order_ids: Sequence[str]) -> None:
        """Flex accepted these transmits: the rows are done (attempts + 1, lease released),
        in one transaction."""

    def retry_later(self, order_id: str, error: str, retry_at: float) -> None:
        """The attempt failed: record `error`, attempts + 1, due again at `retry_at` (epoch s)."""

    def dead_letter(self, order_id: str, error: str) -> None:
        """Stop trying: the row becomes FAILED with `error` as the reason, attempts + 1."""


class Relay:
    """Delivers queued transmits from `store` with `client`, in a thread of its own or one
    round at a time (`run_once`)."""

    def __init__(
        self,
        store: OutboxStore,
        client: FlexClient,
        *,
        poll_interval: float = 0.5,
        max_attempts: int = 12,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        lease: float | None = None,
        batch: int = 20,
        senders: int = 8,
        gather: float = 0.02,
        also_run: Callable[[], object] | None = None,
    ):
        self.store = store
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
        # Seconds a round waits, after a send came back, for more to mark with it: a few
        # milliseconds of transmit lag for a fraction of the database work per transmit.
        self.gather = gather
        self.also_run = also_run  # more periodic work for the same thread (e.g. Recovery)
        self._also_run_at = 0.0  # time.monotonic() when also_run is due again
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
        """Stops the relay thread, waiting up to `timeout` seconds for its round to end."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def run_forever(self) -> None:
        """Delivers due rows until `stop`: round after round while rounds find rows, then
        every `poll_interval` seconds (or when woken)."""
        with self._sender_pool() as senders:  # kept for the loop's life, with their connections
            while not self._stop.is_set():
                busy = False
                try:
                    # A round that found rows is followed by another at once: rows keep
                    # coming while a shop is busy, and a pause would only make them wait.
                    busy = self._round(senders)[0] > 0
                    if self.also_run and time.monotonic() >= self._also_run_at:
                        # Once per poll interval, not once per round: a busy relay runs
                        # many rounds a second, and the periodic work has its own clock.
                        self._also_run_at = time.monotonic() + self.poll_interval
                        self.also_run()
                except Exception:  # keep relaying whatever one bad round raised
                    log.exception("relay round failed")
                if not busy:
                    self._wake.wait(self.poll_interval)
                    self._wake.clear()

    def run_once(self) -> int:
        """Delivers up to `batch` due rows, `senders` at a time; returns how many were
        delivered."""
        with self._sender_pool() as senders:
            return self._round(senders)[1]

    def _sender_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.senders, thread_name_prefix="flex-relay-send")

    def _round(self, senders: ThreadPoolExecutor) -> tuple[int, int]:
        """(rows claimed, rows delivered): up to `batch` due rows, `senders` of them in flight
        at once. As senders come free, as many rows are claimed in one statement (so rows
        that became due meanwhile join this round); the transmits that come back within
        `gather` seconds of each other are marked delivered in one statement."""
        finished: queue.SimpleQueue[tuple[Transmit, bool]] = queue.SimpleQueue()
        in_flight = claimed = delivered = 0
        while True:
            room = min(self.senders - in_flight, self.batch - claimed)
            if room > 0:  # at most one claim per batch of sends that came back
                rows = self.store.claim(self.lease, room)
                claimed += len(rows)
                in_flight += len(rows)
                for row in rows:
                    senders.submit(self._send, row, finished)
            if not in_flight:  # nothing due: one query per round
                return claimed, delivered
            back = self._gather(finished, in_flight)
            in_flight -= len(back)
            accepted = [row.order_id for row, ok in back if ok]
            if accepted:
                self.store.mark_delivered(accepted)
                delivered += len(accepted)

    def _gather(self, finished: queue.SimpleQueue, in_flight: int) -> list:
        """Waits for one send to come back, then up to `gather` seconds more for the others
        in flight: a busy relay's sends come back a few milliseconds apart, and marking
        (and claiming) them together costs one statement instead of one each."""
        back = [finished.get()]
        until = time.monotonic() + self.gather
        while len(back) < in_flight:
            try:
                back.append(finished.get(timeout=max(0.0, until - time.monotonic())))
            except queue.Empty:
                break
        return back

    def _send(self, transmit: Transmit, finished: queue.SimpleQueue) -> None:
        """Delivers one claimed row and puts (row, True if Flex accepted it) on `finished`
        for the round to mark; always puts, so the round never waits for a lost row."""
        accepted = False
        try:
            accepted = self._deliver(transmit)
        except Exception:  # e.g. the database: the row comes back when its lease ends
            log.exception("transmit for order %s failed", transmit.order_id)
        finally:
            finished.put((transmit, accepted))

    def _deliver(self, transmit: Transmit) -> bool:
        """Sends one row; True if Flex accepted it, else its failure is recorded."""
        try:
            self.client.transmit(transmit.payload, ref=transmit.order_id)
        except FlexError as exc:
            self._record_failure(transmit, exc)
            return False
        return True

    def _record_failure(self, transmit: Transmit, exc: FlexError) -> None:
        attempts = transmit.attempts + 1
        log.warning("transmit for order %s failed (attempt %d): %s", transmit.order_id,
                    attempts, exc)
        error = str(exc)[:500]
        # A 400 will not get better by retrying; everything else might.
        if isinstance(exc, FlexValidationError) or attempts >= self.max_attempts:
            self.store.dead_letter(transmit.order_id, error)
            return
        delay = backoff_delay(attempts, base=self.backoff_base, cap=self.backoff_cap)
        self.store.retry_later(transmit.order_id, error, time.time() + delay)
