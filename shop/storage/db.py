"""The shop's database: embedded SQLite (the default) or PostgreSQL, chosen by DATABASE_URL.

The shop's SQL is written once, with `?` placeholders, and runs on both: `Connection` is a
thin wrapper that translates placeholders for psycopg, reads rows by name or position, and
makes `with conn:` one transaction. The schema lives in numbered plain-SQL migrations
(shop/storage/migrations/) applied at start-up and by `flask shop migrate`.

A database restart, a failover or a busy SQLite file costs retries, not errors: the pools
check a connection before lending it, and a transaction that cannot begin (the connection was
lost, or SQLite says "database is locked") is retried on a fresh connection for up to
`retry_seconds` (DATABASE_RETRY_SECONDS) before DatabaseUnavailable is raised; so is a
SELECT on its own. Both are always safe to send again: nothing of a transaction was sent
yet, and a read changes nothing. This is the one place that retries; callers write their
transactions as if the database never went away.

SQLite writers, threads and processes alike, take turns before they reach SQLite's own lock
(`SqliteWriter`), whose wait sleeps up to 100 ms between looks at a locked file.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from importlib import resources

from flask import Flask, current_app, g

log = logging.getLogger(__name__)

SQLITE, POSTGRESQL = "sqlite", "postgresql"
RETRY_SECONDS = 5.0  # how long a transaction keeps trying to begin (DATABASE_RETRY_SECONDS)
SQLITE_BUSY_SECONDS = 10.0  # how long a SQLite writer waits for the file's write lock
FIRST_PAUSE, LONGEST_PAUSE = 0.05, 1.0  # seconds between attempts, doubling
BOOKKEEPING_POOL_SIZE = 4  # PostgreSQL connections per process for the relay and call log
PRIVATE_FILE, PRIVATE_DIRECTORY = 0o600, 0o700  # the service user's only: emails, addresses
MIGRATION_LOCK = 7_413_020  # the advisory-lock key that serializes migrations on PostgreSQL
_MIGRATION_NAME = re.compile(r"(\d{3})_(\w+?)(?:\.(sqlite|postgresql))?\.sql")


def engine_of(url: str) -> str:
    """`sqlite` for sqlite:///path, `postgresql` for postgresql:// (or postgres://) URLs."""
    scheme = url.split("://", 1)[0]
    if scheme == "sqlite":
        return SQLITE
    if scheme in ("postgresql", "postgres"):
        return POSTGRESQL
    raise ValueError(f"DATABASE_URL must start with sqlite:/// or postgresql://, not {scheme!r}")


class Row(tuple):
    """A PostgreSQL result row readable by position or by column name, like sqlite3.Row."""

    def __new__(cls, values: Sequence, names: dict[str, int]):
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key):
        return super().__getitem__(self._names[key] if isinstance(key, str) else key)


def _rows(cursor):
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, names)


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached (or stayed locked) for `retry_seconds`."""


def unavailable(exc: BaseException) -> bool:
    """True for an error that means "the database is not there right now" (lost or refused
    connection, pool exhausted, SQLite locked), not "this SQL is wrong"."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc) or "busy" in str(exc)
    psycopg = sys.modules.get("psycopg")  # loaded only by a PostgreSQL deployment
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)


