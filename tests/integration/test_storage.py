"""The shop's storage on both engines: migrations, the constraints that keep one order and
one transmit per checkout, and the outbox as several relays and failures see it."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import psycopg
import pytest

from shop.storage import db
from tests.support import calls, db_rows, pay, set_fault

pytestmark = pytest.mark.storage

MIGRATIONS = ["001_orders", "002_refunds_and_calls", "003_recovery", "004_webhooks",
              "005_authorization", "006_recovery_names", "007_webhook_history",
              "008_call_purpose"]


def test_migrations_apply_once_when_processes_start_together(database_url):
    starting_line = threading.Barrier(4)

    def start() -> list[str]:
        starting_line.wait()
        return db.migrate(database_url)

    with ThreadPoolExecutor(4) as pool:  # each one opens its own connection, like a process
        applied = sorted(pool.map(lambda _: start(), range(4)))

    assert applied == [[], [], [], MIGRATIONS]  # one did the work; three found it done
    assert db_rows(database_url, "SELECT version FROM schema_migrations ORDER BY version") == [
        (version,) for version in range(1, len(MIGRATIONS) + 1)]
    assert db.migrate(database_url) == []


def test_a_database_from_before_the_rename_keeps_its_orders_and_webhook_outcomes(
        database_url, engine):
    """Migrations 006-007 on a database at version 5: the recovery columns keep their values
    under their new names, and each event's last word becomes its first history line."""
    conn = db.connect(database_url)
    try:
        with conn:
            conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
                         " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
            for version, name, sql in db.migrations(engine)[:5]:
                db._run_script(conn, sql)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
            # The columns' names before migration 006.
            conn.execute("INSERT INTO orders (id, created_at, outcome, amount_cents, currency,"
                         " email, reconcile, reconcile_at, reconcile_attempts) VALUES"
                         " ('o-1', 0, 'declined', 1800, 'USD', 'a@b.c', 1, 42, 3)")
            conn.execute("INSERT INTO webhook_events (event_id, event_type, order_id,"
                         " happened_at, received_at, is_resent, body, headers, outcome,"
                         " next_attempt_at) VALUES ('e-1', 'order.refunded', 'o-1', 0, 5, 0,"
                         " '{}', '{}', 'waiting: the checkout is still running', 0)")
    finally:
        conn.close()

    assert db.migrate(database_url) == MIGRATIONS[5:]
    assert db_rows(database_url, "SELECT recovering, recover_at, recover_attempts"
                                 " FROM orders") == [(1, 42, 3)]
    assert db_rows(database_url, "SELECT at, what FROM webhook_event_history") == [
        (5, "waiting: the checkout is still running")]
    assert db_rows(database_url, "SELECT effect FROM webhook_events") == [(None,)]


def test_flask_shop_migrate_reports_the_schema_version(app, engine):
    result = app.test_cli_runner().invoke(args=["shop", "migrate"])
    assert result.exit_code == 0, result.output
    # start-up had applied them
    assert f"schema at version {len(MIGRATIONS)} ({engine})" in result.output


def test_constraints_allow_one_order_and_one_transmit_per_checkout(database_url):
    db.migrate(database_url)
    order = ("INSERT INTO orders (id, created_at, amount_cents, currency, email)"
             " VALUES ('c1', 0, 1800, 'USD', 'a@example.com')")
    transmit = ("INSERT INTO flex_outbox (order_id, payload, next_attempt_at, created_at)"
                " VALUES ('c1', '{}', 0, 0)")
    db_rows(database_url, order)
    db_rows(database_url, transmit)
    for duplicate in (order, transmit):
        with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
            db_rows(database_url, duplicate)
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):  # over-reserved
        db_rows(database_url, "UPDATE orders SET refund_reserved_cents = 1801")


def test_constraints_allow_one_capture_or_cancel_per_order(database_url):
    db.migrate(database_url)
    db_rows(database_url, "INSERT INTO orders (id, created_at, amount_cents, currency, email)"
            " VALUES ('c1', 0, 1800, 'USD', 'a@example.com')")
    action = ("INSERT INTO flex_authorization_actions (order_id, action, idempotency_key,"
              " amount_cents, next_attempt_at, created_at) VALUES ('c1', ?, ?, ?, 0, 0)")
    db_rows(database_url, action, "capture", "key-1", 1800)
    for refused in (("cancel", "key-2", None),  # a cancel after the capture
                    ("capture", "key-1", 1800)):  # the same intent again
        with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
            db_rows(database_url, action, *refused)
    db_rows(database_url, "DELETE FROM flex_authorization_actions")
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        db_rows(database_url, action, "refund", "key-3", 1800)  # not an authorization action


