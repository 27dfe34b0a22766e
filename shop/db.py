"""SQLite access: one connection per request (as in Flask's tutorial), plus `connect()`
for background threads (the transmit relay, the Flex call log)."""

from __future__ import annotations

import sqlite3
from functools import partial
from importlib import resources

from flask import Flask, current_app, g

from flex import calllog, outbox


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def connector(app: Flask):
    """A zero-argument connect function for threads that outlive a request."""
    return partial(connect, app.config["DATABASE"])


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = connect(current_app.config["DATABASE"])
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_db(path: str) -> None:
    """Creates the schema if missing. WAL lets the relay write while pages read."""
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(resources.files("shop").joinpath("schema.sql").read_text())
        outbox.create_table(conn)
        calllog.create_table(conn)
    finally:
        conn.close()


def clear(conn: sqlite3.Connection) -> None:
    """Empties every table (the demo's reset)."""
    with conn:
        for table in ("refunds", "order_items", "orders", "flex_outbox", "flex_calls"):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names


def init_app(app: Flask) -> None:
    init_db(app.config["DATABASE"])
    app.teardown_appcontext(close_db)