class Connection:
    """One connection, either engine. `execute` takes `?` placeholders; `with conn:` runs the
    block as one transaction (SQLite: BEGIN IMMEDIATE, so concurrent writers queue up instead
    of failing); outside it every statement commits on its own. A pooled connection that
    was lost is swapped for a fresh one from `pool`."""

    def __init__(self, raw, engine: str, pool=None, retry_seconds: float = RETRY_SECONDS,
                 writer: SqliteWriter | None = None):
        self.raw = raw
        self.engine = engine
        self._transaction = None
        self._pool = pool
        self.retry_seconds = retry_seconds
        self._writer = writer  # SQLite: the turn to write its file (`SqliteWriter`)

    def execute(self, sql: str, params: Sequence = ()):
        if self._transaction is None and self._lost():
            self._replace(self.retry_seconds)  # known lost: a fresh one, before sending
        if self._writer is not None and not self.raw.in_transaction and not _is_read(sql):
            self._hold_writer()  # a write on its own is a transaction too
            try:
                return self.raw.execute(sql, params)
            finally:
                self._writer.release()
        if self._pool is None or self._transaction is not None or not _is_read(sql):
            return self.raw.execute(self._sql(sql), params)
        # A read on its own: safe to send again, on a fresh connection, if this one was lost.
        return self._retrying(lambda: self.raw.execute(self._sql(sql), params))

    def _lost(self) -> bool:
        return self._pool is not None and (self.raw is None or self.raw.closed)

    def _replace(self, timeout: float) -> None:
        """Gives the lost connection back to the pool (which discards it), takes another."""
        lost, self.raw = self.raw, None
        if lost is not None:
            self._pool.putconn(lost)
        self.raw = self._pool.getconn(timeout=max(timeout, 0.1))

    @property
    def in_transaction(self) -> bool:
        """True inside a transaction (`with conn:`, or one a statement opened implicitly)."""
        if self.engine == SQLITE:
            return self.raw.in_transaction
        return self.raw.info.transaction_status.name != "IDLE"

    def executemany(self, sql: str, params: Sequence[Sequence]) -> None:
        self.raw.cursor().executemany(self._sql(sql), params)

    def _sql(self, sql: str) -> str:
        if self.engine == SQLITE:
            return sql
        return sql.replace("%", "%%").replace("?", "%s")

    def __enter__(self) -> Connection:
        self._hold_writer()
        try:
            self._retrying(self._begin)
        except BaseException:
            if self._writer is not None:
                self._writer.release()
            raise
        return self

    def _hold_writer(self) -> None:
        """SQLite: waits for this file's other writers (see `SqliteWriter`)."""
        if self._writer is not None and not self._writer.acquire(timeout=SQLITE_BUSY_SECONDS):
            raise DatabaseUnavailable(
                f"the database stayed locked for {SQLITE_BUSY_SECONDS:g} s")

    def _retrying(self, attempt):
        """attempt(), again on a fresh connection after a pause while the database is
        unavailable, for up to `retry_seconds`; only for what is safe to send twice."""
        deadline = time.monotonic() + self.retry_seconds
        pause = FIRST_PAUSE
        while True:
            try:
                if self._lost():
                    self._replace(deadline - time.monotonic())
                return attempt()
            except Exception as exc:
                if not unavailable(exc):
                    raise
                if time.monotonic() + pause > deadline:
                    raise DatabaseUnavailable(
                        f"the database did not answer for {self.retry_seconds:g} s: {exc}"
                    ) from exc
                log.warning("database unavailable (%s); retrying in %.2f s",
                            str(exc).strip().splitlines()[0] if str(exc).strip() else exc,
                            pause)
                _pause(pause)
                pause = min(pause * 2, LONGEST_PAUSE)
                if self._pool is not None and self.raw is not None:
                    self._discard()

    def _begin(self) -> None:
        if self.engine == SQLITE:
            self.raw.execute("BEGIN IMMEDIATE")
        else:
            self._transaction = self.raw.transaction()
            try:
                self._transaction.__enter__()
            except BaseException:
                self._transaction = None
                raise

    def _discard(self) -> None:
        """After a failed BEGIN: close this connection (so its pool replaces it) and take a
        fresh one at the next attempt."""
        try:
            self.raw.close()
        except Exception:  # noqa: S110 - it is being thrown away
            pass

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.engine == POSTGRESQL:
            transaction, self._transaction = self._transaction, None
            transaction.__exit__(exc_type, exc, tb)
            return
        try:
            self.raw.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            if self._writer is not None:
                self._writer.release()

    def close(self) -> None:
        self.raw.close()


def connect(url: str) -> Connection:
    """A new connection of its own (the caller closes it): for commands, migrations, tests."""
    if engine_of(url) == SQLITE:
        path = url.split(":///", 1)[1]
        raw = sqlite3.connect(path, timeout=SQLITE_BUSY_SECONDS, isolation_level=None)
        raw.row_factory = sqlite3.Row
        raw.execute("PRAGMA foreign_keys = ON")
        return Connection(raw, SQLITE, writer=_writer_for(path))
    import psycopg  # only a PostgreSQL deployment needs the driver

    return Connection(psycopg.connect(url, autocommit=True, row_factory=_rows), POSTGRESQL)


