"""A Flex sandbox serving real HTTP on loopback, shared by a test module, and the shop's
database on either engine.

Tests marked `storage` run once per engine: on SQLite, and on PostgreSQL in a throwaway
cluster started once per session (skipped, with the reason, when PostgreSQL is not
installed). Other tests run on SQLite only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from werkzeug.security import generate_password_hash

import flex_sandbox
from app import create_app
from bench.postgres import PostgresCluster, postgres_bindir
from flex import FlexClient, FlexConfig
from shop.storage import db

ENGINES = (db.SQLITE, db.POSTGRESQL)

MERCHANT_PASSWORD = "correct horse battery staple"  # noqa: S105 - the tests' merchant
# What SHOP_ENV=production requires beyond the Flex settings: a real secret key and the
# back office's login (a cheap hash: the tests sign in often).
PRODUCTION = {
    "SHOP_ENV": "production",
    "SECRET_KEY": "a-long-random-test-secret",
    "MERCHANT_USERNAME": "merchant",
    "MERCHANT_PASSWORD_HASH": generate_password_hash(MERCHANT_PASSWORD, "pbkdf2:sha256:1000"),
}


def pytest_generate_tests(metafunc):
    if "engine" in metafunc.fixturenames and metafunc.definition.get_closest_marker("storage"):
        metafunc.parametrize("engine", ENGINES, indirect=True)


@pytest.fixture(scope="session")
def postgres_cluster():
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin "
                    "or pg_config --bindir): apt-get install postgresql")
    cluster = PostgresCluster(bindir).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def engine(request) -> str:
    """The database engine under test: SQLite, unless a `storage` test asks for both."""
    return getattr(request, "param", db.SQLITE)


@pytest.fixture
def database_url(request, engine, tmp_path):
    """A fresh, empty database on `engine` (on PostgreSQL: a schema of its own), removed
    after the test."""
    if engine == db.SQLITE:
        yield f"sqlite:///{tmp_path / 'shop.sqlite'}"
        return
    cluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_schema()
    yield url
    cluster.drop_schema(url)


def sqlite_files(app) -> list[Path]:
    """The SQLite database file of an app on SQLite, and its write-ahead log if any."""
    database = Path(db.database_url(app.config).split(":///", 1)[1])
    return [p for p in (database, Path(f"{database}-wal")) if p.exists()]


def db_rows(url: str, sql: str, *params) -> list[tuple]:
    """Runs one query on the shop's database, as an operator would look at it."""
    conn = db.connect(url)
    try:
        with conn:
            cursor = conn.execute(sql, params)
            return [tuple(row) for row in cursor] if cursor.description else []
    finally:
        conn.close()


@pytest.fixture(scope="module")
def sandbox():
    with flex_sandbox.serve(port=0) as server:
        yield server


@pytest.fixture
def fresh_sandbox(sandbox):
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    return sandbox


def flex_config(server, **overrides) -> FlexConfig:
    settings = {
        "api_url": server.api_url,
        "app_key": flex_sandbox.DEFAULT_APP_KEY,
        "app_secret": flex_sandbox.DEFAULT_APP_SECRET,
        "mid": flex_sandbox.DEFAULT_MID,
        "tokenization_key": flex_sandbox.DEFAULT_TOKENIZATION_KEY,
        "site_id": flex_sandbox.DEFAULT_SITE_ID,
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "deadline": 3.0,
        "backoff_base": 0.05,
        "backoff_cap": 0.1,
    }
    return FlexConfig(**{**settings, **overrides})


def flex_settings(server) -> dict[str, str]:
    """The FLEX_* settings that point the shop at `server` as at a real Flex API."""
    return {
        "FLEX_API_URL": server.api_url,
        "FLEX_APP_KEY": flex_sandbox.DEFAULT_APP_KEY,
        "FLEX_APP_SECRET": flex_sandbox.DEFAULT_APP_SECRET,
        "FLEX_MID": flex_sandbox.DEFAULT_MID,
        "FLEX_SITE_ID": flex_sandbox.DEFAULT_SITE_ID,
        "FLEX_TOKENIZATION_KEY": flex_sandbox.DEFAULT_TOKENIZATION_KEY,
        "FLEX_SENSEJS_URL": f"{server.url}/widget.js",
    }


def calls(server, endpoint: str | None = None) -> list[dict]:
    params = {"endpoint": endpoint} if endpoint else {}
    return requests.get(f"{server.url}/_sandbox/calls", params=params, timeout=5).json()


def set_fault(server, endpoint: str, **spec) -> None:
    requests.put(f"{server.url}/_sandbox/faults/{endpoint}", json=spec,
                 timeout=5).raise_for_status()


def clear_faults(server) -> None:
    """Removes every fault; calls held by a `hang` fault are answered now."""
    requests.delete(f"{server.url}/_sandbox/faults", timeout=5).raise_for_status()


def sign_in(client, password: str = MERCHANT_PASSWORD):
    """Signs the merchant in through the login form; returns the answer (303 when it took)."""
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]*)"', page)[1]
    return client.post("/login", data={"csrf_token": token, "username": "merchant",
                                       "password": password})


@pytest.fixture
def reports():
    return []


@pytest.fixture
def flex_client(fresh_sandbox, reports):
    flex = FlexClient(flex_config(fresh_sandbox), on_call=reports.append)
    yield flex
    flex.close()


@pytest.fixture
def make_app(fresh_sandbox, database_url):
    """Builds the shop configured for "real" Flex (FLEX_API_URL set) against the sandbox."""
    apps = []

    def build(**overrides):
        app = create_app({
            "TESTING": True,
            "DATABASE_URL": database_url,
            **flex_settings(fresh_sandbox),
            "FLEX_RELAY": False,  # tests run the relay themselves, to see each step
            "FLEX_READ_TIMEOUT": 2.0,
            "FLEX_DEADLINE": 3.0,
            "PROCESSOR_LATENCY_MS": 0,
            **overrides,
        })
        apps.append(app)
        return app

    yield build
    for app in apps:
        close_app(app)


def close_app(app) -> None:
    """Stops what an app started: its relay, vault threads and connections."""
    app.extensions["services"].close()
    app.extensions["database"].close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()
