"""The one way the shop's background work takes a row to work on: a lease.

The outbox relay (flex_outbox), the capture/cancel replays (flex_authorization_actions) and
the webhook sweep (webhook_events) each claim the rows due first with the same statement
(the relay up to as many as it has free senders, the others one):

    UPDATE <table> SET <lease column> = <until> WHERE <key> IN (
        SELECT <key> FROM <table> WHERE <due> ORDER BY <order> LIMIT n [FOR UPDATE SKIP LOCKED])
    [AND <due>] RETURNING ...

On PostgreSQL the subquery skips rows another process is claiming right now (several relays
on several machines each get a different row, without waiting), and the condition is checked
again on the row itself, so a row is never leased twice. On SQLite the writer lock (BEGIN
IMMEDIATE) makes the statement atomic as it is, so it has no second check: with one, SQLite
walks every due row to update the few it picked (a claim cost grew with the backlog). A
lease, not a lock held across the Flex call: a crashed worker's row comes back when its
lease ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shop.storage.db import POSTGRESQL, Connection


@dataclass(frozen=True)
class Queue:
    """Rows of `table` that are due when `due` (SQL with `?` parameters) holds, first by
    `order_by`; a claim sets `lease_column` to the lease's end (epoch seconds)."""

    table: str
    key: str
    due: str
    order_by: str
    lease_column: str

    def claim_sql(self, engine: str, returning: str) -> str:
        """The claim statement for `engine`, returning the columns named in `returning`."""
        # PostgreSQL: ARRAY(...) runs the locking subquery once, before the update (a plain
        # IN may be planned as a join that reads it again); SQLite has one writer at a time.
        picked, skip_locked, close = (("= ANY(ARRAY(", " FOR UPDATE SKIP LOCKED", "))")
                                      if engine == POSTGRESQL else ("IN (", "", ")"))
        # SQLite: no second check (see above); it would make the planner update through the
        # due index, reading every due row, instead of through the key.
        recheck = f" AND {self.due}" if engine == POSTGRESQL else ""
        # Names come from the shop's own constants, never from input.
        return (f"UPDATE {self.table} SET {self.lease_column} = ?"  # noqa: S608
                f" WHERE {self.key} {picked}SELECT {self.key} FROM {self.table}"
                f" WHERE {self.due} ORDER BY {self.order_by} LIMIT ?{skip_locked}{close}"
                f"{recheck} RETURNING {returning}")


def claim_rows(conn: Connection, queue: Queue, due_params: Sequence, lease_until: float,
               returning: str, limit: int) -> list:
    """Leases up to `limit` rows of `queue`, due first, to the caller until `lease_until`, in
    one transaction; returns their `returning` columns (empty when nothing is due)."""
    with conn:
        recheck = due_params if conn.engine == POSTGRESQL else ()
        return conn.execute(queue.claim_sql(conn.engine, returning),
                            (lease_until, *due_params, limit, *recheck)).fetchall()


def claim(conn: Connection, queue: Queue, due_params: Sequence, lease_until: float,
          returning: str):
    """Leases the row of `queue` due first to the caller until `lease_until`; returns its
    `returning` columns, or None when nothing is due."""
    rows = claim_rows(conn, queue, due_params, lease_until, returning, limit=1)
    return rows[0] if rows else None
