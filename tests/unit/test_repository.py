"""The repository's layout keeps its promises.

- It is self-contained: nothing in it points at notes that live outside it. Flex's API facts
  live in docs/FLEX_API.md. Earlier drafts cited working notes kept next to the repository (a
  Flex API reference and a design note); a reader who copies the code cannot follow such a
  citation, so no tracked file may name them.
- Every path, module and import the README, flex/README.md and docs/ cite exists, so a move
  that forgets a document fails here rather than misleading a reader.
- `flex/` is the library alone (no web framework, shop or simulator inside), and the
  simulator, `flex_sandbox/`, runs from its own package beside it.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Spelled in pieces so that this file does not match itself.
OUTSIDE_NOTES = re.compile("|".join((
    r"shared/" + r"flex-api",
    r"shared/" + r"DESIGN",
    r"\bflex-api" + r"\.md\b",
    r"\bDESIGN" + r"\.md\b",
)))


def tracked_files() -> list[Path]:
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                                 capture_output=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    files = [ROOT / name for name in listing.decode().split("\0") if name]
    return [path for path in files if path.is_file()]


def tracked_text_files() -> list[Path]:
    return [path for path in tracked_files() if b"\0" not in path.read_bytes()[:8192]]


def mentions(text: str) -> list[str]:
    return [f"line {number}: {match.group(0)}"
            for number, line in enumerate(text.splitlines(), 1)
            for match in OUTSIDE_NOTES.finditer(line)]


def test_the_pattern_catches_outside_notes_and_spares_our_own_reference():
    api, design = "flex-" + "api", "DES" + "IGN"
    assert mentions(f"see shared/{api}.md §15") == [f"line 1: shared/{api}"]
    assert mentions(f"x\n(shared/{design}.md)") == [f"line 2: shared/{design}"]
    assert mentions(f"the {design}.md note") == [f"line 1: {design}.md"]
    assert mentions(f"the {api}.md note") == [f"line 1: {api}.md"]
    assert mentions("docs/FLEX_API.md, docs/SANDBOX.md, flex/README.md") == []


def test_no_tracked_file_cites_notes_outside_the_repository():
    files = tracked_text_files()
    assert ROOT / "README.md" in files  # the listing really is the repository
    offenders = {str(path.relative_to(ROOT)): found for path in files
                 if (found := mentions(path.read_text(encoding="utf-8", errors="replace")))}
    assert offenders == {}, "cite docs/FLEX_API.md (or nothing) instead"


# --- Every repository path the docs cite exists ---------------------------------------------

# The repository's top-level folders: a cited path starting with one of them is checked. A
# folder that is gone stays listed, so that a citation of it fails rather than being skipped.
FOLDERS = (".ci", "bench", "deploy", "docs", "flex", "flex_sandbox", "shop", "static",
           "templates", "tests")
FILE_SUFFIXES = (".py", ".md", ".sql", ".html", ".css", ".js", ".conf", ".toml", ".txt",
                 ".svg", ".png")
HOST_PARTS = {"com", "io", "org", "net"}  # `shop.example.com` is a host, not a module

# A token starts where no word, dot, slash, colon or dash is before it: `/orders/<id>`,
# `http://127.0.0.1:5000/flex` and `/etc/nginx/conf.d/shop.conf` are not repository paths.
TOKEN = re.compile(r"(?<![\w./:@~-])[\w.-]*\w(?:/[\w.-]+)*/?")
RUN_MODULE = re.compile(r"\bpython3? -m ([\w.]+)")
IMPORT = re.compile(r"^\s*(?:from ([\w.]+) import ([\w, ]+)$|import ([\w.]+)$)")


def python_packages() -> set[str]:
    return {path.parent.name for path in ROOT.glob("*/__init__.py")}


def defined_names(module: Path) -> set[str]:
    """The names a module binds at its top level (definitions, assignments, imports)."""
    names: set[str] = set()
    body = list(ast.parse(module.read_text(encoding="utf-8")).body)
    while body:
        node = body.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.If | ast.Try):
            body.extend([*node.body, *node.orelse, *getattr(node, "finalbody", [])])
    return names


def dotted_name_exists(name: str) -> bool:
    """`shop.orders.lifecycle`, `flex.payloads.is_authorization`, `flex_sandbox.serve`: the
    modules exist and the first name after them is defined there (the rest is attributes)."""
    here = ROOT
    for index, part in enumerate(name.split(".")):
        if (here / part / "__init__.py").is_file():
            here = here / part
        elif (here / f"{part}.py").is_file():
            rest = name.split(".")[index + 1:]
            return not rest or rest[0] in defined_names(here / f"{part}.py")
        else:
            return here != ROOT and part in defined_names(here / "__init__.py")
    return True


def runnable_module_exists(name: str) -> bool:
    """`python -m name` runs a file of this repository (or an installed tool, e.g. pytest)."""
    top = name.split(".")[0]
    if top not in python_packages() and not (ROOT / f"{top}.py").is_file():
        return importlib.util.find_spec(name) is not None
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()


def citations(line: str, packages: set[str], file_names: set[str]
              ) -> dict[str, Callable[[str], bool]]:
    """What one line cites, each with the check that it exists (first reading wins)."""
    found: dict[str, Callable[[str], bool]] = dict.fromkeys(RUN_MODULE.findall(line),
                                                            runnable_module_exists)
    if (imported := IMPORT.match(line.strip("`"))) and (
            (imported[1] or imported[3]).split(".")[0] in packages):
        module, names, alone = imported.groups()
        for name in [alone] if alone else [f"{module}.{name.strip()}" for name in
                                           names.split(",") if name.strip()]:
            found.setdefault(name, dotted_name_exists)
    for token in (match.group(0).rstrip(".") for match in TOKEN.finditer(line)):
        if "/" in token:
            if token.split("/")[0] in FOLDERS:
                found.setdefault(token, in_repository)
        elif token.endswith(FILE_SUFFIXES) and not token.startswith("."):
            found.setdefault(token, file_names.__contains__)
        elif "." in token and token.split(".")[0] in packages and not (
                HOST_PARTS & set(token.split("."))):
            found.setdefault(token, dotted_name_exists)
    return found


def tree_entries(text: str) -> dict[int, list[str]]:
    """The paths a drawn tree names (`├── orders/` under `│   shop/` is shop/orders/), by line:
    an entry may list several names (`templates/, static/`) or a glob (`*.py`)."""
    entries: dict[int, list[str]] = {}
    folders: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not (connector := re.search("[├└]── ", line)):
            continue
        depth = connector.start() // 4
        names = [name.strip(" …") for name in re.split(r"\s{2,}", line[connector.end():])[0]
                 .split(", ")]
        entries[number] = ["/".join([*folders[:depth], name]) for name in names if name]
        if len(names) == 1 and names[0].endswith("/"):
            folders[depth:] = [names[0].rstrip("/")]
    return entries


def in_repository(path: str) -> bool:
    return any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()


def stale_citations(text: str, file_names: set[str]) -> list[str]:
    """Each repository path, file name, module or import the text cites that does not exist,
    as `line N: citation`."""
    packages, tree = python_packages(), tree_entries(text)
    stale = []
    for number, line in enumerate(text.splitlines(), 1):
        found = citations(line, packages, file_names)
        for path in tree.get(number, []):
            found.setdefault(path, in_repository)
        stale += [f"line {number}: {name}" for name, exists in found.items() if not exists(name)]
    return stale


def test_the_citation_finder_checks_paths_modules_and_imports_and_spares_the_rest():
    names = {"lifecycle.py", "001_orders.sql"}
    assert stale_citations("`shop/orders/lifecycle.py` `FLOW`, docs/LIFECYCLE.md.", names) == []
    assert stale_citations("see `shop/lifecycle.py` and\n[shot](docs/screenshots/gone.png)",
                           names) == ["line 1: shop/lifecycle.py",
                                      "line 2: docs/screenshots/gone.png"]
    assert stale_citations("`templates/`, `tests/…`, `flex_sandbox/views/`", names) == []
    assert stale_citations("`001_orders.sql` and `webhook_effects.py`", names) == [
        "line 1: webhook_effects.py"]
    # URLs, outside paths, hosts, env vars and runtime files are not repository paths.
    assert stale_citations(
        "GET /orders/<id>, /flex/webhooks, http://127.0.0.1:5000/flex, FLEX_SANDBOX_FAULTS, "
        "`/etc/nginx/conf.d/shop.conf`, (`shop.example.com`), `instance/shop.sqlite`, "
        "https://docs.flexfactor.io/v1/evaluate, `.venv/bin/pytest`, 0002/0127/9995", names) == []
    # Modules: run with -m, named dotted, or imported in a sample.
    assert stale_citations("python -m flex_sandbox --port 8100; python -m pytest", names) == []
    assert stale_citations("`python -m shop.orders.diagram`, `python -m shop.access`",
                           names) == ["line 1: shop.access"]
    assert stale_citations("`flex.payloads.is_authorization`, `webhook_effects.apply_due`, "
                           "`flex_sandbox.CREDENTIALS`, `flex.purpose(…)`", names) == []
    assert stale_citations("`shop.webhook_effects.apply_due`, `flex.payloads.nothing`",
                           names) == ["line 1: shop.webhook_effects.apply_due",
                                      "line 1: flex.payloads.nothing"]
    # A drawn tree: each entry under its folders.
    tree = ("├── flex/        the library\n│   └── cit.py\n├── shop/\n│   ├── orders/\n"
            "│   │   └── lifecycle.py   one writer\n│   ├── orders.py\n│   └── *.py   the rest\n"
            "└── templates/, static/, gone/   pages")
    assert stale_citations(tree, names | {"cit.py", "orders.py"}) == [
        "line 6: shop/orders.py", "line 8: gone/"]
    assert stale_citations("from flex import Card, purpose\nfrom flex import sandbox\n"
                           "import flex_sandbox\nimport flex.gone", names) == [
        "line 2: flex.sandbox", "line 4: flex.gone"]


def test_every_repository_path_the_docs_cite_exists():
    tracked_folders = {path.relative_to(ROOT).parts[0] for path in tracked_text_files()
                       if len(path.relative_to(ROOT).parts) > 1}
    assert tracked_folders <= set(FOLDERS), "add the new top-level folder to FOLDERS"
    # The documents a reader follows: the README, the library's README and docs/.
    documents = [ROOT / "README.md", ROOT / "flex" / "README.md",
                 *sorted((ROOT / "docs").glob("*.md"))]
    file_names = {path.name for path in tracked_files()}
    stale = {str(path.relative_to(ROOT)): found for path in documents
             if (found := stale_citations(path.read_text(encoding="utf-8"), file_names))}
    assert stale == {}, "these citations name nothing in the repository"


# --- flex/ is the library alone; flex_sandbox/ stands beside it -----------------------------

# What a module of the library must never import: a web framework, the shop or the simulator.
NOT_IN_THE_LIBRARY = {"flask", "werkzeug", "jinja2", "shop", "app", "flex_sandbox"}


def imported_modules(source: str, package_depth: int) -> set[str]:
    """Top-level names of every module the source imports, wherever the import statement is
    (in a function too) and including `importlib.import_module("…")` with a literal; a relative
    import that climbs out of the package is reported as "..". """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level > package_depth:
            found.add("..")
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ast.unparse(node.func) in {"importlib.import_module", "import_module",
                                             "__import__"}):
            found.add(node.args[0].value.split(".")[0])
    return found


def test_the_import_finder_sees_every_form_of_import():
    source = ("import os, flask.json\nfrom werkzeug.serving import x\nfrom . import y\n"
              "def f():\n    from shop.orders import lifecycle\n"
              "    importlib.import_module('jinja2')\n    from .. import z\n")
    assert imported_modules(source, package_depth=1) == {"os", "flask", "werkzeug", "shop",
                                                         "jinja2", ".."}


def test_no_module_of_the_library_imports_a_web_framework_the_shop_or_the_simulator():
    modules = sorted((ROOT / "flex").rglob("*.py"))
    assert ROOT / "flex" / "client.py" in modules
    offenders = {}
    for module in modules:
        depth = len(module.relative_to(ROOT / "flex").parts)
        if bad := imported_modules(module.read_text(encoding="utf-8"), depth) & (
                NOT_IN_THE_LIBRARY | {".."}):
            offenders[str(module.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}, "flex/ must stay liftable: requests and the standard library only"


def test_the_simulator_is_a_package_of_its_own_beside_the_library(monkeypatch, capsys):
    # It needs Flask and flex/ (its Luhn check and redaction), never the shop or app.py.
    offenders = {}
    for module in sorted((ROOT / "flex_sandbox").rglob("*.py")):
        depth = len(module.relative_to(ROOT / "flex_sandbox").parts)
        if bad := imported_modules(module.read_text(encoding="utf-8"), depth) & {
                "shop", "app", ".."}:
            offenders[str(module.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}
    # `python -m flex_sandbox` is its entry point (run in this process: no server starts).
    monkeypatch.setattr(sys, "argv", ["flex_sandbox", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("flex_sandbox", run_name="__main__", alter_sys=True)
    assert exited.value.code == 0
    assert "--port" in capsys.readouterr().out


def imported_when_loaded(source: str) -> set[str]:
    """Top-level names of the modules a source imports when it is loaded: statements at module
    level (in `if` and `try` blocks too), not inside functions nor under `if TYPE_CHECKING:`."""
    found: set[str] = set()
    body = list(ast.parse(source).body)
    while body:
        node = body.pop()
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            body.extend([*node.body, *node.orelse])
        elif isinstance(node, ast.Try):
            body.extend([*node.body, *node.orelse, *node.finalbody,
                         *(line for handler in node.handlers for line in handler.body)])
    return found


def test_the_shop_loads_without_the_simulator():
    # So a production deploy (FLEX_API_URL set) may leave flex_sandbox/ out: only the function
    # that starts the embedded demo sandbox imports it.
    assert imported_when_loaded("import flask\nif TYPE_CHECKING:\n    import flex_sandbox\n"
                                "def f():\n    import flex_sandbox\n") == {"flask"}
    modules = [ROOT / "app.py", *sorted((ROOT / "shop").rglob("*.py"))]
    offenders = [str(module.relative_to(ROOT)) for module in modules
                 if "flex_sandbox" in imported_when_loaded(module.read_text(encoding="utf-8"))]
    assert offenders == []
