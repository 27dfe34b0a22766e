"""Keeps every Flex call (already redacted by the client) in SQLite, for the inspector.

Pass `CallLog(connect).record` as FlexClient's `on_call` hook. Calls are filed under the
`ref` the caller gave the client (the merchant order id), so each order has a timeline.
`record_step` files a step the merchant timed itself (its processor's authorization) beside
them, so the timeline shows the vault running alongside the authorization.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from .client import CallReport
from .sqlite import per_thread

SCHEMA = """
CREATE TABLE IF NOT EXISTS flex_calls (
    id         INTEGER PRIMARY KEY,
    order_id   TEXT,
    endpoint   TEXT NOT NULL,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    status     INTEGER,
    ms         INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    error      TEXT,
    request    TEXT,
    response   TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS flex_calls_order ON flex_calls (order_id, id);
"""

STEP_PREFIX = "processor."  # endpoint names of merchant-side steps, e.g. "processor.authorize"
PAGE_SIZE = 50
STATUS_CLASSES = {  # the inspector's filter: name -> SQL condition on `status`
    "2xx": "status BETWEEN 200 AND 299",
    "4xx": "status BETWEEN 400 AND 499",
    "5xx": "status BETWEEN 500 AND 599",
    "none": "status IS NULL",
}

_COLUMNS = "id, order_id, endpoint, method, path, status, ms, attempt, error, request, response,"
_COLUMNS += " created_at"


@dataclass(frozen=True)
class LoggedCall:
    id: int
    order_id: str | None
    endpoint: str
    method: str
    path: str
    status: int | None
    ms: int
    attempt: int
    error: str | None
    request_json: str | None  # pretty-printed, redacted
    response_json: str | None
    created_at: float  # epoch seconds when the call ended (when it was recorded)

    @property
    def started_at(self) -> float:
        """Epoch seconds when the call started."""
        return self.created_at - self.ms / 1000

    @property
    def is_flex(self) -> bool:
        return not self.endpoint.startswith(STEP_PREFIX)


def create_table(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


class CallLog:
    def __init__(self, connect: Callable[[], sqlite3.Connection]):
        # Diagnostic rows: no fsync of their own (WAL stays consistent; a power cut may lose
        # the last few), so logging never competes with order commits for the disk.
        self._connection = per_thread(connect, "synchronous = NORMAL")

    def record(self, report: CallReport) -> None:
        with self._connection() as conn:
            conn.execute(
                f"INSERT INTO flex_calls ({_COLUMNS}) VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                (report.ref, report.endpoint, report.method, report.path, report.status,
                 report.ms, report.attempt, report.error, _pretty(report.request),
                 _pretty(report.response), time.time()),
            )


def record_step(conn: sqlite3.Connection, ref: str, endpoint: str, started_at: float, ms: int,
                outcome: dict | None = None) -> None:
    """Files a merchant-side step (endpoint like "processor.authorize", started at epoch
    seconds, lasting `ms` milliseconds) in the order's timeline; `outcome` must hold no card
    data."""
    with conn:
        conn.execute(
            f"INSERT INTO flex_calls ({_COLUMNS}) VALUES (NULL,?,?,'',?,NULL,?,1,NULL,NULL,?,?)",  # noqa: S608
            (ref, endpoint, endpoint.removeprefix(STEP_PREFIX), ms, _pretty(outcome),
             started_at + ms / 1000),
        )


def for_order(conn: sqlite3.Connection, order_id: str) -> list[LoggedCall]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM flex_calls WHERE order_id = ? ORDER BY id", (order_id,)  # noqa: S608
    )
    return [LoggedCall(*row) for row in rows]


def recent(conn: sqlite3.Connection, limit: int = 100) -> list[LoggedCall]:
    return search(conn, per_page=limit)[0]


def search(conn: sqlite3.Connection, *, endpoint: str | None = None,
           status_class: str | None = None, order_id: str | None = None, page: int = 1,
           per_page: int = PAGE_SIZE) -> tuple[list[LoggedCall], int]:
    """One page of Flex calls (merchant-side steps left out), newest first, and how many
    match in all. `status_class` is a key of STATUS_CLASSES; `order_id` may be a prefix."""
    where, params = [f"endpoint NOT LIKE '{STEP_PREFIX}%'"], []
    if endpoint:
        where.append("endpoint = ?")
        params.append(endpoint)
    if status_class in STATUS_CLASSES:
        where.append(STATUS_CLASSES[status_class])
    if order_id:
        where.append("substr(order_id, 1, ?) = ?")  # a prefix, as the pages show ids
        params += [len(order_id), order_id]
    condition = " AND ".join(where)
    total = conn.execute(
        f"SELECT COUNT(*) FROM flex_calls WHERE {condition}", params  # noqa: S608
    ).fetchone()[0]
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM flex_calls WHERE {condition} ORDER BY id DESC"  # noqa: S608
        " LIMIT ? OFFSET ?",
        (*params, per_page, (max(page, 1) - 1) * per_page),
    )
    return [LoggedCall(*row) for row in rows], total


def endpoints(conn: sqlite3.Connection) -> list[str]:
    """The Flex endpoint names seen so far, for the inspector's filter."""
    rows = conn.execute(
        f"SELECT DISTINCT endpoint FROM flex_calls WHERE endpoint NOT LIKE '{STEP_PREFIX}%'"  # noqa: S608
        " ORDER BY endpoint"
    )
    return [endpoint for (endpoint,) in rows]


def _pretty(body: object) -> str | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body
    return json.dumps(body, indent=2, sort_keys=True)
