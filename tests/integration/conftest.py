"""The integration suite's fixtures: a Flex sandbox serving real HTTP on loopback, shared by
a test module (`sandbox`, reset for each test: `fresh_sandbox`), a session on its API (`api`,
`flex`), the shop built against it (`make_app`, `app`, `client`), the shop over real HTTP
with the sandbox's webhooks subscribed to it (`webhook_shop`), and the shop's database on
either engine. The helpers they use are in tests/support.py.

Tests marked `storage` run once per engine: on SQLite, and on PostgreSQL in a throwaway
cluster started once per session (skipped, with the reason, when PostgreSQL is not
installed); the PostgreSQL run is marked `slow`. Other tests run on SQLite only.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests

import flex_sandbox
from app import create_app
from bench.postgres import PostgresCluster, postgres_bindir
from flex import FlexClient
from shop.storage import db
from tests.support import (
    WEBHOOK_KEY,
    LiveShop,
    access_token,
    close_app,
    flex_config,
    flex_settings,
)


def pytest_generate_tests(metafunc):
    if "engine" in metafunc.fixturenames and metafunc.definition.get_closest_marker("storage"):
        # The PostgreSQL run needs the cluster's processes: slow (`make test-fast` skips it).
        metafunc.parametrize("engine", [db.SQLITE, pytest.param(db.POSTGRESQL,
                                                                marks=pytest.mark.slow)],
                             indirect=True)


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
        return f"sqlite:///{tmp_path / 'shop.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def postgres_url(postgres_cluster):
    """A fresh, empty schema of its own on the session's PostgreSQL cluster, dropped after
    the test."""
    url = postgres_cluster.create_schema()
    yield url
    postgres_cluster.drop_schema(url)


@pytest.fixture(scope="module")
def sandbox():
    with flex_sandbox.serve(port=0) as server:
        yield server


@pytest.fixture
def fresh_sandbox(sandbox):
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    return sandbox


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


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api(fresh_sandbox):
    """A requests session with a valid bearer for the fresh sandbox."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {access_token(fresh_sandbox)}"
    yield session
    session.close()


@pytest.fixture
def flex(api, fresh_sandbox) -> Callable[..., requests.Response]:
    """Calls Flex's API on the fresh sandbox: flex("POST", "/evaluate", json=…)."""
    def call(method: str, path: str, **kwargs) -> requests.Response:
        return api.request(method, f"{fresh_sandbox.api_url}{path}", timeout=5, **kwargs)
    return call


@pytest.fixture
def webhook_shop(make_app, fresh_sandbox):
    """(app, its LiveShop) with the sandbox delivering webhooks to it at once."""
    app = make_app(FLEX_WEBHOOK_KEY=WEBHOOK_KEY)
    live = LiveShop(app)
    try:
        requests.put(f"{fresh_sandbox.url}/_sandbox/webhooks", timeout=5, json={
            "url": live.webhook_url, "key": WEBHOOK_KEY, "lost_answer_delay": 0,
        }).raise_for_status()
        yield app, live
    finally:
        live.stop()