def test_two_relays_deliver_each_transmit_exactly_once(make_app, fresh_sandbox):
    web, worker = make_app(), make_app()  # two processes' worth of app on one database
    client = web.test_client()
    paid = {pay(client, "4242424242424242")[0] for _ in range(8)}
    set_fault(fresh_sandbox, "transmit", delay_ms=40)  # slow enough for the relays to overlap
    relays = [app.extensions["services"].relay for app in (web, worker)]
    starting_line = threading.Barrier(2)

    def relay_round(relay) -> int:
        starting_line.wait()
        return relay.run_once()

    with ThreadPoolExecutor(2) as pool:
        delivered = list(pool.map(relay_round, relays))

    sent = [c["request"]["orderId"] for c in calls(fresh_sandbox, "transmit")]
    assert sorted(sent) == sorted(paid)  # every order once, none twice
    assert sum(delivered) == len(paid)
    print(f"deliveries per relay: {delivered}")


def test_failed_transmit_is_retried_later_then_dead_lettered(app, client, fresh_sandbox,
                                                            database_url):
    relay = app.extensions["services"].relay
    order_id, _ = pay(client, "4242424242424242")

    set_fault(fresh_sandbox, "transmit", status=503)
    before = time.time()
    assert relay.run_once() == 0
    [(state, attempts, error, due)] = db_rows(
        database_url, "SELECT state, attempts, last_error, next_attempt_at FROM flex_outbox")
    assert (state, attempts) == ("pending", 1)
    assert "503" in error
    assert due > before  # backed off: not due again at once
    assert relay.run_once() == 0  # and not claimed again before then

    set_fault(fresh_sandbox, "transmit", status=400)
    db_rows(database_url, "UPDATE flex_outbox SET next_attempt_at = 0")
    assert relay.run_once() == 0
    [(state, attempts, error)] = db_rows(
        database_url, "SELECT state, attempts, last_error FROM flex_outbox")
    assert (state, attempts) == ("failed", 2)  # a 400 is not retried: dead-lettered
    assert "400" in error
    assert "transmit failed" in client.get("/orders").text
    assert relay.run_once() == 0
    assert len([c for c in calls(fresh_sandbox, "transmit") if c["status"] == 400]) == 1


def test_requests_holding_every_connection_still_log_their_flex_calls(make_app, database_url):
    # Each request holds a pooled connection while it calls Flex, and each Flex call is
    # logged meanwhile: with the log drawing on the same full pool, they would wait on
    # each other until the pool timed out, and the log rows would be lost.
    app = make_app(DATABASE_POOL_SIZE=2)
    starting_line = threading.Barrier(4)

    def rescue(_) -> str:
        client = app.test_client()
        starting_line.wait()
        return pay(client, "4000000000000002")[0]

    with ThreadPoolExecutor(4) as pool:
        order_ids = list(pool.map(rescue, range(4)))

    for order_id in order_ids:
        logged = db_rows(database_url, "SELECT endpoint FROM flex_calls WHERE order_id = ?",
                         order_id)
        assert {"tokenize", "evaluate"} <= {endpoint for (endpoint,) in logged}


def test_healthz_answers_503_when_the_database_cannot_serve(client, database_url):
    ok = client.get("/healthz")
    assert (ok.status_code, ok.text) == (200, "ok\n")

    db_rows(database_url, "DROP TABLE schema_migrations")  # e.g. a database restored empty
    broken = client.get("/healthz")
    assert (broken.status_code, broken.text) == (503, "database unavailable\n")


