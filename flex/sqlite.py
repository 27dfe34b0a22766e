"""One SQLite connection per thread, kept open, for the integration's background writers
(the call log and the transmit relay).

Opening a connection per write costs more than the write itself, and closing the last open
connection of a WAL database checkpoints it; a kept connection does neither.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable


def per_thread(connect: Callable[[], sqlite3.Connection],
               *pragmas: str) -> Callable[[], sqlite3.Connection]:
    """Returns a function giving the calling thread its own connection, opened by `connect`
    (and set up with `pragmas`) on first use. It closes when its thread ends."""
    local = threading.local()

    def connection() -> sqlite3.Connection:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = connect()
            for pragma in pragmas:
                conn.execute(f"PRAGMA {pragma}")
        return conn

    return connection