class SqliteWriter:
    """The turn to write one SQLite file, for the threads of this process and the other
    processes on the machine (web workers, relays). SQLite lets one connection write at a
    time, and one that finds the file locked sleeps in growing steps (1, 2, 5, 10 … 100 ms)
    before it looks again, however soon the lock is free: at 32 shoppers, BEGIN IMMEDIATE
    waited 9 ms on average and up to 0.4 s. Threads queue on a lock, which passes to the
    next one the moment it is released; processes on a lock file beside the database
    (`flock`), which wakes a waiting process the moment it is released. Re-entrant: a
    thread that writes on a second connection inside its transaction meets SQLite's lock,
    as before, not a deadlock here."""

    def __init__(self, path: str):
        self._threads = threading.RLock()
        self._depth = 0  # how many times the owning thread holds it
        # Private like the database: another user holding it would stop every write.
        self._file = os.fdopen(os.open(f"{path}.write-lock", os.O_CREAT | os.O_RDWR,
                                       PRIVATE_FILE), "r+")
        weakref.finalize(self, self._file.close)

    def acquire(self, timeout: float) -> bool:
        """True once this thread may write; False if this process's other writers held it
        for longer than `timeout` seconds."""
        if not self._threads.acquire(timeout=timeout):
            return False
        if self._depth == 0:
            try:
                self._lock_file()
            except BaseException:
                self._threads.release()
                raise
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._threads.release()

    def _lock_file(self) -> None:
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)  # gone with the process
        except BlockingIOError:
            # Woken the moment the other process lets go. If it never does (hung in its
            # transaction), this thread waits with it, and the process's other writers give
            # up after SQLITE_BUSY_SECONDS, as they did on SQLite's lock.
            fcntl.flock(self._file, fcntl.LOCK_EX)


# SQLite file -> its writer turn in this process, while a connection to the file holds it
_writers: weakref.WeakValueDictionary[str, SqliteWriter] = weakref.WeakValueDictionary()
_writers_guard = threading.Lock()


def _writer_for(path: str) -> SqliteWriter:
    """This process's turn to write the SQLite file at `path`."""
    path = os.path.realpath(path)
    with _writers_guard:
        writer = _writers.get(path)
        if writer is None:
            writer = _writers[path] = SqliteWriter(path)
        return writer


def _forget_writers() -> None:
    """In a forked child: a process of its own takes turns of its own (the lock file's open
    description is shared across a fork, so the parent's would not keep the child out)."""
    global _writers_guard
    _writers.clear()
    _writers_guard = threading.Lock()


os.register_at_fork(after_in_child=_forget_writers)


class Database:
    """Where connections come from. PostgreSQL: pools shared by the process's threads.
    SQLite: one connection kept per thread, because opening one costs more than a small
    write and closing the last one checkpoints the WAL."""

    def __init__(self, url: str, pool_size: int = 10, retry_seconds: float = RETRY_SECONDS):
        self.url = url
        self.engine = engine_of(url)
        self.retry_seconds = retry_seconds
        self._local = threading.local()
        self._pools = {}
        if self.engine == POSTGRESQL:
            # Bookkeeping writes get a small pool of their own: a request holding a
            # connection never waits for one that other requests hold, so no deadlock.
            self._pools = {True: _pool(url, pool_size),
                           False: _pool(url, BOOKKEEPING_POOL_SIZE, _no_commit_wait)}

    @contextmanager
    def connection(self, *, durable: bool = True) -> Iterator[Connection]:
        """A connection for one unit of work. `durable=False` is for bookkeeping that is safe
        to lose in a power cut (a log row, a relay's lease): its commits do not wait for the
        disk (SQLite: synchronous = NORMAL; PostgreSQL: synchronous_commit = off)."""
        if self._pools:
            pool = self._pools[durable]
            conn = Connection(pool.getconn(), POSTGRESQL, pool, self.retry_seconds)
            try:
                yield conn
            finally:
                if conn.raw is not None:
                    pool.putconn(conn.raw)  # the pool replaces a connection that was lost
            return
        key = "durable" if durable else "bookkeeping"
        conn = getattr(self._local, key, None)
        if conn is None:
            conn = connect(self.url)
            conn.retry_seconds = self.retry_seconds
            if not durable:
                conn.execute("PRAGMA synchronous = NORMAL")
            setattr(self._local, key, conn)
        yield conn

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()


def _pool(url: str, size: int, configure=None):
    from psycopg_pool import ConnectionPool

    return ConnectionPool(
        url, min_size=1, max_size=size, timeout=10, open=True, configure=configure,
        kwargs={"autocommit": True, "row_factory": _rows},
        check=ConnectionPool.check_connection,  # survive a database restart
    )


