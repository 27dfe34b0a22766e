"""Flex's webhook events in the shop's database: the nonce store that refuses replays, the
stored events (each once, by event id), the refusal counter, and what the pages read."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from flex.webhooks import WebhookEvent
from shop.storage.db import Connection, Database
from shop.storage.leases import Queue, claim_rows

EVENTS_PER_PAGE = 50
# Delivery headers kept for audit: enough to show what was signed, never the signature.
AUDIT_HEADERS = ("x-fc-nonce", "x-fc-date", "host", "x-fc-content-sha512", "user-agent")


class SqlNonceStore:
    """flex.webhooks.NonceStore on the shop's database, shared by every process and node: the
    nonce is the primary key, so "seen before" is one insert that either lands or does not."""

    def __init__(self, database: Database, clock=time.time):
        self.database = database
        self._clock = clock

    def seen_before(self, nonce: str, expires_at: float) -> bool:
        """Records `nonce` until `expires_at` (Unix seconds); True if it is already recorded."""
        with self.database.connection() as conn, conn:
            # Kept through expires_at itself, as flex.webhooks.MemoryNonceStore does.
            conn.execute("DELETE FROM webhook_nonces WHERE expires_at < ?", (self._clock(),))
            return conn.execute(
                "INSERT INTO webhook_nonces (nonce, expires_at) VALUES (?, ?)"
                " ON CONFLICT (nonce) DO NOTHING", (nonce, expires_at),
            ).rowcount == 0


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    event_type: str
    order_id: str | None
    order_session_key: str | None
    external_order_id: str | None
    happened_at: datetime
    received_at: datetime
    is_resent: bool
    deliveries: int
    applied_at: datetime | None
    effect: str | None  # what applying it did, written once; None until it is applied
    attempts: int
    history: tuple[tuple[datetime, str], ...] = ()  # (when, what), oldest first, append-only


_COLUMNS = ("event_id, event_type, order_id, order_session_key, external_order_id, happened_at,"
            " received_at, is_resent, deliveries, applied_at, effect, attempts")


def _stored(row, history=()) -> StoredEvent:
    return StoredEvent(
        *row[:5], _when(row[5]), _when(row[6]), bool(row[7]), row[8],
        _when(row[9]) if row[9] is not None else None, row[10], row[11], tuple(history))


def _with_history(conn: Connection, rows) -> list[StoredEvent]:
    rows = list(rows)
    lines: dict[str, list] = {row[0]: [] for row in rows}
    if lines:
        marks = ", ".join("?" * len(lines))
        for event_id, at, what in conn.execute(
                f"SELECT event_id, at, what FROM webhook_event_history"  # noqa: S608
                f" WHERE event_id IN ({marks}) ORDER BY at", tuple(lines)):
            lines[event_id].append((_when(at), what))
    return [_stored(row, lines[row[0]]) for row in rows]


def _note(conn: Connection, event_id: str, what: str) -> None:
    """Appends one line to the event's history (in the caller's transaction)."""
    conn.execute("INSERT INTO webhook_event_history (event_id, at, what) VALUES (?, ?, ?)",
                 (event_id, time.time(), what[:500]))


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def order_for(conn: Connection, event: WebhookEvent) -> str | None:
    """Our order the event is about: by Flex's orderSessionKey, else by the merchant orderId
    (an /evaluate whose answer was lost has no orderSessionKey here yet)."""
    if event.order_id:
        row = conn.execute("SELECT id FROM orders WHERE order_session_key = ?",
                           (event.order_id,)).fetchone()
        if row:
            return row[0]
    if event.external_order_id:
        row = conn.execute("SELECT id FROM orders WHERE id = ?",
                           (event.external_order_id,)).fetchone()
        if row:
            return row[0]
    return None


def store(conn: Connection, event: WebhookEvent, raw_body: bytes, headers, order_id: str | None,
          lease_seconds: float) -> bool:
    """Stores a verified event, leased to the caller for `lease_seconds` (it applies it next);
    False if this event was stored before (a redelivery): then only its delivery is counted."""
    now = time.time()
    audit = {name: headers.get(name) for name in AUDIT_HEADERS if headers.get(name)}
    with conn:
        stored = conn.execute(
            "INSERT INTO webhook_events (event_id, event_type, order_id, order_session_key,"
            " external_order_id, happened_at, received_at, is_resent, body, headers,"
            " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (event_id) DO NOTHING",
            (event.event_id, str(event.event_type), order_id, event.order_id,
             event.external_order_id, event.timestamp.timestamp(), now, int(event.is_resent),
             raw_body.decode("utf-8", "replace"), json.dumps(audit), now + lease_seconds),
        ).rowcount == 1
        if not stored:
            conn.execute("UPDATE webhook_events SET deliveries = deliveries + 1"
                         " WHERE event_id = ?", (event.event_id,))
            _note(conn, event.event_id, "delivered again: already stored, not applied twice")
    return stored


def count_rejection(conn: Connection, reason: str) -> None:
    """Counts a refused delivery under its (short, body-free) reason."""
    with conn:
        conn.execute(
            "INSERT INTO webhook_rejections (reason, count, last_at) VALUES (?, 1, ?)"
            " ON CONFLICT (reason) DO UPDATE SET count = webhook_rejections.count + 1,"
            " last_at = excluded.last_at", (reason[:200], time.time()),
        )


# Stored events not applied yet whose time has come; the lease pushes `next_attempt_at`.
DUE = Queue("webhook_events", "event_id", "applied_at IS NULL AND next_attempt_at <= ?",
            "next_attempt_at", "next_attempt_at")


def claim_due(conn: Connection, lease_seconds: float, limit: int = 20, *,
              due_by: float | None = None) -> list[str]:
    """Up to `limit` event ids not applied yet and due by `due_by` (epoch seconds; default:
    now), each leased for `lease_seconds` to this caller (shop/storage/leases.py: two sweeps
    never apply one event at the same time)."""
    now = time.time()
    due = now if due_by is None else due_by
    return [row[0] for row in claim_rows(conn, DUE, (due,), now + lease_seconds, "event_id",
                                         limit)]


def body_of(conn: Connection, event_id: str) -> tuple[bytes, str | None, int]:
    """(raw body, our order id, attempts so far) of a stored event."""
    row = conn.execute("SELECT body, order_id, attempts FROM webhook_events WHERE event_id = ?",
                       (event_id,)).fetchone()
    return row[0].encode(), row[1], row[2]


def mark_applied(conn: Connection, event_id: str, effect: str) -> bool:
    """Records the event's effect, once, inside the caller's transaction (the one that made
    the change); False if it was applied already, and then the caller must roll back."""
    applied = conn.execute(
        "UPDATE webhook_events SET applied_at = ?, effect = ?, attempts = attempts + 1"
        " WHERE event_id = ? AND applied_at IS NULL",
        (time.time(), effect[:500], event_id),
    ).rowcount == 1
    if applied:
        _note(conn, event_id, effect)
    return applied


def retry_later(conn: Connection, event_id: str, why: str, delay_seconds: float) -> None:
    """Leaves the event unapplied, for the sweep to try again in `delay_seconds`; why goes
    on its history (once per reason in a row: a long wait adds one line, not one per try)."""
    line = f"waiting: {why}"[:500]
    with conn:
        if conn.execute(
            "UPDATE webhook_events SET attempts = attempts + 1, next_attempt_at = ?"
            " WHERE event_id = ? AND applied_at IS NULL",
            (time.time() + delay_seconds, event_id),
        ).rowcount == 1 and _last_line(conn, event_id) != line:
            _note(conn, event_id, line)


def _last_line(conn: Connection, event_id: str) -> str | None:
    row = conn.execute("SELECT what FROM webhook_event_history WHERE event_id = ?"
                       " ORDER BY at DESC LIMIT 1", (event_id,)).fetchone()
    return row[0] if row else None


# --- what the pages read -------------------------------------------------------------------

def for_order(conn: Connection, order_id: str) -> list[StoredEvent]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM webhook_events WHERE order_id = ?"  # noqa: S608
        " ORDER BY received_at, event_id", (order_id,))
    return _with_history(conn, rows)


def page_of_events(conn: Connection, page: int = 1,
                   per_page: int = EVENTS_PER_PAGE) -> tuple[list[StoredEvent], int]:
    """One page of received events, newest first, and how many there are in all."""
    total = conn.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0]
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM webhook_events ORDER BY received_at DESC, event_id"  # noqa: S608
        " LIMIT ? OFFSET ?", (per_page, (max(page, 1) - 1) * per_page))
    return _with_history(conn, rows), total


def rejections(conn: Connection) -> list[tuple[str, int, datetime]]:
    """(reason, count, last time) of refused deliveries, most frequent first."""
    rows = conn.execute(
        "SELECT reason, count, last_at FROM webhook_rejections ORDER BY count DESC, reason")
    return [(reason, count, _when(last_at)) for reason, count, last_at in rows]