@pytest.mark.parametrize("queue", ["transmits", "actions", "webhooks"])
def test_every_lease_skips_a_row_another_process_is_claiming(database_url, engine, queue):
    """The outbox, the capture/cancel replays and the webhook sweep share one claim
    (shop/storage/leases.py). On PostgreSQL a row locked by another claimer is skipped at once, not
    waited for, and the next due row is taken; on SQLite the statement is atomic as it is."""
    from shop.orders import authorizations
    from shop.storage import flex_store, leases
    from shop.webhooks import events

    db.migrate(database_url)
    rows = {"transmits": (flex_store.TRANSMITS, ("pending", 9e9, 9e9), "flex_outbox"),
            "actions": (authorizations.ACTIONS, ("pending", 9e9, 9e9),
                        "flex_authorization_actions"),
            "webhooks": (events.DUE, (9e9,), "webhook_events")}
    target, due, table = rows[queue]
    for n in (1, 2):
        db_rows(database_url, "INSERT INTO orders (id, created_at, amount_cents, currency,"
                " email) VALUES (?, 0, 1800, 'USD', 'a@b.c')", f"o-{n}")
        db_rows(database_url, {
            "flex_outbox": "INSERT INTO flex_outbox (order_id, payload, next_attempt_at,"
                           " created_at) VALUES (?, '{}', ?, 0)",
            "flex_authorization_actions": "INSERT INTO flex_authorization_actions (order_id,"
                " action, idempotency_key, amount_cents, next_attempt_at, created_at)"
                " VALUES (?, 'capture', ?, 1800, ?, 0)",
            "webhook_events": "INSERT INTO webhook_events (event_id, event_type, order_id,"
                " happened_at, received_at, is_resent, body, headers, next_attempt_at)"
                " VALUES (?, 'order.refunded', ?, 0, 0, 0, '{}', '{}', ?)",
        }[table], *{"flex_outbox": (f"o-{n}", n), "flex_authorization_actions":
                    (f"o-{n}", f"key-{n}", n), "webhook_events": (f"e-{n}", f"o-{n}", n)}[table])
    holder, claimer = db.connect(database_url), db.connect(database_url)
    try:
        if engine == db.POSTGRESQL:  # another claimer holds the first due row right now
            claimer.execute("SET lock_timeout = '5s'")  # without SKIP LOCKED: fail, not hang
            holder.raw.execute("BEGIN")
            holder.execute(f"SELECT 1 FROM {table} WHERE {target.key} = ?"  # noqa: S608
                           " FOR UPDATE", ("e-1" if queue == "webhooks" else "o-1",))
            expected = "e-2" if queue == "webhooks" else "o-2"
        else:
            expected = "e-1" if queue == "webhooks" else "o-1"
        row = leases.claim(claimer, target, due, 9e9 + 60, target.key)
        assert row[0] == expected
        again = leases.claim(claimer, target, due, 9e9 + 60, target.key)
        if engine == db.POSTGRESQL:
            assert again is None  # the held row is skipped, the other one is leased
        else:
            assert again[0] != expected  # leased rows are not due: the other one
    finally:
        if engine == db.POSTGRESQL:
            holder.raw.execute("ROLLBACK")
        holder.close()
        claimer.close()


def test_a_sqlite_claim_updates_its_rows_by_key_however_long_the_backlog(tmp_path):
    """On SQLite a claim is atomic under the writer lock, so it updates the rows it picked
    through the key: a second check of the due condition made SQLite walk every due row,
    and the relay's claims grew dearer the longer its backlog."""
    from shop.storage import flex_store

    url = f"sqlite:///{tmp_path / 'shop.storage.db'}"
    db.migrate(url)
    conn = db.connect(url)
    try:
        sql = flex_store.TRANSMITS.claim_sql(db.SQLITE, "order_id")
        plan = [row[3] for row in conn.raw.execute(f"EXPLAIN QUERY PLAN {sql}",
                                                   (1, "pending", 9e9, 9e9, 8))]
    finally:
        conn.close()
    assert plan[0].startswith("SEARCH flex_outbox USING") and "(order_id=?)" in plan[0], plan


