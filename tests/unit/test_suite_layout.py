"""The test suite's own layout: the helpers every suite shares live in one module,
tests/support.py; fixtures live in conftest.py files; no test module imports another test
module or a conftest (pytest finds fixtures by name, and a helper imported from a test module
drags that module's tests and fixtures along)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ProcessWatch

TESTS = Path(__file__).resolve().parents[1]
HELPERS = "tests.support"


def python_files() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(TESTS.parent).parent.parts)


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, a module of `package`,
    relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            # `from . import test_x` names the module in the imported names
            names = [f"{module}.{alias.name}" for alias in node.names] if not node.module else []
            found += [(node.lineno, name) for name in names or [module]]
    return found


def test_only_support_is_imported_from_the_tests_package():
    wrong = [f"{path.relative_to(TESTS.parent)}:{line} imports {module}"
             for path in python_files()
             for line, module in imported_modules(path.read_text(), package_of(path))
             if module.split(".")[0] == "tests" and module != HELPERS]
    assert wrong == [], "import shared helpers from tests/support.py, nothing else:\n" + (
        "\n".join(wrong))


def test_the_suite_holds_test_modules_conftests_and_one_helpers_module():
    others = [str(path.relative_to(TESTS)) for path in python_files()
              if path.name not in ("__init__.py", "conftest.py")
              and not path.name.startswith("test_") and path != TESTS / "support.py"]
    assert others == [], f"helpers belong in tests/support.py: {others}"


def test_the_check_sees_relative_and_absolute_imports():
    """The check above passes on an empty list: it must see every form of import."""
    source = ("from .conftest import calls\nfrom .test_shop import pay\nfrom . import test_x\n"
              "import tests.e2e.conftest\nfrom tests.support import hidden\nfrom ..support "
              "import free_port\n")
    package = package_of(TESTS / "integration" / "test_example.py")
    assert [name for _, name in imported_modules(source, package)] == [
        "tests.integration.conftest", "tests.integration.test_shop", "tests.integration.test_x",
        "tests.e2e.conftest", "tests.support", "tests.support"]


def test_the_slow_rule_sees_processes_started_and_signalled_not_quick_tools():
    """tests/conftest.py fails a test not marked slow whose setup or call does any of these."""
    watch = ProcessWatch()
    gunicorn = ("subprocess.Popen", ("/usr/bin/python3", ["python3", "-m", "gunicorn"], None,
                                     None))
    watch(*gunicorn)
    assert watch.seen == []  # not watching: a slow test, or a teardown
    watch.watching = True
    for event in (gunicorn, ("subprocess.Popen", ("/usr/bin/git", ["git", "ls-files"], None,
                                                  None)),
                  ("os.kill", (4242, 0)), ("os.kill", (4242, 9)), ("os.fork", ()),
                  ("open", ("shop.sqlite", "r", 0))):
        watch(*event)
    assert watch.seen == ["started python3 -m gunicorn", "sent signal 9 to process 4242",
                          "os.fork ()"]