def _is_read(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT"


def _pause(seconds: float) -> None:
    time.sleep(seconds)  # between attempts to reach the database (tests replace it)


def _no_commit_wait(raw) -> None:
    raw.execute("SET synchronous_commit = off")


# --- schema migrations ---------------------------------------------------------------------

def migrations(engine: str) -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration for `engine`, in order. A migration is one
    file for both engines, or a .sqlite.sql / .postgresql.sql pair where they must differ."""
    found = {}
    for file in resources.files("shop.storage").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.fullmatch(file.name)
        if match and match[3] in (None, engine):
            found[int(match[1])] = (int(match[1]), match[2], file.read_text())
    return [found[version] for version in sorted(found)]


def migrate(url: str) -> list[str]:
    """Applies pending migrations in one transaction; returns the names applied. Safe when
    several processes start at once: they queue on a lock and find the work done."""
    with _one_at_a_time(url), closing(connect(url)) as conn:
        if conn.engine == SQLITE:
            conn.execute("PRAGMA journal_mode = WAL")  # the relay writes while pages read
        with conn:
            if conn.engine == POSTGRESQL:
                conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            done = []
            for version, name, sql in migrations(conn.engine):
                if version in applied:
                    continue
                _run_script(conn, sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, time.time()),
                )
                done.append(f"{version:03d}_{name}")
    for name in done:
        log.info("applied migration %s", name)
    return done


@contextmanager
def _one_at_a_time(url: str) -> Iterator[None]:
    """Processes starting together migrate one after another. PostgreSQL: an advisory lock,
    taken in the migration's transaction. SQLite: a lock file beside the database, because
    SQLite answers a second process switching a new file to WAL with "locked" at once
    instead of waiting its turn (all processes of one SQLite file share a machine)."""
    if engine_of(url) != SQLITE:
        yield
        return
    with open(f"{url.split(':///', 1)[1]}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even on kill -9
        yield


def schema_version(url: str) -> int:
    with closing(connect(url)) as conn:
        return conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0


def _run_script(conn: Connection, sql: str) -> None:
    if conn.engine == POSTGRESQL:
        conn.raw.execute(sql)  # no parameters: psycopg sends the whole script at once
        return
    statement = ""
    for line in sql.splitlines(keepends=True):  # executescript() would COMMIT first
        statement += line
        if sqlite3.complete_statement(statement):
            conn.raw.execute(statement)
            statement = ""


# --- Flask wiring --------------------------------------------------------------------------

def database_url(config) -> str:
    """DATABASE_URL, or the SQLite file named by DATABASE."""
    return config.get("DATABASE_URL") or f"sqlite:///{config['DATABASE']}"


def database() -> Database:
    return current_app.extensions["database"]


def get_db() -> Connection:
    """The request's connection, given back when the request ends."""
    if "db" not in g:
        g.db_lease = ExitStack()
        g.db = g.db_lease.enter_context(database().connection())
    return g.db


def release_db(_exc: BaseException | None = None) -> None:
    g.pop("db", None)
    lease = g.pop("db_lease", None)
    if lease is not None:
        lease.close()


def clear(conn: Connection) -> None:
    """Empties every table but schema_migrations, orders and refunds (the demo's reset, after
    shop/orders/lifecycle.py `forget_all`, the one writer of orders and refunds)."""
    with conn:
        for table in ("flex_authorization_actions", "order_events", "order_items",
                      "webhook_events", "webhook_rejections", "flex_outbox",
                      "flex_calls", "processor_ledger"):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names


def make_private(url: str, instance_path: str) -> None:
    """Only the service user may read the shop's files (orders hold emails and addresses):
    the instance folder 0700 (it also holds the webhook key and the sandbox's files), the
    SQLite file 0600, and so its WAL and shared memory, which SQLite creates with the
    database file's mode. A folder named by DATABASE is the operator's: left as it is."""
    if os.path.isdir(instance_path):
        os.chmod(instance_path, PRIVATE_DIRECTORY)
    if engine_of(url) != SQLITE:
        return
    path = url.split(":///", 1)[1]
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE_FILE))  # before SQLite makes it
    for file in (path, f"{path}-wal", f"{path}-shm", f"{path}.migrate-lock"):
        if os.path.exists(file):
            os.chmod(file, PRIVATE_FILE)


def init_app(app: Flask) -> None:
    url = database_url(app.config)
    make_private(url, app.instance_path)
    migrate(url)
    app.extensions["database"] = Database(
        url, int(app.config.get("DATABASE_POOL_SIZE", 10)),
        float(app.config.get("DATABASE_RETRY_SECONDS", RETRY_SECONDS)))
    app.teardown_appcontext(release_db)
