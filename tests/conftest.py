"""For every test: the suite brings its own settings and never reads a developer's `.env`
(which may point the shop at Flex's real sandbox). Servers the tests start inherit this.

The `slow` marker: a test that starts a process or signals one (a shop or sandbox process,
gunicorn, nginx, PostgreSQL, a browser, a kill -9) is slow; `make test-fast` runs the others.
Tests under tests/e2e/ and tests on PostgreSQL are marked here (tests/integration/conftest.py
marks the PostgreSQL runs); other modules that start processes say `pytestmark =
pytest.mark.slow`. A test not marked slow that starts or signals a process fails, saying so:
a new test cannot forget the marker.

The `screenshots` marker: tests/e2e/test_screenshots.py runs only when `-m` names it
(`make screenshots`); otherwise it is deselected, not even set up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support import ProcessWatch

os.environ["FLASK_SKIP_DOTENV"] = "1"

E2E = Path(__file__).parent / "e2e"
def pytest_collection_modifyitems(config, items):
    chosen, screenshots = [], []
    wants_screenshots = "screenshots" in (config.option.markexpr or "")
    for item in items:
        if E2E in item.path.parents or "postgres_cluster" in item.fixturenames:
            item.add_marker(pytest.mark.slow)
        is_screenshot = item.get_closest_marker("screenshots") is not None
        (screenshots if is_screenshot and not wants_screenshots else chosen).append(item)
    if screenshots:
        config.hook.pytest_deselected(items=screenshots)
        items[:] = chosen


WATCH = ProcessWatch()
sys.addaudithook(WATCH)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    WATCH.watching = item.get_closest_marker("slow") is None
    WATCH.seen = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    WATCH.watching = False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if WATCH.seen and report.passed and call.when in ("setup", "call"):
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} is not marked slow but it "
                           f"{'; '.join(WATCH.seen[:3])}: mark it pytest.mark.slow")
        WATCH.seen = []
