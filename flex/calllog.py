"""Keeps every Flex call (already redacted by the client) in SQLite, for the inspector.

Pass `CallLog(connect).record` as FlexClient's `on_call` hook. Calls are filed under the
`ref` the caller gave the client (the merchant order id), so each order has a timeline.
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
    created_at: float


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


def for_order(conn: sqlite3.Connection, order_id: str) -> list[LoggedCall]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM flex_calls WHERE order_id = ? ORDER BY id", (order_id,)  # noqa: S608
    )
    return [LoggedCall(*row) for row in rows]


def recent(conn: sqlite3.Connection, limit: int = 100) -> list[LoggedCall]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM flex_calls ORDER BY id DESC LIMIT ?", (limit,)  # noqa: S608
    )
    return [LoggedCall(*row) for row in rows]


def _pretty(body: object) -> str | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body
    return json.dumps(body, indent=2, sort_keys=True)