def write_in_turns(url: str, first: int, threads: int = 4, rows: int = 25) -> None:
    """`threads` threads each writing `rows` rows (a transaction, then a write on its own),
    with SQLite's wait for a locked file and the retry of a locked BEGIN both off, so a
    writer that met SQLite's lock would fail with "database is locked"."""
    database = db.Database(url, retry_seconds=0)
    starting_line = threading.Barrier(threads)

    def write(thread: int) -> None:
        with database.connection() as conn:
            conn.raw.execute("PRAGMA busy_timeout = 0")
            starting_line.wait()
            for version in range(first + thread * rows, first + (thread + 1) * rows):
                with conn:
                    conn.execute("INSERT INTO schema_migrations (version, name, applied_at)"
                                 " VALUES (?, ?, ?)", (version, "t", 0.0))
                    conn.execute("UPDATE schema_migrations SET applied_at = applied_at + 1"
                                 " WHERE version = ?", (version,))
                conn.execute("UPDATE schema_migrations SET name = 'w' WHERE version = ?",
                             (version,))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, range(threads)))  # re-raises a thread's "database is locked"


def test_sqlite_writers_take_turns_without_sqlites_busy_wait(tmp_path):
    """Threads of a process, and processes, take turns to write a SQLite file before they
    reach SQLite's own lock, whose wait sleeps 1, 2, 5 … 100 ms between looks: 3 processes
    of 4 threads, with SQLite's wait off, and every write lands."""
    url = f"sqlite:///{tmp_path / 'writers.db'}"
    db.migrate(url)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=spawn) as processes:
        others = [processes.submit(write_in_turns, url, 2000 + 1000 * n) for n in range(2)]
        write_in_turns(url, 1000)
        for other in others:
            other.result()  # re-raises that process's "database is locked"

    assert db_rows(url, "SELECT COUNT(*), SUM(applied_at) FROM schema_migrations"
                   " WHERE version >= 1000 AND name = 'w'") == [(300, 300.0)]


def test_call_log_rows_from_many_threads_are_each_stored_before_add_returns(database_url):
    """SqlCallLog writes the rows that wait on each other in one transaction (a group commit),
    and a row is in the database, in call order within its thread, when its add returns;
    a failed write leaves the rows of the other threads for the next writer."""
    from flex.calllog import LoggedCall
    from shop.storage.flex_store import SqlCallLog

    db.migrate(database_url)
    store = SqlCallLog(db.Database(database_url))
    seen_at_return: list[int] = []
    starting_line = threading.Barrier(8)

    def log(thread: int) -> None:
        starting_line.wait()
        for n in range(10):
            store.add(LoggedCall(None, f"order-{thread}", "transmit", "POST", "/v1/transmit",
                                 200, 5, 1, None, "{}", "{}", float(n)))
            seen_at_return.append(len(db_rows(
                database_url, "SELECT id FROM flex_calls WHERE order_id = ? AND created_at = ?",
                f"order-{thread}", float(n))))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(log, range(8)))

    assert seen_at_return == [1] * 80
    for thread in range(8):
        stamps = db_rows(database_url, "SELECT created_at FROM flex_calls WHERE order_id = ?"
                         " ORDER BY id", f"order-{thread}")
        assert [stamp for (stamp,) in stamps] == [float(n) for n in range(10)]

    broken, writes = SqlCallLog(db.Database(database_url)), []
    waiting = LoggedCall(None, "order-w", "token", "POST", "/v1/oauth2/token", 200, 5, 1, None,
                         None, None, 1.0)
    broken._waiting.append(waiting)  # another thread's row, queued behind a failing write

    def fail_once(rows):
        writes.append(list(rows))
        if len(writes) == 1:
            raise db.DatabaseUnavailable("the database did not answer")
        SqlCallLog._write(broken, rows)

    broken._write = fail_once
    first = LoggedCall(None, "order-f", "tokenize", "POST", "/v1/tokenize", 200, 5, 1, None,
                       None, None, 2.0)
    with pytest.raises(db.DatabaseUnavailable):
        broken.add(first)
    broken.add(LoggedCall(None, "order-f", "transmit", "POST", "/v1/transmit", 200, 5, 1, None,
                          None, None, 3.0))
    assert [[c.order_id for c in batch] for batch in writes] == [
        ["order-w", "order-f"], ["order-w", "order-f"]]  # the waiting row went with the next
    assert db_rows(database_url, "SELECT created_at FROM flex_calls WHERE order_id IN"
                   " ('order-w', 'order-f') ORDER BY id") == [(1.0,), (3.0,)]
