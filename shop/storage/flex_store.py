"""The Flex integration's storage in the shop's database: the /transmit outbox (for
flex.outbox.Relay) and the call log (for flex.calllog.CallLog), on SQLite or PostgreSQL.

The relay's writes and the call log's rows are bookkeeping that may be redone or lost in a
power cut without harm (at-least-once delivery, a diagnostic log), so they use
`durable=False` connections and never queue behind an order's commit on SQLite.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence

from flex.calllog import STEP_PREFIX, LoggedCall
from flex.outbox import DELIVERED, FAILED, PENDING, OutboxRow, Transmit
from shop.storage.db import Connection, Database
from shop.storage.leases import Queue, claim_rows

_CALL_COLUMNS = ("id, order_id, endpoint, method, path, status, ms, attempt, error, request,"
                 " response, created_at, purpose, action")
_OUTBOX_COLUMNS = ("order_id, state, attempts, last_error, next_attempt_at, created_at,"
                   " delivered_at")

# The pending row due first that no relay holds (shop/storage/leases.py); a lease ends at
# `leased_until`.
TRANSMITS = Queue("flex_outbox", "order_id",
                  "state = ? AND next_attempt_at <= ? AND leased_until <= ?",
                  "next_attempt_at", "leased_until")


def enqueue_transmit(conn: Connection, order_id: str, payload: dict) -> None:
    """Adds a transmit to the caller's open transaction (the approved order's). One per
    order: the primary key makes a second enqueue a no-op."""
    now = time.time()
    conn.execute(
        "INSERT INTO flex_outbox (order_id, payload, next_attempt_at, created_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
        (order_id, json.dumps(payload), now, now),
    )


class SqlOutbox:
    """flex.outbox.OutboxStore on the shop's database. A claim is the shop's one lease
    statement (shop/storage/leases.py) for up to `limit` rows: FOR UPDATE SKIP LOCKED on PostgreSQL,
    atomic on SQLite. Delivered rows are marked in one transaction per batch."""

    def __init__(self, database: Database):
        self.database = database

    def claim(self, lease_seconds: float, limit: int) -> list[Transmit]:
        now = time.time()
        with self.database.connection(durable=False) as conn:
            rows = claim_rows(conn, TRANSMITS, (PENDING, now, now), now + lease_seconds,
                              "order_id, payload, attempts", limit)
        return [Transmit(row[0], json.loads(row[1]), row[2]) for row in rows]

    def mark_delivered(self, order_ids: Sequence[str]) -> None:
        now = time.time()
        with self.database.connection(durable=False) as conn, conn:
            conn.executemany(
                "UPDATE flex_outbox SET state = ?, delivered_at = ?, last_error = NULL,"
                " attempts = attempts + 1, leased_until = 0 WHERE order_id = ?",
                [(DELIVERED, now, order_id) for order_id in order_ids],
            )

    def retry_later(self, order_id: str, error: str, retry_at: float) -> None:
        self._update(order_id, "last_error = ?, next_attempt_at = ?", error, retry_at)

    def dead_letter(self, order_id: str, error: str) -> None:
        self._update(order_id, "state = ?, last_error = ?", FAILED, error)

    def _update(self, order_id: str, assignments: str, *params) -> None:
        with self.database.connection(durable=False) as conn, conn:
            conn.execute(
                f"UPDATE flex_outbox SET {assignments}, attempts = attempts + 1,"  # noqa: S608
                " leased_until = 0 WHERE order_id = ?",
                (*params, order_id),
            )


_INSERT_CALLS = ("INSERT INTO flex_calls (order_id, endpoint, method, path, status, ms, attempt,"
                 " error, request, response, created_at, purpose, action) VALUES ")


class SqlCallLog:
    """flex.calllog.CallLogStore on the shop's database. Rows that arrive while another thread
    of the process is writing are written together by the next writer, in one transaction
    (a group commit): a row costs a fraction of a transaction when the shop is busy, and
    `add` still returns only once its row is committed."""

    def __init__(self, database: Database):
        self.database = database
        self._waiting: list[LoggedCall] = []  # added, not written yet; in call order
        self._waiting_lock = threading.Lock()
        self._writer = threading.Lock()  # one writing thread at a time

    def add(self, call: LoggedCall) -> None:
        with self._waiting_lock:
            self._waiting.append(call)
        with self._writer:  # the thread before may have written this row with its own
            with self._waiting_lock:
                rows, self._waiting = self._waiting, []
            if not rows:
                return
            try:
                self._write(rows)
            except BaseException:
                with self._waiting_lock:  # the next writer tries the others' rows again
                    self._waiting[:0] = [row for row in rows if row is not call]
                raise

    def _write(self, rows: list[LoggedCall]) -> None:
        # One INSERT of every row: a statement is a transaction of its own, so no BEGIN and
        # COMMIT (two round trips fewer on PostgreSQL), and the rows are stored all or none.
        values = ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?,?)"] * len(rows))
        with self.database.connection(durable=False) as conn:
            conn.execute(
                _INSERT_CALLS + values,
                [field for call in rows for field in (
                    call.order_id, call.endpoint, call.method, call.path, call.status, call.ms,
                    call.attempt, call.error, call.request_json, call.response_json,
                    call.created_at, call.purpose, call.action)],
            )


# --- what the merchant's pages read --------------------------------------------------------

def recent_transmits(conn: Connection, limit: int = 50) -> list[OutboxRow]:
    rows = conn.execute(
        f"SELECT {_OUTBOX_COLUMNS} FROM flex_outbox ORDER BY created_at DESC LIMIT ?",  # noqa: S608
        (limit,),
    )
    return [OutboxRow(*row) for row in rows]


def transmit_counts(conn: Connection) -> dict[str, int]:
    found = dict(conn.execute("SELECT state, COUNT(*) FROM flex_outbox GROUP BY state"))
    return {state: found.get(state, 0) for state in (PENDING, DELIVERED, FAILED)}


def calls_for_order(conn: Connection, order_id: str) -> list[LoggedCall]:
    rows = conn.execute(
        f"SELECT {_CALL_COLUMNS} FROM flex_calls WHERE order_id = ? ORDER BY id",  # noqa: S608
        (order_id,),
    )
    return [LoggedCall(*row) for row in rows]


CALLS_PER_PAGE = 50
STATUS_CLASSES = {  # the inspector's filter: name -> SQL condition on `status`
    "2xx": "status BETWEEN 200 AND 299",
    "4xx": "status BETWEEN 400 AND 499",
    "5xx": "status BETWEEN 500 AND 599",
    "none": "status IS NULL",
}
_FLEX_ONLY = f"endpoint NOT LIKE '{STEP_PREFIX}%'"  # merchant-side steps stay off /flex


def search_calls(conn: Connection, *, endpoint: str | None = None,
                 status_class: str | None = None, order_id: str | None = None, page: int = 1,
                 per_page: int = CALLS_PER_PAGE) -> tuple[list[LoggedCall], int]:
    """One page of Flex calls, newest first, and how many match in all. `status_class` is a
    key of STATUS_CLASSES; `order_id` may be a prefix, as the pages show ids."""
    where, params = [_FLEX_ONLY], []
    if endpoint:
        where.append("endpoint = ?")
        params.append(endpoint)
    if status_class in STATUS_CLASSES:
        where.append(STATUS_CLASSES[status_class])
    if order_id:
        where.append("substr(order_id, 1, ?) = ?")
        params += [len(order_id), order_id]
    condition = " AND ".join(where)
    total = conn.execute(
        f"SELECT COUNT(*) FROM flex_calls WHERE {condition}", params  # noqa: S608
    ).fetchone()[0]
    rows = conn.execute(
        f"SELECT {_CALL_COLUMNS} FROM flex_calls WHERE {condition} ORDER BY id DESC"  # noqa: S608
        " LIMIT ? OFFSET ?",
        (*params, per_page, (max(page, 1) - 1) * per_page),
    )
    return [LoggedCall(*row) for row in rows], total


def call_endpoints(conn: Connection) -> list[str]:
    """The Flex endpoint names seen so far, for the inspector's filter."""
    rows = conn.execute(
        f"SELECT DISTINCT endpoint FROM flex_calls WHERE {_FLEX_ONLY} ORDER BY endpoint"  # noqa: S608
    )
    return [endpoint for (endpoint,) in rows]
