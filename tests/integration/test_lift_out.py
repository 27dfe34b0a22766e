"""`flex/` lifted out of this repository, as an integrator would: copied (without its
sandbox) into an empty project whose fresh virtualenv holds only `requests`, then the
quickstart from flex/README.md runs against the sandbox over loopback HTTP."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

import flex_sandbox
from tests.support import ROOT, calls

pytestmark = pytest.mark.slow  # starts a fresh virtualenv's python

# `requests` and what it imports: all the lifted package may need.
REQUESTS_AND_ITS_DEPENDENCIES = ("requests", "urllib3", "idna", "charset_normalizer", "certifi")
FORBIDDEN = ("flask", "werkzeug", "jinja2", "shop", "app", "flex_sandbox")


def quickstart() -> str:
    readme = (ROOT / "flex" / "README.md").read_text()
    return readme.split("```python\n", 1)[1].split("```", 1)[0]


def fresh_virtualenv(path: Path) -> Path:
    """A new virtualenv holding only requests and its dependencies, copied from this test's
    environment (so the test needs no package index); returns its python."""
    venv.create(path, with_pip=False)
    python = path / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip()
    for name in REQUESTS_AND_ITS_DEPENDENCIES:
        package = Path(importlib.import_module(name).__file__).parent
        shutil.copytree(package, Path(site) / name, ignore=shutil.ignore_patterns("__pycache__"))
    return python


def test_flex_alone_runs_the_readme_quickstart_in_an_empty_project(fresh_sandbox, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(ROOT / "flex", project / "flex",
                    ignore=shutil.ignore_patterns("__pycache__"))
    python = fresh_virtualenv(tmp_path / "venv")
    script = quickstart().replace("http://127.0.0.1:8100/v1", fresh_sandbox.api_url)
    script += (
        "\nimport json, sys, flex\n"
        f"print(json.dumps({{'flex': flex.__file__, 'imported': sorted("
        f"m for m in sys.modules if m in {FORBIDDEN!r} or m.split('.')[0] in {FORBIDDEN!r})}}))\n"
    )
    (project / "quickstart.py").write_text(script)

    run = subprocess.run([python, "-E", "-s", "quickstart.py"], cwd=project, capture_output=True,
                         text=True, timeout=60)

    assert run.returncode == 0, run.stderr
    *printed, report = run.stdout.splitlines()
    assert printed[:2] == ["APPROVED", "SUCCESS"]  # rescued, then half refunded
    assert len(printed[2]) == 36  # the transmit's id (a UUID)
    facts = json.loads(report)
    assert Path(facts["flex"]).is_relative_to(project / "flex")  # the copy, not this repo's
    assert facts["imported"] == []  # no Flask, werkzeug, shop or simulator code
    assert [c["endpoint"] for c in calls(fresh_sandbox)] == [
        "token", "tokenize", "evaluate", "refund", "transmit"]
    assert flex_sandbox.DEFAULT_MID in quickstart()  # the README shows the real credentials
